package cli

import (
	"context"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/ctxtime"
)

// maxFollowBackoff caps the pause between two progress reads when the
// history cannot be long-polled: at most 60 queries an hour.
const maxFollowBackoff = time.Minute

// runWatch tells a follow loop when a run's progress may have changed, so
// that it queries only then. Each `progress` query is a billable action on
// Temporal Cloud (one every 250 ms was 14,400 an hour of a terminal left
// waiting for consent); reading the history is not. The progress changes
// only when a workflow task completes, so the watch long-polls the history
// (wait for new event) until one does or the run closes. Where the history
// cannot be read (permissions, an old server), it backs off instead.
type runWatch struct {
	c          client.Client
	workflowID string
	runID      string
	iter       client.HistoryEventIterator
	seen       int // events of runID already read, to resume after an error
	skip       int
	backoff    time.Duration
	minBackoff time.Duration
}

func newRunWatch(c client.Client, workflowID string, minBackoff time.Duration) *runWatch {
	return &runWatch{c: c, workflowID: workflowID, minBackoff: minBackoff, backoff: minBackoff}
}

// next returns once the progress of runID may differ from what the caller
// last read: a workflow task completed, the run closed, or (history not
// readable) the back-off passed. A new runID (a continued-as-new run)
// starts reading that run's history from its beginning.
func (w *runWatch) next(ctx context.Context, runID string) error {
	if runID != w.runID || w.iter == nil {
		if runID != w.runID || w.seen == 0 {
			// The caller's last read reflects the events before it, but a
			// workflow task may have completed between that read and this
			// count (a run that then only waits would never be read again):
			// watch from the last progress-changing event, so it is
			// delivered once more.
			w.runID = runID
			n, err := w.count(ctx)
			if err != nil {
				return w.pause(ctx)
			}
			w.seen = n
		}
		w.skip = w.seen
		// The iterator keeps ctx: a watch serves one follow loop.
		w.iter = w.c.GetWorkflowHistory(ctx, w.workflowID, w.runID, true, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	}
	for w.iter.HasNext() {
		e, err := w.iter.Next()
		if err != nil {
			break
		}
		if w.skip > 0 {
			w.skip--
			continue
		}
		w.seen++
		w.backoff = w.minBackoff
		if changesProgress(e.GetEventType()) {
			return nil
		}
	}
	// The iterator ended without a change: an error (the history is not
	// readable, or ctx ended) or a closed run's last page. Read again after
	// a pause that grows, so a terminal that cannot long-poll still costs
	// at most one query a minute.
	w.iter = nil
	return w.pause(ctx)
}

func (w *runWatch) pause(ctx context.Context) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	err := ctxtime.Sleep(ctx, w.backoff)
	w.backoff = min(2*w.backoff, maxFollowBackoff)
	return err
}

// count reads the run's history as it is now (no long poll) and returns
// how many events come before its last progress-changing one.
func (w *runWatch) count(ctx context.Context) (int, error) {
	it := w.c.GetWorkflowHistory(ctx, w.workflowID, w.runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n, last := 0, 0
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return 0, err
		}
		if changesProgress(e.GetEventType()) {
			last = n
		}
		n++
	}
	return last, nil
}

// changesProgress is true for the events after which the progress query
// can answer differently.
func changesProgress(t enumspb.EventType) bool {
	switch t {
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
		return true
	}
	return false
}
