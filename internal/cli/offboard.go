package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/mktos2s/mktos2s/internal/inert"
	"github.com/mktos2s/mktos2s/internal/lifecycle"
	"github.com/mktos2s/mktos2s/workflows"
)

func (a *app) offboardCmd() *cobra.Command {
	var (
		t            target
		dryRun       bool
		asJSON       bool
		timeout      time.Duration
		securityRole string
	)
	cmd := &cobra.Command{
		Use:   "offboard --tenant-id ID --org-url URL [--dry-run]",
		Short: "Remove everything an onboarding created for a tenant and org (--dry-run lists it)",
		Long: `offboard runs the Offboarding workflow: it stops the secret rotation (and an
onboarding still running), then removes the Marketo Config's user, the Home
Realm Discovery policy, the role association, the application user (disabled,
then deleted), every client secret mktos2s added, the service principal and the
app registration. It finds them by the names mktos2s gives them, so it also
cleans up after a half-finished onboarding, and it can simply be run again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd, t, func(ctx context.Context, c client.Client) error {
				in := workflows.OffboardingInput{TenantID: t.tenantID, OrgURL: t.orgURL, DryRun: dryRun, SecurityRoleName: securityRole}.WithDefaults()
				if err := in.Validate(); err != nil {
					return coded(ExitBadInput, err)
				}
				id := lifecycle.OffboardingID(in)
				run, err := c.ExecuteWorkflow(ctx, lifecycle.OffboardingOptions(in), workflows.OffboardingWorkflowType, in)
				if err != nil {
					return fmt.Errorf("start %s: %w", id, err)
				}
				fmt.Fprintf(errOut(cmd), "Offboarding %s started (%s)\n", id, a.workflowLink(id))
				wctx, stop := context.WithTimeout(ctx, timeout)
				defer stop()
				var res workflows.OffboardingResult
				err = run.Get(wctx, &res)
				var appErr *temporal.ApplicationError
				if err != nil && errors.As(err, &appErr) && appErr.HasDetails() {
					_ = appErr.Details(&res)
				}
				if asJSON {
					if werr := writeJSON(out(cmd), res); werr != nil {
						return werr
					}
				} else if err == nil || len(res.Actions) > 0 {
					// "Nothing to remove" only when the offboarding could look.
					writeOffboarding(out(cmd), res)
				}
				if err != nil && wctx.Err() != nil {
					return coded(ExitWaiting, fmt.Errorf("offboarding %s did not finish within %s; follow it in the UI", id, timeout))
				}
				if err != nil {
					return coded(ExitFailed, fmt.Errorf("offboarding %s failed: %s", id, inert.Text(failureMessage(err))))
				}
				return nil
			})
		},
	}
	targetFlags(cmd, &t)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be removed; change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait for the offboarding")
	cmd.Flags().StringVar(&securityRole, "security-role", "", "the role the onboarding assigned (default \"Marketo Sync User\")")
	return cmd
}

func writeOffboarding(w io.Writer, res workflows.OffboardingResult) {
	switch {
	case len(res.Actions) == 0:
		fmt.Fprintln(w, "Nothing of this onboarding exists; nothing to remove.")
		return
	case res.DryRun:
		fmt.Fprintln(w, "Dry run — offboarding would stop the secret rotation and any running onboarding, then remove:")
	default:
		fmt.Fprintln(w, "Offboarding removed:")
	}
	for _, act := range res.Actions {
		mark := markPending
		note := ""
		switch {
		case act.Error != "":
			mark, note = markFailed, " FAILED: "+inert.Text(act.Error)+" — clean it up by hand"
		case act.AlreadyGone:
			mark, note = markDone, " (already gone)"
		case act.Done:
			mark = markDone
			if act.Note != "" { // e.g. the application user was disabled, not deleted
				note = ": " + inert.Text(act.Note)
			}
		}
		fmt.Fprintf(w, "  %s %s %s%s\n", mark, act.Action, act.Target, note)
	}
}

// failureMessage is the innermost application error's message: the
// workflow's error wraps the activity's, whose message says what to fix,
// without the SDK's "workflow execution error (type: …)" framing.
func failureMessage(err error) string {
	msg := err.Error()
	for e := err; e != nil; e = errors.Unwrap(e) {
		var appErr *temporal.ApplicationError
		if errors.As(e, &appErr) {
			msg = appErr.Message()
			e = appErr
		}
		if errors.Unwrap(e) == nil {
			break
		}
	}
	return msg
}
