package emulator

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"maps"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDefaultSeedFileEqualsEmbedded(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "emulator-seed.yaml"))
	require.NoError(t, err)
	assert.Equal(t, string(DefaultSeedYAML()), string(b), "config/emulator-seed.yaml must be a copy of internal/emulator/seed/default.yaml")
	s, err := LoadSeed(filepath.Join("..", "..", "config", "emulator-seed.yaml"))
	require.NoError(t, err)
	assert.Equal(t, DefaultSeed(), s)
	require.Len(t, s.Tenants, 3) // Contoso, Fabrikam (federated), Northwind (one-action mode)
	assert.Equal(t, "Federated", s.Tenants[1].Domains[1].AuthenticationType)
	assert.Equal(t, "4.0.0.16", s.Orgs[0].Solutions[0].Version)
}

func TestLoadSeedRejectsUnknownFieldsAndBadValues(t *testing.T) {
	for name, body := range map[string]string{
		"unknown field":  "tenants:\n  - id: 11111111-1111-1111-1111-111111111111\n    colour: red\n",
		"bad auth type":  "tenants:\n  - id: 11111111-1111-1111-1111-111111111111\n    domains: [{name: x.com, authenticationType: Cloud}]\n",
		"org bad tenant": "orgs:\n  - host: a.crm.localhost\n    tenantId: 33333333-3333-3333-3333-333333333333\n",
		"probability":    "faults:\n  throttleProbability: 2\n",
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "seed.yaml")
			require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
			_, err := LoadSeed(p)
			assert.Error(t, err)
		})
	}
}

func TestDiscoveryAndKeys(t *testing.T) {
	e := start(t, nil)
	r := e.do(http.MethodGet, e.s.URL()+"/"+contosoID+"/v2.0/.well-known/openid-configuration", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	doc := r.json(t)
	base := e.s.URL() + "/" + contosoID
	assert.Equal(t, base+"/v2.0", doc["issuer"])
	assert.Equal(t, base+"/oauth2/v2.0/token", doc["token_endpoint"])
	assert.Equal(t, base+"/oauth2/v2.0/authorize", doc["authorization_endpoint"])
	assert.Equal(t, base+"/discovery/v2.0/keys", doc["jwks_uri"])
	_, err := os.Stat(e.s.CAFile())
	assert.NoError(t, err)

	keys := e.do(http.MethodGet, doc["jwks_uri"].(string), "", nil).json(t)["keys"].([]any)
	require.Len(t, keys, 1)
	assert.Equal(t, e.s.kid, keys[0].(map[string]any)["kid"])

	bad := e.do(http.MethodGet, e.s.URL()+"/33333333-3333-3333-3333-333333333333/v2.0/.well-known/openid-configuration", "", nil)
	assert.Equal(t, http.StatusBadRequest, bad.status)
	assert.Equal(t, "invalid_tenant", bad.errCode(t))
	assert.Equal(t, http.StatusMethodNotAllowed, e.do(http.MethodGet, base+"/oauth2/v2.0/token", "", nil).status)
}

func TestTokenEndpointErrors(t *testing.T) {
	e := start(t, nil)
	form := func(kv ...string) url.Values {
		v := url.Values{"grant_type": {"client_credentials"}, "client_id": {provClient}, "client_secret": {provSecret},
			"scope": {e.s.URL() + "/.default"}}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				v.Del(kv[i])
			} else {
				v.Set(kv[i], kv[i+1])
			}
		}
		return v
	}
	tests := []struct {
		name   string
		form   url.Values
		status int
		code   string
		aadsts float64
	}{
		{"wrong secret", form("client_secret", "nope"), 401, "invalid_client", 7000215},
		{"unknown app", form("client_id", "bbbbbbbb-0000-0000-0000-000000000009"), 400, "unauthorized_client", 700016},
		{"no credential", form("client_secret", ""), 401, "invalid_client", 7000218},
		{"scope without .default", form("scope", e.s.URL()+"/Application.Read"), 400, "invalid_scope", 1002012},
		{"unknown resource", form("scope", "https://elsewhere.example/.default"), 400, "invalid_resource", 500011},
		{"other tenant's org", form("scope", e.s.OrgURL("fabrikam.crm.localhost")+"/.default"), 400, "invalid_resource", 500011},
		{"grant type", form("grant_type", "password"), 400, "unsupported_grant_type", 70003},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.tokenReq(contosoID, tt.form)
			require.Equal(t, tt.status, r.status, string(r.body))
			m := r.json(t)
			assert.Equal(t, tt.code, m["error"])
			assert.Contains(t, m["error_description"], "AADSTS")
			assert.Equal(t, []any{tt.aadsts}, m["error_codes"])
		})
	}
}

func TestMSALAcceptsDiscoveryAndToken(t *testing.T) {
	// A certificate credential for the provisioner, registered through the seed.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "provisioner"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	seed := DefaultSeed()
	seed.Tenants[0].Provisioner.CertificatePEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	e := start(t, seed)

	authority := e.s.URL() + "/" + contosoID
	ctx := context.Background()
	secretCred, err := confidential.NewCredFromSecret(provSecret)
	require.NoError(t, err)
	certCred, err := confidential.NewCredFromCert([]*x509.Certificate{cert}, key)
	require.NoError(t, err)
	wrongCred, err := confidential.NewCredFromSecret("not-the-secret")
	require.NoError(t, err)

	for name, tc := range map[string]struct {
		cred  confidential.Credential
		scope string
		aud   string
		roles bool
		fail  string
	}{
		"secret for graph":     {cred: secretCred, scope: e.s.URL() + "/.default", aud: e.s.URL(), roles: true},
		"cert for graph":       {cred: certCred, scope: "https://graph.microsoft.com/.default", aud: "https://graph.microsoft.com", roles: true},
		"secret for dataverse": {cred: secretCred, scope: e.s.OrgURL(contosoHost) + "/.default", aud: e.s.OrgURL(contosoHost)},
		"wrong secret":         {cred: wrongCred, scope: e.s.URL() + "/.default", fail: "AADSTS7000215"},
	} {
		t.Run(name, func(t *testing.T) {
			app, err := confidential.New(authority, provClient, tc.cred,
				confidential.WithHTTPClient(e.hc), confidential.WithInstanceDiscovery(false))
			require.NoError(t, err)
			res, err := app.AcquireTokenByCredential(ctx, []string{tc.scope})
			if tc.fail != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.fail)
				return
			}
			require.NoError(t, err)
			c, err := e.s.verifyToken(res.AccessToken)
			require.NoError(t, err)
			assert.Equal(t, contosoID, c.TenantID)
			assert.Equal(t, provClient, c.AppID)
			assert.Equal(t, []string{tc.aud}, []string(c.Audience))
			assert.NotEmpty(t, c.ObjectID)
			assert.Equal(t, tc.roles, len(c.Roles) == 5, "roles: %v", c.Roles)
		})
	}
}

func TestGraphRejectsBadTokens(t *testing.T) {
	e := start(t, nil)
	good := e.provGraph(contosoID)
	dvTok := e.provDV(contosoID, contosoHost)
	c, err := e.s.verifyToken(good)
	require.NoError(t, err)
	past := time.Now().Add(-2 * time.Hour)
	expired, err := e.s.issueToken(contosoID, provClient, c.ObjectID, e.s.URL(), c.Roles, past, past.Add(time.Hour))
	require.NoError(t, err)
	unknownTenant, err := e.s.issueToken("33333333-3333-3333-3333-333333333333", provClient, c.ObjectID, e.s.URL(), c.Roles, time.Now(), time.Now().Add(time.Hour))
	require.NoError(t, err)
	forged := good[:len(good)-4] + "AAAA"

	for name, tc := range map[string]struct {
		tok    string
		status int
		msg    string
	}{
		"valid":          {good, 200, ""},
		"none":           {"", 401, "Access token is empty."},
		"expired":        {expired, 401, "Lifetime validation failed, the token is expired."},
		"wrong audience": {dvTok, 401, "Invalid audience"},
		"unknown tenant": {unknownTenant, 401, "Invalid tenant"},
		"bad signature":  {forged, 401, "Invalid signature"},
	} {
		t.Run(name, func(t *testing.T) {
			r := e.do(http.MethodGet, e.graph("/domains"), tc.tok, nil)
			require.Equal(t, tc.status, r.status, string(r.body))
			assert.NotEmpty(t, r.header.Get("request-id"))
			if tc.status != 200 {
				assert.Equal(t, "InvalidAuthenticationToken", r.errCode(t))
				errObj := r.json(t)["error"].(map[string]any)
				assert.Contains(t, errObj["message"], tc.msg)
				assert.Equal(t, r.header.Get("request-id"), errObj["innerError"].(map[string]any)["request-id"])
			}
		})
	}
}

func TestDataverseRejectsWrongTenantAndAudience(t *testing.T) {
	e := start(t, nil)
	fabrikamTok := e.provDV(fabrikamID, "fabrikam.crm.localhost")
	graphTok := e.provGraph(contosoID)
	for name, tok := range map[string]string{"other tenant": fabrikamTok, "graph audience": graphTok, "none": ""} {
		t.Run(name, func(t *testing.T) {
			r := e.do(http.MethodGet, e.dv(contosoHost, "/WhoAmI"), tok, nil)
			assert.Equal(t, http.StatusUnauthorized, r.status, string(r.body))
			assert.Equal(t, "4.0", r.header.Get("OData-Version"))
			assert.NotEmpty(t, r.header.Get("x-ms-service-request-id"))
			assert.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer authorization_uri=")
		})
	}
	ok := e.do(http.MethodGet, e.dv("fabrikam.crm.localhost", "/WhoAmI"), fabrikamTok, nil)
	require.Equal(t, http.StatusOK, ok.status, string(ok.body))
	assert.Equal(t, "f0000000-0000-0000-0000-000000000001", ok.json(t)["OrganizationId"])
}

func TestGraphPermissionDenied(t *testing.T) {
	seed := DefaultSeed()
	seed.Tenants[0].Provisioner.Roles = []string{"Application.ReadWrite.OwnedBy"}
	e := start(t, seed)
	tok := e.provGraph(contosoID)
	for name, call := range map[string]func() resp{
		"hrd policy": func() resp {
			return e.do(http.MethodPost, e.graph("/policies/homeRealmDiscoveryPolicies"), tok, map[string]any{
				"displayName": "x", "definition": []string{`{"HomeRealmDiscoveryPolicy":{"AccelerateToFederatedDomain":false}}`}})
		},
		"domains":      func() resp { return e.do(http.MethodGet, e.graph("/domains"), tok, nil) },
		"grants":       func() resp { return e.do(http.MethodGet, e.graph("/oauth2PermissionGrants"), tok, nil) },
		"organization": func() resp { return e.do(http.MethodGet, e.graph("/organization"), tok, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			r := call()
			require.Equal(t, http.StatusForbidden, r.status, string(r.body))
			assert.Equal(t, "Authorization_RequestDenied", r.errCode(t))
			assert.Equal(t, "Insufficient privileges to complete the operation.", r.json(t)["error"].(map[string]any)["message"])
		})
	}
	// OwnedBy: an app created by someone else cannot be touched.
	e.s.mu.Lock()
	var seededID string
	for _, a := range e.s.tenants[contosoID].apps {
		seededID = a.id
	}
	e.s.mu.Unlock()
	r := e.do(http.MethodPost, e.graph("/applications/"+seededID+"/addPassword"), tok, map[string]any{"passwordCredential": map[string]any{"displayName": "x"}})
	assert.Equal(t, http.StatusForbidden, r.status)
}

func TestFaultInjection(t *testing.T) {
	e := start(t, nil)
	tok := e.provGraph(contosoID)

	t.Run("429 with Retry-After in range", func(t *testing.T) {
		e.s.SetFaults(Faults{Routes: map[string]RouteFaults{"graph.listDomains": {ThrottleProbability: 1, RetryAfterMinSeconds: 2, RetryAfterMaxSeconds: 4}}})
		defer e.s.SetFaults(Faults{})
		for range 5 {
			r := e.do(http.MethodGet, e.graph("/domains"), tok, nil)
			require.Equal(t, http.StatusTooManyRequests, r.status)
			ra, err := strconv.Atoi(r.header.Get("Retry-After"))
			require.NoError(t, err)
			assert.GreaterOrEqual(t, ra, 2)
			assert.LessOrEqual(t, ra, 4)
		}
		// other routes are untouched
		assert.Equal(t, http.StatusOK, e.do(http.MethodGet, e.graph("/organization"), tok, nil).status)
	})
	t.Run("dataverse 429s carry the three service protection codes", func(t *testing.T) {
		// api-limits: requests (0x80072322), combined execution time
		// (0x80072321) and concurrent requests (0x80072326), each a 429
		// with Retry-After. Random throttling only ever sent the first before.
		dvTok := e.provDV(contosoID, contosoHost)
		e.s.SetFaults(Faults{Routes: map[string]RouteFaults{"dataverse": {ThrottleProbability: 1}}})
		defer e.s.SetFaults(Faults{})
		seen := map[string]int{}
		for range 60 {
			r := e.do(http.MethodGet, e.dv(contosoHost, "/WhoAmI"), dvTok, nil)
			require.Equal(t, http.StatusTooManyRequests, r.status)
			assert.Equal(t, "1", r.header.Get("Retry-After"))
			seen[r.errCode(t)]++
		}
		assert.ElementsMatch(t, []string{"0x80072322", "0x80072321", "0x80072326"}, slices.Collect(maps.Keys(seen)), "%v", seen)
		for _, code := range []string{"0x80072322", "0x80072321", "0x80072326"} {
			e.s.SetFaults(Faults{Routes: map[string]RouteFaults{"dataverse.whoAmI": {ThrottleProbability: 1, ThrottleCode: code, RetryAfterMinSeconds: 3, RetryAfterMaxSeconds: 3}}})
			r := e.do(http.MethodGet, e.dv(contosoHost, "/WhoAmI"), dvTok, nil)
			assert.Equal(t, code, r.errCode(t))
			assert.Equal(t, "3", r.header.Get("Retry-After"))
		}
		assert.Error(t, Faults{RouteFaults: RouteFaults{ThrottleCode: "0x80072320"}}.validate(), "only the documented codes")
	})
	t.Run("5xx via admin endpoint", func(t *testing.T) {
		body := `{"serverErrorProbability":1,"serverErrorStatus":502}`
		req, _ := http.NewRequest(http.MethodPost, e.s.URL()+"/_emulator/faults", strings.NewReader(body))
		res, err := e.hc.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusNoContent, res.StatusCode)
		r := e.do(http.MethodGet, e.graph("/domains"), tok, nil)
		assert.Equal(t, http.StatusBadGateway, r.status)
		tr := e.tokenReq(contosoID, url.Values{"grant_type": {"client_credentials"}})
		assert.Equal(t, http.StatusBadGateway, tr.status)
		e.s.SetFaults(Faults{})
		assert.Equal(t, http.StatusOK, e.do(http.MethodGet, e.graph("/domains"), tok, nil).status)
	})
	t.Run("FailNext twice then success", func(t *testing.T) {
		e.s.FailNext("graph.organization", 2, 503, "serviceNotAvailable")
		for range 2 {
			r := e.do(http.MethodGet, e.graph("/organization"), tok, nil)
			require.Equal(t, http.StatusServiceUnavailable, r.status)
			assert.Equal(t, "serviceNotAvailable", r.errCode(t))
		}
		assert.Equal(t, http.StatusOK, e.do(http.MethodGet, e.graph("/organization"), tok, nil).status)
	})
	t.Run("FailNext always via admin, then cleared", func(t *testing.T) {
		r := e.do(http.MethodPost, e.s.URL()+"/_emulator/fail", "", map[string]any{"op": "entra.token", "times": -1, "status": 500, "code": "server_error"})
		require.Equal(t, http.StatusNoContent, r.status)
		for range 3 {
			tr := e.tokenReq(contosoID, url.Values{})
			assert.Equal(t, 500, tr.status)
			assert.Equal(t, "server_error", tr.errCode(t))
		}
		e.s.FailNext("entra.token", 0, 0, "")
		e.provGraph(contosoID)
	})
	t.Run("latency", func(t *testing.T) {
		e.s.SetFaults(Faults{RouteFaults: RouteFaults{LatencyMs: 150}})
		defer e.s.SetFaults(Faults{})
		t0 := time.Now()
		e.do(http.MethodGet, e.graph("/organization"), tok, nil)
		assert.GreaterOrEqual(t, time.Since(t0), 150*time.Millisecond)
	})
}
