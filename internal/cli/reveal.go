package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/custody"
	"github.com/mktos2s/mktos2s/internal/lifecycle"
	"github.com/mktos2s/mktos2s/internal/workerapp"
	"github.com/mktos2s/mktos2s/workflows"
)

// errNoCustodyKey says why --reveal cannot work in this process.
var errNoCustodyKey = errors.New("credentials --reveal needs the custody key that sealed the secret: set custody.keys " +
	"(MKTOS2S_CUSTODY_KEYS) as the worker has it; the codec key alone cannot open the secret, by design")

// custodyRing is the operator's custody key ring, or errNoCustodyKey.
func (a *app) custodyRing() (*custody.Keyring, error) {
	if len(a.cfg.Custody.Keys) == 0 {
		return nil, errNoCustodyKey
	}
	return workerapp.NewCustody(a.cfg.Custody)
}

// revealer is who reveals: the OS user and host, as the audit records it.
func revealer() string {
	name := "unknown user"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		name += "@" + h
	}
	return name
}

// recordReveal writes the reveal where an auditor reads it without any key:
// a secret-revealed signal in the rotation's history (the rotation counts it
// and `status` shows it), and a structured log line. It runs BEFORE the
// secret is printed, and a reveal that cannot be recorded is refused.
//
// A tenant whose onboarding completed before rotations existed has no
// rotation: the signal starts it (as `rotate --now` would, without adding a
// secret now), so the record has a home that lives as long as the secret.
func (a *app) recordReveal(ctx context.Context, c client.Client, logTo io.Writer, t target, pkg credentials, reason string) error {
	sig := workflows.RevealSignal{
		By: revealer(), Reason: reason, TenantID: pkg.TenantID, OrgHost: t.orgHost(), KeyID: pkg.keyID,
		Command: "starter credentials --reveal", ClientAt: time.Now().UTC().Format(time.RFC3339),
	}
	id := t.rotationID()
	if err := a.startRotationFor(ctx, c, t, workflows.SignalSecretRevealed, sig); err != nil {
		return fmt.Errorf("the reveal could not be recorded, so the secret is not shown: %w", err)
	}
	// An audit record is not subject to log.level: always written, in log.format.
	lc := a.cfg.Log
	lc.Level = "info"
	logger, lerr := workerapp.NewLogger(lc, logTo)
	if lerr != nil {
		logger = slog.New(slog.NewJSONHandler(logTo, nil))
	}
	logger.Info("client secret revealed", "event", "secret-revealed", "by", sig.By, "reason", sig.Reason,
		"tenantId", sig.TenantID, "orgHost", sig.OrgHost, "secretKeyId", sig.KeyID, "recordedIn", id)
	return nil
}

// startRotationFor signals the running rotation. When none ever ran (an
// onboarding completed before rotations existed), it starts one from the
// onboarding's result with the signal delivered with the start. A rotation
// that stopped is not restarted for a record: restarting it resumes its
// cycle (that is `rotate --now`), so the record is refused with the reason.
func (a *app) startRotationFor(ctx context.Context, c client.Client, t target, signal string, arg any) error {
	id := t.rotationID()
	last, found, err := lifecycle.Latest(ctx, c, id)
	switch {
	case err != nil:
		return err
	case found && last.Running():
		if err := c.SignalWorkflow(ctx, id, "", signal, arg); err != nil {
			return fmt.Errorf("signal %s to %s: %w", signal, id, rotationMissing(err, id))
		}
		return nil
	case found:
		return fmt.Errorf("the rotation %s stopped, so it cannot record the reveal; see why in the UI (%s), "+
			"and restart it with `starter rotate --now` (which also adds a new secret)", id, a.workflowLink(id))
	}
	return a.startFromOnboarding(ctx, c, t, signal, arg)
}
