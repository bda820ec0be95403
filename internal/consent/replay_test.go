package consent

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMemoryGuard(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T, g *MemoryGuard, c *clock)
	}{
		{"second use is a replay", func(t *testing.T, g *MemoryGuard, c *clock) {
			require.NoError(t, g.Use(ctx, "n1", c.t.Add(time.Hour)))
			assert.ErrorIs(t, g.Use(ctx, "n1", c.t.Add(time.Hour)), ErrReplayed)
			assert.NoError(t, g.Use(ctx, "n2", c.t.Add(time.Hour)), "other nonces are independent")
		}},
		{"released nonce can be used again", func(t *testing.T, g *MemoryGuard, c *clock) {
			require.NoError(t, g.Use(ctx, "n1", c.t.Add(time.Hour)))
			require.NoError(t, g.Release(ctx, "n1"))
			assert.NoError(t, g.Use(ctx, "n1", c.t.Add(time.Hour)))
		}},
		{"full guard refuses rather than forgets", func(t *testing.T, g *MemoryGuard, c *clock) {
			for i := range 3 {
				require.NoError(t, g.Use(ctx, fmt.Sprint("n", i), c.t.Add(time.Hour)))
			}
			assert.ErrorIs(t, g.Use(ctx, "n3", c.t.Add(time.Hour)), ErrGuardFull)
			assert.ErrorIs(t, g.Use(ctx, "n0", c.t.Add(time.Hour)), ErrReplayed, "a full guard still remembers")
		}},
		{"expired entries make room", func(t *testing.T, g *MemoryGuard, c *clock) {
			require.NoError(t, g.Use(ctx, "short1", c.t.Add(time.Minute)))
			require.NoError(t, g.Use(ctx, "short2", c.t.Add(time.Minute)))
			require.NoError(t, g.Use(ctx, "long", c.t.Add(time.Hour)))
			c.advance(2 * time.Minute)
			require.NoError(t, g.Use(ctx, "new", c.t.Add(time.Hour)))
			assert.Equal(t, 2, g.Len(), "the two expired nonces were swept")
			assert.ErrorIs(t, g.Use(ctx, "long", c.t.Add(time.Hour)), ErrReplayed, "unexpired ones are kept")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			tt.run(t, NewMemoryGuard(3, c.now), c)
		})
	}
}

func TestMemoryGuardDefaultCapacity(t *testing.T) {
	g := NewMemoryGuard(0, nil)
	for i := range DefaultGuardCapacity {
		require.NoError(t, g.Use(context.Background(), fmt.Sprint(i), time.Now().Add(time.Hour)))
	}
	assert.ErrorIs(t, g.Use(context.Background(), "one more", time.Now().Add(time.Hour)), ErrGuardFull)
}

func TestMemoryGuardConcurrentUseAdmitsOne(t *testing.T) {
	g := NewMemoryGuard(10, nil)
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if g.Use(context.Background(), "same", time.Now().Add(time.Hour)) == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(1), ok.Load())
}
