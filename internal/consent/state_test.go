package consent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testTenant = "11111111-1111-1111-1111-111111111111"
	testHost   = "contoso.crm.localhost"
	testWFID   = "onboarding/" + testTenant + "/" + testHost
	testRunID  = "0198c3a1-7f2e-7c3b-9a51-2f4d1e6b8c90"
	testTTL    = time.Hour
)

var (
	testKey  = bytes.Repeat([]byte{0x5a}, MinKeyBytes)
	otherKey = bytes.Repeat([]byte{0xa5}, MinKeyBytes)
	t0       = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// clock is a settable fake clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time                { return c.t }
func (c *clock) advance(d time.Duration)       { c.t = c.t.Add(d) }
func newClock() *clock                         { return &clock{t: t0} }
func newSigner(t testing.TB, c *clock) *Signer { return newSignerKey(t, c, testKey) }

func newSignerKey(t testing.TB, c *clock, key []byte) *Signer {
	t.Helper()
	s, err := NewSigner(key, testTTL, c.now)
	require.NoError(t, err)
	return s
}

func TestNewSignerRejectsBadSettings(t *testing.T) {
	secretish := bytes.Repeat([]byte("k"), MinKeyBytes-1)
	tests := []struct {
		name string
		key  []byte
		ttl  time.Duration
		want string
	}{
		{"nil key", nil, testTTL, "consent.callbackKey"},
		{"31-byte key", secretish, testTTL, "consent.callbackKey"},
		{"zero ttl", testKey, 0, "lifetime"},
		{"negative ttl", testKey, -time.Minute, "lifetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSigner(tt.key, tt.ttl, nil)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.Contains(t, err.Error(), tt.want)
			if len(tt.key) > 0 {
				assert.NotContains(t, err.Error(), string(tt.key), "the key must not appear in the error")
			}
		})
	}
}

func TestSignerCopiesKey(t *testing.T) {
	c := newClock()
	key := bytes.Clone(testKey)
	s := newSignerKey(t, c, key)
	state, err := s.Sign(testWFID, testRunID)
	require.NoError(t, err)
	key[0] ^= 0xff // the caller reusing its buffer must not change the signer
	_, err = s.Verify(state)
	assert.NoError(t, err)
}

func TestSignVerifyRoundTrip(t *testing.T) {
	c := newClock()
	s := newSigner(t, c)
	state, err := s.Sign(testWFID, testRunID)
	require.NoError(t, err)

	got, err := s.Verify(state)
	require.NoError(t, err)
	assert.Equal(t, testWFID, got.WorkflowID)
	assert.Equal(t, testTenant, got.TenantID)
	assert.Equal(t, testHost, got.OrgHost)
	assert.Equal(t, t0.Add(testTTL), got.Expires)
	assert.NotEmpty(t, got.Nonce)
}

func TestStateIsURLSafeAndCarriesOnlyPublicData(t *testing.T) {
	s := newSigner(t, newClock())
	state, err := s.Sign(testWFID, testRunID)
	require.NoError(t, err)

	assert.Regexp(t, regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`), state)
	assert.Equal(t, state, url.QueryEscape(state), "needs no escaping in a query")
	assert.Less(t, len(state), 400)

	enc, _, _ := strings.Cut(state, ".")
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	require.NoError(t, err)
	var fields map[string]any
	require.NoError(t, json.Unmarshal(raw, &fields))
	assert.ElementsMatch(t, []string{"w", "r", "e", "n"}, keys(fields))
	assert.Equal(t, testWFID, fields["w"])
	assert.Equal(t, testRunID, fields["r"], "the link is bound to its run, not only to the reusable workflow ID")
	assert.EqualValues(t, t0.Add(testTTL).Unix(), fields["e"])
	assert.NotContains(t, string(raw), string(testKey))
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestSignUsesFreshNonces(t *testing.T) {
	s := newSigner(t, newClock())
	seen := map[string]bool{}
	for range 50 {
		state, err := s.Sign(testWFID, testRunID)
		require.NoError(t, err)
		c, err := s.Verify(state)
		require.NoError(t, err)
		require.False(t, seen[c.Nonce], "nonce repeated")
		seen[c.Nonce] = true
	}
}

func TestSignRejectsForeignWorkflowIDs(t *testing.T) {
	s := newSigner(t, newClock())
	for _, id := range []string{"", "onboarding", "onboarding//host", "onboarding/tenant/", "other/t/h", "onboarding/t/h/extra"} {
		_, err := s.Sign(id, testRunID)
		assert.ErrorIs(t, err, ErrMalformed, "workflow ID %q", id)
	}
}

// resign builds a correctly signed state around an arbitrary payload, to
// reach the checks that run after the signature.
func resign(key []byte, raw string) string {
	s := &Signer{key: key}
	return b64.EncodeToString([]byte(raw)) + "." + b64.EncodeToString(s.mac([]byte(raw)))
}

func TestVerifyRejects(t *testing.T) {
	c := newClock()
	s := newSigner(t, c)
	good, err := s.Sign(testWFID, testRunID)
	require.NoError(t, err)
	enc, sig, _ := strings.Cut(good, ".")
	forged, err := newSignerKey(t, c, otherKey).Sign(testWFID, testRunID)
	require.NoError(t, err)

	raw, err := base64.RawURLEncoding.DecodeString(enc)
	require.NoError(t, err)
	otherWF := strings.Replace(string(raw), testHost, "evil.crm.localhost", 1)
	require.NotEqual(t, string(raw), otherWF)
	flipped := []byte(sig)
	flipped[0] = map[bool]byte{true: 'B', false: 'A'}[flipped[0] == 'A']

	tests := []struct {
		name  string
		state string
		want  error
	}{
		{"forged with another key", forged, ErrBadSignature},
		{"payload swapped for another workflow", b64.EncodeToString([]byte(otherWF)) + "." + sig, ErrBadSignature},
		{"signature altered", enc + "." + string(flipped), ErrBadSignature},
		{"signature of another state", enc + "." + strings.SplitN(forged, ".", 2)[1], ErrBadSignature},
		{"empty", "", ErrMalformed},
		{"no dot", enc, ErrMalformed},
		{"empty signature", enc + ".", ErrMalformed},
		{"empty payload", "." + sig, ErrMalformed},
		{"three parts", good + ".x", ErrMalformed},
		{"not base64", "!!!." + sig, ErrMalformed},
		{"padded base64", enc + "." + sig + "=", ErrMalformed},
		{"short signature", enc + "." + sig[:20], ErrMalformed},
		{"huge", strings.Repeat("A", 5000) + "." + sig, ErrMalformed},
		{"signed but not JSON", resign(testKey, "hello"), ErrMalformed},
		{"signed but no nonce", resign(testKey, `{"w":"`+testWFID+`","e":9999999999}`), ErrMalformed},
		{"signed but unknown field", resign(testKey, `{"w":"`+testWFID+`","e":9999999999,"n":"x","admin":true}`), ErrMalformed},
		{"signed but foreign workflow ID", resign(testKey, `{"w":"x","e":9999999999,"n":"x"}`), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Verify(tt.state)
			require.ErrorIs(t, err, tt.want)
			for _, other := range []error{ErrMalformed, ErrBadSignature, ErrExpired} {
				if other != tt.want {
					assert.NotErrorIs(t, err, other)
				}
			}
			if len(tt.state) > 20 {
				assert.NotContains(t, err.Error(), tt.state, "the state must not be echoed")
			}
		})
	}
}

func TestVerifyExpiry(t *testing.T) {
	tests := []struct {
		name    string
		elapsed time.Duration
		expired bool
	}{
		{"fresh", 0, false},
		{"one second before expiry", testTTL - time.Second, false},
		{"at expiry", testTTL, true},
		{"long after", 30 * 24 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			s := newSigner(t, c)
			state, err := s.Sign(testWFID, testRunID)
			require.NoError(t, err)
			c.advance(tt.elapsed)
			got, err := s.Verify(state)
			if !tt.expired {
				assert.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrExpired)
			assert.Equal(t, testWFID, got.WorkflowID, "claims are returned with ErrExpired")
			assert.Equal(t, t0.Add(testTTL), got.Expires)
		})
	}
}

func TestConsentURL(t *testing.T) {
	s := newSigner(t, newClock())
	const clientID = "0f9c1d2e-0000-4000-8000-000000000abc"
	tests := []struct {
		name, authority, redirect, wantPrefix string
	}{
		{"public cloud by default", "", "https://mktos2s.example.com/consent/callback", "https://login.microsoftonline.com/" + testTenant + "/adminconsent?"},
		{"emulator with trailing slash", "https://127.0.0.1:8443/", "http://127.0.0.1:8090/consent/callback", "https://127.0.0.1:8443/" + testTenant + "/adminconsent?"},
		{"redirect with its own query", "https://login.microsoftonline.com", "https://cb.example.com/cb?x=1&y=a+b", "https://login.microsoftonline.com/" + testTenant + "/adminconsent?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			redirect := tt.redirect
			got, err := s.ConsentURL(tt.authority, strings.ToUpper(testTenant), clientID, redirect, testWFID, testRunID)
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(strings.ToLower(got), strings.ToLower(tt.wantPrefix)), got)
			u, err := url.Parse(got)
			require.NoError(t, err)
			q := u.Query()
			assert.Len(t, q, 3)
			assert.Equal(t, clientID, q.Get("client_id"))
			assert.Equal(t, redirect, q.Get("redirect_uri"), "the redirect URI survives escaping")
			c, err := s.Verify(q.Get("state"))
			require.NoError(t, err)
			assert.Equal(t, testWFID, c.WorkflowID)
		})
	}
}

func TestConsentURLRejects(t *testing.T) {
	s := newSigner(t, newClock())
	const cb = "https://mktos2s.example.com/consent/callback"
	tests := []struct {
		name, authority, tenant, client, redirect, wfID, want string
	}{
		{"http authority", "http://login.microsoftonline.com", testTenant, "c", cb, testWFID, "authority host"},
		{"authority with query", "https://login.microsoftonline.com/?x=1", testTenant, "c", cb, testWFID, "authority host"},
		{"relative redirect", "", testTenant, "c", "/consent/callback", testWFID, "consent.redirectURI"},
		{"empty redirect", "", testTenant, "c", "", testWFID, "consent.redirectURI"},
		{"redirect with fragment", "", testTenant, "c", cb + "#x", testWFID, "consent.redirectURI"},
		{"no client ID", "", testTenant, " ", cb, testWFID, "client"},
		{"tenant of another workflow", "", "22222222-2222-2222-2222-222222222222", "c", cb, testWFID, "not the tenant"},
		{"foreign workflow ID", "", testTenant, "c", cb, "x/y", "onboarding/<tenant ID>/<org host>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ConsentURL(tt.authority, tt.tenant, tt.client, tt.redirect, tt.wfID, testRunID)
			require.Error(t, err)
			assert.Empty(t, got)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// The state names the run it was made for, so a link of a cancelled run does
// not pass for one of a later run of the same tenant and org; links signed
// before runs were bound still verify, without a run.
func TestStateBindsTheRun(t *testing.T) {
	c := newClock()
	s := newSigner(t, c)
	state, err := s.Sign(testWFID, testRunID)
	require.NoError(t, err)
	got, err := s.Verify(state)
	require.NoError(t, err)
	assert.Equal(t, testRunID, got.RunID)

	for _, bad := range []string{"", "run id with spaces", strings.Repeat("a", 65), "run\u202e"} {
		_, err := s.Sign(testWFID, bad)
		assert.ErrorIs(t, err, ErrMalformed, "run ID %q", bad)
	}

	// A state as signed before this change: {"w","e","n"} only.
	old, err := json.Marshal(map[string]any{"w": testWFID, "e": t0.Add(testTTL).Unix(), "n": "bm9uY2U"})
	require.NoError(t, err)
	legacy := b64.EncodeToString(old) + "." + b64.EncodeToString(s.mac(old))
	got, err = s.Verify(legacy)
	require.NoError(t, err)
	assert.Empty(t, got.RunID)
	assert.Equal(t, testWFID, got.WorkflowID)

	// A signed run that is not a run ID is refused as malformed.
	odd, err := json.Marshal(map[string]any{"w": testWFID, "r": "<b>", "e": t0.Add(testTTL).Unix(), "n": "bm9uY2U"})
	require.NoError(t, err)
	_, err = s.Verify(b64.EncodeToString(odd) + "." + b64.EncodeToString(s.mac(odd)))
	assert.ErrorIs(t, err, ErrMalformed)
}

// FuzzVerify: no input makes Verify panic, accept what it did not sign, or
// return claims that do not parse as the workflow ID they came from.
func FuzzVerify(f *testing.F) {
	s := newSigner(f, newClock())
	good, err := s.Sign(testWFID, testRunID)
	require.NoError(f, err)
	for _, seed := range []string{good, "", ".", "a.b", good + "x", strings.Replace(good, ".", "..", 1),
		"eyJ3IjoiIn0." + strings.Repeat("A", 43), strings.Repeat("A", maxStateLen+1)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, state string) {
		c, err := s.Verify(state)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrExpired) {
				t.Fatalf("Verify(%q): untyped error %v", state, err)
			}
			if strings.Contains(err.Error(), state) && len(state) > 8 {
				t.Fatalf("Verify's error echoes the state: %v", err)
			}
			return
		}
		// Only a signed payload verifies, in exactly one spelling (strict
		// base64url): the state must be its payload and that payload's MAC.
		enc, _, _ := strings.Cut(state, ".")
		p, derr := b64.DecodeString(enc)
		if derr != nil || state != b64.EncodeToString(p)+"."+b64.EncodeToString(s.mac(p)) {
			t.Fatalf("Verify accepted %q, which was never signed", state)
		}
		if tenant, host, err := splitWorkflowID(c.WorkflowID); err != nil || tenant != c.TenantID || host != c.OrgHost {
			t.Fatalf("claims %+v do not match their workflow ID", c)
		}
	})
}
