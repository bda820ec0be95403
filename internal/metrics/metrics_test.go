package metrics_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/metrics"
	"github.com/mktos2s/mktos2s/internal/msapi/emutest"
	"github.com/mktos2s/mktos2s/internal/testenv"
	"github.com/mktos2s/mktos2s/internal/workerapp"
	"github.com/mktos2s/mktos2s/workflows"
)

// The real worker with worker.metricsListen against the dev server and the
// emulator: one onboarding completes through two injected 429s, one is
// denied and compensated, and the scrape must show exactly that, next to
// the SDK's own families.
func TestWorkerServesMetricsAndReadiness(t *testing.T) {
	testenv.RequireTemporalCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env, err := testenv.Start(ctx, testenv.Options{})
	require.NoError(t, err)
	defer env.Close()
	cfg, err := env.Config("default")
	require.NoError(t, err)
	cfg.Worker.MetricsListen = "127.0.0.1:0"
	app, err := workerapp.New(ctx, cfg, workerapp.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	require.NoError(t, app.Start())
	defer app.Stop()
	base := "http://" + app.MetricsAddr()

	require.NoError(t, testenv.Poll(ctx, 30*time.Second, func() error {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: HTTP %d", resp.StatusCode)
		}
		return nil
	}), "/readyz turns 200 once the worker polls")

	c, err := env.Dial(ctx, "default")
	require.NoError(t, err)
	defer c.Close()

	env.Emu.FailNext("graph.addPassword", 2, http.StatusTooManyRequests, "TooManyRequests")
	done, err := testenv.StartOnboarding(ctx, c, workflows.OnboardingInput{TenantID: emutest.ContosoTenant, OrgURL: env.Emu.OrgURL(emutest.ContosoOrgHost)})
	require.NoError(t, err)
	denied, err := testenv.StartOnboarding(ctx, c, workflows.OnboardingInput{TenantID: emutest.FabrikamTenant, OrgURL: env.Emu.OrgURL(emutest.FabrikamOrgHost)})
	require.NoError(t, err)
	_, err = testenv.WaitProgress(ctx, c, denied.GetID(), time.Minute, func(p workflows.Progress) bool {
		return p.Step == workflows.StepAwaitingAdminConsent
	})
	require.NoError(t, err)
	// Visibility catches up with the step's search attribute shortly after.
	require.NoError(t, testenv.Poll(ctx, 30*time.Second, func() error {
		f, err := metrics.Scrape(ctx, base+"/metrics")
		if err != nil {
			return err
		}
		if n := f.Sum(metrics.WaitingConsent, nil); n < 1 {
			return fmt.Errorf("%s = %v", metrics.WaitingConsent, n)
		}
		return nil
	}))

	require.NoError(t, env.Consent(ctx, c, done.GetID(), time.Minute))
	require.NoError(t, done.Get(ctx, nil))
	require.NoError(t, c.SignalWorkflow(ctx, denied.GetID(), "", workflows.SignalAdminConsent,
		map[string]any{"granted": false, "by": "metrics test", "source": "operator"}))
	require.Error(t, denied.Get(ctx, nil))

	var f metrics.Families
	// Counters of the SDK handler are exported as they are recorded; a scrape right after may precede the last one.
	require.NoError(t, testenv.Poll(ctx, 10*time.Second, func() error {
		if f, err = metrics.Scrape(ctx, base+"/metrics"); err != nil {
			return err
		}
		if f.Sum(metrics.OnboardingsCompensated, nil) < 1 {
			return fmt.Errorf("no compensation counted yet")
		}
		return nil
	}))
	assert.Equal(t, 2.0, f.Sum(metrics.OnboardingsStarted, nil))
	assert.Equal(t, 1.0, f.Sum(metrics.OnboardingsCompleted, nil))
	assert.Equal(t, 1.0, f.Sum(metrics.OnboardingsCompensated, map[string]string{"step": workflows.StepAwaitingAdminConsent, "outcome": "failed"}))
	assert.Equal(t, 2.0, f.Sum(metrics.MicrosoftThrottled, map[string]string{"service": "graph", "operation": "addPassword"}))
	assert.Equal(t, 2.0, f.Sum(metrics.RetryAfterSeconds, map[string]string{"service": "graph", "operation": "addPassword"}), "the emulator asks for 1 s each")
	assert.Equal(t, 2.0, f.Sum(metrics.MicrosoftCalls, map[string]string{"operation": "addPassword", "status_class": "4xx"}))
	assert.GreaterOrEqual(t, f.Sum(metrics.MicrosoftCalls, map[string]string{"operation": "addPassword", "status_class": "2xx"}), 1.0)
	assert.Greater(t, f.Sum(metrics.MicrosoftCalls, map[string]string{"service": "entra", "operation": "token"}), 0.0)
	assert.Greater(t, f.Sum(metrics.MicrosoftCalls, map[string]string{"service": "dataverse", "status_class": "2xx"}), 0.0)
	for _, fam := range []string{"temporal_request_total", "temporal_workflow_completed_total", "temporal_activity_execution_latency_seconds", "temporal_worker_task_slots_available", "go_goroutines"} {
		assert.Contains(t, f, fam, "SDK or runtime family %s", fam)
	}
	assert.Equal(t, 1.0, f.Sum("temporal_workflow_completed_total", map[string]string{"workflow_type": workflows.WorkflowType}))
}
