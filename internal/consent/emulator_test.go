package consent_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/consent"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/graph"
	"github.com/mktos2s/mktos2s/internal/msapi/emutest"
)

type recorded struct {
	workflowID string
	granted    bool
	note       string
}

// TestCallbackThroughEmulatedEntra runs the whole round trip: the consent
// URL from ConsentURL is opened at the emulated Entra, whose redirect is then
// delivered to the Handler, as the admin's browser would.
func TestCallbackThroughEmulatedEntra(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator")
	}
	e := emutest.StartEmulator(t)
	ctx := context.Background()

	var mu sync.Mutex
	var got []recorded
	signer, err := consent.NewSigner(bytes.Repeat([]byte{7}, 32), time.Hour, nil)
	require.NoError(t, err)
	h := consent.NewHandler(signer, consent.NewMemoryGuard(0, nil), consent.SignalerFunc(
		func(_ context.Context, s consent.Signal) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, recorded{s.WorkflowID, s.Granted, s.Note})
			return nil
		}), nil)
	mux := http.NewServeMux()
	mux.Handle("/consent/callback", h)
	cb := httptest.NewServer(mux)
	t.Cleanup(cb.Close)
	redirect := cb.URL + "/consent/callback"

	gc := graph.New(e.GraphURL(), e.HTTP, e.GraphTokens(emutest.ContosoTenant, e.Provisioner()))
	app, _, err := gc.UpsertApplication(ctx, graph.ApplicationSpec{
		UniqueName: "mktos2s-consent-test", DisplayName: "Marketo Integration", RedirectURIs: []string{redirect},
		RequiredResourceAccess: []graph.RequiredResourceAccess{{ResourceAppID: graph.DynamicsCRMAppID,
			ResourceAccess: []graph.ResourceAccess{{ID: graph.DynamicsUserImpersonationID, Type: "Scope"}}}},
	})
	require.NoError(t, err)

	entra := *e.HTTP
	entra.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	// admin opens the consent link; Entra answers with a redirect to the callback
	openConsent := func(t *testing.T, workflowID string, accept bool) string {
		t.Helper()
		u, err := signer.ConsentURL(e.Server.URL(), emutest.ContosoTenant, app.AppID, redirect, workflowID, "run-1")
		require.NoError(t, err)
		resp, err := emulator.AnswerConsent(t.Context(), &entra, u, accept)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusFound, resp.StatusCode)
		return resp.Header.Get("Location")
	}
	follow := func(t *testing.T, location string) (int, string) {
		t.Helper()
		resp, err := cb.Client().Get(location)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}

	grantedWF := "onboarding/" + emutest.ContosoTenant + "/" + emutest.ContosoOrgHost
	deniedWF := "onboarding/" + emutest.ContosoTenant + "/other.crm.localhost"

	loc := openConsent(t, grantedWF, true)
	status, body := follow(t, loc)
	assert.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, "Consent recorded for "+emutest.ContosoTenant)
	status, _ = follow(t, loc)
	assert.Equal(t, http.StatusForbidden, status, "the same redirect twice is a replay")

	status, body = follow(t, openConsent(t, deniedWF, false))
	assert.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, "Refusal passed on")

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 2)
	assert.Equal(t, recorded{grantedWF, true, ""}, got[0])
	assert.Equal(t, deniedWF, got[1].workflowID)
	assert.False(t, got[1].granted)
	assert.Contains(t, got[1].note, "AADSTS65004")
}
