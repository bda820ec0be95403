package codec

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

const (
	testToken  = "codec-test-token"
	testOrigin = "http://localhost:8233"
)

func newTestServer(t *testing.T) (*httptest.Server, *Codec) {
	t.Helper()
	c, err := New(map[string][]byte{"k1": newKey(t)}, "k1")
	require.NoError(t, err)
	h, err := NewHTTPHandler(c, HTTPOptions{Token: testToken, CORSOrigin: testOrigin + "/"})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, c
}

// decodeBody builds the request body the Temporal UI sends to /decode.
func decodeBody(t *testing.T, c *Codec, data string) string {
	t.Helper()
	enc, err := c.Encode([]*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(data)}})
	require.NoError(t, err)
	b, err := protojson.Marshal(&commonpb.Payloads{Payloads: enc})
	require.NoError(t, err)
	return string(b)
}

func post(t *testing.T, url, body string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// preflight sends the OPTIONS request a browser sends before a cross-origin POST.
func preflight(t *testing.T, url, origin, headers string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodOptions, url, nil)
	require.NoError(t, err)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	if headers != "" {
		req.Header.Set("Access-Control-Request-Headers", headers)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func TestHTTPHandlerAuth(t *testing.T) {
	srv, c := newTestServer(t)
	body := decodeBody(t, c, `"the-secret"`)

	tests := []struct {
		name   string
		auth   string
		status int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "Bearer nope", http.StatusUnauthorized},
		{"token as basic auth", "Basic " + testToken, http.StatusUnauthorized},
		{"token with extra suffix", "Bearer " + testToken + "x", http.StatusUnauthorized},
		{"right token", "Bearer " + testToken, http.StatusOK},
		{"scheme is case-insensitive", "bearer " + testToken, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{"X-Namespace": "default"}
			if tt.auth != "" {
				h["Authorization"] = tt.auth
			}
			resp := post(t, srv.URL+"/decode", body, h)
			assert.Equal(t, tt.status, resp.StatusCode)
			if tt.status == http.StatusUnauthorized {
				assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer")
			}
		})
	}
}

func TestHTTPHandlerPathToken(t *testing.T) {
	srv, c := newTestServer(t)
	body := decodeBody(t, c, `"x"`)
	tests := []struct {
		path   string
		status int
	}{
		{"/auth/" + testToken + "/decode", http.StatusOK},
		{"/auth/" + testToken + "/default/decode", http.StatusOK},
		{"/auth/wrong/decode", http.StatusUnauthorized},
		{"/auth//decode", http.StatusUnauthorized},
		{"/auth/" + testToken + "x/decode", http.StatusUnauthorized},
		{"/" + testToken + "/decode", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp := post(t, srv.URL+tt.path, body, map[string]string{"Origin": testOrigin, "X-Namespace": "default"})
			assert.Equal(t, tt.status, resp.StatusCode)
		})
	}
	// A wrong header is not rescued by a right path token.
	resp := post(t, srv.URL+"/auth/"+testToken+"/decode", body, map[string]string{"Authorization": "Bearer nope"})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestHTTPHandlerDecodes(t *testing.T) {
	srv, c := newTestServer(t)
	resp := post(t, srv.URL+"/default/decode", decodeBody(t, c, `"the-secret"`),
		map[string]string{"Authorization": "Bearer " + testToken, "Origin": testOrigin})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, testOrigin, resp.Header.Get("Access-Control-Allow-Origin"))

	var raw json.RawMessage
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&raw))
	var got commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(raw, &got))
	require.Len(t, got.Payloads, 1)
	assert.Equal(t, `"the-secret"`, string(got.Payloads[0].Data))
}

func TestHTTPHandlerCORS(t *testing.T) {
	srv, c := newTestServer(t)
	body := decodeBody(t, c, `1`)
	auth := "Bearer " + testToken

	t.Run("preflight from the UI origin", func(t *testing.T) {
		resp := preflight(t, srv.URL+"/decode", testOrigin, "authorization,content-type,x-namespace")
		assert.Equal(t, http.StatusNoContent, resp.StatusCode)
		assert.Equal(t, testOrigin, resp.Header.Get("Access-Control-Allow-Origin"))
		allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
		for _, h := range []string{"authorization", "content-type", "x-namespace"} {
			assert.Contains(t, allowed, h)
		}
		assert.Contains(t, resp.Header.Get("Access-Control-Allow-Methods"), "POST")
	})

	t.Run("preflight from another origin", func(t *testing.T) {
		resp := preflight(t, srv.URL+"/decode", "http://evil.example", "")
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	})

	t.Run("preflight asking for an unexpected header", func(t *testing.T) {
		resp := preflight(t, srv.URL+"/decode", testOrigin, "x-forward-to")
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	})

	t.Run("POST with a valid token from another origin", func(t *testing.T) {
		resp := post(t, srv.URL+"/decode", body, map[string]string{"Authorization": auth, "Origin": "http://localhost:9999"})
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	})

	t.Run("same UI under another loopback name", func(t *testing.T) {
		for _, origin := range []string{"http://127.0.0.1:8233", "http://[::1]:8233"} {
			resp := post(t, srv.URL+"/decode", body, map[string]string{"Authorization": auth, "Origin": origin})
			assert.Equal(t, http.StatusOK, resp.StatusCode, origin)
			assert.Equal(t, origin, resp.Header.Get("Access-Control-Allow-Origin"))
		}
		for _, origin := range []string{"http://127.0.0.1:8234", "https://localhost:8233", "http://localhost"} {
			resp := post(t, srv.URL+"/decode", body, map[string]string{"Authorization": auth, "Origin": origin})
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, origin)
		}
	})

	t.Run("POST without Origin (CLI) gets no CORS headers", func(t *testing.T) {
		resp := post(t, srv.URL+"/decode", body, map[string]string{"Authorization": auth})
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	})
}

func TestNewHTTPHandlerRequiresTokenAndValidOrigin(t *testing.T) {
	c, err := New(map[string][]byte{"k1": newKey(t)}, "k1")
	require.NoError(t, err)
	_, err = NewHTTPHandler(c, HTTPOptions{})
	assert.ErrorContains(t, err, "token")
	_, err = NewHTTPHandler(c, HTTPOptions{Token: "t", CORSOrigin: "localhost:8233"})
	assert.ErrorContains(t, err, "origin")
	_, err = NewHTTPHandler(c, HTTPOptions{Token: "t", CORSOrigin: "http://localhost:8233/ui"})
	assert.ErrorContains(t, err, "path")
}
