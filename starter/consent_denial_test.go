package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/consent"
	"github.com/mktos2s/mktos2s/internal/testenv"
	"github.com/mktos2s/mktos2s/internal/workerapp"
	"github.com/mktos2s/mktos2s/workflows"
)

// denyco is onboarded while its consent link is abused.
var denyco = testenv.Tenant{From: contosoTenant, ID: "c0000000-0000-4000-8000-000000000004", DisplayName: "Denyco", OrgHost: "denyco.crm.localhost"}

// Whoever holds a consent link cannot end the onboarding with it: a denial
// sent to the callback is recorded and shown by `starter status` while the
// onboarding keeps waiting; a replay or a forged one is refused; and after
// the onboarding is cancelled and started again, a link of the earlier run
// is refused with a page that says so.
func TestConsentLinkIsNoKillSwitch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	st := sharedStack(t)
	orgURL := st.Emulator.OrgURL(denyco.OrgHost)
	target := []string{"--tenant-id", denyco.ID, "--org-url", orgURL}
	id := workflows.WorkflowID(denyco.ID, strings.TrimPrefix(orgURL, "https://"))
	c, err := workerapp.Dial(ctx, st.Config)
	require.NoError(t, err)
	defer c.Close()
	key, err := st.Config.Consent.CallbackKeyBytes()
	require.NoError(t, err)
	signer, err := consent.NewSigner(key, time.Hour, nil)
	require.NoError(t, err)

	waitingLink := func() (string, consent.Claims) {
		out := eventually(ctx, t, st.cfgFile, func(s string) bool {
			var p workflows.Progress
			return json.Unmarshal([]byte(s), &p) == nil && p.Status == workflows.StatusWaitingConsent && p.ConsentURL != ""
		}, append([]string{"status", "--json"}, target...)...)
		link, err := url.Parse(progressOf(t, out).ConsentURL)
		require.NoError(t, err)
		state := link.Query().Get("state")
		claims, err := signer.Verify(state)
		require.NoError(t, err)
		return state, claims
	}
	denial := func(state string) url.Values {
		return url.Values{"error": {"access_denied"}, "state": {state},
			"error_description": {"AADSTS65004: User declined to consent.\x1b[2J\x1b]52;c;ZXZpbA==\x07"}}
	}

	_, _, err = run(ctx, t, st.cfgFile, append([]string{"start"}, target...)...)
	require.NoError(t, err)
	state, first := waitingLink()

	status, page := callback(ctx, t, st.CallbackURL, denial(state))
	require.Equal(t, http.StatusOK, status, page)
	assert.Contains(t, page, "Refusal passed on")
	status, page = callback(ctx, t, st.CallbackURL, denial(state))
	assert.Equal(t, http.StatusForbidden, status, "a replayed denial: %s", page)
	forger, err := consent.NewSigner([]byte(strings.Repeat("a forger's key, 32 bytes or more", 2)), time.Hour, nil)
	require.NoError(t, err)
	forged, err := forger.Sign(id, first.RunID)
	require.NoError(t, err)
	status, page = callback(ctx, t, st.CallbackURL, denial(forged))
	assert.Equal(t, http.StatusForbidden, status, "a forged denial: %s", page)
	assert.Equal(t, 1, signals(ctx, t, c, id), "only the genuine link's first use signals")

	// The onboarding keeps waiting, and status shows the denial, inert.
	out := eventually(ctx, t, st.cfgFile, func(s string) bool {
		var p workflows.Progress
		return json.Unmarshal([]byte(s), &p) == nil && p.ConsentDenial != ""
	}, append([]string{"status", "--json"}, target...)...)
	p := progressOf(t, out)
	assert.Equal(t, workflows.StepAwaitingAdminConsent, p.Step)
	assert.Equal(t, workflows.StatusWaitingConsent, p.Status)
	text, _, _ := run(ctx, t, st.cfgFile, append([]string{"status"}, target...)...)
	assert.Contains(t, text, "(Running)")
	assert.Contains(t, text, "denial reported by the consent page")
	assert.Contains(t, text, "AADSTS65004: User declined to consent.")
	assert.NotContains(t, text, "\x1b", "the denial's text reaches the terminal inert")
	assert.NotContains(t, text, "\x07")

	// Cancelled and started again: an unused link of the first run is refused.
	_, _, err = run(ctx, t, st.cfgFile, append([]string{"cancel"}, target...)...)
	require.NoError(t, err)
	_, _, err = run(ctx, t, st.cfgFile, append([]string{"start"}, target...)...)
	require.NoError(t, err)
	_, second := waitingLink()
	require.NotEqual(t, first.RunID, second.RunID)
	earlier, err := signer.Sign(id, first.RunID)
	require.NoError(t, err)
	status, page = callback(ctx, t, st.CallbackURL, denial(earlier))
	assert.Equal(t, http.StatusGone, status, page)
	assert.Contains(t, page, "belongs to an earlier onboarding")
	assert.Zero(t, signals(ctx, t, c, id), "the new run got no signal")

	_, _, err = run(ctx, t, st.cfgFile, append([]string{"cancel"}, target...)...)
	require.NoError(t, err)
}
