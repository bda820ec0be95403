package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// phaseResult is what one phase of n workflows measured.
type phaseResult struct {
	Name      string `json:"name"`
	Workflows int    `json:"workflows"`
	// WallSeconds runs from the first workflow's first event to the last one's close (server clock).
	WallSeconds float64 `json:"wallSeconds"`
	PerSecond   float64 `json:"completedPerSecond"`
	P50Seconds  float64 `json:"p50Seconds"`
	P95Seconds  float64 `json:"p95Seconds"`
	Events      float64 `json:"historyEventsPerWorkflow"`
	EventsMin   int     `json:"historyEventsMin"`
	EventsMax   int     `json:"historyEventsMax"`
	// ChildEvents is the mean number of events of the child workflows a run
	// started, counted right after the phase (a child may run on for months).
	ChildEvents float64 `json:"childHistoryEventsPerWorkflow"`
	// Actions are the Temporal Cloud actions its own history records, per
	// workflow; Kinds their breakdown (totals over the phase's workflows).
	Actions float64     `json:"historyActionsPerWorkflow"`
	Kinds   actionCount `json:"historyActionKinds"`
	// ChildActions: the actions of its children's histories so far.
	ChildActions float64 `json:"childActionsPerWorkflow"`
	// Queries the driver sent per workflow (each an action, in no history).
	Queries float64 `json:"queriesPerWorkflow"`
	// ActionsTotal = Actions + ChildActions + Queries.
	ActionsTotal  float64 `json:"actionsPerWorkflow"`
	Activities    float64 `json:"activitiesPerWorkflow"`
	LocalActs     float64 `json:"localActivitiesPerWorkflow"`
	WorkerCPUMs   float64 `json:"workerCpuMsPerWorkflow"`
	ServerCPUMs   float64 `json:"serverCpuMsPerWorkflow"`
	EmulatorCPUMs float64 `json:"emulatorCpuMsPerWorkflow"`
	DriverCPUMs   float64 `json:"driverCpuMsPerWorkflow"`
	// EmulatorShare is the emulator's part of the CPU the worker, server and emulator used together.
	EmulatorShare float64 `json:"emulatorCpuShare"`
	// DriverShare is the benchmark driver's part of all the CPU measured
	// (worker, server, emulator and driver).
	DriverShare float64 `json:"driverCpuShare"`
	// EmulatorCores is the emulator's CPU time over the phase's wall time (1 = one core busy).
	EmulatorCores float64 `json:"emulatorCores"`
	WorkerPeakMiB float64 `json:"workerPeakRssMiB"`
	ServerPeakMiB float64 `json:"serverPeakRssMiB"`
}

func summarize(name string, outs []outcome, bench time.Duration, u map[string]usage, workerName string) phaseResult {
	n := len(outs)
	r := phaseResult{Name: name, Workflows: n}
	first, last := outs[0].Start, outs[0].End
	lat := make([]float64, 0, n)
	events := make([]int, 0, n)
	acts, local := 0, 0
	for _, o := range outs {
		local += o.LocalActivities
		first, last = minTime(first, o.Start), maxTime(last, o.End)
		lat = append(lat, o.End.Sub(o.Start).Seconds())
		events = append(events, o.Events)
		acts += o.Activities
		r.Kinds = r.Kinds.plus(o.Actions)
	}
	r.Actions = float64(r.Kinds.Total) / float64(n)
	r.WallSeconds = last.Sub(first).Seconds()
	if r.WallSeconds > 0 {
		r.PerSecond = float64(n) / r.WallSeconds
	}
	r.P50Seconds, r.P95Seconds = percentile(lat, 50), percentile(lat, 95)
	r.Events, r.EventsMin, r.EventsMax = mean(events), slices.Min(events), slices.Max(events)
	r.Activities = float64(acts) / float64(n)
	r.LocalActs = float64(local) / float64(n)
	perWF := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(n) }
	w, s, e := u[workerName], u["server"], u["emulator"]
	r.WorkerCPUMs, r.ServerCPUMs, r.EmulatorCPUMs, r.DriverCPUMs = perWF(w.CPU), perWF(s.CPU), perWF(e.CPU), perWF(u["driver"].CPU)
	if total := w.CPU + s.CPU + e.CPU; total > 0 {
		r.EmulatorShare = e.CPU.Seconds() / total.Seconds()
	}
	if total := w.CPU + s.CPU + e.CPU + u["driver"].CPU; total > 0 {
		r.DriverShare = u["driver"].CPU.Seconds() / total.Seconds()
	}
	r.EmulatorCores = e.CPU.Seconds() / bench.Seconds()
	r.WorkerPeakMiB, r.ServerPeakMiB = mib(w.HWM), mib(s.HWM)
	return r
}

func perWF(total int, r phaseResult) float64 {
	if r.Workflows == 0 {
		return 0
	}
	return float64(total) / float64(r.Workflows)
}

// percentile is the nearest-rank p-th percentile of xs (which it sorts).
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	rank := int(math.Ceil(p / 100 * float64(len(xs))))
	return xs[max(rank, 1)-1]
}

func mean(xs []int) float64 {
	sum := 0
	for _, x := range xs {
		sum += x
	}
	return float64(sum) / float64(len(xs))
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// target is one goal of the README's "Performance" section (issue 16),
// reported and never asserted.
type target struct {
	Name     string  `json:"name"`
	Goal     string  `json:"goal"`
	Measured float64 `json:"measured"`
	Met      bool    `json:"met"`
}

type report struct {
	Date          string      `json:"date"`
	Machine       string      `json:"machine"`
	Storage       string      `json:"storage"`
	Options       string      `json:"options"`
	Shape         bareInput   `json:"bareChain"`
	Baseline      phaseResult `json:"baseline"`
	Product       phaseResult `json:"product"`
	BaselineAfter phaseResult `json:"baselineAfter"`
	// SignalWithStart is the bare chain with its signal sent by its start.
	SignalWithStart *phaseResult     `json:"signalWithStart,omitempty"`
	Follow          *followResult    `json:"follow,omitempty"`
	Scale           *scaleResult     `json:"scale,omitempty"`
	BareScale       *bareScaleResult `json:"bareScale,omitempty"`
	Ratio           float64          `json:"throughputRatio"`
	EventsRatio     float64          `json:"historyEventsRatio"`
	Targets         []target         `json:"targets"`
	TotalSeconds    float64          `json:"totalSeconds"`
	// Profiles are the worker's pprof files and their `go tool pprof -top` text, under the output directory.
	Profiles []string `json:"profiles,omitempty"`
}

func newReport(o options, storage string) *report {
	host, _ := os.Hostname()
	return &report{
		Date:    time.Now().UTC().Format(time.RFC3339),
		Machine: fmt.Sprintf("%s, %d CPUs, %s/%s, %s", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version()),
		Storage: storage,
		Options: fmt.Sprintf("-n %d -scale %d -warmup %d -parallel %d -sticky-cache %d", o.n, o.scale, o.warmup, o.parallel, o.stickyCache),
	}
}

func (r *report) finish() {
	bp, pp, ap := r.Baseline, r.Product, r.BaselineAfter
	ratio := func(prod, base, after float64) float64 {
		if m := (base + after) / 2; m > 0 {
			return prod / m
		}
		return 0
	}
	// Against the mean of the two baseline runs around the product run.
	r.Ratio = ratio(pp.PerSecond, bp.PerSecond, ap.PerSecond)
	r.EventsRatio = ratio(pp.Events+pp.ChildEvents, bp.Events+bp.ChildEvents, ap.Events+ap.ChildEvents)
	p95 := ratio(pp.P95Seconds, bp.P95Seconds, ap.P95Seconds)
	actions := ratio(pp.ActionsTotal, bp.ActionsTotal, ap.ActionsTotal)
	r.Targets = nil
	if bp.Workflows > 0 {
		r.Targets = append(r.Targets,
			target{Name: "throughput ratio product/baseline", Goal: ">= 0.90", Measured: r.Ratio, Met: r.Ratio >= 0.9},
			target{Name: "p95 start-to-finish product/baseline", Goal: "<= 1.30", Measured: p95, Met: p95 > 0 && p95 <= 1.3},
			target{Name: "history events product/baseline (child workflows included)", Goal: "<= 1.10", Measured: r.EventsRatio, Met: r.EventsRatio <= 1.1},
			target{Name: "Temporal Cloud actions product/baseline (children and queries included)", Goal: "<= 1.15", Measured: actions, Met: actions <= 1.15},
			target{Name: "benchmark driver share of the CPU measured (product phase)", Goal: "< 0.05", Measured: pp.DriverShare, Met: pp.DriverShare < 0.05},
		)
	}
	if f := r.Follow; f != nil {
		r.Targets = append(r.Targets, target{Name: "queries per hour of `start --wait` on a waiting onboarding (default re-check)", Goal: "<= 60",
			Measured: f.QueriesPerHour, Met: f.QueriesPerHour <= 60})
	}
	if s := r.Scale; s != nil {
		r.Targets = append(r.Targets,
			target{Name: fmt.Sprintf("scale: onboardings drained of %d", s.Onboardings), Goal: fmt.Sprintf("= %d", s.Onboardings),
				Measured: float64(s.Completed), Met: s.Completed == s.Onboardings},
			target{Name: fmt.Sprintf("worker RSS with %d onboardings waiting (MiB)", s.Waiting), Goal: "< 250",
				Measured: s.WorkerRSSWaitingMiB, Met: s.Waiting == s.Onboardings && s.WorkerRSSWaitingMiB < 250},
		)
		if pp.ServerCPUMs > 0 && s.Completed > 0 {
			x := s.ServerCPUMs / pp.ServerCPUMs
			r.Targets = append(r.Targets, target{Name: "server CPU per onboarding, scale phase / product phase", Goal: "<= 1.30", Measured: x, Met: x <= 1.3})
		}
	}
}

// write prints the Markdown table to w, ending with the ratio line, and
// stores it and the JSON form under dir.
func (r *report) write(w io.Writer, dir string) error {
	md := r.markdown()
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.md"), []byte(md), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\nreport: %s, %s\nthroughput ratio product/baseline: %.2f\n",
		md, filepath.Join(dir, "bench.md"), filepath.Join(dir, "bench.json"), r.Ratio)
	return err
}

func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mktos2s bench, %s; %s; %s; `%s`; %.0f s in all.\n\n",
		r.Date, r.Machine, r.Storage, r.Options, r.TotalSeconds)
	fmt.Fprintf(&b, "Bare chain: %d no-op activities, the consent signal after %d (as counted in an Onboarding history).\n\n",
		r.Shape.Before+r.Shape.After, r.Shape.Before)
	bp, pp, ap := r.Baseline, r.Product, r.BaselineAfter
	sws := phaseResult{}
	if r.SignalWithStart != nil {
		sws = *r.SignalWithStart
	}
	b.WriteString("| | baseline (bare chain) | product (Onboarding) | baseline again | bare chain, signal-with-start | product / mean baseline | product / signal-with-start |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range []struct {
		name, format           string
		base, prod, after, sws float64
	}{
		{"workflows (all started at once)", "%.0f", float64(bp.Workflows), float64(pp.Workflows), float64(ap.Workflows), float64(sws.Workflows)},
		{"completed per second", "%.2f", bp.PerSecond, pp.PerSecond, ap.PerSecond, sws.PerSecond},
		{"p50 start-to-finish (s)", "%.2f", bp.P50Seconds, pp.P50Seconds, ap.P50Seconds, sws.P50Seconds},
		{"p95 start-to-finish (s)", "%.2f", bp.P95Seconds, pp.P95Seconds, ap.P95Seconds, sws.P95Seconds},
		{"history events per workflow", "%.1f", bp.Events, pp.Events, ap.Events, sws.Events},
		{"events of its child workflows so far", "%.1f", bp.ChildEvents, pp.ChildEvents, ap.ChildEvents, sws.ChildEvents},
		{"history events, children included", "%.1f", bp.Events + bp.ChildEvents, pp.Events + pp.ChildEvents, ap.Events + ap.ChildEvents, sws.Events + sws.ChildEvents},
		{"Temporal Cloud actions per workflow (history + children + queries)", "%.1f", bp.ActionsTotal, pp.ActionsTotal, ap.ActionsTotal, sws.ActionsTotal},
		{"… in its history", "%.1f", bp.Actions, pp.Actions, ap.Actions, sws.Actions},
		{"… search-attribute upserts", "%.1f", perWF(bp.Kinds.Upserts, bp), perWF(pp.Kinds.Upserts, pp), perWF(ap.Kinds.Upserts, ap), perWF(sws.Kinds.Upserts, sws)},
		{"… timers", "%.1f", perWF(bp.Kinds.Timers, bp), perWF(pp.Kinds.Timers, pp), perWF(ap.Kinds.Timers, ap), perWF(sws.Kinds.Timers, sws)},
		{"… workflow tasks with markers", "%.1f", perWF(bp.Kinds.Markers, bp), perWF(pp.Kinds.Markers, pp), perWF(ap.Kinds.Markers, ap), perWF(sws.Kinds.Markers, sws)},
		{"… in its children's histories", "%.1f", bp.ChildActions, pp.ChildActions, ap.ChildActions, sws.ChildActions},
		{"… queries the driver sent", "%.1f", bp.Queries, pp.Queries, ap.Queries, sws.Queries},
		{"steps per workflow (activities and local activities)", "%.1f", bp.Activities, pp.Activities, ap.Activities, sws.Activities},
		{"… run as local activities", "%.1f", bp.LocalActs, pp.LocalActs, ap.LocalActs, sws.LocalActs},
		{"worker CPU ms per workflow", "%.1f", bp.WorkerCPUMs, pp.WorkerCPUMs, ap.WorkerCPUMs, sws.WorkerCPUMs},
		{"server CPU ms per workflow", "%.1f", bp.ServerCPUMs, pp.ServerCPUMs, ap.ServerCPUMs, sws.ServerCPUMs},
		{"emulator CPU ms per workflow", "%.1f", bp.EmulatorCPUMs, pp.EmulatorCPUMs, ap.EmulatorCPUMs, sws.EmulatorCPUMs},
		{"benchmark driver CPU ms per workflow", "%.1f", bp.DriverCPUMs, pp.DriverCPUMs, ap.DriverCPUMs, sws.DriverCPUMs},
		{"benchmark driver share of all CPU measured", "%.3f", bp.DriverShare, pp.DriverShare, ap.DriverShare, sws.DriverShare},
		{"emulator share of worker+server+emulator CPU", "%.2f", bp.EmulatorShare, pp.EmulatorShare, ap.EmulatorShare, sws.EmulatorShare},
		{"emulator cores busy", "%.2f", bp.EmulatorCores, pp.EmulatorCores, ap.EmulatorCores, sws.EmulatorCores},
		{"worker peak RSS (MiB)", "%.0f", bp.WorkerPeakMiB, pp.WorkerPeakMiB, ap.WorkerPeakMiB, sws.WorkerPeakMiB},
		{"server peak RSS (MiB)", "%.0f", bp.ServerPeakMiB, pp.ServerPeakMiB, ap.ServerPeakMiB, sws.ServerPeakMiB},
	} {
		ratio, vsSWS := "–", "–"
		// The bare chain has no emulator: its few idle milliseconds are no yardstick.
		if !strings.HasPrefix(row.name, "emulator") {
			if base := (row.base + row.after) / 2; base > 0 {
				ratio = fmt.Sprintf("%.2f", row.prod/base)
			}
			if row.sws > 0 {
				vsSWS = fmt.Sprintf("%.2f", row.prod/row.sws)
			}
		}
		fmt.Fprintf(&b, "| %s | "+row.format+" | "+row.format+" | "+row.format+" | "+row.format+" | %s | %s |\n",
			row.name, row.base, row.prod, row.after, row.sws, ratio, vsSWS)
	}
	if f := r.Follow; f != nil {
		b.WriteString("\n" + f.markdown())
	}
	if s := r.Scale; s != nil {
		fmt.Fprintf(&b, "\nScale: %d onboardings started and left waiting for consent, then consented, signalled and drained; at most %d at once between start and wait, and between signal and completion.\n\n", s.Onboardings, s.Window)
		b.WriteString("| scale | value |\n|---|---:|\n")
		type scaleRow struct {
			name, format string
			v            float64
		}
		rows := []scaleRow{
			{"time until the last start (s)", "%.1f", s.StartSeconds},
			{"time until all wait for consent (s)", "%.1f", s.AllWaitingSeconds},
			{"waiting at the consent point", "%.0f", float64(s.Waiting)},
			{"worker RSS while they wait (MiB)", "%.0f", s.WorkerRSSWaitingMiB},
			{"server RSS while they wait (MiB)", "%.0f", s.ServerRSSWaitingMiB},
			{"worker peak RSS during the phase (MiB)", "%.0f", s.WorkerPeakMiB},
			{"server peak RSS during the phase (MiB)", "%.0f", s.ServerPeakMiB},
		}
		if s.Completed > 0 || s.DrainSeconds > 0 {
			rows = append(rows, []scaleRow{
				{"drain: first consent to the last completed (s)", "%.1f", s.DrainSeconds},
				{"completed", "%.0f", float64(s.Completed)},
				{"completed per second in the drain", "%.2f", float64(s.Completed) / max(s.DrainSeconds, 0.001)},
				{"worker CPU ms per onboarding (to the wait + drain)", "%.1f", s.WorkerCPUMs},
				{"server CPU ms per onboarding (to the wait + drain)", "%.1f", s.ServerCPUMs},
				{"server CPU ms per onboarding, product phase", "%.1f", r.Product.ServerCPUMs},
				{"worker CPU ms per onboarding (drain only)", "%.1f", s.DrainWorkerCPUMs},
				{"server CPU ms per onboarding (drain only)", "%.1f", s.DrainServerCPUMs},
				{"emulator share of worker+server+emulator CPU", "%.2f", s.EmulatorShare},
				{"benchmark driver share of all CPU measured", "%.3f", s.DriverShare},
			}...)
		}
		for _, row := range rows {
			fmt.Fprintf(&b, "| %s | "+row.format+" |\n", row.name, row.v)
		}
		if s.Note != "" {
			fmt.Fprintf(&b, "\nNote: %s\n", s.Note)
		}
	}
	if bs := r.BareScale; bs != nil {
		fmt.Fprintf(&b, "\nBare chains at scale: %d waiting for their signal after %.1f s; bare-chain worker RSS %.0f MiB (%.0f MiB before); all finished %.1f s after the signals began.\n",
			bs.Workflows, bs.AllWaitingSeconds, bs.WorkerRSSWaitingMiB, bs.WorkerRSSBeforeMiB, bs.DrainSeconds)
	}
	if len(r.Profiles) > 0 {
		fmt.Fprintf(&b, "\nWorker profiles (`go tool pprof -top`): %s\n", strings.Join(r.Profiles, ", "))
	}
	b.WriteString("\n| target | goal | measured | met |\n|---|---|---:|---|\n")
	for _, t := range r.Targets {
		met := "yes"
		if !t.Met {
			met = "**no**"
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f | %s |\n", t.Name, t.Goal, t.Measured, met)
	}
	return b.String()
}
