package emulator

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// northwindConsent is the v2 admin-consent URL of Northwind's provisioner,
// whose application permissions nobody granted yet (the default seed).
func (e *env) northwindConsent(state string) string {
	q := url.Values{"client_id": {provClient}, "scope": {"https://graph.microsoft.com/.default"}, "redirect_uri": {callbackURI}, "state": {state}}
	return e.s.URL() + "/" + northwindID + "/v2.0/adminconsent?" + q.Encode()
}

func (e *env) provisionerRoles() []string {
	e.t.Helper()
	for _, t := range e.s.State().Tenants {
		if t.ID != northwindID {
			continue
		}
		for _, a := range t.Applications {
			if a.AppID == provClient {
				return a.Roles
			}
		}
	}
	e.t.Fatal("no Northwind provisioner in the state")
	return nil
}

func TestAdminConsentPage(t *testing.T) {
	e := start(t, nil)
	before := e.provisionerRoles()

	t.Run("a GET shows the page and grants nothing", func(t *testing.T) {
		hostile := `"><script>alert(1)</script>`
		page := e.do(http.MethodGet, e.northwindConsent(hostile)+"&scope=x"+url.QueryEscape(hostile), "", nil)
		require.Equal(t, http.StatusOK, page.status, string(page.body))
		assert.Empty(t, page.header.Get("Location"))
		body := string(page.body)
		assert.NotContains(t, body, "<script>", "text from the request is escaped")
		assert.Contains(t, body, `name="consent_token"`)
		assert.Equal(t, "DENY", page.header.Get("X-Frame-Options"))
		assert.Equal(t, before, e.provisionerRoles(), "opening the page granted something")
	})

	t.Run("a POST without the page's value grants nothing", func(t *testing.T) {
		link := e.northwindConsent("s-forged")
		u, _ := url.Parse(link)
		page := e.do(http.MethodGet, link, "", nil)
		action, form, err := ConsentForm(u, page.body, true)
		require.NoError(t, err)
		other := e.do(http.MethodGet, e.northwindConsent("s-other"), "", nil)
		_, otherForm, err := ConsentForm(u, other.body, true)
		require.NoError(t, err)
		tok := []byte(form.Get("consent_token"))
		tok[40] = map[bool]byte{true: 'B', false: 'A'}[tok[40] == 'A'] // one character of the MAC
		tampered := string(tok)
		for name, token := range map[string]string{
			"none":                              "",
			"guessed":                           "AAAA",
			"tampered":                          tampered,
			"issued for another request's page": otherForm.Get("consent_token"),
		} {
			f := url.Values{"action": {"accept"}}
			if token != "" {
				f.Set("consent_token", token)
			}
			res := e.postForm(action, f)
			assert.Equal(t, http.StatusBadRequest, res.status, name)
			assert.Empty(t, res.header.Get("Location"), name)
		}
		assert.Equal(t, before, e.provisionerRoles())
	})

	t.Run("Cancel redirects with Entra's documented error and grants nothing", func(t *testing.T) {
		res := e.answerConsent(e.northwindConsent("s-cancel"), false)
		require.Equal(t, http.StatusFound, res.status)
		loc, err := url.Parse(res.header.Get("Location"))
		require.NoError(t, err)
		q := loc.Query()
		assert.Equal(t, "True", q.Get("admin_consent"))
		assert.Equal(t, "consent_required", q.Get("error"))
		assert.True(t, strings.HasPrefix(q.Get("error_description"), "AADSTS65004"), q.Get("error_description"))
		assert.Equal(t, "s-cancel", q.Get("state"))
		assert.Empty(t, q.Get("tenant"))
		assert.Equal(t, before, e.provisionerRoles())
	})

	t.Run("Accept grants and redirects with admin_consent=True", func(t *testing.T) {
		res := e.answerConsent(e.northwindConsent("s-accept"), true)
		require.Equal(t, http.StatusFound, res.status)
		loc, err := url.Parse(res.header.Get("Location"))
		require.NoError(t, err)
		assert.Equal(t, "True", loc.Query().Get("admin_consent"))
		assert.Empty(t, loc.Query().Get("error"))
		assert.Equal(t, northwindID, loc.Query().Get("tenant"))
		assert.Equal(t, "s-accept", loc.Query().Get("state"))
		assert.NotEqual(t, before, e.provisionerRoles(), "the requested application permissions are granted")
	})
}

func TestAdminConsentRefusedByTenantPolicy(t *testing.T) {
	seed := DefaultSeed()
	for i := range seed.Tenants {
		if seed.Tenants[i].ID == northwindID {
			seed.Tenants[i].AdminConsentBlocked = true
		}
	}
	e := start(t, seed)
	before := e.provisionerRoles()
	res := e.answerConsent(e.northwindConsent("s-policy"), true)
	require.Equal(t, http.StatusFound, res.status)
	loc, err := url.Parse(res.header.Get("Location"))
	require.NoError(t, err)
	q := loc.Query()
	assert.Equal(t, "True", q.Get("admin_consent"))
	assert.Equal(t, "consent_required", q.Get("error"))
	assert.Contains(t, q.Get("error_description"), "AADSTS65004")
	assert.Contains(t, q.Get("error_description"), "consent policy")
	assert.Equal(t, "s-policy", q.Get("state"))
	assert.Equal(t, before, e.provisionerRoles(), "a refused Accept grants nothing")
}

// The page's anti-forgery value: only one the server issued for this very
// request validates, whatever else is sent.
func FuzzConsentToken(f *testing.F) {
	// Fixed key, clock and nonce: every fuzz worker computes the same token.
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := &Server{formKey: []byte("0123456789abcdef0123456789abcdef"), now: func() time.Time { return at }}
	cr := consentRequest{t: &tenant{id: northwindID}, app: &application{appID: provClient}, redirect: callbackURI, state: "s", scope: "x"}
	issued := s.consentToken(cr, at, []byte("0123456789abcdef"))
	f.Add(issued)
	f.Add("")
	f.Add(issued[:len(issued)-1] + "A")
	f.Fuzz(func(t *testing.T, token string) {
		if token == issued {
			return
		}
		if s.validConsentToken(cr, token) {
			t.Fatalf("a token the server did not issue validated: %q", token)
		}
	})
}

// ConsentForm reads any page without panicking and finds a form only with
// its consent_token.
func FuzzConsentForm(f *testing.F) {
	f.Add(`<form method="post" action="/t/adminconsent?a=1&amp;b=2"><input type="hidden" name="consent_token" value="v"></form>`)
	f.Add(`<p>AADSTS700016</p>`)
	f.Add(`<form method=POST><input type=hidden name=consent_token value=""></form>`)
	page, _ := url.Parse("https://127.0.0.1:8443/t/adminconsent?x=1")
	f.Fuzz(func(t *testing.T, body string) {
		action, form, err := ConsentForm(page, []byte(body), true)
		if err != nil {
			return
		}
		if form.Get("consent_token") == "" || form.Get("action") != "accept" || action == "" {
			t.Fatalf("a form without what the POST needs: %q %v", action, form)
		}
	})
}
