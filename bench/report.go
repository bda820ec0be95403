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
	ChildEvents   float64 `json:"childHistoryEventsPerWorkflow"`
	Activities    float64 `json:"activitiesPerWorkflow"`
	WorkerCPUMs   float64 `json:"workerCpuMsPerWorkflow"`
	ServerCPUMs   float64 `json:"serverCpuMsPerWorkflow"`
	EmulatorCPUMs float64 `json:"emulatorCpuMsPerWorkflow"`
	DriverCPUMs   float64 `json:"driverCpuMsPerWorkflow"`
	// EmulatorShare is the emulator's part of the CPU the worker, server and emulator used together.
	EmulatorShare float64 `json:"emulatorCpuShare"`
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
	acts := 0
	for _, o := range outs {
		first, last = minTime(first, o.Start), maxTime(last, o.End)
		lat = append(lat, o.End.Sub(o.Start).Seconds())
		events = append(events, o.Events)
		acts += o.Activities
	}
	r.WallSeconds = last.Sub(first).Seconds()
	if r.WallSeconds > 0 {
		r.PerSecond = float64(n) / r.WallSeconds
	}
	r.P50Seconds, r.P95Seconds = percentile(lat, 50), percentile(lat, 95)
	r.Events, r.EventsMin, r.EventsMax = mean(events), slices.Min(events), slices.Max(events)
	r.Activities = float64(acts) / float64(n)
	perWF := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(n) }
	w, s, e := u[workerName], u["server"], u["emulator"]
	r.WorkerCPUMs, r.ServerCPUMs, r.EmulatorCPUMs, r.DriverCPUMs = perWF(w.CPU), perWF(s.CPU), perWF(e.CPU), perWF(u["driver"].CPU)
	if total := w.CPU + s.CPU + e.CPU; total > 0 {
		r.EmulatorShare = e.CPU.Seconds() / total.Seconds()
	}
	r.EmulatorCores = e.CPU.Seconds() / bench.Seconds()
	r.WorkerPeakMiB, r.ServerPeakMiB = mib(w.HWM), mib(s.HWM)
	return r
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

// target is one goal of issue 6, reported and never asserted.
type target struct {
	Name     string  `json:"name"`
	Goal     string  `json:"goal"`
	Measured float64 `json:"measured"`
	Met      bool    `json:"met"`
}

type report struct {
	Date          string           `json:"date"`
	Machine       string           `json:"machine"`
	Storage       string           `json:"storage"`
	Options       string           `json:"options"`
	Shape         bareInput        `json:"bareChain"`
	Baseline      phaseResult      `json:"baseline"`
	Product       phaseResult      `json:"product"`
	BaselineAfter phaseResult      `json:"baselineAfter"`
	Scale         *scaleResult     `json:"scale,omitempty"`
	BareScale     *bareScaleResult `json:"bareScale,omitempty"`
	Ratio         float64          `json:"throughputRatio"`
	EventsRatio   float64          `json:"historyEventsRatio"`
	Targets       []target         `json:"targets"`
	TotalSeconds  float64          `json:"totalSeconds"`
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
	// Against the mean of the two baseline runs around the product run.
	if base := (r.Baseline.PerSecond + r.BaselineAfter.PerSecond) / 2; base > 0 {
		r.Ratio = r.Product.PerSecond / base
	}
	if base := (r.Baseline.Events + r.Baseline.ChildEvents + r.BaselineAfter.Events + r.BaselineAfter.ChildEvents) / 2; base > 0 {
		r.EventsRatio = (r.Product.Events + r.Product.ChildEvents) / base
	}
	r.Targets = []target{
		{Name: "throughput ratio product/baseline", Goal: ">= 0.80", Measured: r.Ratio, Met: r.Ratio >= 0.8},
		{Name: "history events product/baseline (child workflows included)", Goal: "<= 1.25", Measured: r.EventsRatio, Met: r.EventsRatio <= 1.25},
	}
	if s := r.Scale; s != nil {
		r.Targets = append(r.Targets, target{
			Name: fmt.Sprintf("worker RSS with %d onboardings waiting (MiB)", s.Waiting), Goal: "< 500",
			Measured: s.WorkerRSSWaitingMiB, Met: s.Waiting == s.Onboardings && s.WorkerRSSWaitingMiB < 500,
		})
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
	fmt.Fprintf(&b, "mktos2s bench, %s; %s; Temporal dev server on %s; `%s`; %.0f s in all.\n\n",
		r.Date, r.Machine, r.Storage, r.Options, r.TotalSeconds)
	fmt.Fprintf(&b, "Bare chain: %d no-op activities, the consent signal after %d (as counted in an Onboarding history).\n\n",
		r.Shape.Before+r.Shape.After, r.Shape.Before)
	b.WriteString("| | baseline (bare chain) | product (Onboarding) | baseline again | product / mean baseline |\n|---|---:|---:|---:|---:|\n")
	bp, pp, ap := r.Baseline, r.Product, r.BaselineAfter
	for _, row := range []struct {
		name, format      string
		base, prod, after float64
	}{
		{"workflows (all started at once)", "%.0f", float64(bp.Workflows), float64(pp.Workflows), float64(ap.Workflows)},
		{"completed per second", "%.2f", bp.PerSecond, pp.PerSecond, ap.PerSecond},
		{"p50 start-to-finish (s)", "%.2f", bp.P50Seconds, pp.P50Seconds, ap.P50Seconds},
		{"p95 start-to-finish (s)", "%.2f", bp.P95Seconds, pp.P95Seconds, ap.P95Seconds},
		{"history events per workflow", "%.1f", bp.Events, pp.Events, ap.Events},
		{"events of its child workflows so far", "%.1f", bp.ChildEvents, pp.ChildEvents, ap.ChildEvents},
		{"activities per workflow", "%.1f", bp.Activities, pp.Activities, ap.Activities},
		{"worker CPU ms per workflow", "%.1f", bp.WorkerCPUMs, pp.WorkerCPUMs, ap.WorkerCPUMs},
		{"server CPU ms per workflow", "%.1f", bp.ServerCPUMs, pp.ServerCPUMs, ap.ServerCPUMs},
		{"emulator CPU ms per workflow", "%.1f", bp.EmulatorCPUMs, pp.EmulatorCPUMs, ap.EmulatorCPUMs},
		{"benchmark driver CPU ms per workflow", "%.1f", bp.DriverCPUMs, pp.DriverCPUMs, ap.DriverCPUMs},
		{"emulator share of worker+server+emulator CPU", "%.2f", bp.EmulatorShare, pp.EmulatorShare, ap.EmulatorShare},
		{"emulator cores busy", "%.2f", bp.EmulatorCores, pp.EmulatorCores, ap.EmulatorCores},
		{"worker peak RSS (MiB)", "%.0f", bp.WorkerPeakMiB, pp.WorkerPeakMiB, ap.WorkerPeakMiB},
		{"server peak RSS (MiB)", "%.0f", bp.ServerPeakMiB, pp.ServerPeakMiB, ap.ServerPeakMiB},
	} {
		ratio := "–"
		// The bare chain has no emulator: its few idle milliseconds are no yardstick.
		if base := (row.base + row.after) / 2; base > 0 && !strings.HasPrefix(row.name, "emulator") {
			ratio = fmt.Sprintf("%.2f", row.prod/base)
		}
		fmt.Fprintf(&b, "| %s | "+row.format+" | "+row.format+" | "+row.format+" | %s |\n", row.name, row.base, row.prod, row.after, ratio)
	}
	if s := r.Scale; s != nil {
		fmt.Fprintf(&b, "\nScale: %d onboardings started at once and left waiting for consent, then consented and signalled.\n\n", s.Onboardings)
		b.WriteString("| scale | value |\n|---|---:|\n")
		type scaleRow struct {
			name, format string
			v            float64
		}
		rows := []scaleRow{
			{"time to start them all (s)", "%.1f", s.StartSeconds},
			{"time until all wait for consent (s)", "%.1f", s.AllWaitingSeconds},
			{"waiting at the consent point", "%.0f", float64(s.Waiting)},
			{"worker RSS while they wait (MiB)", "%.0f", s.WorkerRSSWaitingMiB},
			{"server RSS while they wait (MiB)", "%.0f", s.ServerRSSWaitingMiB},
			{"worker peak RSS during the phase (MiB)", "%.0f", s.WorkerPeakMiB},
			{"server peak RSS during the phase (MiB)", "%.0f", s.ServerPeakMiB},
		}
		if s.Consented > 0 {
			rows = append(rows, []scaleRow{
				{"consented (progress query, consent page)", "%.0f", float64(s.Consented)},
				{"time to consent them (s)", "%.1f", s.ConsentSeconds},
				{"signalled", "%.0f", float64(s.Signalled)},
				{"time to signal them (s)", "%.1f", s.SignalSeconds},
				{"drain: first signal to all completed (s)", "%.1f", s.DrainSeconds},
				{"completed", "%.0f", float64(s.Completed)},
				{"worker CPU ms per onboarding", "%.1f", s.WorkerCPUMs},
				{"server CPU ms per onboarding (no history long polls here)", "%.1f", s.ServerCPUMs},
				{"emulator share of worker+server+emulator CPU", "%.2f", s.EmulatorShare},
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
	b.WriteString("\n| target (issue 6) | goal | measured | met |\n|---|---|---:|---|\n")
	for _, t := range r.Targets {
		met := "yes"
		if !t.Met {
			met = "**no**"
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f | %s |\n", t.Name, t.Goal, t.Measured, met)
	}
	return b.String()
}
