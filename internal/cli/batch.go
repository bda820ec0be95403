package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/batch"
	"github.com/mktos2s/mktos2s/internal/inert"
	"github.com/mktos2s/mktos2s/internal/lifecycle"
	"github.com/mktos2s/mktos2s/workflows"
)

// batchFlags are start's flags for --from.
type batchFlags struct {
	from        string
	concurrency int
	asJSON      bool
}

// startBatch is `start --from FILE`: every row is checked before anything
// starts, then the rows run with at most --concurrency provisioning at once.
func (a *app) startBatch(cmd *cobra.Command, f startFlags, bf batchFlags) error {
	if cmd.Flags().Changed("tenant-id") || cmd.Flags().Changed("org-url") {
		return coded(ExitBadInput, errors.New("--from reads the tenants and org URLs from the file; drop --tenant-id and --org-url"))
	}
	if bf.concurrency < 1 {
		return coded(ExitBadInput, fmt.Errorf("--concurrency %d: use 1 or more (MKTOS2S_CONCURRENCY)", bf.concurrency))
	}
	entries, err := a.readBatch(f, bf.from)
	if err != nil {
		return err
	}
	c, err := a.dial(cmd.Context(), errOut(cmd))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := cmd.Context()
	if f.dryRun {
		return a.batchPlan(ctx, c, out(cmd), entries, bf.asJSON)
	}
	view := newBatchView(out(cmd), bf.asJSON)
	rows := batch.Runner{
		Concurrency: bf.concurrency,
		PollEvery:   a.pollEvery,
		Start: func(ctx context.Context, e batch.Entry) error {
			_, err := lifecycle.Start(ctx, c, e.Input)
			var (
				onb     *lifecycle.AlreadyOnboardedError
				running *lifecycle.AlreadyRunningError
			)
			switch {
			case errors.As(err, &onb):
				return &batch.Skip{Reason: fmt.Sprintf("already onboarded (completed %s, client ID %s)", onb.Completed.UTC().Format(time.RFC3339), onb.ClientID)}
			case errors.As(err, &running):
				return &batch.Skip{Reason: "already running (run " + running.RunID + ")"}
			}
			return err
		},
		Poll: func(ctx context.Context, e batch.Entry) (batch.Observation, error) {
			s, err := fetch(ctx, c, e.Input.WorkflowID())
			if err != nil {
				return batch.Observation{}, err
			}
			o := batch.Observation{Step: s.Progress.Step, Closed: !s.running(), OK: s.Result != nil}
			o.Waiting = s.running() && s.Progress.Status == workflows.StatusWaitingConsent
			if o.Closed && !o.OK {
				o.Step, o.Reason = s.Progress.FailedStep, s.Progress.Error
			}
			return o, nil
		},
		Update: view.update,
	}.Run(ctx, entries)
	view.finish(rows)
	return batchExit(rows)
}

// readBatch parses and checks the whole file; the start flags the operator
// set apply to every row that does not set its own value.
func (a *app) readBatch(f startFlags, name string) ([]batch.Entry, error) {
	file, err := os.Open(name)
	if err != nil {
		return nil, coded(ExitBadInput, fmt.Errorf("--from: %w", err))
	}
	defer file.Close()
	rows, err := batch.Parse(name, file)
	var fe *batch.FileError
	if errors.As(err, &fe) && len(rows) == 0 {
		return nil, coded(ExitBadInput, err)
	}
	base := workflows.OnboardingInput{
		AppDisplayName: f.appName, SecretLifetimeMonths: f.secretMonths, ConsentTimeout: f.consentTimeout,
		ConsentRecheckInterval: a.cfg.Consent.RecheckInterval, ConsentReminderBefore: a.cfg.Consent.ReminderBefore, Federation: workflows.FederationMode(strings.ToLower(f.federation)),
		SyncFilterEntities: f.syncFilter, SolutionName: f.solution, MinSolutionVersion: f.minSolutionVersion,
	}
	entries, berr := batch.Build(name, rows, base, func(in workflows.OnboardingInput) []workflows.FieldError {
		return inputProblems(in, a.cfg)
	})
	if err != nil || berr != nil {
		// Report the problems of parsing and of validation together.
		all := &batch.FileError{File: name, Rows: len(rows)}
		for _, e := range []error{err, berr} {
			if errors.As(e, &fe) {
				all.Problems = append(all.Problems, fe.Problems...)
			}
		}
		return nil, coded(ExitBadInput, all)
	}
	return entries, nil
}

// planRow is one row of `start --from FILE --dry-run --json`.
type planRow struct {
	Row        int      `json:"row"`
	TenantID   string   `json:"tenantId"`
	OrgURL     string   `json:"orgUrl"`
	WorkflowID string   `json:"workflowId"`
	Action     string   `json:"action"` // "start" or "skip"
	Reason     string   `json:"reason,omitempty"`
	Steps      []string `json:"steps"`
}

func (a *app) batchPlan(ctx context.Context, c client.Client, w io.Writer, entries []batch.Entry, asJSON bool) error {
	plan := make([]planRow, 0, len(entries))
	for _, e := range entries {
		in := e.Input
		p := planRow{Row: e.Row, TenantID: in.TenantID, OrgURL: in.OrgURL, WorkflowID: in.WorkflowID(), Action: "start", Steps: []string{}}
		if err := lifecycle.Check(ctx, c, in); err != nil {
			var (
				onb     *lifecycle.AlreadyOnboardedError
				running *lifecycle.AlreadyRunningError
			)
			if !errors.As(err, &onb) && !errors.As(err, &running) {
				return err
			}
			p.Action, p.Reason = "skip", err.Error()
		}
		for _, st := range workflows.Steps(in) {
			if !st.Skipped {
				p.Steps = append(p.Steps, st.Name)
			}
		}
		plan = append(plan, p)
	}
	if asJSON {
		return writeJSON(w, plan)
	}
	starts := 0
	fmt.Fprintf(w, "Dry run: nothing is started. %d rows:\n", len(plan))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROW\tTENANT\tORG\tACTION\tSTEPS")
	for _, p := range plan {
		action := p.Action
		if p.Action == "skip" {
			action = "skip: " + p.Reason
		} else {
			starts++
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", p.Row, p.TenantID, p.OrgURL, action, strings.Join(p.Steps, " → "))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d would start, %d would be skipped. Every step's effect and undo: starter start --dry-run --tenant-id … --org-url …\n", starts, len(plan)-starts)
	return nil
}

// batchExit: 4 when a row failed, 5 when some wait for consent, else 0.
func batchExit(rows []batch.Status) error {
	var failed, waiting int
	for _, r := range rows {
		switch r.State {
		case batch.StateFailed:
			failed++
		case batch.StateWaiting, batch.StateRunning, batch.StatePending:
			waiting++
		}
	}
	switch {
	case failed > 0:
		return coded(ExitFailed, fmt.Errorf("%d of %d onboardings failed; see the table above and `starter status` for each", failed, len(rows)))
	case waiting > 0:
		return coded(ExitWaiting, fmt.Errorf("%d of %d onboardings wait for admin consent; `starter list --state waiting-for-consent` shows them", waiting, len(rows)))
	}
	return nil
}

// batchView prints the live table: redrawn in place on a terminal, one
// line per change otherwise (logs, CI, tests).
type batchView struct {
	w      io.Writer
	tty    bool
	json   bool
	drawn  int
	last   map[int]string
	height int
}

func newBatchView(w io.Writer, asJSON bool) *batchView {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &batchView{w: w, tty: tty && !asJSON, json: asJSON, last: map[int]string{}}
}

func statusLine(r batch.Status) string {
	what := r.State
	switch r.State {
	case batch.StateRunning:
		if r.Step != "" {
			what += " at " + r.Step
		}
	case batch.StateWaiting:
		what = "waiting for consent since " + r.Since.UTC().Format(time.RFC3339)
	case batch.StateFailed:
		if r.Step != "" {
			what += " at " + r.Step
		}
		what += ": " + inert.Text(r.Reason)
	case batch.StateSkipped:
		what += ": " + inert.Text(r.Reason)
	}
	return what
}

func (v *batchView) update(rows []batch.Status) {
	if v.json {
		return
	}
	if v.tty {
		if v.drawn > 0 {
			fmt.Fprintf(v.w, "\x1b[%dA\x1b[J", v.drawn)
		}
		v.drawn = v.table(rows)
		return
	}
	for _, r := range rows {
		line := statusLine(r)
		if v.last[r.Row] == line || r.State == batch.StatePending {
			continue
		}
		v.last[r.Row] = line
		fmt.Fprintf(v.w, "row %d %s %s: %s\n", r.Row, r.Input.TenantID, r.Input.OrgHost(), line)
	}
}

// table prints every row and returns the number of lines printed.
func (v *batchView) table(rows []batch.Status) int {
	tw := tabwriter.NewWriter(v.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROW\tTENANT\tORG\tSTATE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", r.Row, r.Input.TenantID, r.Input.OrgHost(), statusLine(r))
	}
	_ = tw.Flush()
	return len(rows) + 1
}

func (v *batchView) finish(rows []batch.Status) {
	if v.json {
		_ = writeJSON(v.w, rows)
		return
	}
	if !v.tty {
		fmt.Fprintln(v.w)
		v.table(rows)
	}
	count := map[string]int{}
	for _, r := range rows {
		count[r.State]++
	}
	fmt.Fprintf(v.w, "%d rows: %d waiting for consent, %d done, %d skipped, %d failed\n", len(rows),
		count[batch.StateWaiting], count[batch.StateDone], count[batch.StateSkipped], count[batch.StateFailed])
}
