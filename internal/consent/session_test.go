package consent

import (
	"crypto/sha256"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSessionURLsAndVerifier(t *testing.T) {
	key := []byte(strings.Repeat("k", MinKeyBytes))
	s, err := NewSigner(key, time.Hour, nil)
	require.NoError(t, err)
	const wf = "onboarding/77777777-7777-7777-7777-777777777777/northwind.crm.localhost"
	const redirect = "https://mktos2s.example/consent/session"
	const run = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"

	c, err := s.SessionConsentURL("https://login.example", "77777777-7777-7777-7777-777777777777", "prov", redirect, wf, run)
	require.NoError(t, err)
	u, _ := url.Parse(c)
	assert.Equal(t, "/77777777-7777-7777-7777-777777777777/v2.0/adminconsent", u.Path)
	assert.Equal(t, ProvisionerConsentScope, u.Query().Get("scope"))
	_, err = s.Verify(u.Query().Get("state"))
	require.NoError(t, err)

	a, err := s.SignInURL("https://login.example", "77777777-7777-7777-7777-777777777777", "prov", redirect, wf, run, "https://service.powerapps.com//user_impersonation offline_access")
	require.NoError(t, err)
	u, _ = url.Parse(a)
	q := u.Query()
	assert.Equal(t, "/77777777-7777-7777-7777-777777777777/oauth2/v2.0/authorize", u.Path)
	assert.Equal(t, "S256", q.Get("code_challenge_method"))
	claims, err := s.Verify(q.Get("state"))
	require.NoError(t, err)
	v := s.Verifier(wf, claims.Nonce)
	assert.Len(t, v, 43, "RFC 7636: 43..128 characters")
	sum := sha256.Sum256([]byte(v))
	assert.Equal(t, b64.EncodeToString(sum[:]), q.Get("code_challenge"), "the challenge is S256 of the verifier the worker recomputes")
	assert.NotContains(t, a, v, "the verifier never travels")
	assert.NotEqual(t, v, s.Verifier(wf, claims.Nonce+"x"))
	other, _ := NewSigner([]byte(strings.Repeat("o", MinKeyBytes)), time.Hour, nil)
	assert.NotEqual(t, v, other.Verifier(wf, claims.Nonce), "the verifier needs the callback key")
}

func TestSealCode(t *testing.T) {
	s, _ := NewSigner([]byte(strings.Repeat("k", MinKeyBytes)), time.Hour, nil)
	sealed, err := s.SealCode("the-code", "onboarding/t/h")
	require.NoError(t, err)
	assert.NotContains(t, sealed, "the-code")
	got, err := s.OpenCode(sealed, "onboarding/t/h")
	require.NoError(t, err)
	assert.Equal(t, "the-code", got)
	_, err = s.OpenCode(sealed, "onboarding/t/other")
	assert.Error(t, err, "bound to its workflow")
	other, _ := NewSigner([]byte(strings.Repeat("o", MinKeyBytes)), time.Hour, nil)
	_, err = other.OpenCode(sealed, "onboarding/t/h")
	assert.Error(t, err)
	_, err = s.OpenCode("!!", "onboarding/t/h")
	assert.Error(t, err)
}

func TestSessionRedirectURI(t *testing.T) {
	got, err := SessionRedirectURI("http://127.0.0.1:8088/consent/callback?x=1")
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:8088/consent/session", got)
	_, err = SessionRedirectURI("/relative")
	assert.Error(t, err)
}

// FuzzOpenCode: a sealed code from outside (the signal) never panics and
// opens only when it was sealed for that workflow.
func FuzzOpenCode(f *testing.F) {
	s, _ := NewSigner([]byte(strings.Repeat("k", MinKeyBytes)), time.Hour, nil)
	good, _ := s.SealCode("code", "onboarding/t/h")
	f.Add(good, "onboarding/t/h")
	f.Add("", "")
	f.Add("AAAA", "onboarding/t/h")
	f.Fuzz(func(t *testing.T, sealed, wf string) {
		got, err := s.OpenCode(sealed, wf)
		// Only a sealing of "code" for this workflow opens (the seed's good
		// value is sealed again, with a new nonce, in each fuzz process).
		if err == nil && (wf != "onboarding/t/h" || got != "code") {
			t.Fatalf("opened %q for %q", sealed, wf)
		}
	})
}

// FuzzSessionRedirectURI never panics on a configured URI.
func FuzzSessionRedirectURI(f *testing.F) {
	f.Add("http://127.0.0.1:8088/consent/callback")
	f.Add("https://x/")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		if got, err := SessionRedirectURI(in); err == nil && !strings.HasSuffix(got, "/session") {
			t.Fatalf("%q -> %q", in, got)
		}
	})
}
