package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/workflows"
)

// outcome is one workflow run as its history tells it.
type outcome struct {
	ID         string
	Start, End time.Time // server times of the first and the last event
	Events     int
	Activities int
	// ActivitiesBeforeSignal counts the activities scheduled before the
	// first signal: where the bare chain puts its signal.
	ActivitiesBeforeSignal int
	// Children are the child workflows the run started (the product's
	// SecretRotation): their histories are part of an onboarding's cost.
	Children []*commonpb.WorkflowExecution
	Err      error
}

// historyState follows a history event by event.
type historyState struct {
	outcome
	open        int // activities scheduled and not yet closed
	pendingTask bool
	taskDone    bool // at least one workflow task completed
	signalled   bool
	closed      bool
}

func (h *historyState) add(e *historypb.HistoryEvent) {
	if h.Events == 0 {
		h.Start = e.GetEventTime().AsTime()
	}
	h.Events++
	h.End = e.GetEventTime().AsTime()
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
		h.pendingTask = true
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
		h.pendingTask, h.taskDone = false, true
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED, enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
		h.pendingTask = false
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
		h.open++
		h.Activities++
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED,
		enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT, enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
		h.open--
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
		if !h.signalled {
			h.signalled, h.ActivitiesBeforeSignal = true, h.Activities
		}
	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
		h.Children = append(h.Children, e.GetChildWorkflowExecutionStartedEventAttributes().GetWorkflowExecution())
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
		h.closed = true
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
		h.closed = true
		if h.Err == nil {
			h.Err = fmt.Errorf("workflow %s closed with %s", h.ID, e.GetEventType())
		}
	}
}

// waiting is true when the workflow has nothing to do but wait: a workflow
// task completed, none is pending and no activity is open. In both the
// product and the bare chain that happens only at the consent point.
func (h *historyState) waiting() bool {
	return !h.closed && h.taskDone && !h.pendingTask && h.open == 0
}

// watch long-polls the history of one run until it closes, calling onWait
// once, the first time the run waits. Reading the history is the same cost
// for the bare chain and the product, and it needs no query handler or
// search attribute that the bare chain lacks.
func watch(ctx context.Context, svc workflowservice.WorkflowServiceClient, namespace, id, runID string, onWait func(context.Context) error) outcome {
	h := historyState{outcome: outcome{ID: id}}
	waited := false
	var token []byte
	for !h.closed {
		pctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		resp, err := svc.GetWorkflowExecutionHistory(pctx, &workflowservice.GetWorkflowExecutionHistoryRequest{
			Namespace:       namespace,
			Execution:       &commonpb.WorkflowExecution{WorkflowId: id, RunId: runID},
			MaximumPageSize: 1000, // a whole history: a page cut inside a batch could look like a wait
			NextPageToken:   token,
			WaitNewEvent:    true,
		})
		cancel()
		if err != nil {
			h.Err = fmt.Errorf("history of %s: %w", id, err)
			return h.outcome
		}
		for _, e := range resp.GetHistory().GetEvents() {
			h.add(e)
		}
		if !waited && h.waiting() {
			waited = true
			if err := onWait(ctx); err != nil {
				h.Err = fmt.Errorf("%s: %w", id, err)
				return h.outcome
			}
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 && !h.closed {
			h.Err = fmt.Errorf("history of %s ended without a close event", id)
			return h.outcome
		}
	}
	return h.outcome
}

// workload is one kind of workflow the benchmark drives.
type workload struct {
	name  string
	start func(ctx context.Context, i int) (client.WorkflowRun, error)
	// consent is called when run i waits at the consent point.
	consent func(ctx context.Context, i int, id string) error
}

// runAll starts n workflows at once (at most parallel start calls in
// flight) and follows each to its end.
func runAll(ctx context.Context, svc workflowservice.WorkflowServiceClient, namespace string, wl workload, first, n, parallel int) []outcome {
	out := make([]outcome, n)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for k := range n {
		i := first + k
		wg.Go(func() {
			sem <- struct{}{}
			run, err := wl.start(ctx, i)
			<-sem
			if err != nil {
				out[k] = outcome{Err: fmt.Errorf("%s %d: start: %w", wl.name, i, err)}
				return
			}
			id := run.GetID()
			out[k] = watch(ctx, svc, namespace, id, run.GetRunID(), func(ctx context.Context) error { return wl.consent(ctx, i, id) })
		})
	}
	wg.Wait()
	return out
}

// consentClient plays the tenant's admin on the emulator's consent page.
type consentClient struct{ hc *http.Client }

// grant opens the consent URL. Entra (and the emulator) answers with a
// redirect to the app's redirect URI carrying admin_consent=True; the
// redirect is checked, never followed.
func (c consentClient) grant(ctx context.Context, consentURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, consentURL, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("consent page: %w", err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || loc.Query().Get("admin_consent") != "True" {
		return fmt.Errorf("consent page: status %d, redirect %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return nil
}

// grantAndSignal reads the consent URL with the progress query (as
// `starter status` shows it to an operator), consents on the emulator and
// sends the admin-consent signal.
func grantAndSignal(ctx context.Context, tc client.Client, cc consentClient, id string) error {
	p, err := progressOf(ctx, tc, id)
	if err != nil {
		return err
	}
	if p.Status != workflows.StatusWaitingConsent || p.ConsentURL == "" {
		return fmt.Errorf("not waiting for consent: step %s, status %s", p.Step, p.Status)
	}
	if err := cc.grant(ctx, p.ConsentURL); err != nil {
		return err
	}
	return tc.SignalWorkflow(ctx, id, "", workflows.SignalAdminConsent, workflows.ConsentSignal{Granted: true, By: "bench"})
}

func progressOf(ctx context.Context, tc client.Client, id string) (workflows.Progress, error) {
	var p workflows.Progress
	v, err := tc.QueryWorkflow(ctx, id, "", workflows.QueryProgress)
	if err != nil {
		return p, fmt.Errorf("query progress: %w", err)
	}
	if err := v.Get(&p); err != nil {
		return p, fmt.Errorf("query progress: %w", err)
	}
	return p, nil
}

func firstError(outs []outcome) error {
	var errs []error
	for _, o := range outs {
		if o.Err != nil {
			errs = append(errs, o.Err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d runs failed, first: %w", len(errs), len(outs), errs[0])
}

// childEvents counts the events the children of outs have so far.
func childEvents(ctx context.Context, svc workflowservice.WorkflowServiceClient, namespace string, outs []outcome) (int, error) {
	total := 0
	for _, o := range outs {
		for _, c := range o.Children {
			var token []byte
			for {
				resp, err := svc.GetWorkflowExecutionHistory(ctx, &workflowservice.GetWorkflowExecutionHistoryRequest{
					Namespace: namespace, Execution: c, NextPageToken: token,
				})
				if err != nil {
					return 0, fmt.Errorf("history of child %s: %w", c.GetWorkflowId(), err)
				}
				total += len(resp.GetHistory().GetEvents())
				if token = resp.GetNextPageToken(); len(token) == 0 {
					break
				}
			}
		}
	}
	return total, nil
}
