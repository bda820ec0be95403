// Package ctxtime has the waits the commands share: a sleep that ends early
// when its context does, so Ctrl-C or a deadline never waits out a pause.
package ctxtime

import (
	"context"
	"time"
)

// Sleep waits d or until ctx is done, and then returns ctx's error.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
