package msauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/msapi"
)

// fakeEntra is the smallest OpenID provider MSAL's confidential client talks to: discovery and
// the token endpoint. Its answer to a token request is chosen per test.
type fakeEntra struct {
	srv *httptest.Server

	mu      sync.Mutex
	forms   []url.Values
	respond func(form url.Values) (int, http.Header, string)
}

func newFakeEntra(t *testing.T) *fakeEntra {
	t.Helper()
	f := &fakeEntra{respond: func(form url.Values) (int, http.Header, string) {
		return 200, nil, fmt.Sprintf(`{"token_type":"Bearer","expires_in":3600,"access_token":"at-%s-%s"}`,
			form.Get("client_id"), strings.Fields(form.Get("scope"))[0])
	}}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)
		if len(parts) != 2 {
			http.NotFound(w, r)
			return
		}
		tenant, rest := parts[0], parts[1]
		base := f.srv.URL + "/" + tenant
		switch rest {
		case "v2.0/.well-known/openid-configuration":
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{
				"issuer":                 base + "/v2.0",
				"authorization_endpoint": base + "/oauth2/v2.0/authorize",
				"token_endpoint":         base + "/oauth2/v2.0/token",
			})
		case "oauth2/v2.0/token":
			require.NoError(t, r.ParseForm())
			f.mu.Lock()
			f.forms = append(f.forms, r.PostForm)
			respond := f.respond
			f.mu.Unlock()
			status, h, body := respond(r.PostForm)
			for k, v := range h {
				w.Header()[k] = v
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprint(w, body)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeEntra) tokenRequests() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.forms...)
}

func (f *fakeEntra) provider() *Provider {
	return New(Options{AuthorityHost: f.srv.URL, HTTPClient: f.srv.Client()})
}

const tenantA = "11111111-1111-1111-1111-111111111111"

func TestTokenReusesOneClientPerCredential(t *testing.T) {
	f := newFakeEntra(t)
	p := f.provider()
	ctx := context.Background()
	cred := Credential{ClientID: "app-1", Secret: "s3cret-value"}

	tok, err := p.Token(ctx, tenantA, cred, "https://graph.microsoft.com/.default")
	require.NoError(t, err)
	assert.Equal(t, "at-app-1-https://graph.microsoft.com/.default", tok)
	again, err := p.Source(tenantA, cred, "https://graph.microsoft.com/.default").Token(ctx)
	require.NoError(t, err)
	assert.Equal(t, tok, again)
	require.Len(t, f.tokenRequests(), 1, "the second call is served from MSAL's cache")

	form := f.tokenRequests()[0]
	assert.Equal(t, "client_credentials", form.Get("grant_type"))
	assert.Equal(t, "s3cret-value", form.Get("client_secret"))

	// Another scope, another secret and another tenant each need their own token.
	_, err = p.Token(ctx, tenantA, cred, "https://contoso.crm.dynamics.com/.default")
	require.NoError(t, err)
	_, err = p.Token(ctx, tenantA, Credential{ClientID: "app-1", Secret: "rotated"}, "https://graph.microsoft.com/.default")
	require.NoError(t, err)
	_, err = p.Token(ctx, "22222222-2222-2222-2222-222222222222", cred, "https://graph.microsoft.com/.default")
	require.NoError(t, err)
	assert.Len(t, f.tokenRequests(), 4)
	assert.Len(t, p.clients, 3, "one MSAL client per (tenant, client, credential)")
	for k := range p.clients {
		assert.NotContains(t, fmt.Sprintf("%+v", k), "s3cret", "the cache key holds a fingerprint, not the secret")
	}
}

func TestTokenErrorsBecomeTypedErrors(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		header   http.Header
		body     string
		kind     msapi.Kind
		code     string
		retry    time.Duration
		contains string
	}{
		{name: "invalid secret", status: 401,
			body: `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: abc","error_codes":[7000215],"trace_id":"abc"}`,
			kind: msapi.Unauthorized, code: "invalid_client", contains: "AADSTS7000215"},
		{name: "unknown app (replication lag)", status: 400,
			body: `{"error":"unauthorized_client","error_description":"AADSTS700016: Application with identifier 'x' was not found in the directory.","error_codes":[700016]}`,
			kind: msapi.Unauthorized, code: "unauthorized_client", contains: "AADSTS700016"},
		{name: "bad scope", status: 400, body: `{"error":"invalid_scope","error_description":"AADSTS1002012: scope"}`,
			kind: msapi.Invalid, code: "invalid_scope"},
		{name: "throttled", status: 429, header: http.Header{"Retry-After": {"4"}}, body: `{"error":"temporarily_unavailable","error_description":"slow"}`,
			kind: msapi.Throttled, retry: 4 * time.Second},
		{name: "server error", status: 503, body: `{"error":"temporarily_unavailable","error_description":"AADSTS50000"}`,
			kind: msapi.Transient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEntra(t)
			f.respond = func(url.Values) (int, http.Header, string) { return tt.status, tt.header, tt.body }
			_, err := f.provider().Token(context.Background(), tenantA, Credential{ClientID: "app-1", Secret: "s3cret-value"}, "https://graph.microsoft.com/.default")
			require.Error(t, err)
			e, ok := msapi.AsError(err)
			require.True(t, ok, "%T %v", err, err)
			assert.Equal(t, "entra", e.Service)
			assert.Equal(t, tt.kind, e.Kind, e.Error())
			assert.Equal(t, tt.status, e.Status)
			if tt.code != "" {
				assert.Equal(t, tt.code, e.Code)
			}
			assert.Equal(t, tt.retry, e.RetryAfter)
			assert.Contains(t, e.Error(), tt.contains)
			assert.NotContains(t, e.Error(), "s3cret-value")
			assert.NotContains(t, e.Error(), "\n")
		})
	}
}

func TestTokenNetworkFailureIsTransient(t *testing.T) {
	f := newFakeEntra(t)
	p := f.provider()
	f.srv.Close()
	_, err := p.Token(context.Background(), tenantA, Credential{ClientID: "app-1", Secret: "x"}, "https://graph.microsoft.com/.default")
	assert.True(t, msapi.IsKind(err, msapi.Transient), "%v", err)
}

func TestCertificateCredentialSignsAssertion(t *testing.T) {
	f := newFakeEntra(t)
	certPEM := selfSignedPEM(t)
	tok, err := f.provider().Token(context.Background(), tenantA, Credential{ClientID: "app-2", CertificatePEM: certPEM}, "https://graph.microsoft.com/.default")
	require.NoError(t, err)
	assert.NotEmpty(t, tok)

	forms := f.tokenRequests()
	require.Len(t, forms, 1)
	assert.Empty(t, forms[0].Get("client_secret"))
	assert.Equal(t, "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", forms[0].Get("client_assertion_type"))
	parsed, _, err := jwt.NewParser().ParseUnverified(forms[0].Get("client_assertion"), jwt.MapClaims{})
	require.NoError(t, err)
	// MSAL Go signs with PS256 and names the certificate by its SHA-256 thumbprint for Entra authorities.
	assert.NotEmpty(t, parsed.Header["x5t#S256"], "Entra finds the registered certificate by its thumbprint")
	assert.Equal(t, "PS256", parsed.Header["alg"])
	claims := parsed.Claims.(jwt.MapClaims)
	assert.Equal(t, "app-2", claims["iss"])
	assert.Equal(t, "app-2", claims["sub"])
}

func TestInvalidCredentialsFailWithoutACall(t *testing.T) {
	f := newFakeEntra(t)
	p := f.provider()
	tests := []struct {
		name   string
		tenant string
		cred   Credential
		scope  string
	}{
		{"no secret or certificate", tenantA, Credential{ClientID: "a"}, "https://graph.microsoft.com/.default"},
		{"both secret and certificate", tenantA, Credential{ClientID: "a", Secret: "x", CertificatePEM: selfSignedPEM(t)}, "https://graph.microsoft.com/.default"},
		{"certificate without key", tenantA, Credential{ClientID: "a", CertificatePEM: []byte("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n")}, "https://graph.microsoft.com/.default"},
		{"no tenant", "", Credential{ClientID: "a", Secret: "x"}, "https://graph.microsoft.com/.default"},
		{"no scope", tenantA, Credential{ClientID: "a", Secret: "x"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Token(context.Background(), tt.tenant, tt.cred, tt.scope)
			assert.True(t, msapi.IsKind(err, msapi.Invalid), "%v", err)
		})
	}
	assert.Empty(t, f.tokenRequests())
}

func TestScopeFor(t *testing.T) {
	tests := map[string]string{
		"https://graph.microsoft.com/v1.0":                 "https://graph.microsoft.com/.default",
		"https://graph.microsoft.com":                      "https://graph.microsoft.com/.default",
		"https://contoso.crm.dynamics.com/api/data/v9.2/x": "https://contoso.crm.dynamics.com/.default",
		"https://contoso.crm.localhost:8443":               "https://contoso.crm.localhost:8443/.default",
		"https://127.0.0.1:9443/v1.0":                      "https://127.0.0.1:9443/.default",
	}
	for in, want := range tests {
		assert.Equal(t, want, ScopeFor(in), in)
	}
}

func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mktos2s test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
}

func TestTokenIsSafeForConcurrentUse(t *testing.T) {
	f := newFakeEntra(t)
	p := f.provider()
	cred := Credential{ClientID: "app-1", Secret: "s3cret-value"}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.Token(context.Background(), tenantA, cred, "https://graph.microsoft.com/.default")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.Len(t, p.clients, 1, "concurrent callers share one MSAL client")
}

func TestCredentialsNeverPrintTheirSecret(t *testing.T) {
	p := New(Options{})
	cred := Credential{ClientID: "app-1", Secret: "s3cret-value"}
	certCred := Credential{ClientID: "app-2", CertificatePEM: []byte("-----BEGIN PRIVATE KEY-----\nKEYDATA\n-----END PRIVATE KEY-----\n")}
	holder := struct{ Cred Credential }{cred}
	for _, out := range []string{
		fmt.Sprintf("%v", cred), fmt.Sprintf("%+v", cred), fmt.Sprintf("%#v", cred), fmt.Sprint(holder), fmt.Sprintf("%+v", holder),
		fmt.Sprintf("%v", p.Source(tenantA, cred, "s")), fmt.Sprintf("%+v", p.Source(tenantA, cred, "s")),
		fmt.Sprintf("%+v", certCred),
	} {
		assert.NotContains(t, out, "s3cret-value")
		assert.NotContains(t, out, "KEYDATA")
	}
	assert.Contains(t, cred.String(), "app-1")
}

// The Provider keeps at most MaxClients MSAL clients: a credential used again and again (the
// provisioner's) keeps its client and token cache, while one-off credentials (each new app's,
// used once to validate) age out instead of growing the worker without bound.
func TestClientsAreBoundedLeastRecentlyUsedFirst(t *testing.T) {
	f := newFakeEntra(t)
	p := New(Options{AuthorityHost: f.srv.URL, HTTPClient: f.srv.Client(), MaxClients: 2})
	ctx := context.Background()
	const scope = "https://graph.microsoft.com/.default"
	provisioner := Credential{ClientID: "provisioner", Secret: "p-secret"}
	token := func(cred Credential) {
		t.Helper()
		_, err := p.Token(ctx, tenantA, cred, scope)
		require.NoError(t, err)
	}

	token(provisioner)
	for i := range 5 {
		token(Credential{ClientID: fmt.Sprintf("new-app-%d", i), Secret: "one-off"})
		token(provisioner) // between validations the provisioner works on
	}
	assert.Len(t, f.tokenRequests(), 6, "the provisioner's token came from its cache every time after the first")
	assert.Len(t, p.clients, 2)
	assert.Equal(t, 2, p.lru.Len())

	// The one-off client of new-app-0 was dropped: its credential needs Entra again.
	token(Credential{ClientID: "new-app-0", Secret: "one-off"})
	assert.Len(t, f.tokenRequests(), 7)
	// And the provisioner, still the most recent before it, was kept.
	token(provisioner)
	assert.Len(t, f.tokenRequests(), 7)

	assert.Equal(t, DefaultMaxClients, New(Options{}).maxClients, "0 means the default bound")
}

// A 307 from the token endpoint would make net/http re-post the form, client
// secret included, to wherever it points; MSAL gets an error instead, even
// with a client that follows redirects (the test server's own).
func TestTokenFollowsNoRedirect(t *testing.T) {
	var leaked []url.Values
	var mu sync.Mutex
	thief := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		mu.Lock()
		leaked = append(leaked, r.PostForm)
		mu.Unlock()
		fmt.Fprint(w, `{"token_type":"Bearer","expires_in":3600,"access_token":"stolen"}`)
	}))
	t.Cleanup(thief.Close)
	f := newFakeEntra(t)
	f.respond = func(url.Values) (int, http.Header, string) {
		return http.StatusTemporaryRedirect, http.Header{"Location": {thief.URL + "/token"}}, ""
	}
	hc := f.srv.Client()
	hc.Transport.(*http.Transport).TLSClientConfig.RootCAs.AddCert(thief.Certificate())
	p := New(Options{AuthorityHost: f.srv.URL, HTTPClient: hc})

	_, err := p.Token(context.Background(), tenantA, Credential{ClientID: "app-1", Secret: "s3cret-value"}, "https://graph.microsoft.com/.default")
	require.Error(t, err)
	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, leaked, "the token form followed the redirect")
	assert.Len(t, f.tokenRequests(), 1)
	assert.Nil(t, hc.CheckRedirect, "the caller's client is left as it was")
}
