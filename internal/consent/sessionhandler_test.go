package consent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type recordingSession struct{ got []SessionSignal }

func (r *recordingSession) SignalSession(_ context.Context, s SessionSignal) error {
	r.got = append(r.got, s)
	return nil
}

func (r *recordingSession) Next(context.Context, string) (string, string, error) { return "", "", nil }

// Entra's admin-consent refusal (admin_consent=True beside
// error=consent_required) is an error first: passed on, never continued to
// the sign-in, and the page says how to get past it; Entra's text is inert.
func TestSessionCallbackConsentRefused(t *testing.T) {
	signer, err := NewSigner([]byte(strings.Repeat("k", MinKeyBytes)), time.Hour, nil)
	require.NoError(t, err)
	state, err := signer.Sign(testWFID, testRunID)
	require.NoError(t, err)
	be := &recordingSession{}
	h := &SessionHandler{Signer: signer, Guard: NewMemoryGuard(0, nil), Backend: be, ClientID: "prov", RedirectURI: "https://cb.example/consent/session", Scope: "s"}
	q := url.Values{"admin_consent": {"True"}, "error": {"consent_required"}, "state": {state},
		"error_description": {"AADSTS65004: The organization's consent policy does not allow granting this application.<script>x</script>"}}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/consent/session?"+q.Encode(), nil))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Empty(t, w.Header().Get("Location"), "not continued to the sign-in")
	body := w.Body.String()
	assert.Contains(t, body, "Consent not granted")
	assert.Contains(t, body, "Enterprise applications &gt; Consent and permissions")
	assert.NotContains(t, body, "<script>")
	require.Len(t, be.got, 1)
	assert.Equal(t, "consent_required", be.got[0].Error)
	assert.Contains(t, be.got[0].ErrorDescription, "AADSTS65004")
}
