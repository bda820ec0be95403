package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/codec"
	"github.com/mktos2s/mktos2s/internal/config"
	"github.com/mktos2s/mktos2s/internal/workerapp"
	"github.com/mktos2s/mktos2s/workflows"
)

// This file is what another entry point may use of the operator CLI: the
// local-stack commands (internal/devstack) add themselves to the same
// command tree without this package, and so the production starter,
// linking the emulator or the dev server.

// AnnotWritesCA marks commands that start the emulator, which creates
// microsoft.caFile, so the file need not exist when they start.
const AnnotWritesCA = annotWritesCA

// Extra builds one more command of the tree over the invocation's state.
type Extra func(App) *cobra.Command

// App is the state one invocation shares between its commands, as an
// extension command sees it.
type App struct{ a *app }

// Config is the configuration the invocation loaded.
func (x App) Config() config.Config { return x.a.cfg }

// UseConfig points the operator flows run after it at cfg (the local stack
// replaces the loaded configuration with the one reaching its servers).
func (x App) UseConfig(cfg config.Config) { x.a.cfg = cfg }

// ConsentHook is called once, when an onboarding followed by RunOnboarding
// first waits for admin consent.
type ConsentHook func(ctx context.Context, c client.Client, workflowID, consentURL string) error

// RunOnboarding starts the onboarding of tenantID and orgURL with the
// default plan, follows it as `start --wait` does, calls atConsent when it
// waits for consent and prints the step-3 package with the secret masked.
// It fails unless the onboarding completed.
func (x App) RunOnboarding(ctx context.Context, w io.Writer, tenantID, orgURL string, atConsent ConsentHook) error {
	return x.runOnboarding(ctx, w, tenantID, orgURL, false, atConsent)
}

// RunSessionOnboarding is RunOnboarding in the customer-admin session mode
// (start --admin-session): atLink gets the one link for the customer's admin,
// whose browser session also reaches the Marketo app's consent.
func (x App) RunSessionOnboarding(ctx context.Context, w io.Writer, tenantID, orgURL string, atLink ConsentHook) error {
	return x.runOnboarding(ctx, w, tenantID, orgURL, true, atLink)
}

func (x App) runOnboarding(ctx context.Context, w io.Writer, tenantID, orgURL string, session bool, atConsent ConsentHook) error {
	a := x.a
	in, err := a.input(startFlags{
		adminSession:       session,
		target:             target{tenantID: tenantID, orgURL: orgURL},
		appName:            workflows.DefaultAppDisplayName,
		secretMonths:       workflows.DefaultSecretLifetimeMonths,
		consentTimeout:     workflows.DefaultConsentTimeout,
		federation:         string(workflows.FederationAuto),
		solution:           workflows.DefaultSolutionName,
		minSolutionVersion: workflows.DefaultMinSolutionVersion,
	})
	if err != nil {
		return err
	}
	c, err := a.dial(ctx, w)
	if err != nil {
		return err
	}
	defer c.Close()

	fmt.Fprintf(w, "\nOnboarding tenant %s, org %s\n", in.TenantID, in.OrgURL)
	if _, err := a.start(ctx, c, w, in); err != nil {
		return err
	}
	consented := false
	s, err := a.followWith(ctx, c, w, in.WorkflowID(), func(p workflows.Progress) error {
		link := p.ConsentURL
		if session {
			link = p.SessionURL
		}
		if consented || atConsent == nil || p.Status != workflows.StatusWaitingConsent || link == "" {
			return nil
		}
		consented = true
		return atConsent(ctx, c, in.WorkflowID(), link)
	})
	if err != nil {
		return err
	}
	if err := outcome(s); err != nil {
		return err
	}
	fmt.Fprintln(w)
	writeCredentials(w, packageFrom(*s.Result))
	fmt.Fprintf(w, "Reveal the secret with: starter %scredentials --tenant-id %s --org-url %s --reveal\n", a.configHint(), in.TenantID, in.OrgURL)
	return nil
}

// CodecHandler is the codec endpoint for cfg, as `starter codec-server` serves it.
func CodecHandler(cfg config.Config) (http.Handler, error) { return codecHTTPHandler(cfg) }

// CallbackHandler is the signed consent callback for cfg, as `starter serve`
// serves it on the path of consent.redirectURI (other paths: 404).
func CallbackHandler(cfg config.Consent, c client.Client, logger *slog.Logger) (http.Handler, error) {
	h, _, err := callbackHandler(cfg, c, logger, nil)
	return h, err
}

// WithSessionCallback puts the admin-session callback (customer-admin
// session mode, …/consent/session) in front of next, as `starter serve` does.
func WithSessionCallback(cfg config.Config, c client.Client, logger *slog.Logger, next http.Handler) (http.Handler, error) {
	return withSessionCallback(cfg, c, logger, next)
}

// codecHTTPHandler is the codec endpoint for cfg.
func codecHTTPHandler(cfg config.Config) (http.Handler, error) {
	c, err := workerapp.NewCodec(cfg.Codec)
	if err != nil {
		return nil, err
	}
	return codec.NewHTTPHandler(c, codec.HTTPOptions{Token: cfg.CodecServer.Token, CORSOrigin: cfg.CodecServer.CORSOrigin})
}

// UseConfigFile names the file a second terminal's starter reads to reach
// what this invocation runs (the local stack writes it); the hints the
// commands print carry it as --config.
func (x App) UseConfigFile(path string) { x.a.hintFile = path }

// configHint is "--config FILE " when hints must name a config file.
func (a *app) configHint() string {
	switch {
	case a.hintFile != "":
		return "--config " + a.hintFile + " "
	case a.configFile != "":
		return "--config " + a.configFile + " "
	}
	return ""
}
