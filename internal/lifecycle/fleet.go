package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/mktos2s/mktos2s/workflows"
)

// Lifecycle states of a tenant and org in the fleet view. They are stable:
// `starter list --state` and scripts match on them.
const (
	StateRunning            = "running"             // onboarding at a step
	StateWaitingConsent     = "waiting-for-consent" // onboarding waits for the customer's admin
	StateCompensating       = "compensating"        // onboarding undoing what it created
	StateLive               = "live"                // onboarded; the rotation keeps the secret fresh
	StateRenewalWaiting     = "renewal-waiting"     // a new secret waits for the Marketo confirmation
	StateFailed             = "failed"              // onboarding failed at a step; everything undone
	StateCancelled          = "cancelled"           // onboarding cancelled; everything undone
	StateCompensationFailed = "compensation-failed" // an undo failed: clean up by hand
	StateOffboarding        = "offboarding"         // an offboarding runs
	StateOffboardFailed     = "offboarding-failed"  // an offboarding left resources: clean up by hand
	StateOffboarded         = "offboarded"          // everything removed
)

// States lists every state, in lifecycle order.
var States = []string{StateRunning, StateWaitingConsent, StateCompensating, StateLive, StateRenewalWaiting,
	StateFailed, StateCancelled, StateCompensationFailed, StateOffboarding, StateOffboardFailed, StateOffboarded}

// RunRef names one run of one of a tenant's workflows.
type RunRef struct {
	WorkflowID string    `json:"workflowId"`
	RunID      string    `json:"runId"`
	Status     string    `json:"status"` // Running, Completed, Failed, Canceled, Terminated, TimedOut
	Started    time.Time `json:"started"`
	Closed     time.Time `json:"closed,omitzero"`
	status     enumspb.WorkflowExecutionStatus
}

// TenantState is one row of the fleet view: a tenant and org and where its
// lifecycle stands, from the latest runs of its three workflows.
type TenantState struct {
	TenantID        string    `json:"tenantId"`
	OrgHost         string    `json:"orgHost"`
	State           string    `json:"state"`
	Step            string    `json:"step,omitempty"`
	Since           time.Time `json:"since"`
	Reason          string    `json:"reason,omitempty"`
	SecretExpiresAt time.Time `json:"secretExpiresAt,omitzero"`
	NextRotationAt  time.Time `json:"nextRotationAt,omitzero"`
	Onboarding      *RunRef   `json:"onboarding,omitempty"`
	Rotation        *RunRef   `json:"rotation,omitempty"`
	Offboarding     *RunRef   `json:"offboarding,omitempty"`
}

// FleetOptions narrow the fleet read.
type FleetOptions struct {
	Namespace string
	TenantID  string // only this tenant (exact, lower case)
	// Details reads what visibility cannot say (the step of a running
	// onboarding, the reason of a failure, the rotation's dates): one query
	// or one history read per tenant that needs it.
	Details func(ctx context.Context, ts *TenantState) error
	// Parallel bounds the Details calls in flight (default 8).
	Parallel int
}

// Fleet lists the tenants and orgs of the namespace, one TenantState each,
// from Temporal visibility (the TenantId and OrgHost search attributes every
// workflow carries) and the latest run of each workflow ID.
func Fleet(ctx context.Context, c client.Client, o FleetOptions) ([]TenantState, error) {
	q := fmt.Sprintf("WorkflowType IN (%s, %s, %s)", quote(workflows.WorkflowType), quote(workflows.RotationWorkflowType), quote(workflows.OffboardingWorkflowType))
	if o.TenantID != "" {
		q += " AND TenantId = " + quote(o.TenantID)
	}
	type key struct{ tenant, host string }
	latest := map[string]*RunRef{} // workflow ID -> latest run
	keys := map[string]key{}
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: o.Namespace, Query: q, NextPageToken: token, PageSize: 1000})
		if err != nil {
			return nil, fmt.Errorf("list workflows (%s): %w", q, err)
		}
		for _, e := range resp.GetExecutions() {
			id := e.GetExecution().GetWorkflowId()
			fields := e.GetSearchAttributes().GetIndexedFields()
			r := &RunRef{WorkflowID: id, RunID: e.GetExecution().GetRunId(), status: e.GetStatus(), Status: StatusName(e.GetStatus()),
				Started: e.GetStartTime().AsTime()}
			if ct := e.GetCloseTime(); ct != nil && e.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				r.Closed = ct.AsTime()
			}
			if prev, ok := latest[id]; ok && !r.Started.After(prev.Started) {
				continue
			}
			latest[id] = r
			keys[id] = key{strings.ToLower(keyword(fields["TenantId"])), strings.ToLower(keyword(fields["OrgHost"]))}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	rows := map[key]*TenantState{}
	for id, r := range latest {
		k := keys[id]
		if k.tenant == "" || k.host == "" {
			continue
		}
		ts := rows[k]
		if ts == nil {
			ts = &TenantState{TenantID: k.tenant, OrgHost: k.host}
			rows[k] = ts
		}
		switch {
		case strings.HasPrefix(id, "onboarding/"):
			ts.Onboarding = r
		case strings.HasPrefix(id, "rotation/"):
			ts.Rotation = r
		case strings.HasPrefix(id, "offboarding/"):
			ts.Offboarding = r
		}
	}
	out := make([]TenantState, 0, len(rows))
	for _, ts := range rows {
		if ts.Onboarding == nil && ts.Offboarding == nil {
			continue // a rotation alone (started by hand) is shown with its onboarding only
		}
		ts.State, ts.Since = BaseState(*ts)
		out = append(out, *ts)
	}
	if o.Details == nil {
		return out, nil
	}
	sem := make(chan struct{}, max(o.Parallel, 8))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i := range out {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := o.Details(ctx, &out[i]); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s %s: %w", out[i].TenantID, out[i].OrgHost, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// BaseState is the state visibility alone gives: the latest offboarding
// wins over the onboarding it follows. Details may correct it (Refine) and
// call it again after dropping a run that does not count.
func BaseState(ts TenantState) (string, time.Time) {
	on, off := ts.Onboarding, ts.Offboarding
	if off != nil && (on == nil || off.Started.After(on.Started)) {
		switch off.status {
		case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
			return StateOffboarding, off.Started
		case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
			return StateOffboarded, off.Closed
		default:
			return StateOffboardFailed, off.Closed
		}
	}
	switch on.status {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return StateRunning, on.Started
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return StateLive, on.Closed
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return StateCancelled, on.Closed
	default:
		return StateFailed, on.Closed
	}
}

// Refine completes ts from the onboarding's progress (running), failure
// report (closed without success) and the rotation's progress (live).
// progress and rotation are the queries; failure reads the close event.
func Refine(ts *TenantState, p *workflows.Progress, failure *workflows.Progress, rot *workflows.RotationProgress, res *workflows.OnboardingResult) {
	switch ts.State {
	case StateRunning:
		if p == nil {
			return
		}
		ts.Step = p.Step
		switch p.Status {
		case workflows.StatusWaitingConsent:
			ts.State = StateWaitingConsent
		case workflows.StatusCompensating:
			ts.State = StateCompensating
			ts.Reason = p.Error
		}
	case StateFailed, StateCancelled:
		if failure == nil {
			return
		}
		ts.Step, ts.Reason = failure.FailedStep, failure.Error
		for _, u := range failure.Compensation {
			if !u.OK {
				ts.State = StateCompensationFailed
				ts.Reason = fmt.Sprintf("undo of %s failed (%s): %s — clean it up by hand", u.Step, u.Undo, u.Error)
				break
			}
		}
	case StateLive:
		if res != nil {
			ts.SecretExpiresAt = res.SecretExpiresAt
		}
		if rot == nil {
			return
		}
		ts.SecretExpiresAt, ts.NextRotationAt = rot.OldExpiresAt, rot.NextRotationAt
		if rot.NewKeyID != "" {
			ts.State, ts.Since = StateRenewalWaiting, rot.WaitingSince
			ts.SecretExpiresAt = rot.OldExpiresAt
			ts.Reason = fmt.Sprintf("new secret %s waits for `starter rotate --confirm` (%d reminders)", rot.NewKeyID, rot.Reminders)
		}
	}
}

// ProgressFromFailure rebuilds the progress of a closed, unsuccessful run
// from the FailureReport the workflow puts in its error's details.
func ProgressFromFailure(err error, status enumspb.WorkflowExecutionStatus) workflows.Progress {
	p := workflows.Progress{Step: workflows.StepFailed, Status: workflows.StatusFailed, CompletedSteps: []string{}}
	var report workflows.FailureReport
	var (
		appErr    *temporal.ApplicationError
		cancelErr *temporal.CanceledError
		hasReport bool
	)
	switch {
	case errors.As(err, &appErr):
		p.Error = appErr.Message()
		hasReport = appErr.HasDetails() && appErr.Details(&report) == nil
	case errors.As(err, &cancelErr):
		p.Status = workflows.StatusCancelled
		p.Error = "cancelled"
		hasReport = cancelErr.HasDetails() && cancelErr.Details(&report) == nil
	default:
		p.Error = err.Error()
	}
	if status == enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED {
		p.Status = workflows.StatusCancelled
	}
	if hasReport {
		p.FailedStep = report.FailedStep
		p.CompletedSteps = report.CompletedSteps
		p.Resources = report.Resources
		p.Compensation = report.Compensation
		if p.Status == workflows.StatusCancelled && report.Reason != "" {
			p.Error = report.Reason
		}
	}
	return p
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// keyword decodes a Keyword search attribute (plain JSON, never through
// the payload codec).
func keyword(p *commonpb.Payload) string {
	if p == nil {
		return ""
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		return ""
	}
	return s
}

// StatusName is the name the Temporal UI and CLI give a run's status; the
// fleet view and `status` print the same words.
func StatusName(s enumspb.WorkflowExecutionStatus) string {
	switch s {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return "Running"
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return "Completed"
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
		return "Failed"
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return "Canceled"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		return "Terminated"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return "TimedOut"
	case enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		return "ContinuedAsNew"
	}
	return s.String()
}
