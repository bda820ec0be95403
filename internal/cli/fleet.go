package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/inert"
	"github.com/mktos2s/mktos2s/internal/lifecycle"
	"github.com/mktos2s/mktos2s/workflows"
)

// listSteps are the values --step accepts: every step an onboarding can be
// at or fail at.
func listSteps() []string {
	steps := []string{}
	for _, st := range workflows.Steps(workflows.OnboardingInput{SyncFilterEntities: []string{"lead"}, Federation: workflows.FederationAlways}.WithDefaults()) {
		steps = append(steps, st.Name)
	}
	return append(steps, workflows.StepCompensating)
}

// statusStates maps the old --status values onto fleet states.
var statusStates = map[string][]string{
	"running":   {lifecycle.StateRunning, lifecycle.StateWaitingConsent, lifecycle.StateCompensating},
	"completed": {lifecycle.StateLive, lifecycle.StateRenewalWaiting},
	"failed":    {lifecycle.StateFailed, lifecycle.StateCancelled, lifecycle.StateCompensationFailed},
}

type listFlags struct {
	states   []string
	step     string
	tenantID string
	status   string
	sortBy   string
	limit    int
	asJSON   bool
}

// check refuses unknown filter values, listing the known ones.
func (f *listFlags) check() error {
	var bad []string
	for _, s := range f.states {
		if !slices.Contains(lifecycle.States, s) {
			bad = append(bad, fmt.Sprintf("--state %q: use one of %s", s, strings.Join(lifecycle.States, ", ")))
		}
	}
	if f.step != "" && !slices.Contains(listSteps(), f.step) {
		bad = append(bad, fmt.Sprintf("--step %q: use one of %s", f.step, strings.Join(listSteps(), ", ")))
	}
	switch f.status {
	case "", "all":
	default:
		states, ok := statusStates[f.status]
		if !ok {
			bad = append(bad, fmt.Sprintf("--status %q: use running, completed, failed or all (or --state)", f.status))
		}
		f.states = append(f.states, states...)
	}
	if f.tenantID != "" {
		if err := (workflows.OnboardingInput{TenantID: f.tenantID, OrgURL: "https://x.crm.dynamics.com"}).Validate(); err != nil && strings.Contains(err.Error(), "tenantId") {
			bad = append(bad, fmt.Sprintf("--tenant-id %q: not a Directory (tenant) ID; it is a GUID such as 11111111-2222-3333-4444-555555555555", f.tenantID))
		}
		f.tenantID = strings.ToLower(strings.TrimSpace(f.tenantID))
	}
	switch f.sortBy {
	case "tenant", "state", "since", "-since":
	default:
		bad = append(bad, fmt.Sprintf("--sort %q: use tenant, state, since (oldest first) or -since (newest first)", f.sortBy))
	}
	if f.limit < 1 {
		bad = append(bad, fmt.Sprintf("--limit %d: use 1 or more", f.limit))
	}
	if len(bad) > 0 {
		return coded(ExitBadInput, fmt.Errorf("%s", strings.Join(bad, "; ")))
	}
	return nil
}

func (a *app) listCmd() *cobra.Command {
	var f listFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "The fleet: one row per tenant and org with its lifecycle state",
		Long: `list shows one row per tenant and Dynamics org: its lifecycle state from the
latest runs of its onboarding, secret rotation and offboarding workflows —
running at a step, waiting for consent since T, live since T (with the
secret's expiry and the next rotation), renewal waiting for confirmation,
failed or cancelled at a step with the reason, compensation failed (clean up
by hand), offboarding, offboarding failed, offboarded at T.

States: ` + strings.Join(lifecycle.States, ", ") + `.
Unknown --state, --step or --tenant-id values are refused (exit code 2).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			c, err := a.dial(cmd.Context(), errOut(cmd))
			if err != nil {
				return err
			}
			defer c.Close()
			rows, err := lifecycle.Fleet(cmd.Context(), c, lifecycle.FleetOptions{
				Namespace: a.cfg.Temporal.Namespace, TenantID: f.tenantID, Details: a.fleetDetails(c),
			})
			if err != nil {
				fmt.Fprintf(errOut(cmd), "warning: some rows are incomplete: %v\n", err)
			}
			rows = filterRows(rows, f)
			if f.asJSON {
				if err := writeJSON(out(cmd), rows); err != nil {
					return err
				}
			} else {
				writeFleet(out(cmd), rows)
			}
			if len(rows) == 0 && f.tenantID != "" {
				return coded(ExitNotFound, fmt.Errorf("no onboarding of tenant %s matches", f.tenantID))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.states, "state", nil, "only rows in these states (comma-separated): "+strings.Join(lifecycle.States, ", "))
	fl.StringVar(&f.step, "step", "", "only onboardings at (or failed at) this step, e.g. "+workflows.StepAwaitingAdminConsent)
	fl.StringVar(&f.tenantID, "tenant-id", "", "only this tenant")
	fl.StringVar(&f.status, "status", "all", "running, completed, failed or all (shorthand for groups of --state)")
	fl.StringVar(&f.sortBy, "sort", "tenant", "tenant, state, since or -since")
	fl.IntVar(&f.limit, "limit", 1000, "at most this many rows")
	fl.BoolVar(&f.asJSON, "json", false, "print the rows as JSON (README \"Many tenants\")")
	return cmd
}

// fleetDetails reads, per row, what visibility cannot say.
func (a *app) fleetDetails(c client.Client) func(ctx context.Context, ts *lifecycle.TenantState) error {
	return func(ctx context.Context, ts *lifecycle.TenantState) error {
		if ts.State == lifecycle.StateOffboarded && ts.Offboarding != nil && ts.Onboarding != nil {
			// An offboarding dry run recorded before dry runs got their own ID.
			var res workflows.OffboardingResult
			if err := c.GetWorkflow(ctx, ts.Offboarding.WorkflowID, ts.Offboarding.RunID).Get(ctx, &res); err == nil && res.DryRun {
				ts.Offboarding = nil
				ts.State, ts.Since = lifecycle.BaseState(*ts)
			}
		}
		if ts.Onboarding == nil {
			return nil
		}
		switch ts.State {
		case lifecycle.StateRunning, lifecycle.StateFailed, lifecycle.StateCancelled, lifecycle.StateLive:
		default:
			return nil
		}
		s, err := fetch(ctx, c, ts.Onboarding.WorkflowID)
		if err != nil {
			return err
		}
		switch ts.State {
		case lifecycle.StateRunning:
			lifecycle.Refine(ts, &s.Progress, nil, nil, nil)
			if ts.State == lifecycle.StateWaitingConsent {
				if timings, err := stepTimings(ctx, c, s.WorkflowID, s.RunID, time.Now()); err == nil {
					for _, st := range timings {
						if st.Step == workflows.StepAwaitingAdminConsent {
							ts.Since = st.StartedAt
						}
					}
				}
			}
		case lifecycle.StateFailed, lifecycle.StateCancelled:
			lifecycle.Refine(ts, nil, &s.Progress, nil, nil)
		case lifecycle.StateLive:
			var rot *workflows.RotationProgress
			if ts.Rotation != nil && ts.Rotation.Status == "Running" {
				if p, err := rotationProgress(ctx, c, ts.Rotation.WorkflowID); err == nil {
					rot = &p
				}
			}
			lifecycle.Refine(ts, nil, nil, rot, s.Result)
		}
		return nil
	}
}

func filterRows(rows []lifecycle.TenantState, f listFlags) []lifecycle.TenantState {
	rows = slices.DeleteFunc(rows, func(r lifecycle.TenantState) bool {
		return (len(f.states) > 0 && !slices.Contains(f.states, r.State)) || (f.step != "" && r.Step != f.step)
	})
	slices.SortStableFunc(rows, func(x, y lifecycle.TenantState) int {
		key := strings.Compare(x.TenantID+"/"+x.OrgHost, y.TenantID+"/"+y.OrgHost)
		switch f.sortBy {
		case "state":
			if c := slices.Index(lifecycle.States, x.State) - slices.Index(lifecycle.States, y.State); c != 0 {
				return c
			}
		case "since":
			if c := x.Since.Compare(y.Since); c != 0 {
				return c
			}
		case "-since":
			if c := y.Since.Compare(x.Since); c != 0 {
				return c
			}
		}
		return key
	})
	if len(rows) > f.limit {
		rows = rows[:f.limit]
	}
	return rows
}

// stateText is the STATE column: the state with its step, or its dates.
func stateText(r lifecycle.TenantState) string {
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	switch r.State {
	case lifecycle.StateRunning:
		if r.Step != "" {
			return "running at " + r.Step
		}
		return "running"
	case lifecycle.StateWaitingConsent:
		return "waiting for consent since " + at(r.Since)
	case lifecycle.StateLive:
		s := "live since " + at(r.Since)
		if !r.SecretExpiresAt.IsZero() {
			s += ", secret expires " + r.SecretExpiresAt.UTC().Format(time.DateOnly)
		}
		if !r.NextRotationAt.IsZero() {
			s += ", next rotation " + r.NextRotationAt.UTC().Format(time.DateOnly)
		}
		return s
	case lifecycle.StateRenewalWaiting:
		return "renewal waiting for confirmation since " + at(r.Since) + ", live secret expires " + r.SecretExpiresAt.UTC().Format(time.DateOnly)
	case lifecycle.StateFailed, lifecycle.StateCancelled:
		s := r.State
		if r.Step != "" {
			s += " at " + r.Step
		}
		return s + ": " + short(inert.Text(r.Reason))
	case lifecycle.StateCompensationFailed:
		return "compensation failed — clean up by hand: " + short(inert.Text(r.Reason))
	case lifecycle.StateOffboarded:
		return "offboarded at " + at(r.Since)
	case lifecycle.StateOffboardFailed:
		return "offboarding failed at " + at(r.Since) + " — clean up by hand (see `starter offboard --dry-run`)"
	}
	return r.State
}

func writeFleet(w io.Writer, rows []lifecycle.TenantState) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "No tenants match.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tORG\tSTATE\tRUN")
	for _, r := range rows {
		run := ""
		switch {
		case r.Offboarding != nil && (r.State == lifecycle.StateOffboarded || r.State == lifecycle.StateOffboarding || r.State == lifecycle.StateOffboardFailed):
			run = r.Offboarding.WorkflowID + " " + r.Offboarding.RunID
		case r.Onboarding != nil:
			run = r.Onboarding.WorkflowID + " " + r.Onboarding.RunID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.TenantID, r.OrgHost, stateText(r), run)
	}
	_ = tw.Flush()
}

// short keeps the table to one readable line; --json and status have it all.
func short(s string) string {
	const maxRunes = 120
	if r := []rune(s); len(r) > maxRunes {
		return string(r[:maxRunes]) + "…"
	}
	return s
}
