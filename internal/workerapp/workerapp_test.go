package workerapp

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/codec"
	"github.com/mktos2s/mktos2s/internal/config"
	"github.com/mktos2s/mktos2s/internal/devserver"
	"github.com/mktos2s/mktos2s/internal/devserver/devservertest"
	"github.com/mktos2s/mktos2s/workflows"
)

// testConfig is a worker configuration whose Microsoft endpoints point at a
// closed loopback port: activities fail and retry, which is all these tests need.
func testConfig(t *testing.T, address string) config.Config {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	t.Chdir(t.TempDir())
	cfg, err := config.Load(config.Options{})
	require.NoError(t, err)
	cfg.Temporal.Address = address
	cfg.Codec.Keys = map[string]string{"test": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))}
	cfg.Codec.ActiveKeyID = "test"
	cfg.Custody.Keys = map[string]string{"c1": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{8}, 32))}
	cfg.Custody.ActiveKeyID = "c1"
	cfg.Microsoft.AuthorityHost = "https://127.0.0.1:1"
	cfg.Microsoft.GraphBaseURL = "https://127.0.0.1:1/v1.0"
	cfg.Microsoft.AllowedOrgSuffixes = []string{".crm.localhost"}
	cfg.Microsoft.DialOverrides = map[string]string{"*.localhost": "127.0.0.1"}
	cfg.Microsoft.Provisioner = config.Provisioner{ClientID: "aaaaaaaa-0000-0000-0000-000000000001", ClientSecret: "provisioner-test-secret"}
	cfg.Log.Format = "text"
	cfg.Worker.StopTimeout = time.Second
	return cfg
}

func TestRefusesToStartWithoutCodecKey(t *testing.T) {
	cfg := testConfig(t, "127.0.0.1:1")
	cfg.Codec = config.Codec{}
	ctx := context.Background()

	err := Run(ctx, cfg, WithLogger(slog.New(slog.DiscardHandler)))
	require.ErrorIs(t, err, config.ErrNoCodecKey)
	assert.Contains(t, err.Error(), "MKTOS2S_CODEC_KEYS=")
	assert.Contains(t, err.Error(), "openssl rand -base64 32")

	_, err = Dial(ctx, cfg, WithLogger(slog.New(slog.DiscardHandler)))
	assert.ErrorIs(t, err, config.ErrNoCodecKey, "the starter must not write plain-text payloads either")
}

func TestRefusesToStartWithoutCustodyKey(t *testing.T) {
	cfg := testConfig(t, "127.0.0.1:1")
	cfg.Custody = config.Custody{}
	err := Run(context.Background(), cfg, WithLogger(slog.New(slog.DiscardHandler)))
	require.ErrorIs(t, err, config.ErrNoCustodyKey)
	assert.Contains(t, err.Error(), "MKTOS2S_CUSTODY_KEYS=")
}

func TestClientOptionsTLS(t *testing.T) {
	cfg := testConfig(t, "ns.acct.tmprl.cloud:7233")
	logger := slog.New(slog.DiscardHandler)

	o, err := ClientOptions(cfg, logger)
	require.NoError(t, err)
	assert.Nil(t, o.ConnectionOptions.TLS, "plain connection to a dev server")
	assert.Nil(t, o.Credentials)
	assert.NotNil(t, o.DataConverter)
	assert.NotNil(t, o.FailureConverter)
	assert.IsType(t, &client.GrpcCompressionNone{}, o.ConnectionOptions.GrpcCompression, "encrypted payloads do not compress")

	cfg.Temporal.APIKey = "cloud-key"
	o, err = ClientOptions(cfg, logger)
	require.NoError(t, err)
	require.NotNil(t, o.ConnectionOptions.TLS, "an API key implies TLS")
	assert.NotNil(t, o.Credentials)

	cfg.Temporal.APIKey = ""
	cfg.Temporal.TLS = config.TLS{Enabled: true, CAFile: "/nonexistent/ca.pem"}
	_, err = ClientOptions(cfg, logger)
	assert.ErrorContains(t, err, "temporal.tls.caFile")
}

// The worker registers Onboarding on the task queue, decrypts what the
// starter's client encrypted, and shuts down when its context ends.
func TestWorkerRunsOnboardingWithEncryptedHistory(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cfg := testConfig(t, srv.Address)
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	runCtx, stopWorker := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, cfg, WithLogger(logger)) }()

	c, err := Dial(ctx, cfg, WithLogger(logger))
	require.NoError(t, err)
	defer c.Close()

	const tenant = "11111111-1111-1111-1111-111111111111"
	in := workflows.OnboardingInput{TenantID: tenant, OrgURL: "https://contoso.crm.localhost:1"}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        workflows.WorkflowID(tenant, "contoso.crm.localhost"),
		TaskQueue: workflows.TaskQueue,
	}, workflows.WorkflowType, in)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.TerminateWorkflow(context.Background(), run.GetID(), run.GetRunID(), "test over") })

	// A completed workflow task proves a worker on the queue knows
	// "Onboarding" and could decrypt its input.
	var started *historypb.WorkflowExecutionStartedEventAttributes
	require.Eventually(t, func() bool {
		it := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		completed := false
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return false
			}
			if a := ev.GetWorkflowExecutionStartedEventAttributes(); a != nil {
				started = a
			}
			if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
				completed = true
			}
		}
		return completed
	}, 30*time.Second, 100*time.Millisecond)

	require.NotNil(t, started)
	payloads := started.GetInput().GetPayloads()
	require.Len(t, payloads, 1)
	assert.Equal(t, codec.EncodingEncrypted, string(payloads[0].GetMetadata()[codec.MetadataEncoding]))
	assert.Equal(t, "test", string(payloads[0].GetMetadata()[codec.MetadataKeyID]))
	assert.NotContains(t, string(payloads[0].GetData()), tenant, "input stored in plain text")

	stopWorker()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop after its context was cancelled")
	}
	assert.Contains(t, logs.String(), "worker started")
	assert.Contains(t, logs.String(), "worker stopped")
	for _, secret := range []string{"provisioner-test-secret", cfg.Codec.Keys["test"]} {
		assert.NotContains(t, logs.String(), secret, "a secret reached the logs")
	}
}

func TestConsentSignerFromConfig(t *testing.T) {
	cfg := testConfig(t, "127.0.0.1:1")
	key := bytes.Repeat([]byte{4}, 32)

	deps, err := activityDeps(cfg, nil)
	require.NoError(t, err)
	assert.Nil(t, deps.ConsentSigner, "no callback key: unsigned consent links")

	cfg.Consent.CallbackKey = base64.StdEncoding.EncodeToString(key)
	deps, err = activityDeps(cfg, nil)
	require.NoError(t, err)
	require.NotNil(t, deps.ConsentSigner)
	state, err := deps.ConsentSigner.Sign("onboarding/tid/contoso.crm.localhost", "run-1")
	require.NoError(t, err)
	// The callback builds its signer from the same config: it must accept
	// the worker's states, and one built from another key must not.
	same, err := NewConsentSigner(cfg.Consent)
	require.NoError(t, err)
	claims, err := same.Verify(state)
	require.NoError(t, err)
	assert.Equal(t, "onboarding/tid/contoso.crm.localhost", claims.WorkflowID)
	assert.WithinDuration(t, time.Now().Add(cfg.Consent.StateTTL), claims.Expires, time.Minute, "states live consent.stateTTL")
	other := cfg.Consent
	other.CallbackKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{5}, 32))
	otherSigner, err := NewConsentSigner(other)
	require.NoError(t, err)
	_, err = otherSigner.Verify(state)
	assert.Error(t, err)

	cfg.Consent.CallbackKey = base64.StdEncoding.EncodeToString(key[:20])
	_, err = activityDeps(cfg, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "consent.callbackKey")
	assert.NotContains(t, err.Error(), cfg.Consent.CallbackKey)

	cfg.Consent.CallbackKey = base64.StdEncoding.EncodeToString(key)
	cfg.Consent.StateTTL = 0
	_, err = NewConsentSigner(cfg.Consent)
	assert.ErrorContains(t, err, "consent.stateTTL")
}

// worker.pprofListen serves profiles on loopback while the worker runs, and
// nothing once it stops; without the key nothing listens.
func TestPprofEndpoint(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	quiet := WithLogger(slog.New(slog.DiscardHandler))

	cfg := testConfig(t, srv.Address)
	off, err := New(ctx, cfg, quiet)
	require.NoError(t, err)
	require.NoError(t, off.Start())
	assert.Empty(t, off.PprofAddr(), "profiles are off by default")
	off.Stop()

	cfg.Worker.PprofListen = "127.0.0.1:0"
	cfg.Worker.StickyCacheSize = 10
	app, err := New(ctx, cfg, quiet)
	require.NoError(t, err)
	require.NoError(t, app.Start())
	addr := app.PprofAddr()
	require.NotEmpty(t, addr)

	resp, err := http.Get("http://" + addr + "/debug/pprof/heap?debug=1")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "heap profile")

	app.Stop()
	_, err = http.Get("http://" + addr + "/debug/pprof/")
	assert.Error(t, err, "the endpoint outlived the worker")
}
