package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/lifecycle"
	"github.com/mktos2s/mktos2s/internal/workerapp"
	"github.com/mktos2s/mktos2s/workflows"
)

// dial connects with the product's codec and failure converters, so results
// and failures decode here exactly as the worker wrote them. The SDK's own
// logging is silenced below warn: it would interleave with the checklist.
func (a *app) dial(ctx context.Context, logTo io.Writer) (client.Client, error) {
	l := slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return workerapp.Dial(ctx, a.cfg, workerapp.WithLogger(l))
}

// target is the onboarding a command acts on.
type target struct {
	tenantID string
	orgURL   string
}

func (t target) workflowID() string {
	return workflows.OnboardingInput{TenantID: t.tenantID, OrgURL: t.orgURL}.WorkflowID()
}

func (t target) check() error {
	var missing []string
	if strings.TrimSpace(t.tenantID) == "" {
		missing = append(missing, "--tenant-id (the Directory (tenant) ID)")
	}
	if strings.TrimSpace(t.orgURL) == "" {
		missing = append(missing, "--org-url (e.g. https://contoso.crm.dynamics.com)")
	}
	if len(missing) > 0 {
		return coded(ExitBadInput, fmt.Errorf("missing %s", strings.Join(missing, " and ")))
	}
	return nil
}

// snapshot is what an operator sees of one run, running or closed.
type snapshot struct {
	WorkflowID string                      `json:"workflowId"`
	RunID      string                      `json:"runId"`
	Execution  string                      `json:"execution"` // Temporal's status: Running, Completed, Failed, ...
	Progress   workflows.Progress          `json:"progress"`
	Result     *workflows.OnboardingResult `json:"-"`
	status     enumspb.WorkflowExecutionStatus
	started    time.Time
	closed     time.Time // zero while it runs
	// timings are the steps' durations, when the command read them.
	timings map[string]time.Duration
	// offboarded is when an offboarding removed what this run created.
	offboarded time.Time
}

// since is when the run last changed what exists for its tenant: its close,
// or its start while it runs. An offboarding after it undid that run.
func (s snapshot) since() time.Time {
	if s.closed.IsZero() {
		return s.started
	}
	return s.closed
}

func (s snapshot) running() bool {
	return s.status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
}

// errNotFound says there is no onboarding for the target.
var errNotFound = errors.New("no onboarding found")

// fetch builds the snapshot of the latest run of workflowID: the progress
// query while it runs, the result or the failure once it is closed (a
// query on a closed run would need a worker to replay it).
func fetch(ctx context.Context, c client.Client, workflowID string) (snapshot, error) {
	desc, err := c.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return snapshot{}, fmt.Errorf("%w with workflow ID %s", errNotFound, workflowID)
		}
		return snapshot{}, fmt.Errorf("describe %s: %w", workflowID, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	s := snapshot{
		WorkflowID: workflowID,
		RunID:      info.GetExecution().GetRunId(),
		status:     info.GetStatus(),
		Execution:  lifecycle.StatusName(info.GetStatus()),
		started:    info.GetStartTime().AsTime(),
	}
	if ct := info.GetCloseTime(); ct != nil && !s.running() {
		s.closed = ct.AsTime()
	}
	if s.running() {
		v, err := c.QueryWorkflow(ctx, workflowID, s.RunID, workflows.QueryProgress)
		if err != nil {
			return s, fmt.Errorf("query progress of %s: %w", workflowID, err)
		}
		if err := v.Get(&s.Progress); err != nil {
			return s, fmt.Errorf("decode progress of %s: %w", workflowID, err)
		}
		return s, nil
	}
	var res workflows.OnboardingResult
	err = c.GetWorkflow(ctx, workflowID, s.RunID).Get(ctx, &res)
	if err == nil {
		s.Result = &res
		s.Progress = workflows.Progress{
			Step: workflows.StepCompleted, Status: workflows.StatusCompleted, ConsentVerified: true,
			CompletedSteps: res.CompletedSteps, Resources: res.Resources, Message: "validation passed",
			ProvisionerAccess: res.ProvisionerAccess,
		}
		return s, nil
	}
	s.Progress = progressFromFailure(err, s.status)
	return s, nil
}

// progressFromFailure is lifecycle.ProgressFromFailure.
func progressFromFailure(err error, status enumspb.WorkflowExecutionStatus) workflows.Progress {
	return lifecycle.ProgressFromFailure(err, status)
}
