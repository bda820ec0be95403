package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/consent"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/internal/workerapp"
	"github.com/mktos2s/mktos2s/workflows"
)

// signals counts the admin-consent signals in the history of workflowID:
// what the callback really delivered, whatever its page said.
func signals(ctx context.Context, t *testing.T, c client.Client, workflowID string) int {
	t.Helper()
	n := 0
	it := c.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		if a := e.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == workflows.SignalAdminConsent {
			n++
		}
	}
	return n
}

// callback sends Entra's admin-consent redirect to the callback the way a
// browser would and returns the status and page.
func callback(ctx context.Context, t *testing.T, base string, q url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"?"+q.Encode(), nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// retarget re-encodes the signed payload of state with another workflow ID
// and keeps the original signature: a tampered link.
func retarget(t *testing.T, state, workflowID string) string {
	t.Helper()
	enc, sig, ok := strings.Cut(state, ".")
	require.True(t, ok)
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	require.NoError(t, err)
	var p map[string]any
	require.NoError(t, json.Unmarshal(raw, &p))
	require.Contains(t, p, "w")
	p["w"] = workflowID
	raw, err = json.Marshal(p)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(raw) + "." + sig
}

func TestSignedConsentCallbackEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st := sharedStack(t)
	require.True(t, st.GeneratedCallbackKey, "the test config has no callback key; the stack makes one")
	target := []string{"--tenant-id", consentco.ID, "--org-url", st.Emulator.OrgURL(consentco.OrgHost)}
	id := workflows.WorkflowID(consentco.ID, strings.TrimPrefix(st.Emulator.OrgURL(consentco.OrgHost), "https://"))
	otherID := workflows.WorkflowID(fabrikamTenant, strings.TrimPrefix(st.Emulator.OrgURL("fabrikam.crm.localhost"), "https://"))

	c, err := workerapp.Dial(ctx, st.Config)
	require.NoError(t, err)
	defer c.Close()

	_, _, err = run(ctx, t, st.cfgFile, append([]string{"start"}, target...)...)
	require.NoError(t, err)
	out := eventually(ctx, t, st.cfgFile, func(s string) bool {
		var p workflows.Progress
		return json.Unmarshal([]byte(s), &p) == nil && p.Status == workflows.StatusWaitingConsent
	}, append([]string{"status", "--json"}, target...)...)
	link, err := url.Parse(progressOf(t, out).ConsentURL)
	require.NoError(t, err)
	assert.Equal(t, st.CallbackURL, link.Query().Get("redirect_uri"))
	state := link.Query().Get("state")

	// The worker's state verifies with the stack's key and names this run.
	key, err := st.Config.Consent.CallbackKeyBytes()
	require.NoError(t, err)
	same, err := consent.NewSigner(key, time.Hour, nil)
	require.NoError(t, err)
	claims, err := same.Verify(state)
	require.NoError(t, err)
	assert.Equal(t, id, claims.WorkflowID)
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	require.NoError(t, err)
	assert.Equal(t, d.GetWorkflowExecutionInfo().GetFirstRunId(), claims.RunID, "the link is bound to this run")

	forger, err := consent.NewSigner([]byte(strings.Repeat("a forger's key, 32 bytes or more", 2)), time.Hour, nil)
	require.NoError(t, err)
	forged, err := forger.Sign(id, claims.RunID)
	require.NoError(t, err)
	past, err := consent.NewSigner(key, time.Hour, func() time.Time { return time.Now().Add(-2 * time.Hour) })
	require.NoError(t, err)
	expired, err := past.Sign(id, claims.RunID)
	require.NoError(t, err)
	unkeyed := sha256.Sum256([]byte("mktos2s-consent\x00" + id)) // the state before it was signed

	granted := func(state, tenant string) url.Values {
		return url.Values{"admin_consent": {"True"}, "tenant": {tenant}, "state": {state}}
	}
	rejected := []struct {
		name   string
		query  url.Values
		status int
	}{
		{"no state", url.Values{"admin_consent": {"True"}, "tenant": {consentco.ID}}, http.StatusBadRequest},
		{"the old unkeyed state", granted(hex.EncodeToString(unkeyed[:16]), consentco.ID), http.StatusBadRequest},
		{"forged with another key", granted(forged, consentco.ID), http.StatusForbidden},
		{"tampered to target another onboarding", granted(retarget(t, state, otherID), fabrikamTenant), http.StatusForbidden},
		{"expired", granted(expired, consentco.ID), http.StatusForbidden},
		{"consent given in another tenant", granted(state, fabrikamTenant), http.StatusForbidden},
		{"a denial with a forged state", url.Values{"error": {"access_denied"}, "state": {forged}}, http.StatusForbidden},
	}
	for _, r := range rejected {
		status, page := callback(ctx, t, st.CallbackURL, r.query)
		assert.Equal(t, r.status, status, "%s: %s", r.name, page)
	}
	assert.Zero(t, signals(ctx, t, c, id), "no rejected callback may signal the onboarding")
	p := progressOf(t, eventually(ctx, t, st.cfgFile, func(string) bool { return true }, append([]string{"status", "--json"}, target...)...))
	assert.Equal(t, workflows.StatusWaitingConsent, p.Status, "the run keeps waiting")

	// The admin clicks Accept on the (emulated) Entra page, which redirects the
	// browser to the callback with the state of the link.
	browser, err := msapi.NewHTTPClient(msapi.HTTPOptions{CAFile: st.Emulator.CAFile()})
	require.NoError(t, err)
	browser.CheckRedirect = nil // a browser follows the redirect; it carries no credential
	resp, err := emulator.AnswerConsent(ctx, browser, link.String(), true)
	require.NoError(t, err)
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(page))
	assert.Equal(t, "/consent/callback", resp.Request.URL.Path)
	assert.Contains(t, string(page), "Consent recorded")
	assert.Equal(t, 1, signals(ctx, t, c, id))

	status, replay := callback(ctx, t, st.CallbackURL, resp.Request.URL.Query())
	assert.Equal(t, http.StatusForbidden, status, replay)
	assert.Contains(t, replay, "already been used")
	assert.Equal(t, 1, signals(ctx, t, c, id), "a replay sends nothing")

	eventually(ctx, t, st.cfgFile, func(s string) bool { return strings.Contains(s, "(Completed)") },
		append([]string{"status"}, target...)...)

	t.Run("starter serve", func(t *testing.T) {
		serveYAML := func(key string) string {
			return fmt.Sprintf(`codec:
  keys:
    test: %s
temporal:
  address: %s
consent:
  redirectURI: http://127.0.0.1:8082/consent/callback
  callbackKey: %q
log:
  level: warn
  format: text
`, testKey, st.Config.Temporal.Address, key)
		}
		_, _, err := run(ctx, t, writeConfig(t, serveYAML("")), "serve", "--callback-listen", "127.0.0.1:0")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "consent.callbackKey is not set")

		sctx, stop := context.WithCancel(ctx)
		defer stop()
		endpoint, done := serving(sctx, t, "consent callback listening on ",
			"--config", writeConfig(t, serveYAML(st.Config.Consent.CallbackKey)), "serve", "--callback-listen", "127.0.0.1:0")
		require.True(t, strings.HasSuffix(endpoint, "/consent/callback"), endpoint)

		status, page := callback(ctx, t, endpoint, granted(forged, consentco.ID))
		assert.Equal(t, http.StatusForbidden, status, page)
		// A valid link for an onboarding that has finished: Temporal's
		// NotFound reaches the admin as "no longer running".
		fresh, err := same.Sign(id, claims.RunID)
		require.NoError(t, err)
		status, page = callback(ctx, t, endpoint, granted(fresh, consentco.ID))
		assert.Equal(t, http.StatusGone, status, page)
		assert.Contains(t, page, "no longer running")
		assert.Equal(t, 1, signals(ctx, t, c, id))

		stop()
		require.NoError(t, <-done)
	})
}
