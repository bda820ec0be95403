package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/mktos2s/mktos2s/internal/config"
	"github.com/mktos2s/mktos2s/internal/consent"
	"github.com/mktos2s/mktos2s/internal/workerapp"
	"github.com/mktos2s/mktos2s/workflows"
)

type sentSignal struct {
	workflowID, runID, name string
	arg                     any
}

// fakeSignaler records signals and answers err. Its workflow runs as run
// "run-2" of the chain that started as firstRun ("run-1" when empty);
// status is its latest run's status (running when zero); describeErr fails
// the describe.
type fakeSignaler struct {
	mu          sync.Mutex
	sent        []sentSignal
	err         error
	firstRun    string
	status      enumspb.WorkflowExecutionStatus
	describeErr error
}

func (f *fakeSignaler) DescribeWorkflowExecution(_ context.Context, workflowID, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	if f.describeErr != nil {
		return nil, f.describeErr
	}
	first, status := f.firstRun, f.status
	if first == "" {
		first = "run-1"
	}
	if status == enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED {
		status = enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
		Execution: &commonpb.WorkflowExecution{WorkflowId: workflowID, RunId: "run-2"}, FirstRunId: first, Status: status}}, nil
}

func (f *fakeSignaler) SignalWorkflow(_ context.Context, workflowID, runID, name string, arg any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, sentSignal{workflowID, runID, name, arg})
	return f.err
}

func (f *fakeSignaler) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent)
}

func TestConsentSignaler(t *testing.T) {
	notFound := serviceerror.NewNotFound("workflow execution already completed")
	tests := []struct {
		name        string
		f           *fakeSignaler
		runID       string
		wantErr     error // nil: delivered
		wantCause   error
		wantSignals int
	}{
		{name: "delivered to the run of the link", f: &fakeSignaler{}, runID: "run-1", wantSignals: 1},
		{name: "a link signed before runs were bound", f: &fakeSignaler{}, wantSignals: 1},
		{name: "a link of another run", f: &fakeSignaler{firstRun: "run-7"}, runID: "run-1", wantErr: consent.ErrOtherRun},
		{name: "latest run closed", f: &fakeSignaler{status: enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED}, runID: "run-1", wantErr: consent.ErrUnknownWorkflow},
		{name: "unknown workflow", f: &fakeSignaler{describeErr: notFound}, runID: "run-1", wantErr: consent.ErrUnknownWorkflow, wantCause: notFound},
		{name: "closed between describe and signal", f: &fakeSignaler{err: notFound}, runID: "run-1", wantErr: consent.ErrUnknownWorkflow, wantCause: notFound, wantSignals: 1},
		{name: "Temporal unavailable", f: &fakeSignaler{err: serviceerror.NewUnavailable("connection refused")}, runID: "run-1", wantSignals: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := consentSignaler(tt.f).SignalConsent(context.Background(),
				consent.Signal{WorkflowID: "onboarding/t/h", RunID: tt.runID, Granted: false, By: "by", Note: "note"})
			switch {
			case tt.wantErr != nil:
				assert.ErrorIs(t, err, tt.wantErr)
			case tt.f.err != nil:
				assert.ErrorIs(t, err, tt.f.err, "the cause stays visible for the log")
				assert.False(t, errors.Is(err, consent.ErrUnknownWorkflow))
			default:
				assert.NoError(t, err)
			}
			if tt.wantCause != nil {
				assert.ErrorIs(t, err, tt.wantCause, "the cause stays visible for the log")
			}
			require.Len(t, tt.f.sent, tt.wantSignals)
			if tt.wantSignals > 0 {
				assert.Equal(t, sentSignal{"onboarding/t/h", "run-2", workflows.SignalAdminConsent,
					workflows.ConsentSignal{Granted: false, By: "by", Note: "note", Source: workflows.ConsentSourceCallback, RunID: tt.runID}},
					tt.f.sent[0], "the run just described is signalled")
			}
		})
	}
}

func callbackConfig(key []byte) config.Consent {
	c := config.Consent{RedirectURI: "http://127.0.0.1:8082/consent/callback", StateTTL: time.Hour}
	if key != nil {
		c.CallbackKey = base64.StdEncoding.EncodeToString(key)
	}
	return c
}

func TestCallbackHandlerNeedsAKey(t *testing.T) {
	_, _, err := callbackHandler(callbackConfig(nil), &fakeSignaler{}, nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "consent.callbackKey")
	assert.Contains(t, err.Error(), "openssl rand -base64 32")
}

func TestCallbackHandlerAcceptsOnlySignedLinksOnce(t *testing.T) {
	const wfID = "onboarding/11111111-1111-1111-1111-111111111111/contoso.crm.localhost"
	key := bytes.Repeat([]byte{6}, 32)
	cfg := callbackConfig(key)
	f := &fakeSignaler{}
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h, path, err := callbackHandler(cfg, f, nil, next)
	require.NoError(t, err)
	assert.Equal(t, "/consent/callback", path)

	// The worker's signer, built from the same configuration.
	signer, err := workerapp.NewConsentSigner(cfg)
	require.NoError(t, err)
	state, err := signer.Sign(wfID, "run-1")
	require.NoError(t, err)
	forger, err := consent.NewSigner(bytes.Repeat([]byte{7}, 32), time.Hour, nil)
	require.NoError(t, err)
	forged, err := forger.Sign(wfID, "run-1")
	require.NoError(t, err)

	get := func(p, state string) int {
		q := url.Values{"admin_consent": {"True"}, "tenant": {"11111111-1111-1111-1111-111111111111"}}
		if state != "" {
			q.Set("state", state)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p+"?"+q.Encode(), nil))
		return rec.Code
	}
	steps := []struct {
		name, path, state string
		status, signals   int
	}{
		{"other paths go to the next handler", "/decode", state, http.StatusTeapot, 0},
		{"no state", path, "", http.StatusBadRequest, 0},
		{"the old unkeyed state", path, "4f1c0d3e9a7b2c5d6e8f0a1b2c3d4e5f", http.StatusBadRequest, 0},
		{"signed with another key", path, forged, http.StatusForbidden, 0},
		{"signed by the worker", path, state, http.StatusOK, 1},
		{"replayed", path, state, http.StatusForbidden, 1},
	}
	for _, s := range steps {
		assert.Equal(t, s.status, get(s.path, s.state), s.name)
		assert.Equal(t, s.signals, f.count(), "signals after %q", s.name)
	}
}

func TestCheckRedirectReachable(t *testing.T) {
	tests := []struct {
		redirect string
		ok       bool
	}{
		{config.DefaultRedirectURI, false},
		{"https://login.microsoftonline.com/somewhere", false},
		{"https://127.0.0.1:8443/consent/callback", false}, // the emulator's own host (authorityHost)
		{"http://127.0.0.1:8082/consent/callback", true},
		{"https://mktos2s.example.com/consent/callback", true},
	}
	for _, tt := range tests {
		cfg := config.Config{
			Consent:   config.Consent{RedirectURI: tt.redirect},
			Microsoft: config.Microsoft{AuthorityHost: "https://127.0.0.1:8443"},
		}
		err := checkRedirectReachable(cfg)
		if tt.ok {
			assert.NoError(t, err, tt.redirect)
			continue
		}
		require.Error(t, err, tt.redirect)
		assert.Contains(t, err.Error(), "consent.redirectURI")
	}
}
