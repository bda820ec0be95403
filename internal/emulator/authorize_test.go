package emulator

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	northwindID   = "77777777-7777-7777-7777-777777777777"
	northwindHost = "northwind.crm.localhost"
	northwindEnv  = "70000000-0000-0000-0000-0000000000ee"
	nwAdmin       = "admin@northwind.onmicrosoft.com"
	nwHelpdesk    = "helpdesk@northwind.onmicrosoft.com"
	callbackURI   = "http://127.0.0.1:9/consent/session" // loopback: any port matches the registered one
	verifier      = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-0123456789"
	paScope       = "https://service.powerapps.com//user_impersonation"
)

func challengeOf(v string) string {
	s := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

// get issues a GET (or a POST form) with the session cookie, if any, and returns the response.
func (e *env) browser(method, rawURL string, form url.Values, cookie *http.Cookie) (*http.Response, string) {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, rawURL, body)
	require.NoError(e.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	res, err := e.hc.Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func (e *env) authorizeURL(prompt, challenge string) string {
	q := url.Values{"client_id": {provClient}, "response_type": {"code"}, "redirect_uri": {callbackURI},
		"scope": {paScope + " offline_access openid"}, "state": {"st-1"}, "code_challenge_method": {"S256"}, "code_challenge": {challenge}}
	if prompt != "" {
		q.Set("prompt", prompt)
	}
	return e.s.URL() + "/" + northwindID + "/oauth2/v2.0/authorize?" + q.Encode()
}

// consentProvisioner plays the admin on the v2 admin-consent page for the provisioner.
func (e *env) consentProvisioner() {
	e.t.Helper()
	q := url.Values{"client_id": {provClient}, "scope": {"https://graph.microsoft.com/.default"}, "redirect_uri": {callbackURI}, "state": {"s"}}
	res := e.answerConsent(e.s.URL()+"/"+northwindID+"/v2.0/adminconsent?"+q.Encode(), true)
	require.Equal(e.t, http.StatusFound, res.status)
	require.Contains(e.t, res.header.Get("Location"), "admin_consent=True")
}

// signIn posts the sign-in form and returns the callback query and the session cookie.
func (e *env) signIn(authURL, login, action string) (url.Values, *http.Cookie) {
	e.t.Helper()
	res, _ := e.browser(http.MethodPost, authURL, url.Values{"login": {login}, "action": {action}}, nil)
	require.Equal(e.t, http.StatusFound, res.StatusCode)
	loc, err := url.Parse(res.Header.Get("Location"))
	require.NoError(e.t, err)
	var ck *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == sessionCookie {
			ck = c
		}
	}
	return loc.Query(), ck
}

func (e *env) msalClient(tenantID string) confidential.Client {
	e.t.Helper()
	cred, err := confidential.NewCredFromSecret(provSecret)
	require.NoError(e.t, err)
	c, err := confidential.New(e.s.URL()+"/"+tenantID, provClient, cred, confidential.WithInstanceDiscovery(false), confidential.WithHTTPClient(e.hc))
	require.NoError(e.t, err)
	return c
}

func TestUnconsentedProvisionerHasNoAccessUntilAdminConsents(t *testing.T) {
	e := start(t, nil)
	r := e.tokenReq(northwindID, url.Values{"grant_type": {"client_credentials"}, "client_id": {provClient},
		"client_secret": {provSecret}, "scope": {e.s.URL() + "/.default"}})
	assert.Equal(t, "invalid_client", r.errCode(t), "no service principal before consent: %s", r.body)
	res, _ := e.browser(http.MethodGet, e.authorizeURL("", challengeOf(verifier)), nil, nil)
	require.Equal(t, http.StatusFound, res.StatusCode)
	assert.Contains(t, res.Header.Get("Location"), "error=consent_required")

	e.consentProvisioner()
	tok := e.provGraph(northwindID)
	claims, err := e.s.verifyToken(tok)
	require.NoError(t, err)
	assert.Contains(t, claims.Roles, "Application.ReadWrite.OwnedBy", "consent granted the requested application permissions")
	st := e.s.State()
	for _, ts := range st.Tenants {
		if ts.ID == northwindID {
			assert.Condition(t, func() bool {
				for _, g := range ts.PermissionGrants {
					if g.Scope == "user_impersonation" && g.ConsentType == "AllPrincipals" {
						return true
					}
				}
				return false
			}, "tenant-wide grant of user_impersonation on the Power Apps Service: %+v", ts.PermissionGrants)
		}
	}
}

func TestAuthorizeCodeFlowWithPKCEThroughMSAL(t *testing.T) {
	e := start(t, nil)
	e.consentProvisioner()
	authURL := e.authorizeURL("", challengeOf(verifier))

	page, body := e.browser(http.MethodGet, authURL, nil, nil)
	require.Equal(t, http.StatusOK, page.StatusCode, "no session: the sign-in page")
	assert.Contains(t, body, nwAdmin)
	assert.Contains(t, body, `id="cancel"`)

	cb, session := e.signIn(authURL, nwAdmin, "signin")
	require.NotEmpty(t, cb.Get("code"), cb.Encode())
	assert.Equal(t, "st-1", cb.Get("state"))
	require.NotNil(t, session)
	assert.True(t, session.Secure && session.HttpOnly)

	ctx := context.Background()
	mc := e.msalClient(northwindID)
	_, err := mc.AcquireTokenByAuthCode(ctx, cb.Get("code"), callbackURI, []string{paScope}, confidential.WithChallenge("wrong-verifier-wrong-verifier-wrong-verifier-x"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "AADSTS50148")

	// The failed PKCE check burnt that code; a silent request (session, prompt=none) gives a new one.
	silent, _ := e.browser(http.MethodGet, e.authorizeURL("none", challengeOf(verifier)), nil, session)
	require.Equal(t, http.StatusFound, silent.StatusCode)
	loc, _ := url.Parse(silent.Header.Get("Location"))
	code := loc.Query().Get("code")
	require.NotEmpty(t, code, loc.String())

	res, err := mc.AcquireTokenByAuthCode(ctx, code, callbackURI, []string{paScope}, confidential.WithChallenge(verifier))
	require.NoError(t, err)
	claims, err := e.s.verifyToken(res.AccessToken)
	require.NoError(t, err)
	assert.Equal(t, []string{powerAppsResource}, []string(claims.Audience))
	assert.Equal(t, "user_impersonation", claims.Scope)
	assert.Equal(t, nwAdmin, claims.UPN)
	assert.Equal(t, provClient, claims.AppID)

	// A code is good once.
	_, err = mc.AcquireTokenByAuthCode(ctx, code, callbackURI, []string{paScope}, confidential.WithChallenge(verifier))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "AADSTS54005")

	var codes []AuthCodeState
	for _, ts := range e.s.State().Tenants {
		if ts.ID == northwindID {
			codes = ts.AuthCodes
		}
	}
	require.Len(t, codes, 2)
	assert.True(t, codes[0].Redeemed && codes[1].Redeemed)
	assert.NotContains(t, e.logs.String(), code, "no code in the emulator's log")
}

func TestRefreshGrant(t *testing.T) {
	e := start(t, nil)
	e.consentProvisioner()
	authURL := e.authorizeURL("login", challengeOf(verifier))
	cb, _ := e.signIn(authURL, nwAdmin, "signin")
	form := url.Values{"grant_type": {"authorization_code"}, "client_id": {provClient}, "client_secret": {provSecret},
		"code": {cb.Get("code")}, "redirect_uri": {callbackURI}, "code_verifier": {verifier}, "scope": {paScope + " offline_access"}}
	r := e.tokenReq(northwindID, form)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	rt, _ := r.json(t)["refresh_token"].(string)
	require.NotEmpty(t, rt)

	refresh := url.Values{"grant_type": {"refresh_token"}, "client_id": {provClient}, "client_secret": {provSecret},
		"refresh_token": {rt}, "scope": {"https://service.powerapps.com//.default"}}
	r = e.tokenReq(northwindID, refresh)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	assert.NotEmpty(t, r.json(t)["access_token"])

	refresh.Set("scope", e.s.OrgURL(northwindHost)+"/.default")
	r = e.tokenReq(northwindID, refresh)
	assert.Equal(t, "invalid_grant", r.errCode(t), "no delegated consent for Dataverse: %s", r.body)

	refresh.Set("scope", "https://service.powerapps.com//.default")
	refresh.Set("client_secret", "wrong")
	r = e.tokenReq(northwindID, refresh)
	assert.Equal(t, "invalid_client", r.errCode(t))

	refresh.Set("client_secret", provSecret)
	refresh.Set("refresh_token", "not-a-token")
	r = e.tokenReq(northwindID, refresh)
	assert.Equal(t, "invalid_grant", r.errCode(t))
}

func TestAuthorizeRefusals(t *testing.T) {
	e := start(t, nil)
	e.consentProvisioner()
	for name, tc := range map[string]struct {
		mutate func(q url.Values)
		want   string
	}{
		"prompt none without session": {func(q url.Values) { q.Set("prompt", "none") }, "error=login_required"},
		"bad prompt":                  {func(q url.Values) { q.Set("prompt", "always") }, "error=invalid_request"},
		"plain-text method unknown":   {func(q url.Values) { q.Set("code_challenge_method", "S512") }, "error=invalid_request"},
		"short challenge":             {func(q url.Values) { q.Set("code_challenge", "abc") }, "error=invalid_request"},
		"token response type":         {func(q url.Values) { q.Set("response_type", "token") }, "error=unsupported_response_type"},
		"graph scope":                 {func(q url.Values) { q.Set("scope", "https://graph.microsoft.com/User.Read") }, "error=invalid_resource"},
	} {
		t.Run(name, func(t *testing.T) {
			u, _ := url.Parse(e.authorizeURL("", challengeOf(verifier)))
			q := u.Query()
			tc.mutate(q)
			u.RawQuery = q.Encode()
			res, _ := e.browser(http.MethodGet, u.String(), nil, nil)
			require.Equal(t, http.StatusFound, res.StatusCode)
			assert.Contains(t, res.Header.Get("Location"), tc.want)
			assert.Contains(t, res.Header.Get("Location"), "state=st-1")
		})
	}
	u, _ := url.Parse(e.authorizeURL("", challengeOf(verifier)))
	q := u.Query()
	q.Set("redirect_uri", "https://evil.example/cb")
	u.RawQuery = q.Encode()
	res, body := e.browser(http.MethodGet, u.String(), nil, nil)
	assert.Equal(t, http.StatusBadRequest, res.StatusCode, "an unregistered redirect URI gets a page, never a redirect")
	assert.Contains(t, body, "AADSTS50011")

	cb, ck := e.signIn(e.authorizeURL("", challengeOf(verifier)), "", "cancel")
	assert.Equal(t, "access_denied", cb.Get("error"))
	assert.Equal(t, "cancel", cb.Get("error_subcode"))
	assert.Empty(t, cb.Get("code"))
	assert.Nil(t, ck, "a cancelled sign-in starts no session")
}

func TestAddAppUser(t *testing.T) {
	e := start(t, nil)
	clock := time.Now()
	e.s.mu.Lock()
	e.s.now = func() time.Time { return clock }
	e.s.mu.Unlock()
	e.consentProvisioner()
	tokenFor := func(login string) string {
		cb, _ := e.signIn(e.authorizeURL("login", challengeOf(verifier)), login, "signin")
		r := e.tokenReq(northwindID, url.Values{"grant_type": {"authorization_code"}, "client_id": {provClient}, "client_secret": {provSecret},
			"code": {cb.Get("code")}, "redirect_uri": {callbackURI}, "code_verifier": {verifier}, "scope": {paScope}})
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		return r.json(t)["access_token"].(string)
	}
	admin := tokenFor(nwAdmin)
	add := e.s.URL() + bapPrefix + "/" + northwindEnv + "/addAppUser?api-version=2020-10-01"
	body := map[string]any{"servicePrincipalAppId": provClient}

	r := e.do(http.MethodPost, strings.TrimSuffix(add, "?api-version=2020-10-01"), admin, body)
	assert.Equal(t, "MissingApiVersionParameter", r.errCode(t))
	r = e.do(http.MethodPost, add, tokenFor(nwHelpdesk), body)
	assert.Equal(t, http.StatusForbidden, r.status, "a Cloud Application Administrator is not a Power Platform administrator")
	assert.Contains(t, string(r.body), nwHelpdesk)
	r = e.do(http.MethodPost, add, e.provGraph(northwindID), body)
	assert.Equal(t, http.StatusUnauthorized, r.status, "a Graph token is the wrong audience")
	r = e.do(http.MethodPost, add, admin, map[string]any{"servicePrincipalAppId": provClient, "role": "x"})
	assert.Equal(t, http.StatusBadRequest, r.status)
	r = e.do(http.MethodPost, add, admin, map[string]any{"servicePrincipalAppId": "aaaaaaaa-0000-0000-0000-00000000ffff"})
	assert.Equal(t, http.StatusOK, r.status, "an unknown app: 200, nothing happens")

	r = e.do(http.MethodPost, add, admin, body)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	users := func() []UserState {
		for _, o := range e.s.State().Orgs {
			if o.Host == northwindHost {
				return o.Users
			}
		}
		return nil
	}
	assert.Empty(t, users(), "not replicated yet")
	dvTok := e.provDV(northwindID, northwindHost)
	r = e.do(http.MethodGet, e.dv(northwindHost, "/WhoAmI"), dvTok, nil)
	assert.Equal(t, http.StatusForbidden, r.status, "the provisioner is no member before the user replicates")

	e.s.mu.Lock()
	clock = clock.Add(2 * time.Second)
	e.s.mu.Unlock()
	r = e.do(http.MethodGet, e.dv(northwindHost, "/WhoAmI"), dvTok, nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	u := users()
	require.Len(t, u, 1)
	assert.Equal(t, provClient, u[0].ApplicationID)
	assert.Equal(t, []string{"System Administrator"}, u[0].RoleNames)

	r = e.do(http.MethodGet, e.s.URL()+bapPrefix+"?api-version=2020-10-01", admin, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, string(r.body), `"instanceUrl":"`+e.s.OrgURL(northwindHost)+`/"`)
	assert.Contains(t, string(r.body), northwindEnv)
	assert.NotContains(t, string(r.body), contosoHost, "only the token's tenant's environments")
}
