package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/mktos2s/mktos2s/internal/ctxtime"
	"github.com/mktos2s/mktos2s/workflows"
)

// scaleResult is the scale phase: many onboardings waiting at once, then drained.
type scaleResult struct {
	Onboardings         int     `json:"onboardings"`
	Window              int     `json:"window"`
	StartSeconds        float64 `json:"startSeconds"`
	AllWaitingSeconds   float64 `json:"allWaitingSeconds"`
	Waiting             int     `json:"waiting"`
	WorkerRSSWaitingMiB float64 `json:"workerRssWaitingMiB"`
	ServerRSSWaitingMiB float64 `json:"serverRssWaitingMiB"`
	DrainSeconds        float64 `json:"drainSeconds"`
	Completed           int     `json:"completed"`
	WorkerPeakMiB       float64 `json:"workerPeakRssMiB"`
	ServerPeakMiB       float64 `json:"serverPeakRssMiB"`
	// Per onboarding over the whole phase: the way to the wait per one that
	// waited plus the drain per one that completed, comparable with the
	// product phase's per-onboarding figures.
	WorkerCPUMs float64 `json:"workerCpuMsPerOnboarding"`
	ServerCPUMs float64 `json:"serverCpuMsPerOnboarding"`
	// The drain alone (consent to completion).
	DrainWorkerCPUMs float64 `json:"drainWorkerCpuMsPerOnboarding"`
	DrainServerCPUMs float64 `json:"drainServerCpuMsPerOnboarding"`
	EmulatorShare    float64 `json:"emulatorCpuShare"`
	DriverShare      float64 `json:"driverCpuShare"`
	Note             string  `json:"note,omitempty"`
	// Profiles are the worker's heap profile while they wait, and its top.
	Profiles []string `json:"profiles,omitempty"`
}

// measureScale starts n onboardings (tenants first..first+n), at most
// window of them between their start and the consent wait, measures memory
// once all wait, then consents and signals every one, again at most window
// between signal and completion. Consents arrive over days in real use; a
// window below the worker's sticky cache keeps a signalled onboarding in
// the cache until it ends, where 10,000 signalled at once would be evicted
// and replayed at every step. At the deadline it stops and reports what it
// has.
func measureScale(ctx context.Context, st *stack, first, n, parallel, window int, deadline time.Time) (scaleResult, error) {
	r := scaleResult{Onboardings: n, Window: window}
	st.resetPeaks()
	before, err := st.sample()
	if err != nil {
		return r, err
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	svc := st.watch.WorkflowService()
	ids := make([]string, n)
	var nWaiting, nStarted, nDone, lastStart atomic.Int64
	t0 := time.Now()
	stopTelling := tellEvery(30*time.Second, func() {
		progress("scale: %d started, %d waiting for consent, %d completed", nStarted.Load(), nWaiting.Load(), nDone.Load())
	})
	defer stopTelling()
	urls := make([]string, n)
	err = forEach(dctx, n, window, func(ctx context.Context, k int) error {
		run, err := startOnboarding(ctx, st, first+k)
		if err != nil {
			return err
		}
		nStarted.Add(1)
		lastStart.Store(int64(time.Since(t0)))
		ids[k] = run.GetID()
		if urls[k], err = untilWaiting(ctx, svc, st.namespace, st.dc, ids[k], run.GetRunID()); err != nil {
			return err
		}
		nWaiting.Add(1)
		return nil
	})
	r.Waiting, r.AllWaitingSeconds = int(nWaiting.Load()), time.Since(t0).Seconds()
	r.StartSeconds = time.Duration(lastStart.Load()).Seconds()
	if r.Waiting < n {
		why := "before the deadline"
		if err != nil && dctx.Err() == nil {
			why = "(" + err.Error() + ")"
		}
		r.Note = fmt.Sprintf("only %d of %d reached the consent point %s (%.0f s after the first start)%s; the drain takes those",
			r.Waiting, n, why, r.AllWaitingSeconds, extrapolate(r.Waiting, n, r.AllWaitingSeconds))
		progress("scale: %s", r.Note)
	} else {
		progress("scale: all %d wait for consent, %.1f s after the first start", n, r.AllWaitingSeconds)
	}
	waiting, err := st.sample()
	if err != nil {
		return r, err
	}
	r.Profiles = st.profileHeap(ctx, "worker-scale-waiting")
	r.WorkerRSSWaitingMiB, r.ServerRSSWaitingMiB = mib(waiting["worker"].RSS), mib(waiting["server"].RSS)
	r.WorkerPeakMiB, r.ServerPeakMiB = mib(waiting["worker"].HWM), mib(waiting["server"].HWM)

	// The drain, of those that wait: each one's consent URL as its history
	// recorded it (no query: a query is a workflow task, which for a run
	// out of the sticky cache is a replay, and under load the server
	// refuses them), the emulator's consent page, the signal, and its
	// completion. A refused or timed-out call is tried again with back-off;
	// a run that still fails is counted and the drain goes on.
	t1 := time.Now()
	var nFailed atomic.Int64
	var firstFailure atomic.Value
	_ = forEach(dctx, n, window, func(ctx context.Context, k int) error {
		if ids[k] == "" {
			return nil // never started
		}
		err := retry(ctx, func(ctx context.Context) error { return drainOne(ctx, st, ids[k], urls[k]) })
		if err == nil {
			o := watch(ctx, svc, st.namespace, ids[k], "", false, nil)
			err = o.Err
		}
		if err != nil {
			if ctx.Err() == nil {
				nFailed.Add(1)
				firstFailure.CompareAndSwap(nil, err.Error())
			}
			return nil
		}
		nDone.Add(1)
		return nil
	})
	r.Completed, r.DrainSeconds = int(nDone.Load()), time.Since(t1).Seconds()
	if r.Completed < n {
		note := fmt.Sprintf("drained %d of %d in %.0f s after the first signal%s", r.Completed, n, r.DrainSeconds, extrapolate(r.Completed, n, r.DrainSeconds))
		if f := nFailed.Load(); f > 0 {
			note += fmt.Sprintf("; %d failed after retries, first: %v", f, firstFailure.Load())
		}
		if dctx.Err() != nil {
			note += "; the rest were cut off by the deadline"
		}
		r.Note = strings.TrimPrefix(r.Note+"; "+note, "; ")
	}
	progress("scale: %d completed %.1f s after the first signal", r.Completed, r.DrainSeconds)

	after, err := st.sample()
	if err != nil {
		return r, err
	}
	// Per onboarding: the way to the wait over those that waited, plus the
	// drain over those that completed, so a partial drain is not charged
	// with the waits of the ones it did not reach.
	per := func(from, to map[string]procSample, name string, n int) float64 {
		return float64(since(from[name], to[name]).CPU.Milliseconds()) / float64(max(n, 1))
	}
	r.DrainWorkerCPUMs, r.DrainServerCPUMs = per(waiting, after, "worker", r.Completed), per(waiting, after, "server", r.Completed)
	r.WorkerCPUMs = per(before, waiting, "worker", r.Waiting) + r.DrainWorkerCPUMs
	r.ServerCPUMs = per(before, waiting, "server", r.Waiting) + r.DrainServerCPUMs
	w, s, e, d := since(before["worker"], after["worker"]), since(before["server"], after["server"]), since(before["emulator"], after["emulator"]), since(before["driver"], after["driver"])
	r.WorkerPeakMiB, r.ServerPeakMiB = mib(w.HWM), mib(s.HWM)
	if total := w.CPU + s.CPU + e.CPU; total > 0 {
		r.EmulatorShare = e.CPU.Seconds() / total.Seconds()
		r.DriverShare = d.CPU.Seconds() / (total + d.CPU).Seconds()
	}
	return r, nil
}

// untilWaiting long-polls a run's history until it waits (see
// historyState.waiting) and returns the consent URL the history recorded.
// A history read that fails (a long poll refused or timed out under load)
// is tried again with back-off.
func untilWaiting(ctx context.Context, svc workflowservice.WorkflowServiceClient, namespace string, dc converter.DataConverter, id, runID string) (string, error) {
	exec := &commonpb.WorkflowExecution{WorkflowId: id, RunId: runID}
	h := historyState{outcome: outcome{ID: id}, dc: dc}
	var token []byte
	for !h.waiting() {
		if h.closed {
			return "", fmt.Errorf("%s closed before the consent wait: %v", id, h.Err)
		}
		var resp *workflowservice.GetWorkflowExecutionHistoryResponse
		if err := retry(ctx, func(ctx context.Context) (err error) {
			resp, err = historyPage(ctx, svc, namespace, exec, token, true, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			return err
		}); err != nil {
			return "", err
		}
		for _, e := range resp.GetHistory().GetEvents() {
			h.add(e)
		}
		token = resp.GetNextPageToken()
	}
	return h.ConsentURL, nil
}

// drainOne consents for one waiting onboarding and signals it; without a
// URL from the history it asks the progress query, as `starter status` does.
func drainOne(ctx context.Context, st *stack, id, consentURL string) error {
	if consentURL == "" {
		return grantAndSignal(ctx, st.product, st.consent, new(atomic.Int64), id)
	}
	if err := st.consent.grant(ctx, consentURL); err != nil {
		return err
	}
	return st.product.SignalWorkflow(ctx, id, "", workflows.SignalAdminConsent, workflows.ConsentSignal{Granted: true, By: "bench"})
}

// retry calls f until it succeeds, at most 8 times, waiting 1, 2, 4 … 30 s
// between attempts: on a loaded machine the server refuses a call ("no
// poller seen for task queue recently") or it outlasts its deadline, and
// a moment later it goes through. Both are idempotent here: a history
// read, a consent already given, a signal the workflow verifies.
func retry(ctx context.Context, f func(context.Context) error) error {
	var err error
	wait := time.Second
	for range 8 {
		if err = f(ctx); err == nil || ctx.Err() != nil {
			return err
		}
		if ctxtime.Sleep(ctx, wait) != nil {
			return err
		}
		wait = min(2*wait, 30*time.Second)
	}
	return err
}

// tellEvery calls f every d until the returned stop is called.
func tellEvery(d time.Duration, f func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				f()
			}
		}
	}()
	return func() { close(done) }
}

// untilIdle waits until the run has no pending workflow task or activity:
// the initial consent check done, only the signal and the re-check timer left.
func untilIdle(ctx context.Context, st *stack, id string) error {
	for range 600 {
		d, err := st.plain.WorkflowService().DescribeWorkflowExecution(ctx, &workflowservice.DescribeWorkflowExecutionRequest{
			Namespace: st.namespace, Execution: &commonpb.WorkflowExecution{WorkflowId: id},
		})
		if err != nil {
			return fmt.Errorf("describe %s: %w", id, err)
		}
		if d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return fmt.Errorf("%s is %s while waiting for consent", id, d.GetWorkflowExecutionInfo().GetStatus())
		}
		busy := 0
		for _, pa := range d.GetPendingActivities() {
			if !isConsentPoll(pa.GetActivityType().GetName()) {
				busy++
			}
		}
		if busy == 0 && d.GetPendingWorkflowTask() == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s still busy after 60s at the consent point", id)
}

// forEach calls f for 0..n-1 with at most parallel calls at once and
// returns the first error (and how many failed).
func forEach(ctx context.Context, n, parallel int, f func(context.Context, int) error) error {
	var (
		wg     sync.WaitGroup
		next   atomic.Int64
		failed atomic.Int64
		mu     sync.Mutex
		first  error
	)
	for range min(parallel, n) {
		wg.Go(func() {
			for {
				k := int(next.Add(1) - 1)
				if k >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, k); err != nil {
					failed.Add(1)
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return fmt.Errorf("%d of %d failed, first: %w", failed.Load(), n, first)
	}
	return ctx.Err()
}

// extrapolate says how long all n would have taken at the rate of the done
// ones so far.
func extrapolate(done, n int, seconds float64) string {
	if done <= 0 || seconds <= 0 {
		return ""
	}
	rate := float64(done) / seconds
	return fmt.Sprintf(" (%.1f/s; all %d would take about %.0f s at that rate)", rate, n, float64(n)/rate)
}

// bareScaleResult is the bare chain's counterpart of the scale phase: how
// much of the worker's memory per waiting workflow Temporal's SDK itself takes.
type bareScaleResult struct {
	Workflows           int     `json:"workflows"`
	AllWaitingSeconds   float64 `json:"allWaitingSeconds"`
	WorkerRSSWaitingMiB float64 `json:"workerRssWaitingMiB"`
	WorkerRSSBeforeMiB  float64 `json:"workerRssBeforeMiB"`
	DrainSeconds        float64 `json:"drainSeconds"`
}

// measureBareScale starts n bare chains, waits until every one waits for
// its signal, samples the bare-chain worker, then signals them all and
// waits for them to finish.
func measureBareScale(ctx context.Context, st *stack, wl workload, n, parallel int) (bareScaleResult, error) {
	r := bareScaleResult{Workflows: n}
	before, err := sampleProc(st.bare.pid())
	if err != nil {
		return r, err
	}
	r.WorkerRSSBeforeMiB = mib(before.RSS)
	t0 := time.Now()
	runs := make([]string, n)
	if err := forEach(ctx, n, parallel, func(ctx context.Context, k int) error {
		run, err := wl.start(ctx, k)
		if err != nil {
			return err
		}
		runs[k] = run.GetID()
		return untilIdle(ctx, st, runs[k])
	}); err != nil {
		return r, fmt.Errorf("bare scale: %w", err)
	}
	r.AllWaitingSeconds = time.Since(t0).Seconds()
	waiting, err := sampleProc(st.bare.pid())
	if err != nil {
		return r, err
	}
	r.WorkerRSSWaitingMiB = mib(waiting.RSS)
	progress("bare scale: %d waiting after %.1f s, bare worker RSS %.0f MiB", n, r.AllWaitingSeconds, r.WorkerRSSWaitingMiB)
	t1 := time.Now()
	if err := forEach(ctx, n, parallel, func(ctx context.Context, k int) error {
		if err := wl.consent(ctx, k, runs[k]); err != nil {
			return err
		}
		return st.plain.GetWorkflow(ctx, runs[k], "").Get(ctx, nil)
	}); err != nil {
		return r, fmt.Errorf("bare scale: %w", err)
	}
	r.DrainSeconds = time.Since(t1).Seconds()
	return r, nil
}
