package activities

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/graph"
	"github.com/mktos2s/mktos2s/internal/msapi"
)

func TestAwaitConsent(t *testing.T) {
	granted := []graph.PermissionGrant{{ClientID: "sp-app", ConsentType: "AllPrincipals", ResourceID: "sp-of-" + graph.DynamicsCRMAppID, Scope: "user_impersonation"}}
	in := func(until time.Duration) AwaitConsentInput {
		return AwaitConsentInput{ServicePrincipalID: "sp-app", Interval: time.Millisecond, Until: time.Now().Add(until), HeartbeatEvery: time.Minute}
	}
	t.Run("outages are checked through until the grant is seen", func(t *testing.T) {
		g := &fakeGraph{grants: granted,
			errs:      map[string]error{"ListPermissionGrants": &msapi.Error{Service: "graph", Kind: msapi.Transient, Status: 503}},
			failTimes: map[string]int{"ListPermissionGrants": readRetries + 1}}
		res, err := newFakeActivities(g, &dvState{}, nil, nil).AwaitConsent(context.Background(), in(time.Minute))
		require.NoError(t, err)
		assert.True(t, res.Granted)
		assert.Equal(t, 2, res.Checks, "a check failed after its re-reads, the next one saw the grant")
	})
	t.Run("no grant until the deadline", func(t *testing.T) {
		start := time.Now()
		res, err := newFakeActivities(&fakeGraph{}, &dvState{}, nil, nil).AwaitConsent(context.Background(), in(50*time.Millisecond))
		require.NoError(t, err)
		assert.False(t, res.Granted)
		assert.Greater(t, res.Checks, 2, "re-checked every interval")
		assert.Contains(t, res.Reason, "no tenant-wide grant")
		assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	})
	t.Run("a permanent failure ends the wait", func(t *testing.T) {
		g := &fakeGraph{errs: map[string]error{"ListPermissionGrants": &msapi.Error{Service: "graph", Kind: msapi.PermissionDenied, Status: 403}}}
		res, err := newFakeActivities(g, &dvState{}, nil, nil).AwaitConsent(context.Background(), in(time.Minute))
		require.Error(t, err)
		assert.Equal(t, 1, res.Checks)
		assert.Contains(t, asAppErr(t, err).Message(), "permission denied")
		assert.True(t, asAppErr(t, err).NonRetryable())
	})
	t.Run("cancellation ends it", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		_, err := newFakeActivities(&fakeGraph{}, &dvState{}, nil, nil).AwaitConsent(ctx, in(time.Hour))
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestCheckConsent(t *testing.T) {
	granted := []graph.PermissionGrant{{ClientID: "sp-app", ConsentType: "AllPrincipals", ResourceID: "sp-of-" + graph.DynamicsCRMAppID, Scope: "user_impersonation"}}
	res, err := newFakeActivities(&fakeGraph{grants: granted}, &dvState{}, nil, nil).CheckConsent(context.Background(), VerifyConsentInput{ServicePrincipalID: "sp-app"})
	require.NoError(t, err)
	assert.True(t, res.Granted)

	_, err = newFakeActivities(&fakeGraph{}, &dvState{}, nil, nil).CheckConsent(context.Background(), VerifyConsentInput{ServicePrincipalID: "sp-app"})
	ae := asAppErr(t, err)
	assert.Equal(t, ErrConsentPending, ae.Type())
	assert.False(t, ae.NonRetryable(), "not yet is retried by the server's retry policy")

	g := &fakeGraph{errs: map[string]error{"ListPermissionGrants": &msapi.Error{Service: "graph", Kind: msapi.PermissionDenied, Status: 403}}}
	_, err = newFakeActivities(g, &dvState{}, nil, nil).CheckConsent(context.Background(), VerifyConsentInput{ServicePrincipalID: "sp-app"})
	assert.True(t, asAppErr(t, err).NonRetryable(), "a permanent failure ends the wait")
}
