package consent

import (
	"context"
	"errors"
	"sync"
	"time"
)

var (
	// ErrReplayed means the state's nonce was already used.
	ErrReplayed = errors.New("consent state was already used")
	// ErrGuardFull means the guard cannot remember another nonce. Only
	// correctly signed states reach the guard, so filling it takes that many
	// genuine consent links; refusing then is safer than forgetting a nonce
	// that could be replayed.
	ErrGuardFull = errors.New("too many consent callbacks at once; try again later")
)

// ReplayGuard remembers which state nonces were used.
type ReplayGuard interface {
	// Use marks nonce as used until expires (the state's expiry; after it
	// the state is refused anyway). It returns ErrReplayed when nonce is
	// already in use.
	Use(ctx context.Context, nonce string, expires time.Time) error
	// Release forgets nonce, so that the same consent link can be retried
	// after its callback could not be delivered.
	Release(ctx context.Context, nonce string) error
}

// DefaultGuardCapacity is the number of live nonces a MemoryGuard keeps when
// none is given: far more than the consent links one installation has open.
const DefaultGuardCapacity = 10000

// MemoryGuard is a ReplayGuard for a single callback process. It forgets on
// restart, so a link used before a restart works once more until it expires.
// A replayed grant is harmless (the onboarding verifies the grant in Entra
// rather than trusting the signal), and so is a replayed denial: it is shown
// to the operator and ends nothing, and a link names its run, so it cannot
// reach a later onboarding of the same tenant and org.
type MemoryGuard struct {
	mu       sync.Mutex
	used     map[string]time.Time // nonce → expiry
	capacity int
	now      func() time.Time
}

// NewMemoryGuard holds at most capacity unexpired nonces (0 or less means
// DefaultGuardCapacity); now is the clock, nil for time.Now.
func NewMemoryGuard(capacity int, now func() time.Time) *MemoryGuard {
	if capacity <= 0 {
		capacity = DefaultGuardCapacity
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryGuard{used: make(map[string]time.Time), capacity: capacity, now: now}
}

// Use implements ReplayGuard.
func (g *MemoryGuard) Use(_ context.Context, nonce string, expires time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if exp, ok := g.used[nonce]; ok && now.Before(exp) {
		return ErrReplayed
	}
	if len(g.used) >= g.capacity {
		// Sweeping only when full keeps Use O(1) in the common case.
		for n, exp := range g.used {
			if !now.Before(exp) {
				delete(g.used, n)
			}
		}
		if len(g.used) >= g.capacity {
			return ErrGuardFull
		}
	}
	g.used[nonce] = expires
	return nil
}

// Release implements ReplayGuard.
func (g *MemoryGuard) Release(_ context.Context, nonce string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.used, nonce)
	return nil
}

// Len is the number of nonces held, expired ones not yet swept included.
func (g *MemoryGuard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.used)
}
