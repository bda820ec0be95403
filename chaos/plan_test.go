package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPlanRepeatsForASeed(t *testing.T) {
	tests := []struct {
		name string
		o    Options
	}{
		{"full", FullOptions()},
		{"short", ShortOptions()},
		{"three restarts", func() Options { o := FullOptions(); o.ServerRestarts = 3; return o }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			print := func(seed int64) string {
				o := tt.o
				o.RandSeed = seed
				var b bytes.Buffer
				newPlan(o).print(&b, seed)
				return b.String()
			}
			assert.Equal(t, print(42), print(42), "the same seed prints the same plan")
			assert.NotEqual(t, print(42)[len("plan (seed 42)"):], print(43)[len("plan (seed 43)"):], "another seed draws another plan")

			o := tt.o
			o.RandSeed = 7
			p := newPlan(o)
			require.Len(t, p.Onboardings, o.total())
			var kills, restarts, perm int
			for i, ev := range p.Events {
				assert.GreaterOrEqual(t, ev.Gap, o.MinGap)
				assert.LessOrEqual(t, ev.Gap, o.MaxGap)
				switch ev.Kind {
				case eventKill:
					kills++
					assert.Positive(t, ev.Down)
				case eventServer:
					restarts++
					assert.NotZero(t, i, "a server restart never comes first")
				}
			}
			assert.Equal(t, o.Kills, kills)
			assert.Equal(t, o.ServerRestarts, restarts)
			ops := map[string]bool{}
			for _, ob := range p.Onboardings {
				if ob.Kind == kindPermission {
					perm++
					assert.NotEmpty(t, ob.FailCode)
					assert.NotEmpty(t, ob.failStep(), "the 403 targets a step the table knows")
					ops[ob.FailOp] = true
				}
			}
			assert.Equal(t, o.PermissionErrors, perm)
			assert.Len(t, ops, min(perm, len(permissionOps)), "every permission-error onboarding breaks a different operation while there are enough")
		})
	}
}
