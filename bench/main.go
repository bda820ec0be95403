// Command bench measures, in one run on one machine, what one Temporal dev
// server and one mktos2s worker carry: a bare Temporal chain of no-op
// activities with one signal (the yardstick), the same number of Onboarding
// runs against the local emulator, and many onboardings left waiting for
// consent and then drained. Absolute numbers on shared machines are noisy;
// the ratios side by side are what count. `make bench` runs it; see the
// README's "Performance" section.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/mktos2s/mktos2s/internal/config"
	"github.com/mktos2s/mktos2s/workflows"
)

type options struct {
	n        int
	scale    int
	warmup   int
	parallel int
	out      string
	dbFile   string
	// serverConfig are more of the dev server's dynamic config values.
	serverConfig []string
	temporal     string
	timeout      time.Duration
	bareScale    bool
	// stickyCache is the product worker's worker.stickyCacheSize.
	stickyCache int
	// scaleOnly skips the baselines and the follow measurement: the
	// product phase (the reference for the drain's CPU) and the scale phase.
	scaleOnly bool
	// scaleWindow bounds the onboardings between start and wait, and
	// between signal and close, in the scale phase.
	scaleWindow int
	// follow is how long `starter start --wait` is watched on a waiting
	// onboarding (0 = not measured).
	follow time.Duration
	// stack: run against an already running Temporal (make stack, the
	// production-shaped one) instead of a dev server.
	stack          bool
	stackAddress   string
	stackNamespace string
	stackProcs     string
	stackMatch     string
	stackMetrics   string
}

func main() {
	var o options
	var role, addr, data, address, namespace string
	var from, tenants int
	flag.IntVar(&o.n, "n", 200, "workflows in the baseline and in the product phase")
	flag.IntVar(&o.scale, "scale", 0, "onboardings started and left waiting in the scale phase, then drained (0 = skip; make bench-scale runs 10000)")
	flag.BoolVar(&o.scaleOnly, "scale-only", false, "run only the warm-up, the product phase (the reference) and the scale phase")
	flag.IntVar(&o.scaleWindow, "scale-window", 200, "scale phase: at most this many onboardings between start and the consent wait, and between signal and completion (consents arrive over time; keep it below -sticky-cache)")
	flag.BoolVar(&o.stack, "stack", false, "run against the running production-shaped stack (make stack: Temporal cluster on PostgreSQL) instead of a dev server")
	flag.StringVar(&o.stackAddress, "stack-address", "127.0.0.1:7233", "with -stack: the Temporal frontend")
	flag.StringVar(&o.stackNamespace, "stack-namespace", "mktos2s-bench", "with -stack: the namespace, registered with the search attributes if missing (not the stack's own: its workers poll the same task queue there)")
	flag.StringVar(&o.stackProcs, "stack-procs", "temporal-server,server,postgres", "with -stack: process names (/proc/<pid>/comm) measured together as the server")
	flag.StringVar(&o.stackMatch, "stack-match", "", "with -stack: measure only those processes whose command line, or their parent's, contains this (e.g. the stack's data directory), so that another stack on the machine is left out")
	flag.StringVar(&o.stackMetrics, "stack-metrics", "", "with -stack: the server's Prometheus endpoint, for the follow phase's query count (empty = no follow phase)")
	flag.DurationVar(&o.follow, "follow", 70*time.Second, "watch `starter start --wait` on a waiting onboarding this long and count its queries (0 = skip)")
	flag.IntVar(&o.warmup, "warmup", 3, "onboardings and bare chains run first, not measured (the first onboarding's history sets the bare chain's shape)")
	flag.IntVar(&o.parallel, "parallel", 32, "start and signal calls in flight at once")
	flag.StringVar(&o.out, "out", "bench/out", "directory for the report, logs and the worker binary")
	flag.StringVar(&o.dbFile, "db", "", "SQLite file for the dev server (WAL); empty = in memory")
	flag.Func("server-config", "a dynamic config value of the dev server, key=value (repeatable; e.g. system.enableActivityEagerExecution=true)", func(v string) error {
		o.serverConfig = append(o.serverConfig, v)
		return nil
	})
	flag.StringVar(&o.temporal, "temporal", "", "Temporal CLI binary; empty = $MKTOS2S_TEMPORAL_BIN or bin/temporal")
	flag.BoolVar(&o.bareScale, "scale-bare", false, "before the scale phase, leave -scale bare chains waiting too, to compare the workers' memory")
	flag.IntVar(&o.stickyCache, "sticky-cache", config.DefaultStickyCacheSize, "the product worker's worker.stickyCacheSize (workflows kept in memory; the SDK's default is 10000)")
	flag.DurationVar(&o.timeout, "timeout", 13*time.Minute, "the whole run (make bench must end within 15 minutes, make bench-scale within 45); the scale phase stops waiting in time to report")
	// Internal: the benchmark runs its emulator and bare-chain worker as
	// subprocesses of its own binary, to measure their CPU apart.
	flag.StringVar(&role, "role", "", "internal: emulator | baseline-worker")
	flag.StringVar(&addr, "addr", "", "internal (emulator): listen address")
	flag.StringVar(&data, "data", "", "internal (emulator): data directory")
	flag.IntVar(&from, "from", 0, "internal (emulator): first bench tenant to seed")
	flag.IntVar(&tenants, "tenants", 0, "internal (emulator): bench tenants to seed")
	flag.StringVar(&address, "address", "", "internal (baseline-worker): Temporal address")
	flag.StringVar(&namespace, "namespace", "default", "internal (baseline-worker): namespace")
	flag.Parse()

	var err error
	switch role {
	case "":
		err = run(o)
	case "emulator":
		err = runEmulatorRole(addr, data, from, tenants)
	case "baseline-worker":
		err = runBaselineWorkerRole(address, namespace)
	default:
		err = fmt.Errorf("unknown -role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.n < 1 || o.warmup < 1 || o.parallel < 1 || o.scale < 0 || o.stickyCache < 0 || o.scaleWindow < 1 {
		return errors.New("-n, -warmup, -parallel and -scale-window must be at least 1, -scale and -sticky-cache at least 0")
	}
	began := time.Now()
	// Ctrl-C or SIGTERM ends the run cleanly: the deferred stop takes the
	// dev server, the emulator and the workers down with it.
	sctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sctx, o.timeout)
	defer cancel()
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	if !filepath.IsAbs(o.out) {
		o.out = filepath.Join(root, o.out)
	}
	// Tenants: [0, warmup) warm-up, then the product phase, one for the
	// follow measurement, then the scale phase.
	followTenant := o.warmup + o.n
	st, err := startStack(ctx, stackOptions{out: o.out, modRoot: root, tenants: o.warmup + o.n + 1, dbFile: o.dbFile, serverConfig: o.serverConfig, temporal: o.temporal, stickyCache: o.stickyCache,
		external: o.stack, address: o.stackAddress, namespace: o.stackNamespace, serverProcs: strings.Split(o.stackProcs, ","), serverMatch: o.stackMatch})
	if err != nil {
		return err
	}
	defer st.stop()

	if o.stack {
		st.metricsURL = o.stackMetrics
	}
	where := "Temporal dev server on " + storage(o.dbFile)
	if o.stack {
		where = fmt.Sprintf("the production-shaped stack at %s (processes %s measured as the server)", o.stackAddress, o.stackProcs)
	}
	rep := newReport(o, where)
	product := productWorkload(st)

	progress("warm-up: %d onboardings", o.warmup)
	warm := runAll(ctx, st.watch.WorkflowService(), st.namespace, product, 0, o.warmup, o.parallel)
	if err := firstError(warm); err != nil {
		return fmt.Errorf("warm-up onboardings: %w", err)
	}
	shape := bareInput{Before: warm[0].ActivitiesBeforeSignal, After: warm[0].Activities - warm[0].ActivitiesBeforeSignal}
	rep.Shape = shape
	progress("an Onboarding ran %d activities, %d before the consent signal: the bare chain does the same", warm[0].Activities, shape.Before)
	bare := bareWorkload(st, shape)
	if err := firstError(runAll(ctx, st.watch.WorkflowService(), st.namespace, bare, 0, o.warmup, o.parallel)); err != nil {
		return fmt.Errorf("warm-up bare chains: %w", err)
	}

	// The baseline runs before and after the product: on a shared machine
	// the load of others drifts, and the pair shows by how much.
	if !o.scaleOnly {
		progress("baseline: %d bare chains at once, driven as the onboardings are", o.n)
		if rep.Baseline, err = measurePhase(ctx, st, bare, o.warmup, o.n, o.parallel, "bare-worker"); err != nil {
			return err
		}
	}
	progress("product: %d onboardings at once", o.n)
	// The worker's CPU profile over the phase's busiest part (its first seconds, all started at once).
	prof := st.profileCPU(ctx, "worker-product", productProfileSeconds)
	if rep.Product, err = measurePhase(ctx, st, product, o.warmup, o.n, o.parallel, "worker"); err != nil {
		return err
	}
	rep.Profiles = append(rep.Profiles, prof.wait()...)
	if !o.scaleOnly {
		progress("baseline again: %d bare chains at once", o.n)
		if rep.BaselineAfter, err = measurePhase(ctx, st, bareWorkload(st, shape), o.warmup, o.n, o.parallel, "bare-worker"); err != nil {
			return err
		}
		progress("signal-with-start: %d bare chains at once, each signalled by its start (the physical limit)", o.n)
		sws, err := measurePhase(ctx, st, signalWithStartWorkload(st, shape), o.warmup, o.n, o.parallel, "bare-worker")
		if err != nil {
			return err
		}
		rep.SignalWithStart = &sws
	}
	if o.follow > 0 && !o.scaleOnly && st.metricsURL == "" {
		progress("follow: skipped, the server's metrics endpoint is not known (-stack-metrics)")
	} else if o.follow > 0 && !o.scaleOnly {
		progress("follow: `starter start --wait` on an onboarding waiting for consent, %s", o.follow)
		fr, err := measureFollow(ctx, st, followTenant, o.follow)
		if err != nil {
			return err
		}
		rep.Follow = &fr
	}
	if o.scale > 0 && o.bareScale {
		progress("bare scale: %d bare chains left waiting for their signal, then signalled", o.scale)
		bs, err := measureBareScale(ctx, st, bareWorkload(st, shape), o.scale, o.parallel)
		if err != nil {
			return err
		}
		rep.BareScale = &bs
	}
	if o.scale > 0 {
		progress("scale: %d onboardings left waiting for consent, then drained", o.scale)
		if err := st.switchEmulator(ctx, o.warmup+o.n+1, o.scale); err != nil {
			return err
		}
		sr, err := measureScale(ctx, st, o.warmup+o.n+1, o.scale, o.parallel, o.scaleWindow, began.Add(o.timeout-30*time.Second))
		if err != nil {
			// The report still says what the phase has.
			progress("scale: %v", err)
			sr.Note = strings.TrimPrefix(sr.Note+"; stopped: "+err.Error(), "; ")
		}
		rep.Scale = &sr
		rep.Profiles = append(rep.Profiles, sr.Profiles...)
	}
	rep.TotalSeconds = time.Since(began).Seconds()
	rep.finish()
	return rep.write(os.Stdout, o.out)
}

func productWorkload(st *stack) workload {
	queries := new(atomic.Int64)
	return workload{
		name: "onboarding",
		start: func(ctx context.Context, i int) (client.WorkflowRun, error) {
			return startOnboarding(ctx, st, i)
		},
		consent: func(ctx context.Context, _ int, id string) error {
			// A query refused or timed out under load is asked again (and
			// counted again: each is an action).
			return retry(ctx, func(ctx context.Context) error { return grantAndSignal(ctx, st.product, st.consent, queries, id) })
		},
		queries: queries,
	}
}

// startOnboarding starts onboarding i as `starter start` does.
func startOnboarding(ctx context.Context, st *stack, i int) (client.WorkflowRun, error) {
	tenant, host := benchTenant(i)
	// The org is served by the emulator, on its port.
	in := workflows.OnboardingInput{TenantID: tenant, OrgURL: "https://" + net.JoinHostPort(host, strconv.Itoa(st.emuPort))}.WithDefaults()
	return st.product.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       in.WorkflowID(),
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchTenantID.ValueSet(in.TenantID),
			workflows.SearchOrgHost.ValueSet(in.OrgHost()),
			workflows.SearchOnboardingStep.ValueSet(workflows.StepPreflight),
		),
	}, workflows.WorkflowType, in)
}

// bareWorkload drives the bare chain as the product is driven: the wait
// detected in its history, one progress query, then the signal.
func bareWorkload(st *stack, shape bareInput) workload {
	// Bare chain IDs carry the start time: a second phase must not collide with the first.
	prefix := fmt.Sprintf("bench-bare/%d/", time.Now().UnixNano())
	queries := new(atomic.Int64)
	return workload{
		name: "bare chain",
		start: func(ctx context.Context, i int) (client.WorkflowRun, error) {
			return st.plain.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
				ID: fmt.Sprintf("%s%d", prefix, i), TaskQueue: bareTaskQueue,
			}, bareWorkflowType, shape)
		},
		consent: func(ctx context.Context, _ int, id string) error {
			var v converter.EncodedValue
			if err := retry(ctx, func(ctx context.Context) (err error) {
				queries.Add(1)
				v, err = st.plain.QueryWorkflow(ctx, id, "", workflows.QueryProgress)
				return err
			}); err != nil {
				return fmt.Errorf("query progress: %w", err)
			}
			var p bareProgress
			if err := v.Get(&p); err != nil || !p.Waiting {
				return fmt.Errorf("bare chain not waiting (%+v, %v)", p, err)
			}
			return st.plain.SignalWorkflow(ctx, id, "", workflows.SignalAdminConsent, workflows.ConsentSignal{Granted: true, By: "bench"})
		},
		queries: queries,
	}
}

// signalWithStartWorkload is the physical limit: the signal travels with
// the start, so the driver detects nothing and only waits for the close.
func signalWithStartWorkload(st *stack, shape bareInput) workload {
	prefix := fmt.Sprintf("bench-sws/%d/", time.Now().UnixNano())
	return workload{
		name:            "bare chain, signal-with-start",
		signalWithStart: true,
		start: func(ctx context.Context, i int) (client.WorkflowRun, error) {
			return st.plain.SignalWithStartWorkflow(ctx, fmt.Sprintf("%s%d", prefix, i), workflows.SignalAdminConsent,
				workflows.ConsentSignal{Granted: true, By: "bench"},
				client.StartWorkflowOptions{TaskQueue: bareTaskQueue}, bareWorkflowType, shape)
		},
		queries: new(atomic.Int64),
	}
}

// measurePhase runs n workflows of wl at once and measures them and the
// processes around them.
func measurePhase(ctx context.Context, st *stack, wl workload, first, n, parallel int, workerName string) (phaseResult, error) {
	wl.queries.Store(0) // the warm-up's are not the phase's
	st.resetPeaks()
	before, err := st.sample()
	if err != nil {
		return phaseResult{}, err
	}
	t0 := time.Now()
	outs := runAll(ctx, st.watch.WorkflowService(), st.namespace, wl, first, n, parallel)
	wall := time.Since(t0)
	after, err := st.sample()
	if err != nil {
		return phaseResult{}, err
	}
	if err := firstError(outs); err != nil {
		return phaseResult{}, fmt.Errorf("%s phase: %w", wl.name, err)
	}
	u := map[string]usage{}
	for k := range after {
		u[k] = since(before[k], after[k])
	}
	r := summarize(wl.name, outs, wall, u, workerName)
	events, actions, err := childCost(ctx, st.plain.WorkflowService(), st.namespace, outs)
	if err != nil {
		return r, err
	}
	r.ChildEvents = float64(events) / float64(n)
	r.ChildActions = float64(actions.Total) / float64(n)
	r.Queries = float64(wl.queries.Load()) / float64(n)
	r.ActionsTotal = r.Actions + r.ChildActions + r.Queries
	return r, nil
}

// moduleRoot is the directory of go.mod, where ./worker is built from.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("bench: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("bench: run it inside the mktos2s module (make bench)")
	}
	return filepath.Dir(gomod), nil
}
