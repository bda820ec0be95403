package activities

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
)

// A slow call keeps reporting that its worker is alive, and its error is
// passed on unchanged.
func TestWhileHeartbeatingReportsDuringASlowCall(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	var beats atomic.Int32
	env.SetOnActivityHeartbeatListener(func(*activity.Info, converter.EncodedValues) { beats.Add(1) })
	boom := errors.New("publish failed")
	slow := func(ctx context.Context) error {
		return whileHeartbeating(ctx, 50*time.Millisecond, func() error {
			time.Sleep(300 * time.Millisecond)
			return boom
		})
	}
	env.RegisterActivityWithOptions(slow, activity.RegisterOptions{Name: "slow"})
	_, err := env.ExecuteActivity("slow")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "publish failed")
	// More than the one at the start: the call itself was covered. (The
	// test environment may throttle heartbeats, so no exact count.)
	assert.GreaterOrEqual(t, beats.Load(), int32(2))
}
