package lifecycle

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/mktos2s/mktos2s/workflows"
)

// TestFleetStates derives every lifecycle state from the latest runs and
// what the details add, including those the integration test cannot
// produce on demand (compensation failed, offboarding failed).
func TestFleetStates(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	run := func(s enumspb.WorkflowExecutionStatus, start, closed int) *RunRef {
		r := &RunRef{status: s, Started: t0.Add(time.Duration(start) * time.Hour)}
		if closed > 0 {
			r.Closed = t0.Add(time.Duration(closed) * time.Hour)
		}
		return r
	}
	const (
		running   = enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
		completed = enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
		failed    = enumspb.WORKFLOW_EXECUTION_STATUS_FAILED
		cancelled = enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED
		timedOut  = enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT
	)
	tests := []struct {
		name     string
		on, off  *RunRef
		progress *workflows.Progress
		failure  *workflows.Progress
		rot      *workflows.RotationProgress
		state    string
		step     string
		since    int
	}{
		{name: "running at a step", on: run(running, 1, 0), progress: &workflows.Progress{Step: workflows.StepRegisterApplication, Status: workflows.StatusRunning},
			state: StateRunning, step: workflows.StepRegisterApplication, since: 1},
		{name: "waiting for consent", on: run(running, 1, 0), progress: &workflows.Progress{Step: workflows.StepAwaitingAdminConsent, Status: workflows.StatusWaitingConsent},
			state: StateWaitingConsent, step: workflows.StepAwaitingAdminConsent, since: 1},
		{name: "compensating", on: run(running, 1, 0), progress: &workflows.Progress{Step: workflows.StepCompensating, Status: workflows.StatusCompensating},
			state: StateCompensating, step: workflows.StepCompensating, since: 1},
		{name: "live", on: run(completed, 1, 2), rot: &workflows.RotationProgress{OldExpiresAt: t0.AddDate(1, 0, 0), NextRotationAt: t0.AddDate(0, 11, 0)},
			state: StateLive, since: 2},
		{name: "renewal waiting", on: run(completed, 1, 2), rot: &workflows.RotationProgress{NewKeyID: "k2", WaitingSince: t0.Add(5 * time.Hour)},
			state: StateRenewalWaiting, since: 5},
		{name: "failed at a step", on: run(failed, 1, 2), failure: &workflows.Progress{FailedStep: workflows.StepAssignSecurityRole, Error: "no role"},
			state: StateFailed, step: workflows.StepAssignSecurityRole, since: 2},
		{name: "timed out counts as failed", on: run(timedOut, 1, 2), state: StateFailed, since: 2},
		{name: "cancelled", on: run(cancelled, 1, 2), failure: &workflows.Progress{FailedStep: workflows.StepAwaitingAdminConsent, Error: "cancelled"},
			state: StateCancelled, step: workflows.StepAwaitingAdminConsent, since: 2},
		{name: "compensation failed", on: run(failed, 1, 2), failure: &workflows.Progress{FailedStep: workflows.StepPublishCustomizations,
			Compensation: []workflows.UndoOutcome{{Step: workflows.StepRegisterApplication, OK: true}, {Step: workflows.StepCreateApplicationUser, Error: "403"}}},
			state: StateCompensationFailed, step: workflows.StepPublishCustomizations, since: 2},
		{name: "offboarding", on: run(completed, 1, 2), off: run(running, 3, 0), state: StateOffboarding, since: 3},
		{name: "offboarded", on: run(completed, 1, 2), off: run(completed, 3, 4), state: StateOffboarded, since: 4},
		{name: "offboarding failed", on: run(completed, 1, 2), off: run(failed, 3, 4), state: StateOffboardFailed, since: 4},
		{name: "onboarded again after an offboarding", on: run(running, 5, 0), off: run(completed, 3, 4), state: StateRunning, since: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := TenantState{Onboarding: tt.on, Offboarding: tt.off}
			ts.State, ts.Since = BaseState(ts)
			Refine(&ts, tt.progress, tt.failure, tt.rot, nil)
			assert.Equal(t, tt.state, ts.State)
			assert.Equal(t, tt.step, ts.Step)
			assert.Equal(t, t0.Add(time.Duration(tt.since)*time.Hour), ts.Since)
			assert.Contains(t, States, ts.State)
		})
	}
}
