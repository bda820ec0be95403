package metrics

import (
	"context"
	"errors"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/mktos2s/mktos2s/workflows"
)

// Interceptor counts how workflows end and rotation cycles, without a line
// in workflow code: a workflow's counts go through
// workflow.GetMetricsHandler, which records nothing while a history is
// replayed, so a worker restart or a cache eviction counts nothing twice;
// a cycle is counted when the rotation's RemoveClientSecret activity
// succeeds, which happens once per cycle.
func Interceptor() interceptor.WorkerInterceptor { return &workerInterceptor{} }

type workerInterceptor struct {
	interceptor.WorkerInterceptorBase
}

func (*workerInterceptor) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &workflowInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}}
}

func (*workerInterceptor) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &activityInbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}}
}

type workflowInbound struct {
	interceptor.WorkflowInboundInterceptorBase
}

func (w *workflowInbound) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	info := workflow.GetInfo(ctx)
	h := workflow.GetMetricsHandler(ctx)
	kind := info.WorkflowType.Name
	if kind == workflows.WorkflowType && info.ContinuedExecutionRunID == "" {
		h.Counter(sdkOnboardingsStarted).Inc(1)
	}
	res, err := w.Next.ExecuteWorkflow(ctx, in)
	var can *workflow.ContinueAsNewError
	if errors.As(err, &can) {
		return res, err
	}
	switch kind {
	case workflows.WorkflowType:
		if err == nil {
			h.Counter(sdkOnboardingsCompleted).Inc(1)
		} else {
			step, outcome := failedStep(err)
			h.WithTags(map[string]string{"step": step, "outcome": outcome}).Counter(sdkOnboardingsCompensated).Inc(1)
		}
	case workflows.RotationWorkflowType:
		if err != nil && !temporal.IsCanceledError(err) {
			h.Counter(sdkRotationsFailed).Inc(1)
		}
	}
	return res, err
}

// failedStep reads the step an onboarding failed at from the report its
// error carries, and whether it failed or was cancelled.
func failedStep(err error) (step, outcome string) {
	var report workflows.FailureReport
	outcome = "failed"
	var ce *temporal.CanceledError
	var ae *temporal.ApplicationError
	switch {
	case errors.As(err, &ce):
		outcome = "cancelled"
		if ce.HasDetails() {
			_ = ce.Details(&report)
		}
	case errors.As(err, &ae):
		if ae.HasDetails() {
			_ = ae.Details(&report)
		}
		if report.FailedStep == "" && ae.Type() == workflows.ErrInvalidInput {
			return "input", outcome
		}
	}
	if report.FailedStep == "" {
		return "unknown", outcome
	}
	return report.FailedStep, outcome
}

type activityInbound struct {
	interceptor.ActivityInboundInterceptorBase
}

func (a *activityInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	res, err := a.Next.ExecuteActivity(ctx, in)
	info := activity.GetInfo(ctx)
	if err == nil && info.WorkflowType != nil && info.WorkflowType.Name == workflows.RotationWorkflowType &&
		info.ActivityType.Name == removeClientSecret {
		activity.GetMetricsHandler(ctx).Counter(sdkRotationCycles).Inc(1)
	}
	return res, err
}

// removeClientSecret is the activity that ends a rotation cycle (the old
// secret goes once the new one is proven).
const removeClientSecret = "RemoveClientSecret"
