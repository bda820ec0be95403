package cli

import (
	"bytes"
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"

	"github.com/mktos2s/mktos2s/internal/testenv"
	"github.com/mktos2s/mktos2s/internal/workerapp"
	"github.com/mktos2s/mktos2s/workflows"
)

// queryCounter counts the queries a client sends: each is a billable
// action on Temporal Cloud.
type queryCounter struct {
	interceptor.ClientInterceptorBase
	n atomic.Int64
}

func (q *queryCounter) InterceptClient(next interceptor.ClientOutboundInterceptor) interceptor.ClientOutboundInterceptor {
	return &countingOutbound{ClientOutboundInterceptorBase: interceptor.ClientOutboundInterceptorBase{Next: next}, n: &q.n}
}

type countingOutbound struct {
	interceptor.ClientOutboundInterceptorBase
	n *atomic.Int64
}

func (c *countingOutbound) QueryWorkflow(ctx context.Context, in *interceptor.ClientQueryWorkflowInput) (converter.EncodedValue, error) {
	c.n.Add(1)
	return c.Next.QueryWorkflow(ctx, in)
}

// A terminal following an onboarding that waits for consent must not query
// while nothing happens (it queried every 250 ms: 14,400 billable actions
// an hour), and must still see the run move on and finish.
func TestFollowQueriesOnlyWhenTheRunMoves(t *testing.T) {
	env, c := testenv.StartForTest(t, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cfg, err := env.Config("default")
	require.NoError(t, err)
	opts, err := workerapp.ClientOptions(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	counter := &queryCounter{}
	opts.Interceptors = append(opts.Interceptors, counter)
	qc, err := client.DialContext(ctx, opts)
	require.NoError(t, err)
	defer qc.Close()

	in := workflows.OnboardingInput{TenantID: env.Seed.Tenants[0].ID, OrgURL: env.Emu.OrgURL(env.Seed.Orgs[0].Host)}.WithDefaults()
	_, err = testenv.StartOnboarding(ctx, c, in)
	require.NoError(t, err)
	_, err = testenv.WaitProgress(ctx, c, in.WorkflowID(), time.Minute, func(p workflows.Progress) bool {
		return p.Status == workflows.StatusWaitingConsent && p.Message != ""
	})
	require.NoError(t, err)

	a := &app{pollEvery: 250 * time.Millisecond}
	var out bytes.Buffer
	type result struct {
		s   snapshot
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := a.follow(ctx, qc, &out, in.WorkflowID())
		done <- result{s, err}
	}()

	// Three seconds of waiting: the old loop sent 12 queries here.
	time.Sleep(3 * time.Second)
	idle := counter.n.Load()
	// The first read, and one more for the last workflow task, which may
	// have completed between that read and the start of the watch (a run
	// that then only waits, like the admin session's, was never read again).
	assert.LessOrEqual(t, idle, int64(2), "queries while the onboarding only waited for consent")

	require.NoError(t, env.Consent(ctx, c, in.WorkflowID(), time.Minute))
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		t.Fatal("follow did not end after the onboarding completed")
	}
	require.NoError(t, r.err)
	require.NotNil(t, r.s.Result, "followed to completion: %s", out.String())
	// One query per completed workflow task at most, for the seven steps after consent.
	assert.Less(t, counter.n.Load()-idle, int64(40))
	t.Logf("queries: %d while waiting 3 s, %d in all", idle, counter.n.Load())
}
