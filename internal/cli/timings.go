package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/workflows"
)

// stepTiming is how long one step of an onboarding took (or has taken so far).
type stepTiming struct {
	Step      string        `json:"step"`
	StartedAt time.Time     `json:"startedAt"`
	EndedAt   *time.Time    `json:"endedAt,omitempty"` // nil while it runs
	Duration  time.Duration `json:"durationNs"`
	Seconds   float64       `json:"seconds"`
}

// activityStep maps an activity type to its step: a step's activity is
// named like the step ("register-application" runs RegisterApplication).
func activityStep() map[string]string {
	m := map[string]string{}
	for _, st := range workflows.Steps(workflows.OnboardingInput{SyncFilterEntities: []string{"lead"}}.WithDefaults()) {
		var b strings.Builder
		for _, part := range strings.Split(st.Name, "-") {
			if part != "" {
				b.WriteString(strings.ToUpper(part[:1]) + part[1:])
			}
		}
		m[b.String()] = st.Name
	}
	return m
}

// stepTimings reads the run's history: a step runs from its activity's
// scheduling to its completion (retries included); the consent wait runs
// from the end of the step before it to the start of the one after. Only
// the current run's history is read, so after a continue-as-new (a long
// consent wait) the steps before it have no timing.
func stepTimings(ctx context.Context, c client.Client, workflowID, runID string, now time.Time) ([]stepTiming, error) {
	names := activityStep()
	var (
		out       []stepTiming
		scheduled = map[int64]int{} // scheduled event ID -> index in out
		lastEnd   time.Time
		waited    bool
	)
	end := func(i int, at time.Time) {
		out[i].EndedAt = &at
		out[i].Duration = at.Sub(out[i].StartedAt)
		lastEnd = at
	}
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("read the history of %s: %w", workflowID, err)
		}
		at := ev.GetEventTime().AsTime()
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			step, ok := names[a.GetActivityType().GetName()]
			if !ok {
				continue
			}
			if step == workflows.StepAddClientSecret && !waited && !lastEnd.IsZero() {
				waited = true
				// The secret comes right after the consent wait.
				out = append(out, stepTiming{Step: workflows.StepAwaitingAdminConsent, StartedAt: lastEnd})
				end(len(out)-1, at)
			}
			out = append(out, stepTiming{Step: step, StartedAt: at})
			scheduled[ev.GetEventId()] = len(out) - 1
			continue
		}
		if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil {
			if i, ok := scheduled[a.GetScheduledEventId()]; ok {
				end(i, at)
			}
		}
	}
	// A wait that is still going on: create-service-principal done, no secret yet.
	if len(out) > 0 && out[len(out)-1].Step == workflows.StepCreateServicePrincipal && out[len(out)-1].EndedAt != nil {
		out = append(out, stepTiming{Step: workflows.StepAwaitingAdminConsent, StartedAt: *out[len(out)-1].EndedAt})
	}
	for i := range out {
		if out[i].EndedAt == nil {
			out[i].Duration = now.Sub(out[i].StartedAt)
		}
		out[i].Seconds = out[i].Duration.Round(time.Millisecond).Seconds()
	}
	return out, nil
}

// durationText is a step's duration for the checklist: "1.2s", "3m4s".
func durationText(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// statusView is `status --json`: the workflow's progress (its fields at the
// top level, as before) plus what the client adds.
type statusView struct {
	workflows.Progress
	WorkflowID    string       `json:"workflowId"`
	RunID         string       `json:"runId"`
	Execution     string       `json:"execution"`
	OffboardedAt  *time.Time   `json:"offboardedAt,omitempty"`
	StepDurations []stepTiming `json:"stepDurations"`
}

// statusOf completes s with its step timings and whether an offboarding
// undid it, and returns the JSON view.
func (a *app) statusOf(ctx context.Context, c client.Client, t target, s *snapshot) (statusView, error) {
	v := statusView{Progress: s.Progress, WorkflowID: s.WorkflowID, RunID: s.RunID, Execution: s.Execution, StepDurations: []stepTiming{}}
	if s.Result != nil {
		at, gone, err := offboardedAfter(ctx, c, t, s.since())
		if err != nil {
			return v, err
		}
		if gone {
			s.offboarded = at
			v.OffboardedAt = &at
			v.Status, v.Step, v.Message = statusOffboarded, statusOffboarded, "offboarded at "+at.UTC().Format(time.RFC3339)
			return v, nil
		}
	}
	timings, err := stepTimings(ctx, c, s.WorkflowID, s.RunID, time.Now())
	if err != nil {
		return v, err
	}
	v.StepDurations = timings
	s.timings = map[string]time.Duration{}
	for _, st := range timings {
		s.timings[st.Step] = st.Duration
	}
	return v, nil
}

// statusOffboarded is the status and step `status --json` shows for an
// onboarding an offboarding undid.
const statusOffboarded = "offboarded"

// statusExit is status's exit code: 0 completed (or offboarded), 5 still
// running or waiting, 4 failed or cancelled.
func statusExit(s snapshot) error {
	switch {
	case s.running():
		return coded(ExitWaiting, fmt.Errorf("onboarding %s is still running (step %s)", s.WorkflowID, s.Progress.Step))
	case s.Result == nil:
		return coded(ExitFailed, fmt.Errorf("onboarding %s ended %s: %s", s.WorkflowID, strings.ToLower(s.Execution), s.Progress.Error))
	}
	return nil
}
