// Command chaos proves that onboardings survive crashes, restarts and a
// throttling storm without leaving anything behind: it runs many onboardings
// against the real Temporal dev server (SQLite file, WAL) and the emulator
// with injected 5xx, 429 and replication lag, SIGKILLs the worker and
// restarts the dev server while they run, then checks the emulator's state
// tenant by tenant and scans every history, search attribute and log for the
// secrets that were issued. It exits non-zero on any violation.
//
//	go run ./chaos            # the full run (make chaos)
//	go run ./chaos --short    # the form `make test` runs
//	go run ./chaos --seed 42 --plan   # what a seed decides, without running
//	go run ./chaos --cluster --bin bin --schema-dir …/schema/postgresql/v12   # make test-cluster
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	short := fs.Bool("short", false, "the short form: fewer onboardings, 1 worker kill, 1 server restart")
	clusterMode := fs.Bool("cluster", false, "on the production-shaped stack (make test-cluster): PostgreSQL, two server nodes, two workers; a worker kill, a node SIGKILL, a PostgreSQL restart and a full stop and start")
	planOnly := fs.Bool("plan", false, "print the plan the seed gives (onboardings, chaos events) and exit")
	o := FullOptions()
	o.bind(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *short && *clusterMode {
		fmt.Fprintln(os.Stderr, "chaos: --short and --cluster are two presets; pick one")
		return 2
	}
	for _, preset := range []struct {
		on   bool
		opts func() Options
	}{{*short, ShortOptions}, {*clusterMode, ClusterOptions}} {
		if !preset.on {
			continue
		}
		// The preset, with the flags given explicitly on top.
		s := preset.opts()
		sfs := flag.NewFlagSet("preset", flag.ContinueOnError)
		s.bind(sfs)
		fs.Visit(func(f *flag.Flag) {
			if f.Name != "short" && f.Name != "cluster" {
				_ = sfs.Set(f.Name, f.Value.String())
			}
		})
		o = s
	}
	if *planOnly {
		o = o.seeded()
		newPlan(o).print(os.Stdout, o.RandSeed)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	if len(rep.Violations) > 0 {
		fmt.Fprintf(os.Stderr, "chaos: %d violation(s); work directory kept at %s\n", len(rep.Violations), rep.Dir)
		return 1
	}
	// A passing run's temporary directory (its binaries, database and
	// PostgreSQL cluster: about 150 MB) would pile up in /tmp run after run;
	// --dir keeps one.
	if o.Dir == "" && rep.Dir != "" {
		if err := os.RemoveAll(rep.Dir); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: removing the work directory %s: %v\n", rep.Dir, err)
		} else {
			fmt.Printf("passed: removed the work directory %s and its logs (--dir DIR keeps them)\n", rep.Dir)
		}
	}
	return 0
}
