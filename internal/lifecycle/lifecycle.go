// Package lifecycle holds the rules every client of the workflows must agree
// on: when an onboarding may start (again) and with which ID reuse policy,
// whether an offboarding undid an onboarding, the start options of each
// workflow, and the input a rotation is started with. The CLI, the batch
// runner and any future client call these instead of deciding themselves.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/mktos2s/mktos2s/workflows"
)

// Run is what the server knows of the latest run of a workflow ID.
type Run struct {
	WorkflowID string
	RunID      string
	Status     enumspb.WorkflowExecutionStatus
	Started    time.Time
	Closed     time.Time // zero while it runs
}

// Running is true while the run is open.
func (r Run) Running() bool { return r.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING }

// Since is when the run last changed what exists for its tenant: its close,
// or its start while it runs. An offboarding after it undid that run.
func (r Run) Since() time.Time {
	if r.Closed.IsZero() {
		return r.Started
	}
	return r.Closed
}

// Latest describes the latest run of id; found is false when there is none.
func Latest(ctx context.Context, c client.Client, id string) (r Run, found bool, err error) {
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return Run{WorkflowID: id}, false, nil
	}
	if err != nil {
		return Run{WorkflowID: id}, false, fmt.Errorf("describe %s: %w", id, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	r = Run{WorkflowID: id, RunID: info.GetExecution().GetRunId(), Status: info.GetStatus(), Started: info.GetStartTime().AsTime()}
	if ct := info.GetCloseTime(); ct != nil && !r.Running() {
		r.Closed = ct.AsTime()
	}
	return r, true, nil
}

// OffboardedAfter reports when the tenant and org were offboarded, if their
// latest offboarding completed after since and was not a dry run. A
// completed onboarding (or the rotation it started) before that time has
// nothing left in Entra or Dataverse.
func OffboardedAfter(ctx context.Context, c client.Client, tenantID, orgHost string, since time.Time) (time.Time, bool, error) {
	id := workflows.OffboardingWorkflowID(strings.TrimSpace(tenantID), orgHost)
	r, found, err := Latest(ctx, c, id)
	if err != nil || !found || r.Status != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED || !r.Closed.After(since) {
		return time.Time{}, false, err
	}
	var res workflows.OffboardingResult
	if err := c.GetWorkflow(ctx, id, r.RunID).Get(ctx, &res); err != nil {
		return time.Time{}, false, fmt.Errorf("read the result of %s: %w", id, err)
	}
	// Dry runs recorded before they got their own workflow ID.
	if res.DryRun {
		return time.Time{}, false, nil
	}
	return r.Closed, true, nil
}

// StartPolicy decides whether an onboarding may start again after last, the
// latest run of its workflow ID, and with which ID reuse policy, so the
// server enforces the same rule for every client that uses it: a completed
// onboarding is live in production (a new run would adopt its app, replace
// Marketo's secret and, if it failed, delete it all), so only a failed,
// cancelled, terminated or timed-out run may be repeated, unless an
// offboarding completed after it.
func StartPolicy(last Run, found, offboarded bool) (enumspb.WorkflowIdReusePolicy, bool) {
	if found && last.Status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		if offboarded {
			return enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE, true
		}
		return enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY, false
	}
	return enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY, true
}

// AlreadyOnboardedError refuses a start for a tenant and org whose
// onboarding completed and was not offboarded since.
type AlreadyOnboardedError struct {
	TenantID, OrgURL, OrgHost string
	ClientID, RunID           string
	Completed                 time.Time
}

func (e *AlreadyOnboardedError) Error() string {
	clientID := e.ClientID
	if clientID == "" {
		clientID = "unknown"
	}
	flags := fmt.Sprintf("--tenant-id %s --org-url %s", e.TenantID, e.OrgURL)
	return fmt.Sprintf("tenant %s, org %s is already onboarded (completed %s, client ID %s, run %s); "+
		"a new onboarding would take over its live app and could revoke the secret Marketo uses. "+
		"For a new client secret run `starter rotate --now %s`; to start over run `starter offboard %s` first",
		e.TenantID, e.OrgHost, e.Completed.UTC().Format(time.RFC3339), clientID, e.RunID, flags, flags)
}

// AlreadyRunningError refuses a start while the same onboarding runs.
type AlreadyRunningError struct {
	WorkflowID, RunID, TenantID, OrgHost string
}

func (e *AlreadyRunningError) Error() string {
	return fmt.Sprintf("an onboarding for tenant %s and org %s is already running (run %s)", e.TenantID, e.OrgHost, e.RunID)
}

// Gate looks at the latest onboarding of in and at its offboarding and
// returns the reuse policy to start with, or *AlreadyOnboardedError. A
// running onboarding passes: the server's conflict policy refuses it.
func Gate(ctx context.Context, c client.Client, in workflows.OnboardingInput) (enumspb.WorkflowIdReusePolicy, error) {
	last, found, err := Latest(ctx, c, in.WorkflowID())
	if err != nil {
		return 0, err
	}
	offboarded := false
	if found && last.Status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		if _, offboarded, err = OffboardedAfter(ctx, c, in.TenantID, in.OrgHost(), last.Since()); err != nil {
			return 0, err
		}
	}
	policy, ok := StartPolicy(last, found, offboarded)
	if !ok {
		return policy, alreadyOnboarded(ctx, c, in, last)
	}
	return policy, nil
}

func alreadyOnboarded(ctx context.Context, c client.Client, in workflows.OnboardingInput, last Run) error {
	e := &AlreadyOnboardedError{TenantID: in.TenantID, OrgURL: in.OrgURL, OrgHost: in.OrgHost(), RunID: last.RunID, Completed: last.Closed}
	var res workflows.OnboardingResult
	if err := c.GetWorkflow(ctx, last.WorkflowID, last.RunID).Get(ctx, &res); err == nil {
		e.ClientID = res.ClientID
	}
	return e
}

// OnboardingOptions are the start options of an onboarding: a running one
// is never doubled; a failed or cancelled one may be run again (e.g. after
// a denied consent), a completed one only after an offboarding (Gate).
func OnboardingOptions(in workflows.OnboardingInput, reuse enumspb.WorkflowIdReusePolicy) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                                       in.WorkflowID(),
		TaskQueue:                                workflows.TaskQueue,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    reuse,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchTenantID.ValueSet(in.TenantID),
			workflows.SearchOrgHost.ValueSet(in.OrgHost()),
			workflows.SearchOnboardingStep.ValueSet(workflows.StepPreflight),
		),
	}
}

// Start applies Gate and starts the onboarding. It returns
// *AlreadyOnboardedError or *AlreadyRunningError when the start is refused.
func Start(ctx context.Context, c client.Client, in workflows.OnboardingInput) (client.WorkflowRun, error) {
	reuse, err := Gate(ctx, c, in)
	if err != nil {
		return nil, err
	}
	run, err := c.ExecuteWorkflow(ctx, OnboardingOptions(in, reuse), workflows.WorkflowType, in)
	if err == nil {
		return run, nil
	}
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if !errors.As(err, &already) {
		return nil, fmt.Errorf("start onboarding %s: %w", in.WorkflowID(), err)
	}
	if last, found, lerr := Latest(ctx, c, in.WorkflowID()); lerr == nil && found && last.Status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		// Another client completed one in between: the server's reuse policy refused.
		return nil, alreadyOnboarded(ctx, c, in, last)
	}
	return nil, &AlreadyRunningError{WorkflowID: in.WorkflowID(), RunID: already.RunId, TenantID: in.TenantID, OrgHost: in.OrgHost()}
}

// OffboardingID is the workflow ID an offboarding runs under. A dry run
// gets an ID of its own, so it never looks like, nor replaces, the latest
// real offboarding that OffboardedAfter and the fleet view read.
func OffboardingID(in workflows.OffboardingInput) string {
	if in.DryRun {
		return "offboarding-dry-run/" + strings.ToLower(in.TenantID) + "/" + in.OrgHost()
	}
	return in.WorkflowID()
}

// OffboardingOptions are the start options of an offboarding.
func OffboardingOptions(in workflows.OffboardingInput) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID: OffboardingID(in), TaskQueue: workflows.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchTenantID.ValueSet(in.TenantID), workflows.SearchOrgHost.ValueSet(in.OrgHost())),
	}
}

// RotationOptions are the start options of a rotation started by a client
// (the onboarding starts its own as a child with the same ID and attributes).
func RotationOptions(tenantID, orgHost string) client.StartWorkflowOptions {
	id := workflows.RotationWorkflowID(tenantID, orgHost)
	return client.StartWorkflowOptions{
		ID: id, TaskQueue: workflows.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchTenantID.ValueSet(tenantID), workflows.SearchOrgHost.ValueSet(orgHost)),
	}
}

// OnboardingInput is the input the onboarding run started with: the first
// event of its history, decoded with dc (the product's codec, so the
// client must hold the codec key).
func OnboardingInput(ctx context.Context, c client.Client, dc converter.DataConverter, id, runID string) (workflows.OnboardingInput, error) {
	var in workflows.OnboardingInput
	if err := StartInput(ctx, c, dc, id, runID, &in); err != nil {
		return in, err
	}
	return in.WithDefaults(), nil
}

// StartInput decodes into v the input a run started with (the first event
// of its history).
func StartInput(ctx context.Context, c client.Client, dc converter.DataConverter, id, runID string, v any) error {
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return fmt.Errorf("%s has no history", id)
	}
	ev, err := it.Next()
	if err != nil {
		return fmt.Errorf("read the history of %s: %w", id, err)
	}
	started := ev.GetWorkflowExecutionStartedEventAttributes()
	if started == nil {
		return fmt.Errorf("the history of %s does not start with the workflow's start", id)
	}
	if err := dc.FromPayloads(started.GetInput(), v); err != nil {
		return fmt.Errorf("decode the input of %s: %w", id, err)
	}
	return nil
}

// Check says whether Start would start in now, without starting it: nil,
// *AlreadyOnboardedError or *AlreadyRunningError (for dry runs).
func Check(ctx context.Context, c client.Client, in workflows.OnboardingInput) error {
	last, found, err := Latest(ctx, c, in.WorkflowID())
	if err != nil {
		return err
	}
	if found && last.Running() {
		return &AlreadyRunningError{WorkflowID: last.WorkflowID, RunID: last.RunID, TenantID: in.TenantID, OrgHost: in.OrgHost()}
	}
	_, err = Gate(ctx, c, in)
	return err
}
