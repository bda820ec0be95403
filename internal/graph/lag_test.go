package graph_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/graph"
	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/internal/msapi/emutest"
)

// Right after an application is created, Entra may not know it yet where
// its service principal is created or its secret added. The client waits
// that out for a bounded time, then says it is replication lag.
func TestReplicationLagOfANewApplication(t *testing.T) {
	e := emutest.StartEmulator(t)
	ctx := context.Background()

	t.Run("waited out within the bound", func(t *testing.T) {
		e.Server.SetFaults(emulator.Faults{AppLagMs: 1500, AppLagProbability: 1})
		c := graph.New(e.GraphURL(), e.HTTP, e.GraphTokens(emutest.ContosoTenant, e.Provisioner()), graph.WithLagWait(10*time.Second))
		app, _, err := c.UpsertApplication(ctx, marketoSpec("mktos2s-lagged"))
		require.NoError(t, err)
		start := time.Now()
		sp, created, err := c.UpsertServicePrincipal(ctx, app.AppID)
		require.NoError(t, err, "the service principal is created once the app has replicated")
		assert.True(t, created)
		assert.NotEmpty(t, sp.ID)
		assert.GreaterOrEqual(t, time.Since(start), time.Second, "Entra refused at first")
		pc, err := c.AddPassword(ctx, app.ID, "lagged", time.Now().AddDate(0, 1, 0))
		require.NoError(t, err)
		assert.NotEmpty(t, pc.SecretText)
		assert.Len(t, tenantState(t, e.Server.State(), emutest.ContosoTenant).PasswordEvents, 1, "one secret, however many tries")
	})

	t.Run("past the bound: a typed replication-lag error", func(t *testing.T) {
		e.Server.SetFaults(emulator.Faults{AppLagMs: 60_000, AppLagProbability: 1})
		c := graph.New(e.GraphURL(), e.HTTP, e.GraphTokens(emutest.ContosoTenant, e.Provisioner()), graph.WithLagWait(1500*time.Millisecond))
		app, _, err := c.UpsertApplication(ctx, marketoSpec("mktos2s-lagged-long"))
		require.NoError(t, err)
		_, _, err = c.UpsertServicePrincipal(ctx, app.AppID)
		require.Error(t, err)
		assert.True(t, errors.Is(err, graph.ErrReplicationLag), "%v", err)
		assert.True(t, msapi.IsKind(err, msapi.Invalid), "it carries Graph's answer: %v", err)
		_, err = c.AddPassword(ctx, app.ID, "lagged", time.Now().AddDate(0, 1, 0))
		assert.True(t, errors.Is(err, graph.ErrReplicationLag), "%v", err)
		assert.True(t, msapi.IsKind(err, msapi.NotFound), "%v", err)
	})

}
