package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
)

// heartbeatEvery is how often a long call reports that its worker is alive;
// the step's HeartbeatTimeout (a few times this) is then how long Temporal
// waits before it retries a call whose worker died, instead of the step's
// whole start-to-close timeout.
const heartbeatEvery = 5 * time.Second

// whileHeartbeating runs call and heartbeats every interval until it
// returns. Only for calls that are slow by nature (publishing, metadata
// changes).
func whileHeartbeating(ctx context.Context, every time.Duration, call func() error) error {
	if !activity.IsActivity(ctx) {
		return call() // called directly, as tests and tools do: no one to report to
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	activity.RecordHeartbeat(ctx)
	return call()
}
