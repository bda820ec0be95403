package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/mktos2s/mktos2s/workflows"
)

// scaleResult is the scale phase: many onboardings waiting at once.
type scaleResult struct {
	Onboardings         int     `json:"onboardings"`
	StartSeconds        float64 `json:"startSeconds"`
	AllWaitingSeconds   float64 `json:"allWaitingSeconds"`
	Waiting             int     `json:"waiting"`
	WorkerRSSWaitingMiB float64 `json:"workerRssWaitingMiB"`
	ServerRSSWaitingMiB float64 `json:"serverRssWaitingMiB"`
	Consented           int     `json:"consented"`
	ConsentSeconds      float64 `json:"consentSeconds"`
	Signalled           int     `json:"signalled"`
	SignalSeconds       float64 `json:"signalSeconds"`
	DrainSeconds        float64 `json:"drainSeconds"`
	Completed           int     `json:"completed"`
	WorkerPeakMiB       float64 `json:"workerPeakRssMiB"`
	ServerPeakMiB       float64 `json:"serverPeakRssMiB"`
	WorkerCPUMs         float64 `json:"workerCpuMsPerOnboarding"`
	ServerCPUMs         float64 `json:"serverCpuMsPerOnboarding"`
	EmulatorShare       float64 `json:"emulatorCpuShare"`
	Note                string  `json:"note,omitempty"`
	// Profiles are the worker's heap profile while they wait, and its top.
	Profiles []string `json:"profiles,omitempty"`
}

// measureScale starts n onboardings (tenants first..first+n), waits until
// all wait for consent, measures memory, then consents and signals every one
// and measures how long they take to finish. At deadline it stops waiting
// and reports what it has. Progress comes from visibility counts, not from
// one long poll per workflow, which would itself hold server memory.
func measureScale(ctx context.Context, st *stack, first, n, parallel int, deadline time.Time) (scaleResult, error) {
	r := scaleResult{Onboardings: n}
	st.resetPeaks()
	before, err := st.sample()
	if err != nil {
		return r, err
	}
	from := time.Now().UTC().Add(-time.Second).Format(time.RFC3339Nano)
	base := fmt.Sprintf("WorkflowType = '%s' AND StartTime >= '%s'", workflows.WorkflowType, from)

	t0 := time.Now()
	ids := make([]string, n)
	if err := forEach(ctx, n, parallel, func(ctx context.Context, k int) error {
		run, err := startOnboarding(ctx, st, first+k)
		if err == nil {
			ids[k] = run.GetID()
		}
		return err
	}); err != nil {
		return r, fmt.Errorf("scale: start: %w", err)
	}
	r.StartSeconds = time.Since(t0).Seconds()
	progress("scale: %d started in %.1f s", n, r.StartSeconds)

	waitingQ := base + fmt.Sprintf(" AND ExecutionStatus = 'Running' AND %s = '%s'", workflows.SearchOnboardingStep.GetName(), workflows.StepAwaitingAdminConsent)
	r.Waiting, err = countUntil(ctx, st, waitingQ, n, deadline)
	if err != nil {
		return r, err
	}
	r.AllWaitingSeconds = time.Since(t0).Seconds()
	if r.Waiting < n {
		r.Note = fmt.Sprintf("only %d of %d reached the consent point before the deadline (%.0f s after the first start)%s; none was drained",
			r.Waiting, n, r.AllWaitingSeconds, extrapolate(r.Waiting, n, r.AllWaitingSeconds))
		progress("scale: %s", r.Note)
	} else {
		progress("scale: all %d wait for consent, %.1f s after the first start", n, r.AllWaitingSeconds)
	}
	if r.Waiting == n {
		// Let the last initial consent checks finish so the sample is of a quiet, waiting system.
		if err := forEach(ctx, n, parallel, func(ctx context.Context, k int) error { return untilIdle(ctx, st, ids[k]) }); err != nil {
			return r, fmt.Errorf("scale: %w", err)
		}
	}
	waiting, err := st.sample()
	if err != nil {
		return r, err
	}
	r.Profiles = st.profileHeap(ctx, "worker-scale-waiting")
	r.WorkerRSSWaitingMiB, r.ServerRSSWaitingMiB = mib(waiting["worker"].RSS), mib(waiting["server"].RSS)
	r.WorkerPeakMiB, r.ServerPeakMiB = mib(waiting["worker"].HWM), mib(waiting["server"].HWM)
	if r.Waiting < n {
		return r, nil
	}

	// Consent first, while the onboardings only wait: the consent URL from
	// the progress query (as `starter status` shows it) and the emulator's
	// consent page. A query is a workflow task: asked while thousands of
	// signalled runs keep the worker busy, queries time out.
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	consented := make([]bool, n)
	var nConsented, nSignalled atomic.Int64
	t1 := time.Now()
	err = forEach(dctx, n, parallel, func(ctx context.Context, k int) error {
		p, err := progressOf(ctx, st.product, ids[k])
		if err != nil {
			return err
		}
		if err := st.consent.grant(ctx, p.ConsentURL); err != nil {
			return err
		}
		consented[k] = true
		nConsented.Add(1)
		return nil
	})
	r.Consented, r.ConsentSeconds = int(nConsented.Load()), time.Since(t1).Seconds()
	if err != nil && dctx.Err() == nil {
		return r, fmt.Errorf("scale: consent: %w", err)
	}
	progress("scale: %d consented on the emulator in %.1f s; signalling", r.Consented, r.ConsentSeconds)
	t2 := time.Now()
	err = forEach(dctx, n, parallel, func(ctx context.Context, k int) error {
		if !consented[k] {
			return nil
		}
		if err := st.product.SignalWorkflow(ctx, ids[k], "", workflows.SignalAdminConsent, workflows.ConsentSignal{Granted: true, By: "bench"}); err != nil {
			return err
		}
		nSignalled.Add(1)
		return nil
	})
	r.Signalled, r.SignalSeconds = int(nSignalled.Load()), time.Since(t2).Seconds()
	if err != nil && dctx.Err() == nil {
		return r, fmt.Errorf("scale: signal: %w", err)
	}
	progress("scale: %d signalled in %.1f s", r.Signalled, r.SignalSeconds)
	if r.Completed, err = countUntil(ctx, st, base+" AND ExecutionStatus = 'Completed'", n, deadline); err != nil {
		return r, err
	}
	r.DrainSeconds = time.Since(t2).Seconds()
	if r.Completed < n {
		r.Note = fmt.Sprintf("the drain stopped at the deadline: %d of %d signalled, %d completed %.0f s after the first signal%s",
			r.Signalled, n, r.Completed, r.DrainSeconds, extrapolate(r.Completed, n, r.DrainSeconds))
	}
	progress("scale: %d completed %.1f s after the first signal", r.Completed, r.DrainSeconds)

	after, err := st.sample()
	if err != nil {
		return r, err
	}
	w, s, e := since(before["worker"], after["worker"]), since(before["server"], after["server"]), since(before["emulator"], after["emulator"])
	r.WorkerPeakMiB, r.ServerPeakMiB = mib(w.HWM), mib(s.HWM)
	r.WorkerCPUMs = float64(w.CPU.Milliseconds()) / float64(max(r.Completed, 1))
	r.ServerCPUMs = float64(s.CPU.Milliseconds()) / float64(max(r.Completed, 1))
	if total := w.CPU + s.CPU + e.CPU; total > 0 {
		r.EmulatorShare = e.CPU.Seconds() / total.Seconds()
	}
	return r, nil
}

// countUntil polls a visibility count until it reaches want or the
// deadline passes, and returns the last count.
func countUntil(ctx context.Context, st *stack, query string, want int, deadline time.Time) (int, error) {
	var told time.Time
	for {
		resp, err := st.plain.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: st.dev.Namespace, Query: query})
		if err != nil {
			return 0, fmt.Errorf("scale: count %q: %w", query, err)
		}
		got := int(resp.GetCount())
		if got >= want || time.Now().After(deadline) {
			return got, nil
		}
		if time.Since(told) > 30*time.Second {
			progress("scale: %d of %d", got, want)
			told = time.Now()
		}
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// untilIdle waits until the run has no pending workflow task or activity:
// the initial consent check done, only the signal and the re-check timer left.
func untilIdle(ctx context.Context, st *stack, id string) error {
	for range 600 {
		d, err := st.plain.WorkflowService().DescribeWorkflowExecution(ctx, &workflowservice.DescribeWorkflowExecutionRequest{
			Namespace: st.dev.Namespace, Execution: &commonpb.WorkflowExecution{WorkflowId: id},
		})
		if err != nil {
			return fmt.Errorf("describe %s: %w", id, err)
		}
		if d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return fmt.Errorf("%s is %s while waiting for consent", id, d.GetWorkflowExecutionInfo().GetStatus())
		}
		if len(d.GetPendingActivities()) == 0 && d.GetPendingWorkflowTask() == nil {
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
