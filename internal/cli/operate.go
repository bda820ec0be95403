package cli

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/inert"
	"github.com/mktos2s/mktos2s/workflows"
)

func targetFlags(cmd *cobra.Command, t *target) {
	cmd.Flags().StringVar(&t.tenantID, "tenant-id", "", "customer's Directory (tenant) ID (required)")
	cmd.Flags().StringVar(&t.orgURL, "org-url", "", "Dynamics 365 org URL (required)")
}

// withClient checks the target, dials Temporal and runs fn.
func (a *app) withClient(cmd *cobra.Command, t target, fn func(ctx context.Context, c client.Client) error) error {
	if err := t.check(); err != nil {
		return err
	}
	c, err := a.dial(cmd.Context(), errOut(cmd))
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(cmd.Context(), c)
}

// withOnboarding is withClient with the target's onboarding fetched first.
func (a *app) withOnboarding(cmd *cobra.Command, t target, fn func(ctx context.Context, c client.Client, s snapshot) error) error {
	return a.withClient(cmd, t, func(ctx context.Context, c client.Client) error {
		s, err := fetch(ctx, c, t.workflowID())
		if err != nil {
			return err
		}
		return fn(ctx, c, s)
	})
}

func (a *app) consentCmd() *cobra.Command {
	var (
		t      target
		denied bool
		by     string
		note   string
		wait   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "consent --tenant-id ID --org-url URL",
		Short: "Tell a waiting onboarding that an admin granted (or denied) consent",
		Long: `consent sends the admin-consent signal. The onboarding does not take the
signal's word for it: it checks the grant in Entra, and keeps waiting (and
re-checking) until it is there. --denied ends the onboarding and undoes it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if by == "" {
				by = defaultSender()
			}
			return a.withOnboarding(cmd, t, func(ctx context.Context, c client.Client, s snapshot) error {
				id := t.workflowID()
				if err := notWaiting(s); err != nil {
					return err
				}
				sig := workflows.ConsentSignal{Granted: !denied, By: by, Note: note, Source: workflows.ConsentSourceOperator}
				if err := c.SignalWorkflow(ctx, id, "", workflows.SignalAdminConsent, sig); err != nil {
					return fmt.Errorf("signal %s to %s: %w", workflows.SignalAdminConsent, id, err)
				}
				verb := "granted"
				if denied {
					verb = "denied"
				}
				fmt.Fprintf(out(cmd), "Sent %s: consent %s by %s\n", workflows.SignalAdminConsent, verb, by)
				return a.reportConsent(ctx, c, cmd, id, denied, wait)
			})
		},
	}
	targetFlags(cmd, &t)
	cmd.Flags().BoolVar(&denied, "denied", false, "the admin refused consent: stop the onboarding and undo it")
	cmd.Flags().StringVar(&by, "by", "", "who granted or denied consent (default: the current OS user)")
	cmd.Flags().StringVar(&note, "note", "", "free text kept with the signal")
	cmd.Flags().DurationVar(&wait, "wait", 15*time.Second, "how long to watch for the verification")
	return cmd
}

func defaultSender() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username + " (starter consent)"
	}
	return "starter consent"
}

// reportConsent polls progress briefly and says whether the grant was
// verified, is still missing in Entra, or (when denied) what was undone.
func (a *app) reportConsent(ctx context.Context, c client.Client, cmd *cobra.Command, id string, denied bool, wait time.Duration) error {
	w := out(cmd)
	// The watch long-polls the history until the deadline, and the
	// progress is queried only after the workflow moved (see runWatch).
	wctx, stop := context.WithTimeout(ctx, wait)
	defer stop()
	watch := newRunWatch(c, id, a.pollEvery)
	var last snapshot
	for {
		s, err := fetch(ctx, c, id)
		if err != nil && !isTransientQueryError(err) {
			return err
		}
		if err == nil {
			last = s
			p := s.Progress
			switch {
			case !s.running():
				if s.Result != nil && !denied {
					fmt.Fprintf(w, "%s Admin consent verified in Entra; the onboarding has already completed.\n", markDone)
				}
				writeChecklist(w, s, a.workflowLink(id))
				return outcome(s)
			case !denied && (p.ConsentVerified || p.Step != workflows.StepAwaitingAdminConsent):
				fmt.Fprintf(w, "%s Admin consent verified in Entra; the onboarding continues (step %s).\n", markDone, p.Step)
				return nil
			}
		}
		if err := watch.next(wctx, last.RunID); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			break
		}
	}
	if denied {
		fmt.Fprintf(w, "%s The onboarding is still undoing its steps; follow it with `starter status`.\n", markCurrent)
		return nil
	}
	fmt.Fprintf(w, "%s Consent is not verified yet: %s\n", markCurrent, inert.Text(last.Progress.Message))
	fmt.Fprintf(w, "  The onboarding keeps waiting and re-checks every %s. Consent URL:\n  %s\n",
		a.cfg.Consent.RecheckInterval, last.Progress.ConsentURL)
	return coded(ExitWaiting, fmt.Errorf("admin consent for %s is not verified in Entra yet; the onboarding keeps waiting", id))
}

// notWaiting refuses a consent signal to an onboarding that ended: the
// server would answer "workflow execution already completed".
func notWaiting(s snapshot) error {
	if s.running() {
		return nil
	}
	what := "it completed at " + s.closed.UTC().Format(time.RFC3339) + "; consent is not needed any more"
	if s.Result == nil {
		what = fmt.Sprintf("it ended %s at %s (%s); start it again with `starter start` and send the new consent link",
			strings.ToLower(s.Execution), s.closed.UTC().Format(time.RFC3339), s.Progress.Error)
	}
	return coded(ExitConflict, fmt.Errorf("onboarding %s is not waiting for consent: %s", s.WorkflowID, what))
}

func (a *app) statusCmd() *cobra.Command {
	var (
		t        target
		jsonMode bool
	)
	cmd := &cobra.Command{
		Use:   "status --tenant-id ID --org-url URL",
		Short: "Show an onboarding as a checklist (or its progress as JSON)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withOnboarding(cmd, t, func(ctx context.Context, c client.Client, s snapshot) error {
				view, err := a.statusOf(ctx, c, t, &s)
				if err != nil {
					return err
				}
				if jsonMode {
					if err := writeJSON(out(cmd), view); err != nil {
						return err
					}
				} else {
					writeChecklist(out(cmd), s, a.workflowLink(s.WorkflowID))
					if s.offboarded.IsZero() {
						a.writeRotationStatus(ctx, c, out(cmd), t)
					}
				}
				return statusExit(s)
			})
		},
	}
	targetFlags(cmd, &t)
	cmd.Flags().BoolVar(&jsonMode, "json", false, "print the progress JSON (step, status, consentUrl, completedSteps, resources, error, stepDurations, offboardedAt)")
	return cmd
}

func (a *app) cancelCmd() *cobra.Command {
	var (
		t       target
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "cancel --tenant-id ID --org-url URL",
		Short: "Cancel an onboarding and wait until everything it created is undone",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withOnboarding(cmd, t, func(ctx context.Context, c client.Client, s snapshot) error {
				id := s.WorkflowID
				if !s.running() {
					return coded(ExitConflict, fmt.Errorf("onboarding %s is not running (it is %s); nothing to cancel", id, s.Execution))
				}
				if err := c.CancelWorkflow(ctx, id, s.RunID); err != nil {
					return fmt.Errorf("cancel %s: %w", id, err)
				}
				fmt.Fprintf(out(cmd), "Cancellation requested for %s; undoing what it created...\n", id)
				wctx, stop := context.WithTimeout(ctx, timeout)
				defer stop()
				// Get returns once compensation has run: the workflow undoes in
				// a disconnected context before it closes as cancelled.
				if err := c.GetWorkflow(wctx, id, s.RunID).Get(wctx, nil); err != nil && wctx.Err() != nil {
					return coded(ExitWaiting, fmt.Errorf("compensation of %s did not finish within %s; follow it with `starter status`", id, timeout))
				}
				s, err := fetch(ctx, c, id)
				if err != nil {
					return err
				}
				writeChecklist(out(cmd), s, a.workflowLink(id))
				for _, u := range s.Progress.Compensation {
					if !u.OK {
						return coded(ExitFailed, errors.New("some undo steps failed; clean them up by hand (listed above)"))
					}
				}
				return nil
			})
		},
	}
	targetFlags(cmd, &t)
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for compensation")
	return cmd
}
