package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/ctxtime"
	"github.com/mktos2s/mktos2s/internal/inert"
	"github.com/mktos2s/mktos2s/internal/lifecycle"
	"github.com/mktos2s/mktos2s/internal/workerapp"
	"github.com/mktos2s/mktos2s/workflows"
)

func (t target) orgHost() string {
	return workflows.OnboardingInput{OrgURL: t.orgURL}.OrgHost()
}

func (t target) rotationID() string { return workflows.RotationWorkflowID(t.tenantID, t.orgHost()) }

func (a *app) rotateCmd() *cobra.Command {
	var (
		t            target
		now, confirm bool
		by, note     string
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "rotate --tenant-id ID --org-url URL [--now | --confirm]",
		Short: "Show the client-secret rotation; start it early (--now) or confirm Marketo has the new secret (--confirm)",
		Long: `rotate shows the tenant's SecretRotation: when the next rotation is due, and
while a new secret waits for Marketo, the reminders and whether the old secret
has expired.

--now starts the next rotation at once (a new secret is added; the old one
stays until you confirm). Show the new secret with ` + "`credentials --reveal`" + `, save it in
Marketo, then run rotate --confirm: the rotation signs in with the new secret
and only then removes the old one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if now && confirm {
				return coded(ExitBadInput, errors.New("--now and --confirm exclude each other: --now adds a new secret, --confirm says Marketo has it"))
			}
			if by == "" {
				by = defaultSender()
			}
			return a.withClient(cmd, t, func(ctx context.Context, c client.Client) error {
				if err := notOffboarded(ctx, c, t); err != nil {
					return err
				}
				id := t.rotationID()
				sig := workflows.OperatorSignal{By: by, Note: note}
				switch {
				case now:
					if err := a.rotateNow(ctx, c, t, sig); err != nil {
						return err
					}
					fmt.Fprintf(out(cmd), "Sent %s to %s\n", workflows.SignalRotateNow, id)
				case confirm:
					if err := c.SignalWorkflow(ctx, id, "", workflows.SignalMarketoUpdated, sig); err != nil {
						return fmt.Errorf("signal %s to %s: %w", workflows.SignalMarketoUpdated, id, rotationMissing(err, id))
					}
					fmt.Fprintf(out(cmd), "Sent %s to %s; the rotation now signs in with the new secret before removing the old one\n",
						workflows.SignalMarketoUpdated, id)
				}
				if now || confirm {
					// Give the worker a moment so the status below shows the effect.
					_ = ctxtime.Sleep(ctx, 4*a.pollEvery)
				}
				p, err := rotationProgress(ctx, c, id)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(out(cmd), p)
				}
				writeRotation(out(cmd), p, a.workflowLink(id))
				return nil
			})
		},
	}
	targetFlags(cmd, &t)
	cmd.Flags().BoolVar(&now, "now", false, "start the next rotation now instead of at expiry minus the lead time")
	cmd.Flags().BoolVar(&confirm, "confirm", false, "the new secret is saved in Marketo: prove it and remove the old one (sends marketo-updated)")
	cmd.Flags().StringVar(&by, "by", "", "who sends the signal (default: the current OS user)")
	cmd.Flags().StringVar(&note, "note", "", "free text kept with the signal")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the rotation's progress as JSON")
	return cmd
}

// notOffboarded refuses to show or change the rotation of a tenant and org
// whose onboarding an offboarding undid: its rotation was stopped and its
// secrets removed.
func notOffboarded(ctx context.Context, c client.Client, t target) error {
	var since time.Time
	s, err := fetch(ctx, c, t.workflowID())
	switch {
	case err == nil || s.RunID != "": // a running one whose query failed still has its start time
		since = s.since()
	case !errors.Is(err, errNotFound):
		return err
	}
	at, gone, err := offboardedAfter(ctx, c, t, since)
	if err != nil {
		return err
	}
	if gone {
		return coded(ExitNotFound, errOffboarded(t, at, "there is nothing to rotate"))
	}
	return nil
}

// rotateNow signals the running rotation. A rotation that ran and stopped
// (failed, terminated) starts again from its last run's input, which holds
// the live secret and any new one still waiting for Marketo (the
// onboarding's result may hold a secret long gone). When none ever ran (an
// onboarding completed before rotations existed), one starts from the
// onboarding's result. Either way the rotate-now signal is delivered with
// the start.
func (a *app) rotateNow(ctx context.Context, c client.Client, t target, sig workflows.OperatorSignal) error {
	id := t.rotationID()
	last, found, err := lifecycle.Latest(ctx, c, id)
	switch {
	case err != nil:
		return err
	case found && last.Running():
		if err := c.SignalWorkflow(ctx, id, "", workflows.SignalRotateNow, sig); err != nil {
			return fmt.Errorf("signal %s to %s: %w", workflows.SignalRotateNow, id, rotationMissing(err, id))
		}
		return nil
	case found:
		opts, err := workerapp.ClientOptions(a.cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		var in workflows.RotationInput
		if err := lifecycle.StartInput(ctx, c, opts.DataConverter, id, last.RunID, &in); err != nil {
			return err
		}
		if _, err := c.SignalWithStartWorkflow(ctx, id, workflows.SignalRotateNow, sig, lifecycle.RotationOptions(in.TenantID, t.orgHost()),
			workflows.RotationWorkflowType, in); err != nil {
			return fmt.Errorf("restart %s: %w", id, err)
		}
		return nil
	}
	return a.startFromOnboarding(ctx, c, t, workflows.SignalRotateNow, sig)
}

// startFromOnboarding starts the tenant's first rotation from the completed
// onboarding's result, with signal (and arg) delivered with the start.
func (a *app) startFromOnboarding(ctx context.Context, c client.Client, t target, signal string, arg any) error {
	id := t.rotationID()
	s, err := fetch(ctx, c, t.workflowID())
	if err != nil {
		return err
	}
	if s.Result == nil {
		return coded(ExitConflict, fmt.Errorf("onboarding %s has not completed (%s); a rotation starts when it does", s.WorkflowID, s.Execution))
	}
	on, err := a.startInput(ctx, c, s.WorkflowID, s.RunID)
	if err != nil {
		return err
	}
	in := workflows.RotationInputFor(on, *s.Result)
	_, err = c.SignalWithStartWorkflow(ctx, id, signal, arg, lifecycle.RotationOptions(in.TenantID, t.orgHost()),
		workflows.RotationWorkflowType, in)
	if err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	return nil
}

// startInput is the input the onboarding run started with, decrypted with
// the configured codec.
func (a *app) startInput(ctx context.Context, c client.Client, id, runID string) (workflows.OnboardingInput, error) {
	opts, err := workerapp.ClientOptions(a.cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return workflows.OnboardingInput{}, err
	}
	return lifecycle.OnboardingInput(ctx, c, opts.DataConverter, id, runID)
}

func rotationMissing(err error, id string) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return coded(ExitNotFound, fmt.Errorf("no rotation is running as %s (it starts when the onboarding completes; `rotate --now` starts one for an older onboarding): %w", id, err))
	}
	return err
}

// rotationProgress queries a running rotation.
func rotationProgress(ctx context.Context, c client.Client, id string) (workflows.RotationProgress, error) {
	var p workflows.RotationProgress
	v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryProgress)
	if err != nil {
		return p, fmt.Errorf("query the rotation %s: %w", id, rotationMissing(err, id))
	}
	return p, v.Get(&p)
}

func writeRotation(w io.Writer, p workflows.RotationProgress, link string) {
	if p.OldSecretExpired {
		fmt.Fprintf(w, "!!! OLD CLIENT SECRET EXPIRED at %s: Marketo's sync FAILS until the new secret is saved in Marketo !!!\n",
			p.OldExpiresAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "Secret rotation for tenant %s, org %s (cycle %d): %s\n", p.TenantID, p.OrgHost, p.Cycle, p.Phase)
	fmt.Fprintf(w, "  Live secret   key %s, expires %s\n", p.OldKeyID, p.OldExpiresAt.UTC().Format(time.RFC3339))
	if p.NewKeyID != "" {
		fmt.Fprintf(w, "  New secret    key %s, expires %s, waiting since %s, reminders %d\n",
			p.NewKeyID, p.NewExpiresAt.UTC().Format(time.RFC3339), p.WaitingSince.UTC().Format(time.RFC3339), p.Reminders)
	} else {
		fmt.Fprintf(w, "  Next rotation %s\n", p.NextRotationAt.UTC().Format(time.RFC3339))
	}
	if p.Message != "" {
		fmt.Fprintf(w, "  %s\n", p.Message)
	}
	if l := p.LastReveal; l != nil {
		line := fmt.Sprintf("  Secret revealed %d time(s); last by %s at %s", p.Reveals, inert.Text(l.By), l.At.UTC().Format(time.RFC3339))
		if l.Reason != "" {
			line += " (reason: " + inert.Text(l.Reason) + ")"
		}
		fmt.Fprintln(w, line)
	} else {
		fmt.Fprintln(w, "  Secret revealed 0 times (credentials --reveal records each reveal here)")
	}
	if link != "" {
		fmt.Fprintf(w, "  %s\n", link)
	}
}

// writeRotationStatus adds the rotation to `status`, when there is one.
func (a *app) writeRotationStatus(ctx context.Context, c client.Client, w io.Writer, t target) {
	p, err := rotationProgress(ctx, c, t.rotationID())
	if err != nil {
		return // no rotation (yet): the onboarding's checklist says it all
	}
	fmt.Fprintln(w)
	writeRotation(w, p, "")
}

// rotatedPackage replaces the onboarding's secret with the rotation's
// newest one, read through the rotation's credentials query (its result is
// encrypted by the codec like every payload). The secret is only asked for
// with --reveal.
func (a *app) rotatedPackage(ctx context.Context, c client.Client, w io.Writer, t target, pkg credentials, reveal bool) credentials {
	v, err := c.QueryWorkflow(ctx, t.rotationID(), "", workflows.QueryCredentials, reveal)
	if err != nil {
		return pkg // no running rotation: the onboarding's secret is the live one
	}
	var rc workflows.RotationCredentials
	if err := v.Get(&rc); err != nil {
		fmt.Fprintf(w, "warning: could not read the rotation's credentials: %v\n", err)
		return pkg
	}
	pkg.SecretExpiresAt, pkg.keyID = rc.SecretExpiresAt, rc.SecretKeyID
	if reveal {
		pkg.sealed = rc.ClientSecret
	}
	if rc.AwaitingConfirmation {
		fmt.Fprintf(w, "NOTE: this is the NEW secret (key %s) of a rotation in progress. Save it in Marketo, then run\n"+
			"  starter rotate --confirm --tenant-id %s --org-url %s\n", rc.SecretKeyID, t.tenantID, t.orgURL)
	}
	return pkg
}
