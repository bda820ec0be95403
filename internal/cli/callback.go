package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/mktos2s/mktos2s/internal/config"
	"github.com/mktos2s/mktos2s/internal/consent"
	"github.com/mktos2s/mktos2s/internal/workerapp"
	"github.com/mktos2s/mktos2s/workflows"
)

// signaler is the part of client.Client the consent callback uses.
type signaler interface {
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
}

// consentSignaler delivers the callback's verdict as the onboarding's
// admin-consent signal, to the run the link was made for only: the workflow
// ID is reused when a tenant and org are onboarded again, so the link's run
// must be the first run of the chain running now (continue-as-new keeps it).
// Temporal answers NotFound both for an unknown workflow and for one that
// already closed; either way retrying cannot help.
func consentSignaler(c signaler) consent.Signaler {
	return consent.SignalerFunc(func(ctx context.Context, s consent.Signal) error {
		run, err := runOfLink(ctx, c, s.WorkflowID, s.RunID)
		if err != nil {
			return err
		}
		// The run just described, so that one started meanwhile is not signalled.
		err = c.SignalWorkflow(ctx, s.WorkflowID, run, workflows.SignalAdminConsent,
			workflows.ConsentSignal{Granted: s.Granted, By: s.By, Note: s.Note, Source: workflows.ConsentSourceCallback, RunID: s.RunID})
		if err != nil {
			return temporalSignalError(s.WorkflowID, err)
		}
		return nil
	})
}

// runOfLink is the running run of workflowID, provided its chain started as
// linkRunID (the first run a consent or session link was made for; "" = any).
func runOfLink(ctx context.Context, c signaler, workflowID, linkRunID string) (string, error) {
	d, err := c.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return "", temporalSignalError(workflowID, err)
	}
	info := d.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return "", fmt.Errorf("%w: its latest run is %s", consent.ErrUnknownWorkflow, info.GetStatus())
	}
	if linkRunID != "" && linkRunID != info.GetFirstRunId() {
		return "", fmt.Errorf("%w: the link is for run %s, the running onboarding started as run %s", consent.ErrOtherRun, linkRunID, info.GetFirstRunId())
	}
	return info.GetExecution().GetRunId(), nil
}

func temporalSignalError(workflowID string, err error) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("%w: %w", consent.ErrUnknownWorkflow, err)
	}
	return fmt.Errorf("signal %s to %s: %w", workflows.SignalAdminConsent, workflowID, err)
}

// callbackHandler serves the signed consent callback on the path of
// consent.redirectURI and hands every other path to next (nil: 404). The
// path is compared, not registered as a ServeMux pattern, so an unusual
// redirect path cannot make the mux panic.
func callbackHandler(cfg config.Consent, c signaler, logger *slog.Logger, next http.Handler) (http.Handler, string, error) {
	signer, err := workerapp.NewConsentSigner(cfg)
	if err != nil {
		return nil, "", err
	}
	if signer == nil {
		return nil, "", errors.New("consent.callbackKey is not set, so no consent link could be verified: generate one with " +
			"`openssl rand -base64 32`, set it as MKTOS2S_CONSENT_CALLBACKKEY for the worker and this command, and start onboardings again")
	}
	path, err := consent.CallbackPath(cfg.RedirectURI)
	if err != nil {
		return nil, "", err
	}
	if next == nil {
		next = http.NotFoundHandler()
	}
	// One guard per process: see consent.MemoryGuard for what a restart forgets.
	h := consent.NewHandler(signer, consent.NewMemoryGuard(0, nil), consentSignaler(c), logger)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == path {
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	}), path, nil
}

// checkRedirectReachable refuses a redirect URI that lands on Microsoft's
// own pages (the default): Entra would never bring the admin to this server.
func checkRedirectReachable(cfg config.Config) error {
	u, err := url.Parse(cfg.Consent.RedirectURI)
	if err != nil {
		return fmt.Errorf("consent.redirectURI: %w", err)
	}
	for _, ms := range []string{config.DefaultRedirectURI, cfg.Microsoft.AuthorityHost} {
		if m, err := url.Parse(ms); err == nil && strings.EqualFold(m.Host, u.Host) {
			return fmt.Errorf("consent.redirectURI is %s, a Microsoft page, so Entra never sends the admin to this callback; "+
				"set consent.redirectURI (MKTOS2S_CONSENT_REDIRECTURI) to this server's public URL, e.g. https://mktos2s.example.com/consent/callback "+
				"(with the emulator: http://%s/consent/callback), for the worker and this command", cfg.Consent.RedirectURI, config.DefaultCallbackListen)
		}
	}
	return nil
}

func (a *app) serveCmd() *cobra.Command {
	var withCodec bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the consent callback: Entra's admin-consent redirect signals the onboarding",
		Long: `serve receives the redirect Entra sends the admin to after the admin-consent
page (consent.redirectURI, served on its path at consent.callbackListen) and
signals the onboarding it names. The link's state is signed with
consent.callbackKey, which the worker must share: an unsigned, forged,
altered, expired or already used link is refused and signals nothing, and a
consent given in another tenant is not recorded. The onboarding still verifies
the grant in Entra before it continues. --with-codec also serves the codec
endpoint (starter codec-server) on the same address.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkRedirectReachable(a.cfg); err != nil {
				return err
			}
			logger, err := workerapp.NewLogger(a.cfg.Log, errOut(cmd))
			if err != nil {
				return err
			}
			var next http.Handler
			if withCodec {
				if next, err = codecHTTPHandler(a.cfg); err != nil {
					return err
				}
			}
			c, err := workerapp.Dial(cmd.Context(), a.cfg, workerapp.WithLogger(logger))
			if err != nil {
				return err
			}
			defer c.Close()
			h, path, err := callbackHandler(a.cfg.Consent, c, logger.With("component", "consent-callback"), next)
			if err != nil {
				return err
			}
			if h, err = withSessionCallback(a.cfg, c, logger.With("component", "admin-session-callback"), h); err != nil {
				return err
			}
			ln, err := net.Listen("tcp", a.cfg.Consent.CallbackListen)
			if err != nil {
				return fmt.Errorf("serve: %w", err)
			}
			fmt.Fprintf(out(cmd), "consent callback listening on http://%s%s (consent.redirectURI %s)\n", ln.Addr(), path, a.cfg.Consent.RedirectURI)
			if withCodec {
				fmt.Fprintf(out(cmd), "codec endpoint on the same address (CORS origin %s)\n", a.cfg.CodecServer.CORSOrigin)
			}
			return serveUntilDone(cmd.Context(), ln, h)
		},
	}
	cmd.Flags().String("callback-listen", "", "host:port to listen on (consent.callbackListen)")
	cmd.Flags().BoolVar(&withCodec, "with-codec", false, "also serve the codec endpoint for the Temporal UI on this address")
	return cmd
}
