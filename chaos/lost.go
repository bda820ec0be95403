package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/mktos2s/mktos2s/internal/emulator"
)

// createOps are the emulator operations that create something an
// onboarding owns. Each loses answers in the run: the write lands, the
// worker hears a 500, a reset or nothing, and its retry must find the
// object instead of making a second one.
var createOps = []string{
	"graph.upsertApplication",
	"graph.upsertServicePrincipal",
	"graph.addPassword",
	"dataverse.createSystemUser",
	"graph.createHRDPolicy",
	"graph.assignHRDPolicy",
	"dataverse.associateRole",
	"dataverse.updateMarketoConfig",
}

var loseModes = []string{emulator.LoseWith5xx, emulator.LoseByReset, emulator.LoseByStall}

// loseFirstAnswers makes the first write of every create operation of
// onboarding i lose its answer, the modes rotating over onboardings and
// operations, so every create meets every mode somewhere in the run
// whatever the random faults do.
func (r *runner) loseFirstAnswers(i int, ob onboarding) {
	for j, op := range createOps {
		r.emu.LoseNextTenant(ob.TenantID, op, 1, loseModes[(i+j)%len(loseModes)])
	}
}

// lostRoutes gives every create operation the run's lost-answer
// probability on top of the global faults (a route replaces them, so they
// are copied in).
func lostRoutes(global emulator.RouteFaults, p float64, stallMs int) map[string]emulator.RouteFaults {
	routes := map[string]emulator.RouteFaults{}
	for _, op := range createOps {
		rf := global
		rf.LostAnswerProbability, rf.StallMs = p, stallMs
		routes[op] = rf
	}
	return routes
}

// printLost writes the lost answers per operation and mode, and returns a
// violation for every create operation that lost none: then the run did
// not prove that step idempotent.
func printLost(w io.Writer, lost map[string]map[string]int, reached map[string]bool) []string {
	fmt.Fprintln(w, "\nlost answers injected (write applied, answer lost) per operation:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  operation\t5xx\treset\tstall\ttotal")
	ops := append([]string(nil), createOps...)
	for op := range lost {
		if !slices.Contains(ops, op) {
			ops = append(ops, op)
		}
	}
	sort.Strings(ops[len(createOps):])
	var violations []string
	for _, op := range ops {
		m := lost[op]
		total := m[emulator.LoseWith5xx] + m[emulator.LoseByReset] + m[emulator.LoseByStall]
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\n", op, m[emulator.LoseWith5xx], m[emulator.LoseByReset], m[emulator.LoseByStall], total)
		if total == 0 && (reached == nil || reached[op]) {
			violations = append(violations, "no lost-answer fault was injected on "+op+": the run does not prove it idempotent")
		}
	}
	_ = tw.Flush()
	return violations
}

// reachedOps are the create operations the plan's granted onboardings run
// through: the HRD ones only when one of them is federated.
func (r *runner) reachedOps() map[string]bool {
	reached := map[string]bool{}
	for _, ob := range r.obs {
		if ob.Kind != kindGranted {
			continue
		}
		for _, op := range createOps {
			if ob.Federated || !strings.Contains(op, "HRD") {
				reached[op] = true
			}
		}
	}
	return reached
}
