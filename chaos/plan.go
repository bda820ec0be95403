package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// plan is everything a run decides at random, drawn from the seed before
// anything starts, so that --seed repeats it and --plan shows it. What the
// emulator's faults hit, and when exactly each step runs, still depends on
// timing: the seed repeats the schedule, not the interleaving.
type plan struct {
	Onboardings []onboarding
	Events      []event
}

// event is one chaos event, Gap after the previous one.
type event struct {
	Kind string        // eventKill, eventServer, eventNode, eventPG or eventFull
	Gap  time.Duration // pause before it
	Down time.Duration // eventKill, eventNode: how long the process stays dead
}

const (
	eventKill   = "kill"
	eventServer = "server"
	// The cluster mode's events.
	eventNode = "node-kill"
	eventPG   = "pg-restart"
	eventFull = "full-restart"
)

// newPlan draws the run's plan from o.RandSeed.
func newPlan(o Options) plan {
	rng := rand.New(rand.NewPCG(uint64(o.RandSeed), 0x6368616f73))
	var p plan
	kinds := slices.Concat(slices.Repeat([]string{kindGranted}, o.Granted), slices.Repeat([]string{kindDenied}, o.Denied),
		slices.Repeat([]string{kindPermission}, o.PermissionErrors))
	// One operation per permission-error onboarding in turn, from a random
	// start, so compensation starts from different steps.
	first := rng.IntN(len(permissionOps))
	np := 0
	for i, k := range kinds {
		ob := onboarding{
			Kind:     k,
			TenantID: fmt.Sprintf("c4a05000-0000-4000-8000-%012d", i+1),
			OrgHost:  fmt.Sprintf("chaos%02d.crm.localhost", i+1),
		}
		ob.Federated = o.FederatedEvery > 0 && (i+1)%o.FederatedEvery == 0
		if k == kindPermission {
			op := permissionOps[(first+np)%len(permissionOps)]
			ob.FailOp, ob.FailCode = op.op, op.code
			np++
		}
		p.Onboardings = append(p.Onboardings, ob)
	}

	kinds = slices.Repeat([]string{eventKill}, o.Kills)
	for range o.ServerRestarts {
		// Never first: the first event is a kill, so both happen mid-run.
		at := 1
		if len(kinds) > 1 {
			at = 1 + rng.IntN(len(kinds))
		}
		kinds = slices.Insert(kinds, min(at, len(kinds)), eventServer)
	}
	// The cluster's events go in at random places too (no draw when there
	// are none, so a dev-server plan is the same for the same seed).
	for _, k := range slices.Concat(slices.Repeat([]string{eventNode}, o.NodeKills), slices.Repeat([]string{eventPG}, o.PGRestarts)) {
		kinds = slices.Insert(kinds, rng.IntN(len(kinds)+1), k)
	}
	for _, k := range kinds {
		ev := event{Kind: k, Gap: o.MinGap + time.Duration(rng.Int64N(int64(o.MaxGap-o.MinGap)+1))}
		switch k {
		case eventKill:
			ev.Down = 500*time.Millisecond + time.Duration(rng.Int64N(int64(1500*time.Millisecond)))
		case eventNode:
			ev.Down = 2*time.Second + time.Duration(rng.Int64N(int64(3*time.Second)))
		}
		p.Events = append(p.Events, ev)
	}
	// A full restart comes last: it waits until the held onboardings wait
	// for their consent, which they get only after it.
	for range o.FullRestarts {
		p.Events = append(p.Events, event{Kind: eventFull, Gap: o.MinGap})
	}
	var granted []int
	for i, ob := range p.Onboardings {
		if ob.Kind == kindGranted {
			granted = append(granted, i)
		}
	}
	if o.Held > 0 {
		for _, k := range rng.Perm(len(granted))[:min(o.Held, len(granted))] {
			p.Onboardings[granted[k]].Held = true
		}
	}
	return p
}

// print writes the plan in a form two runs can be compared by.
func (p plan) print(w io.Writer, seed int64) {
	fmt.Fprintf(w, "plan (seed %d):\n", seed)
	for _, ob := range p.Onboardings {
		fed := ""
		if ob.Federated {
			fed = ", federated"
		}
		if ob.Held {
			fed += ", consent held until after the full restart"
		}
		fmt.Fprintf(w, "  %s %s: %s%s\n", ob.TenantID, ob.OrgHost, ob.expected(), fed)
	}
	var evs []string
	for _, ev := range p.Events {
		s := fmt.Sprintf("%s, %s", ev.Gap.Round(time.Millisecond), ev.Kind)
		if ev.Down > 0 {
			s += fmt.Sprintf(" (down %s)", ev.Down.Round(time.Millisecond))
		}
		evs = append(evs, s)
	}
	// Each gap starts when the previous event is over (a server restart
	// takes seconds), so the gaps, not clock times, are what repeats.
	fmt.Fprintf(w, "  chaos events, each after a pause: %s\n", strings.Join(evs, "; "))
}
