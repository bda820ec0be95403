package workflows_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/mktos2s/mktos2s/internal/testenv"
	"github.com/mktos2s/mktos2s/workflows"
)

// envRecordHistory set to 1 makes the dev-server tests here write the
// histories of their runs to testdata/, which the replay tests replay.
const envRecordHistory = "MKTOS2S_RECORD_HISTORY"

func runHistory(t *testing.T, ctx context.Context, c client.Client, wfID, runID string) *historypb.History {
	t.Helper()
	it := c.GetWorkflowHistory(ctx, wfID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, ev)
	}
	return h
}

// maybeRecord writes the run's history (payloads encrypted with the public
// test key, as the dev server holds them) to testdata/name.
func maybeRecord(t *testing.T, ctx context.Context, c client.Client, wfID, runID, name string) {
	t.Helper()
	if os.Getenv(envRecordHistory) != "1" {
		return
	}
	h := runHistory(t, ctx, c, wfID, runID)
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(h)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join("testdata", name), append(b, '\n'), 0o644))
	t.Logf("recorded %d events of %s to testdata/%s", len(h.Events), wfID, name)
}

// An onboarding that re-checks the consent every second for two minutes
// keeps its history short (the timer loop it replaced added about 11
// events a second), notices a consent given without any signal, and ends
// with one app, one service principal and one live secret.
func TestLongConsentWaitOnTheDevServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the Temporal dev server and the emulator and waits two minutes")
	}
	t.Parallel()
	env, c := testenv.StartForTest(t, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	host := "contoso.crm.localhost"
	in := workflows.OnboardingInput{TenantID: contosoTenant, OrgURL: env.Emu.OrgURL(host),
		ConsentTimeout: 10 * time.Minute, ConsentRecheckInterval: time.Second}
	run, err := testenv.StartOnboarding(ctx, c, in)
	require.NoError(t, err)
	p, err := testenv.WaitProgress(ctx, c, run.GetID(), time.Minute, func(p workflows.Progress) bool {
		return p.Step == workflows.StepAwaitingAdminConsent && p.ConsentURL != ""
	})
	require.NoError(t, err)
	assert.Contains(t, p.Message, "re-checked every 1s")

	time.Sleep(2 * time.Minute)
	waiting := len(runHistory(t, ctx, c, run.GetID(), run.GetRunID()).GetEvents())
	t.Logf("history after two minutes of 1-second re-checks: %d events", waiting)
	assert.Less(t, waiting, 200)
	desc, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	require.NoError(t, err)
	require.Len(t, desc.GetPendingActivities(), 1)
	poll := desc.GetPendingActivities()[0]
	assert.Equal(t, "CheckConsent", poll.GetActivityType().GetName())
	assert.Greater(t, poll.GetAttempt(), int32(60), "re-checked every second by the retry policy")

	// The admin consents; nobody signals. The next re-check notices.
	granted := time.Now()
	require.NoError(t, env.GrantConsent(ctx, p.ConsentURL))
	var res workflows.OnboardingResult
	require.NoError(t, run.Get(ctx, &res))
	t.Logf("completed %s after the grant", time.Since(granted).Round(time.Millisecond))

	orgHost := in.WithDefaults().OrgHost()
	ts := tenantOf(env.Emu.State(), contosoTenant)
	app := ourApp(ts, orgHost)
	require.NotNil(t, app)
	assert.Len(t, app.PasswordCredentials, 1, "one live secret")
	sps := 0
	for _, sp := range ts.ServicePrincipals {
		if sp.AppID == app.AppID {
			sps++
		}
	}
	assert.Equal(t, 1, sps, "one service principal")
	apps := 0
	for _, a := range ts.Applications {
		if !a.Seeded {
			apps++
		}
	}
	assert.Equal(t, 1, apps, "one application")
	total := len(runHistory(t, ctx, c, run.GetID(), run.GetRunID()).GetEvents())
	t.Logf("whole history: %d events", total)
	assert.Less(t, total, 200)
	maybeRecord(t, ctx, c, run.GetID(), run.GetRunID(), "onboarding-long-consent-wait-lean.json")
}
