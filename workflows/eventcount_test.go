package workflows

import (
	"sync"
	"time"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// eventCounter bounds from above how many events a run's history holds,
// from what the workflow does: the SDK's test environment keeps no history,
// so the time-skipping tests count this way. TestEventCounterBoundsRecordedHistories
// checks the bound on the histories recorded from real runs.
//
// Per the server's history: the start is 1 event plus the first workflow
// task (scheduled, started, completed: 3), the close 1; an activity is 3
// (scheduled, started, closed) plus the workflow task its result wakes
// (3) plus 1 for a cancellation it may be asked for; a timer 2 plus its
// task; a signal 1 plus its task; a child start 2 plus its task; a
// cancellation of another workflow 2 plus its task; a search attribute
// upsert 1; a local activity 1 (its marker); a version marker 2 (the marker and the TemporalChangeVersion
// upsert). A task that handles several wake-ups at once makes the real
// history shorter than the count, never longer.
type eventCounter struct {
	interceptor.WorkerInterceptorBase
	mu       sync.Mutex
	events   int
	versions map[string]bool
}

const workflowTask = 3

func (c *eventCounter) add(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events += n
}

func (c *eventCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events
}

func (c *eventCounter) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &countInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, c: c}
}

type countInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	c *eventCounter
}

func (i *countInbound) Init(out interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&countOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: out}, c: i.c})
}

func (i *countInbound) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	i.c.add(1 + workflowTask)
	defer i.c.add(1)
	return i.Next.ExecuteWorkflow(ctx, in)
}

func (i *countInbound) HandleSignal(ctx workflow.Context, in *interceptor.HandleSignalInput) error {
	i.c.add(1 + workflowTask)
	return i.Next.HandleSignal(ctx, in)
}

type countOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	c *eventCounter
}

func (o *countOutbound) ExecuteActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	o.c.add(3 + workflowTask + 1)
	return o.Next.ExecuteActivity(ctx, activityType, args...)
}

// ExecuteLocalActivity: its marker, in the workflow task that ran it.
func (o *countOutbound) ExecuteLocalActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	o.c.add(1)
	return o.Next.ExecuteLocalActivity(ctx, activityType, args...)
}

func (o *countOutbound) NewTimer(ctx workflow.Context, d time.Duration) workflow.Future {
	o.c.add(2 + workflowTask)
	return o.Next.NewTimer(ctx, d)
}

func (o *countOutbound) NewTimerWithOptions(ctx workflow.Context, d time.Duration, opts workflow.TimerOptions) workflow.Future {
	o.c.add(2 + workflowTask)
	return o.Next.NewTimerWithOptions(ctx, d, opts)
}

func (o *countOutbound) ExecuteChildWorkflow(ctx workflow.Context, childType string, args ...any) workflow.ChildWorkflowFuture {
	o.c.add(2 + workflowTask)
	return o.Next.ExecuteChildWorkflow(ctx, childType, args...)
}

func (o *countOutbound) RequestCancelExternalWorkflow(ctx workflow.Context, id, runID string) workflow.Future {
	o.c.add(2 + workflowTask)
	return o.Next.RequestCancelExternalWorkflow(ctx, id, runID)
}

func (o *countOutbound) UpsertTypedSearchAttributes(ctx workflow.Context, sa ...temporal.SearchAttributeUpdate) error {
	o.c.add(1)
	return o.Next.UpsertTypedSearchAttributes(ctx, sa...)
}

func (o *countOutbound) GetVersion(ctx workflow.Context, changeID string, minSupported, maxSupported workflow.Version) workflow.Version {
	v := o.Next.GetVersion(ctx, changeID, minSupported, maxSupported)
	o.c.mu.Lock()
	defer o.c.mu.Unlock()
	if v != workflow.DefaultVersion && !o.c.versions[changeID] {
		if o.c.versions == nil {
			o.c.versions = map[string]bool{}
		}
		o.c.versions[changeID] = true
		o.c.events += 2
	}
	return v
}
