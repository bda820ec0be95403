package batch

import (
	"context"
	"errors"
	"sync"
	"time"
)

// States of a row while a batch runs.
const (
	StatePending = "pending" // not started: waiting for a free slot
	StateSkipped = "skipped" // already onboarded or running; nothing started
	StateRunning = "running" // started, provisioning (holds a slot)
	StateWaiting = "waiting" // waiting for admin consent (slot released)
	StateDone    = "done"    // completed
	StateFailed  = "failed"  // failed, cancelled, or could not start
)

// Observation is what Poll reports of a started onboarding.
type Observation struct {
	Step string
	// Waiting is true while the onboarding waits for admin consent: it
	// makes no Microsoft calls then, so it gives its slot back.
	Waiting bool
	Closed  bool
	OK      bool   // completed (when Closed)
	Reason  string // why it failed (when Closed and not OK)
}

// Skip is returned by Start when the row's tenant and org must not be
// started (already onboarded, already running): the row is reported and
// skipped, not failed.
type Skip struct{ Reason string }

func (s *Skip) Error() string { return s.Reason }

// Status is one line of the live table.
type Status struct {
	Entry
	WorkflowID string    `json:"workflowId"`
	State      string    `json:"state"`
	Step       string    `json:"step,omitempty"`
	Since      time.Time `json:"since"` // when it entered State
	Reason     string    `json:"reason,omitempty"`
}

// Runner starts the entries with at most Concurrency provisioning at once.
// A slot is held from the start until the onboarding waits for consent or
// ends: provisioning is what Microsoft throttles and what costs Temporal
// actions; a consent wait costs neither and may last days.
type Runner struct {
	Concurrency int
	Start       func(ctx context.Context, e Entry) error
	Poll        func(ctx context.Context, e Entry) (Observation, error)
	PollEvery   time.Duration
	// Update is called (from one goroutine at a time) whenever a row
	// changes, with a copy of every row.
	Update func([]Status)
	Now    func() time.Time
}

// Run starts every entry and returns once each is skipped, waiting for
// consent, done or failed (or ctx ends).
func (r Runner) Run(ctx context.Context, entries []Entry) []Status {
	now := r.Now
	if now == nil {
		now = time.Now
	}
	limit := max(r.Concurrency, 1)
	var mu sync.Mutex
	rows := make([]Status, len(entries))
	for i, e := range entries {
		rows[i] = Status{Entry: e, WorkflowID: e.Input.WorkflowID(), State: StatePending, Since: now()}
	}
	set := func(i int, state, step, reason string) {
		mu.Lock()
		defer mu.Unlock()
		row := &rows[i]
		if row.State == state && row.Step == step && row.Reason == reason {
			return
		}
		if row.State != state {
			row.Since = now()
		}
		row.State, row.Step, row.Reason = state, step, reason
		if r.Update != nil {
			r.Update(append([]Status(nil), rows...))
		}
	}
	if r.Update != nil {
		r.Update(append([]Status(nil), rows...))
	}
	slots := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i, e := range entries {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return rows
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			held := true
			release := func() {
				if held {
					held = false
					<-slots
				}
			}
			defer release()
			err := r.Start(ctx, e)
			var skip *Skip
			switch {
			case errors.As(err, &skip):
				set(i, StateSkipped, "", skip.Reason)
				return
			case err != nil:
				set(i, StateFailed, "", err.Error())
				return
			}
			set(i, StateRunning, "", "")
			for {
				o, err := r.Poll(ctx, e)
				switch {
				case err != nil:
					// A transient read error: keep the state, try again.
				case o.Closed && o.OK:
					set(i, StateDone, o.Step, "")
					return
				case o.Closed:
					set(i, StateFailed, o.Step, o.Reason)
					return
				case o.Waiting:
					set(i, StateWaiting, o.Step, "")
					return
				default:
					set(i, StateRunning, o.Step, "")
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(r.PollEvery):
				}
			}
		}()
	}
	wg.Wait()
	return rows
}
