package emulator

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	contosoID   = "11111111-1111-1111-1111-111111111111"
	fabrikamID  = "22222222-2222-2222-2222-222222222222"
	provClient  = "aaaaaaaa-0000-0000-0000-000000000001"
	provSecret  = "provisioner-demo-secret"
	contosoHost = "contoso.crm.localhost"
)

// syncBuffer collects log output written from server goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	t    *testing.T
	s    *Server
	hc   *http.Client
	logs *syncBuffer
}

func start(t *testing.T, seed *Seed) *env {
	t.Helper()
	return startWith(t, Options{Seed: seed})
}

// startWith starts an emulator with o on a free port, a temporary data
// directory and a captured debug log.
func startWith(t *testing.T, o Options) *env {
	t.Helper()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	o.Addr, o.DataDir = "127.0.0.1:0", t.TempDir()
	o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Start(ctx, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return &env{t: t, s: s, hc: clientFor(t, s), logs: logs}
}

// clientFor trusts the emulator CA and dials every name at the emulator, never resolving it.
func clientFor(t *testing.T, s *Server) *http.Client {
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(s.CAPEM()))
	d := &net.Dialer{}
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, s.ln.Addr().String())
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), string(r.body))
	return m
}

// errCode returns error.code (Graph, Dataverse) or error (Entra).
func (r resp) errCode(t *testing.T) string {
	m := r.json(t)
	switch e := m["error"].(type) {
	case string:
		return e
	case map[string]any:
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func (e *env) do(method, rawURL, token string, body any, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(e.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	require.NoError(e.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.hc.Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) tokenReq(tenantID string, form url.Values) resp {
	e.t.Helper()
	res, err := e.hc.PostForm(e.s.URL()+"/"+tenantID+"/oauth2/v2.0/token", form)
	require.NoError(e.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// token gets an access token with a client secret, failing the test on error.
func (e *env) token(tenantID, clientID, secret, resource string) string {
	e.t.Helper()
	r := e.tokenReq(tenantID, url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID},
		"client_secret": {secret}, "scope": {resource + "/.default openid offline_access profile"}})
	require.Equal(e.t, http.StatusOK, r.status, string(r.body))
	tok, _ := r.json(e.t)["access_token"].(string)
	require.NotEmpty(e.t, tok)
	return tok
}

func (e *env) graph(path string) string { return e.s.URL() + "/v1.0" + path }

func (e *env) dv(host, path string) string { return e.s.OrgURL(host) + "/api/data/v9.2" + path }

func (e *env) provGraph(tenantID string) string {
	return e.token(tenantID, provClient, provSecret, e.s.URL())
}

func (e *env) provDV(tenantID, host string) string {
	return e.token(tenantID, provClient, provSecret, e.s.OrgURL(host))
}

func contains(hay, needle string) bool { return strings.Contains(hay, needle) }

// booleanColumn is the documented Boolean column definition ("Create a
// boolean column", create-update-column-definitions-using-web-api).
func booleanColumn(schema, display string) map[string]any {
	label := func(text string) map[string]any {
		return map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.Label", "LocalizedLabels": []any{
			map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": text, "LanguageCode": 1033, "IsManaged": false}}}
	}
	return map[string]any{
		"@odata.type": "Microsoft.Dynamics.CRM.BooleanAttributeMetadata", "AttributeType": "Boolean",
		"AttributeTypeName": map[string]any{"Value": "BooleanType"}, "DefaultValue": false,
		"OptionSet": map[string]any{"TrueOption": map[string]any{"Value": 1, "Label": label("True")},
			"FalseOption": map[string]any{"Value": 0, "Label": label("False")}, "OptionSetType": "Boolean"},
		"Description": label("Boolean Attribute"), "DisplayName": label(display),
		"RequiredLevel": map[string]any{"Value": "None", "CanBeChanged": false, "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"},
		"SchemaName":    schema,
	}
}

// answerConsent opens an admin-consent URL (the page: it must grant
// nothing) and clicks Accept (accept) or Cancel; it returns the answer.
func (e *env) answerConsent(consentURL string, accept bool) resp {
	e.t.Helper()
	page := e.do(http.MethodGet, consentURL, "", nil)
	require.Equal(e.t, http.StatusOK, page.status, string(page.body))
	u, err := url.Parse(consentURL)
	require.NoError(e.t, err)
	action, form, err := ConsentForm(u, page.body, accept)
	require.NoError(e.t, err)
	return e.postForm(action, form)
}

// postForm posts an HTML form without following the redirect.
func (e *env) postForm(rawURL string, form url.Values) resp {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := e.hc.Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}
