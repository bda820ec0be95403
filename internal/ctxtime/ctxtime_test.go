package ctxtime

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSleep(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, stop := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer stop()

	tests := []struct {
		name    string
		ctx     context.Context
		d       time.Duration
		want    error
		atLeast time.Duration
		atMost  time.Duration
	}{
		{name: "waits the duration", ctx: context.Background(), d: 30 * time.Millisecond, atLeast: 30 * time.Millisecond, atMost: 5 * time.Second},
		{name: "a cancelled context ends it at once", ctx: cancelled, d: time.Hour, want: context.Canceled, atMost: 5 * time.Second},
		{name: "a deadline ends it early", ctx: expired, d: time.Hour, want: context.DeadlineExceeded, atMost: 5 * time.Second},
		{name: "zero does not block", ctx: context.Background(), d: 0, atMost: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := Sleep(tt.ctx, tt.d)
			took := time.Since(start)
			assert.ErrorIs(t, err, tt.want) // with want nil: err is nil
			assert.GreaterOrEqual(t, took, tt.atLeast)
			assert.Less(t, took, tt.atMost)
		})
	}
}
