package emulator

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The delegated (signed-in admin) side of Entra ID: the authorize endpoint
// with PKCE and prompt, the authorization-code and refresh-token grants, and
// the Power Apps Service audience the Power Platform admin API takes. Shapes
// follow learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow
// (authorize request, code redemption, refresh) and v2-admin-consent; the
// Power Apps Service app ID is the one
// learn.microsoft.com/power-platform/admin/programmability-authentication names.

const (
	powerAppsAppID    = "475226c6-020e-4fb2-8a90-7a972cbfc1d4"
	powerAppsResource = "https://service.powerapps.com/"
	// powerAppsImpersonation is the emulator's ID of the Power Apps Service's
	// user_impersonation scope. Microsoft does not document the GUID; no
	// client sends it (the provisioner's registration is the operator's), so
	// it lives only in the emulator's model.
	powerAppsImpersonation = "0eb56b90-a7b5-4bd5-a3ba-d2d3f9e4b8a1"

	authCodeLifetime     = 10 * time.Minute // "Authorization codes are short lived, typically they expire after about 10 minutes"
	refreshTokenLifetime = 24 * time.Hour   // Entra: 90 days; a day is enough for any test and bounds the emulator's memory
	sessionCookie        = "ESTSAUTH"
)

// Directory roles that matter to the one-action mode.
const (
	roleGlobalAdmin        = "Global Administrator"
	rolePowerPlatformAdmin = "Power Platform Administrator"
)

type adminUser struct {
	oid, upn, displayName string
	roles                 []string
}

func (a *adminUser) hasRole(names ...string) bool {
	return slices.ContainsFunc(a.roles, func(r string) bool { return slices.Contains(names, r) })
}

type authCode struct {
	clientID, redirectURI, scope string
	challenge, method            string
	adminOID                     string
	expires                      time.Time
	redeemed                     bool
	seq                          int
}

type refreshGrant struct {
	clientID, adminOID string
	expires            time.Time
}

// delegated is the tenant's sign-in state. Codes and refresh tokens are kept
// by their SHA-256 only, so neither State nor a heap dump shows a usable one.
type delegated struct {
	admins   []*adminUser
	sessions map[[32]byte]string // session cookie hash -> admin oid
	codes    map[[32]byte]*authCode
	refresh  map[[32]byte]*refreshGrant
}

func newDelegated(seed []SeedAdmin) delegated {
	d := delegated{sessions: map[[32]byte]string{}, codes: map[[32]byte]*authCode{}, refresh: map[[32]byte]*refreshGrant{}}
	for _, a := range seed {
		d.admins = append(d.admins, &adminUser{oid: newGUID(), upn: strings.ToLower(a.UPN), displayName: a.DisplayName, roles: slices.Clone(a.Roles)})
	}
	return d
}

func (d *delegated) admin(oid string) *adminUser {
	for _, a := range d.admins {
		if a.oid == oid {
			return a
		}
	}
	return nil
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func tokenHash(v string) [32]byte { return sha256.Sum256([]byte(v)) }

// grantRequestedRoles is the part of an admin consent that the provisioner
// of the one-action mode needs: its application permissions, requested but
// not granted while nobody had consented in this tenant. Called with s.mu held.
func grantRequestedRoles(app *application) {
	for _, r := range app.requestedRoles {
		if !slices.Contains(app.roles, r) {
			app.roles = append(app.roles, r)
		}
	}
}

// authorizeRequest is the validated query of an authorize request.
type authorizeRequest struct {
	app                     *application
	redirect, state, prompt string
	scope                   string // the resource scope, e.g. https://service.powerapps.com//user_impersonation
	challenge, method       string
}

var promptValues = []string{"", "none", "login", "consent", "select_account", "create"}

// authorize serves GET (the sign-in page, or a silent redirect when a session
// exists) and POST (the page's Sign in / Cancel buttons).
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, c *call) {
	t, seg := s.tenantFromPath(r)
	if t == nil {
		s.consentPage(w, c, http.StatusBadRequest, "AADSTS90002: Tenant '"+seg+"' not found.")
		return
	}
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	clientID := strings.ToLower(q.Get("client_id"))
	app := t.appByAppID(clientID)
	if clientID == "" || app == nil || !s.visible(app.created) {
		s.consentPage(w, c, http.StatusBadRequest, fmt.Sprintf("AADSTS700016: Application with identifier '%s' was not found in the directory '%s'.", clientID, t.displayName))
		return
	}
	redirect := q.Get("redirect_uri")
	if !redirectRegistered(app.redirectURIs, redirect) {
		// Entra shows an error page rather than redirect to an unregistered URI.
		s.consentPage(w, c, http.StatusBadRequest, fmt.Sprintf("AADSTS50011: The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'.", redirect, clientID))
		return
	}
	ar := authorizeRequest{app: app, redirect: redirect, state: q.Get("state"), prompt: q.Get("prompt"),
		challenge: q.Get("code_challenge"), method: q.Get("code_challenge_method")}
	back := func(v url.Values) { s.redirectBack(w, r, c, ar, v) }
	fail := func(code, desc string) { back(url.Values{"error": {code}, "error_description": {desc}}) }
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "AADSTS700054: response_type '"+q.Get("response_type")+"' is not enabled for the application.")
		return
	case !slices.Contains(promptValues, ar.prompt):
		fail("invalid_request", "AADSTS90023: Invalid prompt value '"+ar.prompt+"'.")
		return
	case ar.method != "" && ar.method != "S256" && ar.method != "plain":
		fail("invalid_request", "AADSTS501492: Invalid code_challenge_method value '"+ar.method+"'. Supported values are S256 and plain.")
		return
	case ar.challenge != "" && (len(ar.challenge) < 43 || len(ar.challenge) > 128):
		fail("invalid_request", "AADSTS501491: Invalid size of Code_Challenge parameter.")
		return
	case ar.challenge == "" && ar.method != "":
		fail("invalid_request", "AADSTS900144: The request body must contain the following parameter: 'code_challenge'.")
		return
	}
	var resource []string
	for _, sc := range strings.Fields(q.Get("scope")) {
		if !slices.Contains([]string{"openid", "profile", "offline_access", "email"}, sc) {
			resource = append(resource, sc)
		}
	}
	if len(resource) != 1 {
		fail("invalid_scope", "AADSTS70011: The provided request must include exactly one resource scope; got '"+q.Get("scope")+"'.")
		return
	}
	ar.scope = resource[0]
	if res, _ := splitScope(ar.scope); res != powerAppsResource {
		fail("invalid_resource", fmt.Sprintf("AADSTS500011: The resource principal named %s was not found in the tenant named %s.", res, t.displayName))
		return
	}
	if !s.delegatedConsented(t, app) {
		fail("consent_required", fmt.Sprintf("AADSTS65001: The user or administrator has not consented to use the application with ID '%s' named '%s'. Send an interactive authorization request for this user and resource.", app.appID, app.displayName))
		return
	}

	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := r.ParseForm(); err != nil {
			s.consentPage(w, c, http.StatusBadRequest, "AADSTS900144: The sign-in form could not be read.")
			return
		}
		if r.PostForm.Get("action") != "signin" {
			// What Entra sends back when the user closes the sign-in: MSAL
			// libraries read error_subcode=cancel as "user cancelled".
			back(url.Values{"error": {"access_denied"}, "error_subcode": {"cancel"}, "error_description": {"AADSTS50059: The user canceled the sign-in."}})
			return
		}
		login := strings.ToLower(r.PostForm.Get("login"))
		i := slices.IndexFunc(t.del.admins, func(a *adminUser) bool { return a.upn == login })
		if i < 0 {
			s.signInPage(w, c, t, r, "AADSTS50034: The user account "+login+" does not exist in the "+t.displayName+" directory.")
			return
		}
		sid := randomToken()
		t.del.sessions[tokenHash(sid)] = t.del.admins[i].oid
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sid, Path: "/" + t.id, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		s.issueCode(t, ar, t.del.admins[i], back)
		return
	}
	var signedIn *adminUser
	if ck, err := r.Cookie(sessionCookie); err == nil {
		signedIn = t.del.admin(t.del.sessions[tokenHash(ck.Value)])
	}
	switch {
	case ar.prompt == "none" && signedIn == nil:
		fail("login_required", "AADSTS50058: A silent sign-in request was sent but no user is signed in.")
	case signedIn != nil && (ar.prompt == "" || ar.prompt == "none"):
		s.issueCode(t, ar, signedIn, back)
	default:
		s.signInPage(w, c, t, r, "")
	}
}

// splitScope splits "https://service.powerapps.com//user_impersonation" into
// the resource ("https://service.powerapps.com/") and the scope name.
func splitScope(sc string) (string, string) {
	i := strings.LastIndex(sc, "/")
	if i < 0 {
		return "", sc
	}
	return strings.ToLower(sc[:i]), sc[i+1:]
}

// delegatedConsented: an AllPrincipals grant of user_impersonation on the
// Power Apps Service to the app's service principal. Called with s.mu held.
func (s *Server) delegatedConsented(t *tenant, app *application) bool {
	sp, res := t.spByAppID(app.appID), t.spByAppID(powerAppsAppID)
	if sp == nil || res == nil {
		return false
	}
	for _, g := range t.grants {
		if g.clientID == sp.id && g.resourceID == res.id && g.consentType == "AllPrincipals" && slices.Contains(strings.Fields(g.scope), "user_impersonation") {
			return true
		}
	}
	return false
}

func (s *Server) issueCode(t *tenant, ar authorizeRequest, a *adminUser, back func(url.Values)) {
	code := randomToken()
	t.del.codes[tokenHash(code)] = &authCode{
		clientID: ar.app.appID, redirectURI: ar.redirect, scope: ar.scope, challenge: ar.challenge, method: ar.method,
		adminOID: a.oid, expires: s.now().Add(authCodeLifetime), seq: t.next(),
	}
	back(url.Values{"code": {code}, "session_state": {newGUID()}})
}

func (s *Server) redirectBack(w http.ResponseWriter, r *http.Request, c *call, ar authorizeRequest, v url.Values) {
	redirectWith(w, r, c, ar.redirect, ar.state, v)
}

// redirectWith sends the browser back to the registered redirect URI with
// v (and the client's state) added to its query, as Entra's endpoints do.
func redirectWith(w http.ResponseWriter, r *http.Request, c *call, redirect, state string, v url.Values) {
	if state != "" {
		v.Set("state", state)
	}
	u, _ := url.Parse(redirect)
	qq := u.Query()
	for k, vs := range v {
		qq[k] = vs
	}
	u.RawQuery = qq.Encode()
	c.status = http.StatusFound
	http.Redirect(w, r, u.String(), http.StatusFound)
}

var signInTmpl = template.Must(template.New("signin").Parse(`<!doctype html><html><head><title>Sign in to your account</title></head>
<body><h1>Microsoft Entra ID (emulator)</h1>
<p>Sign in to <b>{{.Tenant}}</b> for <b>{{.App}}</b>, which asks to act as you on the Power Apps Service (Power Platform admin API).</p>
{{if .Error}}<p class="error">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
{{range $i, $a := .Admins}}<label><input type="radio" name="login" value="{{$a.UPN}}"{{if eq $i 0}} checked{{end}}> {{$a.Name}} ({{$a.UPN}})</label><br>
{{end}}<button type="submit" name="action" value="signin" id="signin">Sign in</button>
<button type="submit" name="action" value="cancel" id="cancel">Cancel</button>
</form></body></html>
`))

func (s *Server) signInPage(w http.ResponseWriter, c *call, t *tenant, r *http.Request, errMsg string) {
	type row struct{ UPN, Name string }
	data := struct {
		Tenant, App, Error, Action string
		Admins                     []row
	}{Tenant: t.displayName, Error: errMsg, Action: r.URL.Path + "?" + r.URL.RawQuery}
	if app := t.appByAppID(r.URL.Query().Get("client_id")); app != nil {
		data.App = app.displayName
	}
	for _, a := range t.del.admins {
		data.Admins = append(data.Admins, row{UPN: a.upn, Name: a.displayName})
	}
	c.status = http.StatusOK
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = signInTmpl.Execute(w, data)
}

// tokenDelegated serves grant_type authorization_code and refresh_token for
// an authenticated confidential client. Called with s.mu held.
func (s *Server) tokenDelegated(w http.ResponseWriter, t *tenant, app *application, f url.Values, fail func(int, string, string)) {
	now := s.now()
	var adminOID string
	switch f.Get("grant_type") {
	case "authorization_code":
		code := f.Get("code")
		if code == "" {
			fail(http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'code'.")
			return
		}
		ac := t.del.codes[tokenHash(code)]
		switch {
		case ac == nil || ac.clientID != app.appID:
			fail(http.StatusBadRequest, "invalid_grant", "AADSTS70000: Provided grant is invalid or malformed.")
			return
		case ac.redeemed:
			fail(http.StatusBadRequest, "invalid_grant", "AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.")
			return
		case now.After(ac.expires):
			fail(http.StatusBadRequest, "invalid_grant", "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.")
			return
		case f.Get("redirect_uri") != ac.redirectURI:
			fail(http.StatusBadRequest, "invalid_grant", "AADSTS500117: The reply uri specified in the request does not match the reply uri used in the authorization code request.")
			return
		case ac.challenge != "" && !pkceMatches(ac.method, ac.challenge, f.Get("code_verifier")):
			ac.redeemed = true // a failed PKCE check burns the code, so it cannot be guessed at
			fail(http.StatusBadRequest, "invalid_grant", "AADSTS50148: The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.")
			return
		}
		ac.redeemed = true
		adminOID = ac.adminOID
	case "refresh_token":
		rt := f.Get("refresh_token")
		g := t.del.refresh[tokenHash(rt)]
		switch {
		case rt == "":
			fail(http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'refresh_token'.")
			return
		case g == nil || g.clientID != app.appID:
			fail(http.StatusBadRequest, "invalid_grant", "AADSTS9002313: Invalid request. Request is malformed or invalid.")
			return
		case now.After(g.expires):
			fail(http.StatusBadRequest, "invalid_grant", "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.")
			return
		}
		adminOID = g.adminOID
	}
	// The scope of the token request picks the resource; only the Power Apps
	// Service is consented for delegated use in the emulator's world.
	var resource string
	for _, sc := range strings.Fields(f.Get("scope")) {
		if res, _ := splitScope(sc); strings.HasPrefix(res, "https://") {
			resource = res
		}
	}
	if resource != powerAppsResource {
		fail(http.StatusBadRequest, "invalid_grant", fmt.Sprintf("AADSTS65001: The user or administrator has not consented to use the application with ID '%s' named '%s' for resource '%s'.", app.appID, app.displayName, resource))
		return
	}
	if !s.delegatedConsented(t, app) {
		fail(http.StatusBadRequest, "invalid_grant", fmt.Sprintf("AADSTS65001: The user or administrator has not consented to use the application with ID '%s' named '%s'.", app.appID, app.displayName))
		return
	}
	a := t.del.admin(adminOID)
	if a == nil {
		fail(http.StatusBadRequest, "invalid_grant", "AADSTS50034: The user account does not exist in the directory.")
		return
	}
	access, err := s.signClaims(accessClaims{
		TenantID: t.id, AppID: app.appID, AZP: app.appID, ObjectID: a.oid, Version: "1.0",
		Scope: "user_impersonation", UPN: a.upn,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.issuer(t.id), Subject: a.oid, Audience: jwt.ClaimStrings{powerAppsResource},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(tokenLifetime)), ID: newGUID(),
		},
	})
	if err != nil {
		fail(http.StatusInternalServerError, "server_error", "AADSTS50000: There was an error issuing a token.")
		return
	}
	id, err := s.signClaims(jwt.MapClaims{
		"iss": s.issuer(t.id), "aud": app.appID, "sub": a.oid, "oid": a.oid, "tid": t.id, "preferred_username": a.upn,
		"name": a.displayName, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(tokenLifetime).Unix(), "ver": "2.0",
	})
	if err != nil {
		fail(http.StatusInternalServerError, "server_error", "AADSTS50000: There was an error issuing a token.")
		return
	}
	refresh := randomToken()
	t.del.refresh[tokenHash(refresh)] = &refreshGrant{clientID: app.appID, adminOID: a.oid, expires: now.Add(refreshTokenLifetime)}
	info, _ := json.Marshal(map[string]string{"uid": a.oid, "utid": t.id})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "scope": powerAppsResource + "/user_impersonation", "expires_in": int(tokenLifetime.Seconds()) - 1,
		"ext_expires_in": int(tokenLifetime.Seconds()) - 1, "access_token": access, "refresh_token": refresh, "id_token": id,
		"client_info": base64.RawURLEncoding.EncodeToString(info),
	})
}

func pkceMatches(method, challenge, verifier string) bool {
	if verifier == "" {
		return false
	}
	want := verifier
	if method == "S256" { // RFC 7636: without a method the challenge is plain
		sum := sha256.Sum256([]byte(verifier))
		want = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

func (s *Server) signClaims(c jwt.Claims) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = s.kid
	return tok.SignedString(s.signKey)
}

// AuthCodeState is an issued authorization code, without its value.
type AuthCodeState struct {
	ClientID string    `json:"clientId"`
	AdminUPN string    `json:"adminUpn"`
	Redeemed bool      `json:"redeemed"`
	Expires  time.Time `json:"expires"`
}

func (d *delegated) codeStates() []AuthCodeState {
	codes := make([]*authCode, 0, len(d.codes))
	for _, c := range d.codes {
		codes = append(codes, c)
	}
	slices.SortFunc(codes, func(a, b *authCode) int { return a.seq - b.seq })
	out := []AuthCodeState{}
	for _, c := range codes {
		st := AuthCodeState{ClientID: c.clientID, Redeemed: c.redeemed, Expires: c.expires}
		if a := d.admin(c.adminOID); a != nil {
			st.AdminUPN = a.upn
		}
		out = append(out, st)
	}
	return out
}

// redirectRegistered matches a redirect URI exactly, except that for the
// loopback hosts the port is ignored (RFC 8252 7.3, 8.3; Entra's
// "localhost exceptions" in learn.microsoft.com/entra/identity-platform/reply-url).
func redirectRegistered(registered []string, uri string) bool {
	if slices.Contains(registered, uri) {
		return true
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "http" || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost") {
		return false
	}
	for _, r := range registered {
		ru, err := url.Parse(r)
		if err == nil && ru.Scheme == u.Scheme && ru.Hostname() == u.Hostname() && ru.Path == u.Path && ru.RawQuery == u.RawQuery {
			return true
		}
	}
	return false
}
