package emulator

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/html"
)

// The admin-consent endpoint (learn.microsoft.com/entra/identity-platform/v2-admin-consent):
// a GET shows the page and grants nothing; the admin's Accept or Cancel is
// the page's form POST, which carries an anti-forgery value bound to the
// request, so no link, image or cross-site form can consent for an admin.

// consentFormLifetime bounds how long an opened page can still be answered.
const consentFormLifetime = time.Hour

// Entra's documented error answer of the admin-consent endpoint keeps
// admin_consent=True beside error=consent_required (v2-admin-consent,
// "Error response"): a callback must read error first.
const (
	consentDeclined = "AADSTS65004: User declined to consent to access the app."
	consentBlocked  = "AADSTS65004: The organization's consent policy does not allow granting this application; " +
		"an administrator can change it under Enterprise applications > Consent and permissions."
)

// consentRequest is the validated query of an admin-consent request.
type consentRequest struct {
	t                      *tenant
	app                    *application
	redirect, state, scope string
}

// adminConsent serves GET (the consent page) and POST (its Accept or Cancel).
func (s *Server) adminConsent(w http.ResponseWriter, r *http.Request, c *call) {
	t, seg := s.tenantFromPath(r)
	if t == nil {
		s.consentPage(w, c, http.StatusBadRequest, "AADSTS90002: Tenant '"+seg+"' not found.")
		return
	}
	q := r.URL.Query()
	clientID := strings.ToLower(q.Get("client_id"))
	s.mu.Lock()
	defer s.mu.Unlock()
	app := t.appByAppID(clientID)
	if clientID == "" || app == nil || !s.visible(app.created) {
		s.consentPage(w, c, http.StatusBadRequest, fmt.Sprintf("AADSTS700016: Application with identifier '%s' was not found in the directory '%s'.", clientID, t.displayName))
		return
	}
	cr := consentRequest{t: t, app: app, redirect: q.Get("redirect_uri"), state: q.Get("state"), scope: q.Get("scope")}
	if cr.redirect != "" && !redirectRegistered(app.redirectURIs, cr.redirect) {
		s.consentPage(w, c, http.StatusBadRequest, fmt.Sprintf("AADSTS50011: The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'.", cr.redirect, clientID))
		return
	}
	// The v2.0 endpoint takes the permissions as scope and refuses a
	// request without it (v2-admin-consent: "scope: Required").
	if strings.HasSuffix(r.URL.Path, "/v2.0/adminconsent") && strings.TrimSpace(cr.scope) == "" {
		s.consentPage(w, c, http.StatusBadRequest, "AADSTS900144: The request body must contain the following parameter: 'scope'.")
		return
	}
	if r.Method != http.MethodPost {
		s.consentForm(w, c, r, cr)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.consentPage(w, c, http.StatusBadRequest, "The consent form could not be read.")
		return
	}
	if !s.validConsentToken(cr, r.PostForm.Get("consent_token")) {
		// A POST that did not come from a page this request showed: a
		// forged form, or a page left open too long.
		s.consentPage(w, c, http.StatusBadRequest, "This consent page was not issued for this request or has expired; open the consent link again.")
		return
	}
	switch {
	case r.PostForm.Get("action") != "accept":
		s.consentRefused(w, r, c, cr, consentDeclined)
	case t.consentBlocked:
		s.consentRefused(w, r, c, cr, consentBlocked)
	default:
		s.grantAdminConsent(t, app)
		if cr.redirect == "" {
			s.consentPage(w, c, http.StatusOK, "Admin consent granted for "+app.displayName+" in "+t.displayName+".")
			return
		}
		s.consentBack(w, r, c, cr, url.Values{"admin_consent": {"True"}, "tenant": {t.id}})
	}
}

func (s *Server) consentRefused(w http.ResponseWriter, r *http.Request, c *call, cr consentRequest, desc string) {
	if cr.redirect == "" {
		s.consentPage(w, c, http.StatusOK, "Consent not granted. "+desc)
		return
	}
	s.consentBack(w, r, c, cr, url.Values{"admin_consent": {"True"}, "error": {"consent_required"}, "error_description": {desc}})
}

func (s *Server) consentBack(w http.ResponseWriter, r *http.Request, c *call, cr consentRequest, v url.Values) {
	redirectWith(w, r, c, cr.redirect, cr.state, v)
}

// grantAdminConsent records tenant-wide consent: the service principal
// (created when missing, as Entra does), the requested application
// permissions, and an AllPrincipals oauth2PermissionGrant per resource for
// the delegated ones. Called with s.mu held.
func (s *Server) grantAdminConsent(t *tenant, app *application) {
	sp := t.spByAppID(app.appID)
	if sp == nil {
		sp = &servicePrincipal{id: newGUID(), appID: app.appID, displayName: app.displayName, created: s.now(), seq: t.next()}
		t.sps[sp.id] = sp
	}
	grantRequestedRoles(app)
	for _, rra := range app.rra {
		res := t.spByAppID(rra.ResourceAppID)
		if res == nil {
			continue
		}
		var names []string
		for _, ra := range rra.ResourceAccess {
			if n, ok := delegatedScopes[strings.ToLower(rra.ResourceAppID)][strings.ToLower(ra.ID)]; ok && ra.Type == "Scope" {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			continue
		}
		var g *permissionGrant
		for _, x := range t.grants {
			if x.clientID == sp.id && x.resourceID == res.id && x.consentType == "AllPrincipals" {
				g = x
			}
		}
		if g == nil {
			g = &permissionGrant{id: newGUID(), clientID: sp.id, consentType: "AllPrincipals", resourceID: res.id, seq: t.next()}
			t.grants[g.id] = g
		}
		have := strings.Fields(g.scope)
		for _, n := range names {
			if !slices.Contains(have, n) {
				have = append(have, n)
			}
		}
		g.scope = strings.Join(have, " ")
	}
}

var consentTmpl = template.Must(template.New("consent").Parse(`<!doctype html><html><head><title>Permissions requested</title></head>
<body><h1>Microsoft Entra ID (emulator)</h1>
<p><b>{{.App}}</b> asks for the permissions configured on its registration, for everyone in <b>{{.Tenant}}</b>.</p>
{{with .Scope}}<p>Requested: {{.}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="consent_token" value="{{.Token}}">
<button type="submit" name="action" value="accept" id="accept">Accept</button>
<button type="submit" name="action" value="cancel" id="cancel">Cancel</button>
</form></body></html>
`))

// consentForm shows the page; html/template escapes every value from the request.
func (s *Server) consentForm(w http.ResponseWriter, c *call, r *http.Request, cr consentRequest) {
	data := struct{ App, Tenant, Scope, Action, Token string }{
		App: cr.app.displayName, Tenant: cr.t.displayName, Scope: cr.scope,
		Action: r.URL.Path + "?" + r.URL.RawQuery, Token: s.consentToken(cr, s.now(), nil),
	}
	var b bytes.Buffer
	if err := consentTmpl.Execute(&b, data); err != nil {
		s.consentPage(w, c, http.StatusInternalServerError, "The consent page could not be shown.")
		return
	}
	c.status = http.StatusOK
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY") // no clickjacking of the Accept button
	h.Set("Content-Security-Policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
}

// consentToken is the page's anti-forgery value: base64url(nonce | issued |
// HMAC-SHA256(formKey, request, nonce, issued)), so it names one opened page
// of one request (tenant, app, redirect URI, state, scope) and cannot be
// made without the emulator's key. nonce nil draws a fresh one.
func (s *Server) consentToken(cr consentRequest, issued time.Time, nonce []byte) string {
	if nonce == nil {
		nonce = make([]byte, 16)
		_, _ = rand.Read(nonce)
	}
	raw := append(slices.Clone(nonce), binary.BigEndian.AppendUint64(nil, uint64(issued.Unix()))...)
	m := hmac.New(sha256.New, s.formKey)
	for _, f := range []string{"adminconsent", cr.t.id, cr.app.appID, cr.redirect, cr.state, cr.scope} {
		m.Write([]byte(f))
		m.Write([]byte{0})
	}
	m.Write(raw)
	return base64.RawURLEncoding.EncodeToString(m.Sum(raw))
}

func (s *Server) validConsentToken(cr consentRequest, token string) bool {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 16+8+sha256.Size {
		return false
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(raw[16:24])), 0)
	if age := s.now().Sub(issued); age < -time.Minute || age > consentFormLifetime {
		return false
	}
	want := s.consentToken(cr, issued, raw[:16])
	return hmac.Equal([]byte(want), []byte(token))
}

// ConsentForm reads the emulator's admin-consent page (body, served at
// page) and returns what its Accept (accept) or Cancel button posts: the
// form's action URL, resolved against page, and its values.
func ConsentForm(page *url.URL, body []byte, accept bool) (string, url.Values, error) {
	z := html.NewTokenizer(bytes.NewReader(body))
	var action string
	vals := url.Values{}
	inForm := false
	for {
		switch z.Next() {
		case html.ErrorToken:
			if !inForm {
				return "", nil, errors.New("emulator consent page: no form (an error page?)")
			}
			if vals.Get("consent_token") == "" {
				return "", nil, errors.New("emulator consent page: the form has no consent_token")
			}
			button := "cancel"
			if accept {
				button = "accept"
			}
			vals.Set("action", button)
			u, err := page.Parse(action)
			if err != nil {
				return "", nil, fmt.Errorf("emulator consent page: form action: %w", err)
			}
			return u.String(), vals, nil
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			attr := func(k string) string {
				for _, a := range tok.Attr {
					if a.Key == k {
						return a.Val
					}
				}
				return ""
			}
			switch {
			case tok.Data == "form" && strings.EqualFold(attr("method"), "post"):
				inForm, action = true, attr("action")
			case tok.Data == "input" && inForm && attr("type") == "hidden":
				vals.Set(attr("name"), attr("value"))
			}
		}
	}
}

// AnswerConsent plays the admin on the emulator's admin-consent page: it
// opens consentURL with hc and clicks Accept (accept) or Cancel. It returns
// the answer to the click, whose body the caller closes; hc's CheckRedirect
// decides whether Entra's redirect to the app is followed.
func AnswerConsent(ctx context.Context, hc *http.Client, consentURL string, accept bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, consentURL, nil)
	if err != nil {
		return nil, fmt.Errorf("consent page: %w", err)
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("consent page: %w", err)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("consent page: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("consent page: HTTP %d: %.300s", res.StatusCode, body)
	}
	action, form, err := ConsentForm(res.Request.URL, body, accept)
	if err != nil {
		return nil, err
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, action, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("consent page: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err = hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("consent page: %w", err)
	}
	return res, nil
}
