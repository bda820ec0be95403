package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/workflows"
)

// outcome is one workflow run as its history tells it.
type outcome struct {
	ID         string
	Start, End time.Time // server times of the first and the last event
	Events     int
	// Activities counts the steps: activities scheduled and local
	// activities run (a local activity is one step done more cheaply; the
	// bare chain does each step as an activity).
	Activities int
	// LocalActivities is the part of Activities run as local activities.
	LocalActivities int
	// ActivitiesBeforeSignal counts the steps before the first signal:
	// where the bare chain puts its signal.
	ActivitiesBeforeSignal int
	// Children are the child workflows the run started (the product's
	// SecretRotation): their histories are part of an onboarding's cost.
	Children []*commonpb.WorkflowExecution
	// Actions are the Temporal Cloud actions its history records.
	Actions actionCount
	Err     error
}

// localActivityMarker is the marker name the SDK records a local activity's result under.
const localActivityMarker = "LocalActivity"

// historyState follows a history event by event.
type historyState struct {
	outcome
	signalWithStart bool
	open            int // activities scheduled and not yet closed, but the consent poll
	// pollEvent is the scheduled-event ID of the onboarding's AwaitConsent
	// activity, which runs for as long as the consent wait: it is the wait,
	// not work.
	pollEvent   int64
	pendingTask bool
	taskDone    bool // at least one workflow task completed
	signalled   bool
	closed      bool
	// dc, when set, decodes the consent URL from BuildConsentURL's result
	// (an activity's, or a local activity's marker) into ConsentURL: the
	// scale phase reads it from the history it follows anyway instead of
	// asking every waiting onboarding a query.
	dc         converter.DataConverter
	urlEvent   int64
	ConsentURL string
}

// buildConsentURL is the activity whose result is the consent URL.
const buildConsentURL = "BuildConsentURL"

// consentURLFrom reads the consent URL from BuildConsentURL's result.
func (h *historyState) consentURLFrom(p *commonpb.Payloads) {
	var res struct {
		URL string `json:"url"`
	}
	if p != nil && h.dc.FromPayloads(p, &res) == nil {
		h.ConsentURL = res.URL
	}
}

func (h *historyState) add(e *historypb.HistoryEvent) {
	if h.Events == 0 {
		h.Start = e.GetEventTime().AsTime()
	}
	h.Events++
	h.End = e.GetEventTime().AsTime()
	h.Actions.add(e, h.signalWithStart)
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
		h.pendingTask = true
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
		h.pendingTask, h.taskDone = false, true
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED, enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
		h.pendingTask = false
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
		h.Activities++
		if e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == buildConsentURL {
			h.urlEvent = e.GetEventId()
		}
		if isConsentPoll(e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()) {
			h.pollEvent = e.GetEventId()
		} else {
			h.open++
		}
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED,
		enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT, enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
		if h.pollEvent == 0 || scheduledEventID(e) != h.pollEvent {
			h.open--
		}
		if c := e.GetActivityTaskCompletedEventAttributes(); c != nil && h.dc != nil && c.GetScheduledEventId() == h.urlEvent {
			h.consentURLFrom(c.GetResult())
		}
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
		if !h.signalled {
			h.signalled, h.ActivitiesBeforeSignal = true, h.Activities
		}
	case enumspb.EVENT_TYPE_MARKER_RECORDED:
		if m := e.GetMarkerRecordedEventAttributes(); m.GetMarkerName() == localActivityMarker {
			h.Activities++
			h.LocalActivities++
			var data struct{ ActivityType string }
			if h.dc != nil && h.dc.FromPayloads(m.GetDetails()["data"], &data) == nil && data.ActivityType == buildConsentURL {
				h.consentURLFrom(m.GetDetails()["result"])
			}
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

// watch follows one run to its end and returns its history's outcome. With
// onWait it long-polls every event until the run first waits and calls
// onWait then (the bare chain and the product are detected the same way,
// with no query handler or search attribute the bare chain lacks). From
// then on, or from the start without onWait, it long-polls only for the
// close event, and reads the whole history once at the end: the driver
// wakes a few times per run instead of at every event, which keeps its own
// CPU (and the server's work for it) small beside what it measures.
func watch(ctx context.Context, svc workflowservice.WorkflowServiceClient, namespace, id, runID string, signalWithStart bool, onWait func(context.Context) error) outcome {
	exec := &commonpb.WorkflowExecution{WorkflowId: id, RunId: runID}
	fail := func(err error) outcome { return outcome{ID: id, Err: err} }
	if onWait != nil {
		h := historyState{outcome: outcome{ID: id}}
		var token []byte
		for !h.waiting() {
			if h.closed {
				return fail(fmt.Errorf("%s closed without waiting for its signal", id))
			}
			resp, err := historyPage(ctx, svc, namespace, exec, token, true, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			if err != nil {
				return fail(err)
			}
			for _, e := range resp.GetHistory().GetEvents() {
				h.add(e)
			}
			if token = resp.GetNextPageToken(); len(token) == 0 && !h.closed {
				return fail(fmt.Errorf("history of %s ended without a close event", id))
			}
		}
		if err := onWait(ctx); err != nil {
			return fail(fmt.Errorf("%s: %w", id, err))
		}
	}
	var token []byte
	for {
		resp, err := historyPage(ctx, svc, namespace, exec, token, true, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
		if err != nil {
			return fail(err)
		}
		if len(resp.GetHistory().GetEvents()) > 0 {
			break
		}
		token = resp.GetNextPageToken()
	}
	h := historyState{outcome: outcome{ID: id}, signalWithStart: signalWithStart}
	if err := readHistory(ctx, svc, namespace, exec, h.add); err != nil {
		return fail(err)
	}
	if !h.closed && h.Err == nil {
		h.Err = fmt.Errorf("history of %s ended without a close event", id)
	}
	return h.outcome
}

func historyPage(ctx context.Context, svc workflowservice.WorkflowServiceClient, namespace string, exec *commonpb.WorkflowExecution, token []byte, wait bool, filter enumspb.HistoryEventFilterType) (*workflowservice.GetWorkflowExecutionHistoryResponse, error) {
	pctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	resp, err := svc.GetWorkflowExecutionHistory(pctx, &workflowservice.GetWorkflowExecutionHistoryRequest{
		Namespace:              namespace,
		Execution:              exec,
		MaximumPageSize:        1000, // a whole history: a page cut inside a batch could look like a wait
		NextPageToken:          token,
		WaitNewEvent:           wait,
		HistoryEventFilterType: filter,
	})
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", exec.GetWorkflowId(), err)
	}
	return resp, nil
}

// readHistory calls f for every event of a run's history as it is now.
func readHistory(ctx context.Context, svc workflowservice.WorkflowServiceClient, namespace string, exec *commonpb.WorkflowExecution, f func(*historypb.HistoryEvent)) error {
	var token []byte
	for {
		resp, err := historyPage(ctx, svc, namespace, exec, token, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		if err != nil {
			return err
		}
		for _, e := range resp.GetHistory().GetEvents() {
			f(e)
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return nil
		}
	}
}

// workload is one kind of workflow the benchmark drives.
type workload struct {
	name string
	// signalWithStart: start delivers the signal (no wait to detect).
	signalWithStart bool
	start           func(ctx context.Context, i int) (client.WorkflowRun, error)
	// consent is called when run i waits at the consent point.
	consent func(ctx context.Context, i int, id string) error
	// queries counts the queries the driver sent (a billable action each).
	queries *atomic.Int64
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
			var onWait func(context.Context) error
			if !wl.signalWithStart {
				onWait = func(ctx context.Context) error { return wl.consent(ctx, i, id) }
			}
			out[k] = watch(ctx, svc, namespace, id, run.GetRunID(), wl.signalWithStart, onWait)
		})
	}
	wg.Wait()
	return out
}

// consentClient plays the tenant's admin on the emulator's consent page.
type consentClient struct{ hc *http.Client }

// grant opens the consent URL and clicks Accept. Entra (and the emulator)
// answers with a redirect to the app's redirect URI carrying
// admin_consent=True; the redirect is checked, never followed.
func (c consentClient) grant(ctx context.Context, consentURL string) error {
	resp, err := emulator.AnswerConsent(ctx, c.hc, consentURL, true)
	if err != nil {
		return err
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
func grantAndSignal(ctx context.Context, tc client.Client, cc consentClient, queries *atomic.Int64, id string) error {
	queries.Add(1)
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

// childCost counts the events and actions the children of outs have so far.
func childCost(ctx context.Context, svc workflowservice.WorkflowServiceClient, namespace string, outs []outcome) (int, actionCount, error) {
	events := 0
	var actions actionCount
	for _, o := range outs {
		for _, c := range o.Children {
			if err := readHistory(ctx, svc, namespace, c, func(e *historypb.HistoryEvent) {
				events++
				actions.add(e, false)
			}); err != nil {
				return 0, actions, fmt.Errorf("child: %w", err)
			}
		}
	}
	return events, actions, nil
}

// consentPollActivity re-checks the consent for the whole wait (under a
// retry policy; AwaitConsent in runs of the heartbeating version).
const consentPollActivity = "CheckConsent"

func isConsentPoll(name string) bool { return name == consentPollActivity || name == "AwaitConsent" }

func scheduledEventID(e *historypb.HistoryEvent) int64 {
	switch {
	case e.GetActivityTaskCompletedEventAttributes() != nil:
		return e.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
	case e.GetActivityTaskFailedEventAttributes() != nil:
		return e.GetActivityTaskFailedEventAttributes().GetScheduledEventId()
	case e.GetActivityTaskTimedOutEventAttributes() != nil:
		return e.GetActivityTaskTimedOutEventAttributes().GetScheduledEventId()
	case e.GetActivityTaskCanceledEventAttributes() != nil:
		return e.GetActivityTaskCanceledEventAttributes().GetScheduledEventId()
	}
	return 0
}
