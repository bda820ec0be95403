package workflows

import (
	"errors"
	"fmt"
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/mktos2s/mktos2s/activities"
)

// compensate undoes the resources created so far newest first in a disconnected
// context (so it also runs after cancellation), then returns the error
// that ends the workflow, with the report in its details.
func (r *run) compensate(ctx workflow.Context, cause error) error {
	cancelled := temporal.IsCanceledError(cause) || ctx.Err() != nil
	reason := errorMessage(cause)
	r.progress.Error = reason
	if r.failed != "" {
		r.progress.FailedStep = r.failed
	}

	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	if len(r.undo) > 0 {
		r.progress.Status = StatusCompensating
		r.enter(dctx, StepCompensating)
	}
	var failedUndos []string
	refusedUser, appRemoved := -1, false
	var refusedUserInput any
	for i := len(r.undo) - 1; i >= 0; i-- {
		u := r.undo[i]
		var res activities.UndoResult
		in := u.undoInput(r.in.TenantID, r.in.OrgURL, r.progress.Resources)
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(dctx, undoOptions()), u.undo, in).Get(dctx, &res)
		o := UndoOutcome{Step: u.step, Undo: activityName(u.undo), OK: err == nil, Note: res.Note}
		if err != nil {
			o.Error = errorMessage(err)
			failedUndos = append(failedUndos, o.Undo+": "+o.Error)
		}
		switch {
		case o.OK && refusedUserDelete(o.Undo, o.Note):
			refusedUser, refusedUserInput = len(r.progress.Compensation), in
		case o.OK && o.Undo == activityName(a.RemoveApplication):
			appRemoved = true
		}
		r.progress.Compensation = append(r.progress.Compensation, o)
	}
	if refusedUser >= 0 && appRemoved {
		if note := deleteUserAfterApp(dctx, refusedUserInput); note != "" {
			r.progress.Compensation[refusedUser].Note = note
		}
	}

	report := FailureReport{
		FailedStep:     r.failed,
		Reason:         reason,
		CompletedSteps: append([]string{}, r.progress.CompletedSteps...),
		Resources:      r.progress.Resources,
		Compensation:   append([]UndoOutcome{}, r.progress.Compensation...),
		Validation:     r.checks,
	}
	msg := reason
	switch {
	case len(failedUndos) > 0:
		msg += "; compensation FAILED, clean up by hand: " + strings.Join(failedUndos, "; ")
	case len(r.undo) > 0:
		msg += fmt.Sprintf("; compensation undid all %d steps", len(r.undo))
	default:
		msg += "; nothing had been created"
	}
	r.progress.Error = msg
	if cancelled {
		r.progress.Status = StatusCancelled
		r.enter(dctx, StepFailed)
		return temporal.NewCanceledError(report)
	}
	r.progress.Status = StatusFailed
	r.enter(dctx, StepFailed)
	errType := ErrOnboardingFailed
	var ae *temporal.ApplicationError
	if errors.As(cause, &ae) && ae.Type() != "" {
		errType = ae.Type()
	}
	step := r.failed
	if step == "" {
		step = "an unknown step"
	}
	return temporal.NewApplicationErrorWithOptions("onboarding failed at "+step+": "+msg, errType,
		temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{report}})
}

// errorMessage is the innermost application message: what the operator
// needs, without the activity wrapper's bookkeeping.
func errorMessage(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Message()
	}
	var ce *temporal.CanceledError
	if errors.As(err, &ce) {
		return "cancelled"
	}
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return "timed out: " + te.Error()
	}
	return err.Error()
}
