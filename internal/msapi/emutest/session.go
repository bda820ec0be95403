package emutest

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mktos2s/mktos2s/internal/emulator"
)

// Names of the default seed's tenant for the customer-admin session mode.
const (
	NorthwindTenant   = "77777777-7777-7777-7777-777777777777"
	NorthwindOrgHost  = "northwind.crm.localhost"
	NorthwindEnv      = "70000000-0000-0000-0000-0000000000ee"
	NorthwindAdmin    = "admin@northwind.onmicrosoft.com"    // Global and Power Platform Administrator
	NorthwindHelpdesk = "helpdesk@northwind.onmicrosoft.com" // Cloud Application Administrator only
)

// Browser plays the customer's admin on the emulator's pages, as a browser
// would: it keeps cookies and stops at every redirect so the caller sees
// where each page sends it.
type Browser struct {
	t       *testing.T
	hc      *http.Client
	cookies []*http.Cookie
}

// Browser returns a new browser session against e.
func (e *Emulated) Browser(t *testing.T) *Browser {
	hc := *e.HTTP
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Browser{t: t, hc: &hc}
}

// Open requests rawURL (a form POST when form is non-nil) and returns the
// status, the redirect target (if any) and the body.
func (b *Browser) Open(method, rawURL string, form url.Values) (int, *url.URL, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		b.t.Fatalf("browser: %v", err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, c := range b.cookies {
		req.AddCookie(c)
	}
	res, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("browser %s %s: %v", method, req.URL.Path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	b.cookies = append(b.cookies, res.Cookies()...)
	var loc *url.URL
	if l := res.Header.Get("Location"); l != "" {
		loc, _ = req.URL.Parse(l)
	}
	return res.StatusCode, loc, string(data)
}

// SignIn opens an authorize URL and, on the sign-in page, clicks Sign in as
// login (action "signin") or Cancel (action "cancel"); it returns where
// Entra sends the browser back to (the redirect URI with code or error).
func (b *Browser) SignIn(authorizeURL, login, action string) *url.URL {
	b.t.Helper()
	status, loc, body := b.Open(http.MethodGet, authorizeURL, nil)
	if loc != nil {
		return loc // signed in already: a silent redirect
	}
	if status != http.StatusOK {
		b.t.Fatalf("sign-in page: HTTP %d: %s", status, body)
	}
	_, loc, body = b.Open(http.MethodPost, authorizeURL, url.Values{"login": {login}, "action": {action}})
	if loc == nil {
		b.t.Fatalf("sign-in did not redirect: %s", body)
	}
	return loc
}

// Consent opens an admin-consent URL and clicks Accept on the page (the
// page's GET grants nothing); it returns the redirect.
func (b *Browser) Consent(consentURL string) *url.URL {
	return b.AnswerConsent(consentURL, true)
}

// AnswerConsent opens an admin-consent URL and clicks Accept (accept) or
// Cancel; it returns the redirect.
func (b *Browser) AnswerConsent(consentURL string, accept bool) *url.URL {
	b.t.Helper()
	status, loc, body := b.Open(http.MethodGet, consentURL, nil)
	if status != http.StatusOK {
		b.t.Fatalf("consent page: HTTP %d: %s", status, body)
	}
	page, _ := url.Parse(consentURL)
	action, form, err := emulator.ConsentForm(page, []byte(body), accept)
	if err != nil {
		b.t.Fatalf("%v", err)
	}
	status, loc, body = b.Open(http.MethodPost, action, form)
	if loc == nil {
		b.t.Fatalf("consent: HTTP %d without redirect: %s", status, body)
	}
	return loc
}
