package consent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type signal = Signal

// fakeSignaler records signals; errs are returned by the next calls, in order.
type fakeSignaler struct {
	mu   sync.Mutex
	sent []signal
	errs []error
}

func (f *fakeSignaler) SignalConsent(_ context.Context, s Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return err
	}
	f.sent = append(f.sent, s)
	return nil
}

func (f *fakeSignaler) signals() []signal {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]signal(nil), f.sent...)
}

type fixture struct {
	clock  *clock
	signer *Signer
	sig    *fakeSignaler
	h      *Handler
	logs   *bytes.Buffer
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	c := newClock()
	s := newSigner(t, c)
	sig := &fakeSignaler{}
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	return &fixture{clock: c, signer: s, sig: sig, logs: logs, h: NewHandler(s, NewMemoryGuard(100, c.now), sig, log)}
}

func (f *fixture) state(t testing.TB, workflowID string) string {
	t.Helper()
	st, err := f.signer.Sign(workflowID, testRunID)
	require.NoError(t, err)
	return st
}

func (f *fixture) do(method string, q url.Values) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "/consent/callback?"+q.Encode(), nil)
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

func granted(state, tenant string) url.Values {
	return url.Values{"admin_consent": {"True"}, "tenant": {tenant}, "state": {state}}
}

func denied(state, desc string) url.Values {
	return url.Values{"error": {"access_denied"}, "error_description": {desc}, "state": {state}}
}

// with sets k to v in q; plus adds v as a further value of k.
func with(q url.Values, k, v string) url.Values { q.Set(k, v); return q }
func plus(q url.Values, k, v string) url.Values { q.Add(k, v); return q }

func TestCallbackAccepts(t *testing.T) {
	const (
		desc   = "AADSTS65004: User declined to consent to access the app."
		policy = "AADSTS65004: The organization's consent policy does not allow granting this application."
	)
	tests := []struct {
		name     string
		query    func(state string) url.Values
		want     signal
		wantPage string
	}{
		{"granted", func(s string) url.Values { return granted(s, testTenant) },
			signal{testWFID, testRunID, true, SignalBy + " (tenant " + testTenant + ")", ""}, "Consent recorded for " + testTenant + "; you can close this tab."},
		{"granted, tenant in upper case", func(s string) url.Values { return granted(s, strings.ToUpper(testTenant)) },
			signal{testWFID, testRunID, true, SignalBy + " (tenant " + testTenant + ")", ""}, "Consent recorded for " + testTenant},
		{"admin_consent in lower case", func(s string) url.Values { return with(granted(s, testTenant), "admin_consent", "true") }, signal{testWFID, testRunID, true, SignalBy + " (tenant " + testTenant + ")", ""}, "Consent recorded"},
		{"denied", func(s string) url.Values { return denied(s, desc) },
			signal{testWFID, testRunID, false, SignalBy + " (tenant " + testTenant + ")", desc}, "Consent for " + testTenant + " was not granted, and this was passed on to the person running the onboarding. Entra said: " + desc},
		{"denied as Entra answers it: admin_consent=True with error=consent_required", func(s string) url.Values {
			return url.Values{"admin_consent": {"True"}, "error": {"consent_required"}, "error_description": {desc}, "state": {s}}
		}, signal{testWFID, testRunID, false, SignalBy + " (tenant " + testTenant + ")", desc}, "Refusal passed on"},
		{"refused by the tenant's consent policy: the page says where to allow it", func(s string) url.Values {
			return url.Values{"admin_consent": {"True"}, "error": {"consent_required"}, "error_description": {policy}, "state": {s}}
		}, signal{testWFID, testRunID, false, SignalBy + " (tenant " + testTenant + ")", policy}, "Enterprise applications &gt; Consent and permissions"},
		{"denied, with the right tenant", func(s string) url.Values { return with(denied(s, desc), "tenant", testTenant) }, signal{testWFID, testRunID, false, SignalBy + " (tenant " + testTenant + ")", desc}, "Refusal passed on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			w := f.do(http.MethodGet, tt.query(f.state(t, testWFID)))
			assert.Equal(t, http.StatusOK, w.Code, w.Body.String())
			assert.Equal(t, "text/html; charset=utf-8", w.Header().Get("Content-Type"))
			assert.Equal(t, "no-referrer", w.Header().Get("Referrer-Policy"))
			assert.Contains(t, w.Body.String(), tt.wantPage)
			assert.Equal(t, []signal{tt.want}, f.sig.signals(), "exactly one signal")
		})
	}
}

func TestCallbackRejects(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		query      func(t *testing.T, f *fixture) url.Values
		wantStatus int
		wantPage   string
	}{
		{"wrong method POST", http.MethodPost, func(t *testing.T, f *fixture) url.Values { return granted(f.state(t, testWFID), testTenant) },
			http.StatusMethodNotAllowed, "only receives"},
		{"wrong method HEAD", http.MethodHead, func(t *testing.T, f *fixture) url.Values { return granted(f.state(t, testWFID), testTenant) },
			http.StatusMethodNotAllowed, "only receives"},
		{"missing state", http.MethodGet, func(*testing.T, *fixture) url.Values { return granted("", testTenant) },
			http.StatusBadRequest, "has none"},
		{"malformed state", http.MethodGet, func(*testing.T, *fixture) url.Values { return granted("not-a-state", testTenant) },
			http.StatusBadRequest, "damaged"},
		{"state cut off when copied", http.MethodGet, func(t *testing.T, f *fixture) url.Values {
			s := f.state(t, testWFID)
			return granted(s[:len(s)-10], testTenant)
		}, http.StatusBadRequest, "damaged"},
		{"forged with another key", http.MethodGet, func(t *testing.T, f *fixture) url.Values {
			s, err := newSignerKey(t, f.clock, otherKey).Sign(testWFID, testRunID)
			require.NoError(t, err)
			return granted(s, testTenant)
		}, http.StatusForbidden, "not issued by this mktos2s"},
		{"payload tampered to another workflow", http.MethodGet, func(t *testing.T, f *fixture) url.Values {
			mine := f.state(t, "onboarding/"+testTenant+"/fabrikam.crm.localhost")
			theirs := f.state(t, testWFID)
			p, _, _ := strings.Cut(mine, ".")
			_, sig, _ := strings.Cut(theirs, ".")
			return granted(p+"."+sig, testTenant)
		}, http.StatusForbidden, "not issued by this mktos2s"},
		{"signature tampered", http.MethodGet, func(t *testing.T, f *fixture) url.Values {
			s := []byte(f.state(t, testWFID))
			i := bytes.IndexByte(s, '.') + 1
			s[i] = map[bool]byte{true: 'B', false: 'A'}[s[i] == 'A']
			return granted(string(s), testTenant)
		}, http.StatusForbidden, "not issued by this mktos2s"},
		{"expired", http.MethodGet, func(t *testing.T, f *fixture) url.Values {
			s := f.state(t, testWFID)
			f.clock.advance(testTTL + time.Second)
			return granted(s, testTenant)
		}, http.StatusForbidden, "expired at " + t0.Add(testTTL).Format(time.RFC1123)},
		{"tenant mismatch", http.MethodGet, func(t *testing.T, f *fixture) url.Values {
			return granted(f.state(t, testWFID), "22222222-2222-2222-2222-222222222222")
		}, http.StatusForbidden, "Consent was given in tenant 22222222-2222-2222-2222-222222222222"},
		{"denied in another tenant", http.MethodGet, func(t *testing.T, f *fixture) url.Values {
			return with(denied(f.state(t, testWFID), "no"), "tenant", "22222222-2222-2222-2222-222222222222")
		}, http.StatusForbidden, "Wrong tenant"},
		{"granted without tenant", http.MethodGet, func(t *testing.T, f *fixture) url.Values { return granted(f.state(t, testWFID), "") },
			http.StatusBadRequest, "names no tenant"},
		{"neither consent nor error", http.MethodGet, func(t *testing.T, f *fixture) url.Values {
			return url.Values{"state": {f.state(t, testWFID)}, "tenant": {testTenant}}
		}, http.StatusBadRequest, "neither admin_consent=True nor an error"},
		{"admin_consent=False", http.MethodGet, func(t *testing.T, f *fixture) url.Values {
			return with(granted(f.state(t, testWFID), testTenant), "admin_consent", "False")
		}, http.StatusBadRequest, "neither admin_consent=True nor an error"},
		{"two states", http.MethodGet, func(t *testing.T, f *fixture) url.Values {
			return plus(granted(f.state(t, testWFID), testTenant), "state", f.state(t, testWFID))
		}, http.StatusBadRequest, "appears more than once"},
		{"two tenants", http.MethodGet, func(t *testing.T, f *fixture) url.Values {
			return plus(granted(f.state(t, testWFID), testTenant), "tenant", "22222222-2222-2222-2222-222222222222")
		}, http.StatusBadRequest, "appears more than once"},
		{"other Entra error", http.MethodGet, func(t *testing.T, f *fixture) url.Values {
			return url.Values{"error": {"server_error"}, "error_description": {"AADSTS90033: try later"}, "state": {f.state(t, testWFID)}}
		}, http.StatusBadGateway, "Entra returned server_error: AADSTS90033: try later"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			w := f.do(tt.method, tt.query(t, f))
			assert.Equal(t, tt.wantStatus, w.Code, w.Body.String())
			if tt.method != http.MethodHead {
				assert.Contains(t, w.Body.String(), tt.wantPage)
			}
			if tt.wantStatus == http.StatusMethodNotAllowed {
				assert.Equal(t, http.MethodGet, w.Header().Get("Allow"))
			}
			assert.Empty(t, f.sig.signals(), "no signal may be sent")
			assert.Contains(t, f.logs.String(), "status="+fmt.Sprint(tt.wantStatus))
		})
	}
}

func TestCallbackReplayIsRejected(t *testing.T) {
	f := newFixture(t)
	q := granted(f.state(t, testWFID), testTenant)
	require.Equal(t, http.StatusOK, f.do(http.MethodGet, q).Code)

	tests := []struct {
		name  string
		query url.Values
	}{
		{"same callback again", q},
		{"same state, denial this time", denied(q.Get("state"), "changed my mind")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := f.do(http.MethodGet, tt.query)
			assert.Equal(t, http.StatusForbidden, w.Code)
			assert.Contains(t, w.Body.String(), "already been used")
		})
	}
	assert.Len(t, f.sig.signals(), 1, "only the first callback signals")
}

// Rejections that are not the admin's decision leave the link usable.
func TestCallbackLinkStaysUsableAfterNonDecisions(t *testing.T) {
	tests := []struct {
		name       string
		first      func(state string) url.Values
		signalErr  error
		wantStatus int
	}{
		{"consent given in the wrong tenant", func(s string) url.Values { return granted(s, "22222222-2222-2222-2222-222222222222") }, nil, http.StatusForbidden},
		{"Entra server error", func(s string) url.Values { return url.Values{"error": {"server_error"}, "state": {s}} }, nil, http.StatusBadGateway},
		{"Temporal unreachable", func(s string) url.Values { return granted(s, testTenant) }, errors.New("connection refused"), http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if tt.signalErr != nil {
				f.sig.errs = []error{tt.signalErr}
			}
			state := f.state(t, testWFID)
			w := f.do(http.MethodGet, tt.first(state))
			require.Equal(t, tt.wantStatus, w.Code, w.Body.String())
			assert.Empty(t, f.sig.signals())

			w = f.do(http.MethodGet, granted(state, testTenant))
			assert.Equal(t, http.StatusOK, w.Code, w.Body.String())
			assert.Len(t, f.sig.signals(), 1)
		})
	}
}

func TestCallbackWorkflowGone(t *testing.T) {
	f := newFixture(t)
	f.sig.errs = []error{fmt.Errorf("signal: %w", ErrUnknownWorkflow)}
	q := granted(f.state(t, testWFID), testTenant)

	w := f.do(http.MethodGet, q)
	assert.Equal(t, http.StatusGone, w.Code)
	assert.Contains(t, w.Body.String(), "The onboarding of "+testHost+" has already finished")

	// Retrying cannot help, so the nonce stays spent.
	assert.Equal(t, http.StatusForbidden, f.do(http.MethodGet, q).Code)
	assert.Empty(t, f.sig.signals())
}

func TestCallbackGuardFull(t *testing.T) {
	c := newClock()
	s := newSigner(t, c)
	sig := &fakeSignaler{}
	h := NewHandler(s, NewMemoryGuard(1, c.now), sig, nil)
	send := func() int {
		st, err := s.Sign(testWFID, testRunID)
		require.NoError(t, err)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/cb?"+granted(st, testTenant).Encode(), nil))
		return w.Code
	}
	assert.Equal(t, http.StatusOK, send())
	assert.Equal(t, http.StatusServiceUnavailable, send())
	assert.Len(t, sig.signals(), 1)
}

func TestCallbackEscapesHostileInput(t *testing.T) {
	const evil = `<script>alert("x")</script><img src=x onerror=alert(1)>`
	hostileWF := "onboarding/" + testTenant + "/" + `<svg onload=alert(1)>`
	tests := []struct {
		name   string
		query  func(t *testing.T, f *fixture) url.Values
		status int
		shown  bool // the hostile text appears, escaped
	}{
		{"hostile Entra error", func(t *testing.T, f *fixture) url.Values {
			return url.Values{"error": {evil}, "error_description": {evil}, "state": {f.state(t, testWFID)}}
		}, http.StatusBadGateway, true},
		{"hostile tenant", func(t *testing.T, f *fixture) url.Values { return granted(f.state(t, testWFID), evil) }, http.StatusForbidden, true},
		{"hostile state is not echoed", func(*testing.T, *fixture) url.Values { return granted(evil, testTenant) }, http.StatusBadRequest, false},
		{"hostile org host in a signed workflow ID", func(t *testing.T, f *fixture) url.Values {
			return granted(f.state(t, hostileWF), testTenant)
		}, http.StatusOK, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			w := f.do(http.MethodGet, tt.query(t, f))
			require.Equal(t, tt.status, w.Code)
			body := w.Body.String()
			for _, tag := range []string{"<script", "<img", "<svg"} {
				assert.NotContains(t, body, tag)
			}
			assert.Equal(t, "default-src 'none'; frame-ancestors 'none'", w.Header().Get("Content-Security-Policy"))
			if tt.shown {
				assert.Contains(t, body, "&lt;")
			} else {
				assert.NotContains(t, body, "alert")
			}
		})
	}
}

func TestCallbackNeverLogsOrShowsTheState(t *testing.T) {
	f := newFixture(t)
	cases := []url.Values{}
	for range 3 {
		cases = append(cases, granted(f.state(t, testWFID), testTenant))
	}
	cases[1].Set("tenant", "22222222-2222-2222-2222-222222222222")
	cases = append(cases, cases[0]) // replay
	for _, q := range cases {
		w := f.do(http.MethodGet, q)
		assert.NotContains(t, w.Body.String(), q.Get("state"))
		assert.NotContains(t, f.logs.String(), q.Get("state"))
		_, sig, _ := strings.Cut(q.Get("state"), ".")
		assert.NotContains(t, f.logs.String(), sig)
	}
	assert.Contains(t, f.logs.String(), "workflowId="+testWFID)
}

func TestCallbackTruncatesLongDenialNote(t *testing.T) {
	f := newFixture(t)
	long := strings.Repeat("é", 3*maxNoteRunes) + "\xff"
	require.Equal(t, http.StatusOK, f.do(http.MethodGet, denied(f.state(t, testWFID), long)).Code)
	sent := f.sig.signals()
	require.Len(t, sent, 1)
	assert.Equal(t, strings.Repeat("é", maxNoteRunes)+"…", sent[0].Note)
}

func TestCallbackSignalGetsDeadline(t *testing.T) {
	c := newClock()
	s := newSigner(t, c)
	var deadline time.Time
	var ok bool
	h := NewHandler(s, NewMemoryGuard(0, c.now), SignalerFunc(func(ctx context.Context, _ Signal) error {
		deadline, ok = ctx.Deadline()
		return nil
	}), slog.New(slog.NewTextHandler(io.Discard, nil)))
	st, err := s.Sign(testWFID, testRunID)
	require.NoError(t, err)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/cb?"+granted(st, testTenant).Encode(), nil))
	require.Equal(t, http.StatusOK, w.Code)
	require.True(t, ok, "a hung Temporal must not hang the admin's browser")
	assert.WithinDuration(t, time.Now().Add(signalTimeout), deadline, 2*time.Second)
}

func TestCallbackPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://mktos2s.example.com/consent/callback", "/consent/callback"},
		{"http://127.0.0.1:8090", "/"},
	}
	for _, tt := range tests {
		got, err := CallbackPath(tt.in)
		require.NoError(t, err)
		assert.Equal(t, tt.want, got)
	}
	_, err := CallbackPath("/relative")
	assert.Error(t, err)
}

// A link of an earlier onboarding of the same tenant and org (cancelled, then
// started again) is refused with a page that says so.
func TestCallbackLinkOfAnotherRun(t *testing.T) {
	f := newFixture(t)
	f.sig.errs = []error{fmt.Errorf("describe: %w", ErrOtherRun)}
	w := f.do(http.MethodGet, denied(f.state(t, testWFID), "x"))
	assert.Equal(t, http.StatusGone, w.Code)
	assert.Contains(t, w.Body.String(), "belongs to an earlier onboarding of "+testHost)
	assert.Contains(t, w.Body.String(), "Nothing was recorded")
	assert.Contains(t, f.logs.String(), "result=other-run")
}

// The denial's text comes from whoever sent the redirect: it reaches the
// signal (and so status and the UI) without escape sequences or bidi
// controls.
func TestCallbackDenialNoteIsInert(t *testing.T) {
	f := newFixture(t)
	w := f.do(http.MethodGet, denied(f.state(t, testWFID), "declined\x1b[2J\x1b]52;c;ZXZpbA==\x07 \u202Eadmin"))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	sent := f.sig.signals()
	require.Len(t, sent, 1)
	assert.Equal(t, "declined[2J]52;c;ZXZpbA== admin", sent[0].Note)
	assert.False(t, sent[0].Granted)
	assert.Equal(t, testRunID, sent[0].RunID)
	assert.Contains(t, w.Body.String(), "keeps waiting", "the page does not promise the onboarding stops")
}

// FuzzCallback: whatever query arrives, with or without a valid state, the
// handler answers a page with its security headers, signals at most once per
// valid state, and never shows or logs the state.
func FuzzCallback(f *testing.F) {
	fx := newFixture(f)
	good := fx.state(f, testWFID)
	for _, q := range []url.Values{
		granted(good, testTenant), denied(good, "no"), granted("", testTenant), denied("a.b", ""),
		{"error": {"server_error"}, "state": {good}}, {"state": {good, good}},
		{"admin_consent": {"True"}, "tenant": {"\x1b[2J"}, "state": {good}},
	} {
		f.Add(q.Encode())
	}
	f.Fuzz(func(t *testing.T, raw string) {
		fx := newFixture(t)
		r := httptest.NewRequest(http.MethodGet, "/consent/callback", nil)
		r.URL.RawQuery = raw
		w := httptest.NewRecorder()
		fx.h.ServeHTTP(w, r)
		if w.Code < 200 || w.Code > 599 {
			t.Fatalf("status %d", w.Code)
		}
		if w.Header().Get("Content-Security-Policy") != "default-src 'none'; frame-ancestors 'none'" || w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("security headers missing: %v", w.Header())
		}
		body := w.Body.String()
		if strings.Contains(body, "<script") || strings.Contains(body, "\x1b") {
			t.Fatalf("page carries active content: %q", body)
		}
		if st := r.URL.Query().Get("state"); len(st) > 8 && (strings.Contains(body, st) || strings.Contains(fx.logs.String(), st)) {
			t.Fatalf("the state is shown or logged")
		}
		if n := len(fx.sig.signals()); n > 1 || (n == 1 && w.Code != http.StatusOK) {
			t.Fatalf("%d signals with status %d", n, w.Code)
		}
		for _, s := range fx.sig.signals() {
			if strings.ContainsRune(s.Note, '\x1b') {
				t.Fatalf("signal note is not inert: %q", s.Note)
			}
		}
	})
}
