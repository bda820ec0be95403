package msapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type staticToken string

func (s staticToken) Token(context.Context) (string, error) { return string(s), nil }

type failingToken struct{ err error }

func (f failingToken) Token(context.Context) (string, error) { return "", f.err }

func newClient(t *testing.T, service string, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &Client{Service: service, BaseURL: srv.URL + "/v1.0", HTTP: srv.Client(), Tokens: staticToken("tok-123")}
}

func TestDoMapsErrorResponses(t *testing.T) {
	past := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		service    string
		status     int
		header     map[string]string
		body       string
		wantKind   Kind
		wantCode   string
		wantMsg    string
		wantReqID  string
		wantRetry  time.Duration
		retryRange bool
	}{
		{name: "graph 429 with seconds", service: "graph", status: 429, header: map[string]string{"Retry-After": "7", "request-id": "rid-1"},
			body:     `{"error":{"code":"TooManyRequests","message":"Slow down","innerError":{"request-id":"inner"}}}`,
			wantKind: Throttled, wantCode: "TooManyRequests", wantMsg: "Slow down", wantReqID: "rid-1", wantRetry: 7 * time.Second},
		{name: "graph 429 with HTTP date", service: "graph", status: 429, header: map[string]string{"Retry-After": past},
			body: `{"error":{"code":"TooManyRequests","message":"x"}}`, wantKind: Throttled, wantCode: "TooManyRequests", wantMsg: "x",
			wantRetry: 90 * time.Second, retryRange: true},
		{name: "dataverse service protection code", service: "dataverse", status: 429, header: map[string]string{"Retry-After": "3", "x-ms-service-request-id": "dv-1"},
			body:     `{"error":{"code":"0x80072322","message":"Number of requests exceeded the limit of 6000 over time window of 300 seconds."}}`,
			wantKind: Throttled, wantCode: "0x80072322", wantReqID: "dv-1", wantRetry: 3 * time.Second},
		{name: "dataverse execution time code even with another status", service: "dataverse", status: 503,
			body: `{"error":{"code":"0x80072321","message":"Combined execution time"}}`, wantKind: Throttled, wantCode: "0x80072321"},
		{name: "dataverse concurrency code", service: "dataverse", status: 429, header: map[string]string{"REQ_ID": "req-9"},
			body: `{"error":{"code":"0x80072326","message":"Concurrent"}}`, wantKind: Throttled, wantCode: "0x80072326", wantReqID: "req-9"},
		// The code decides, whatever the status: each of the three is
		// throttling even where a 503 would be merely transient, so a client
		// that knew only 0x80072322 fails these.
		{name: "dataverse requests code with another status", service: "dataverse", status: 503, header: map[string]string{"Retry-After": "4"},
			body: `{"error":{"code":"0x80072322","message":"Number of requests"}}`, wantKind: Throttled, wantCode: "0x80072322", wantRetry: 4 * time.Second},
		{name: "dataverse concurrency code with another status", service: "dataverse", status: 503, header: map[string]string{"Retry-After": "5"},
			body: `{"error":{"code":"0x80072326","message":"Number of concurrent requests exceeded the limit of 52."}}`, wantKind: Throttled, wantCode: "0x80072326", wantRetry: 5 * time.Second},
		{name: "401", service: "graph", status: 401, body: `{"error":{"code":"InvalidAuthenticationToken","message":"Access token has expired."}}`,
			wantKind: Unauthorized, wantCode: "InvalidAuthenticationToken"},
		{name: "403 request-id from innerError", service: "graph", status: 403,
			body:     `{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"request-id":"inner-7","date":"2024-01-01T00:00:00"}}}`,
			wantKind: PermissionDenied, wantCode: "Authorization_RequestDenied", wantReqID: "inner-7"},
		{name: "404", service: "graph", status: 404, body: `{"error":{"code":"Request_ResourceNotFound","message":"gone"}}`, wantKind: NotFound, wantCode: "Request_ResourceNotFound"},
		{name: "409", service: "graph", status: 409, body: `{"error":{"code":"Conflict","message":"exists"}}`, wantKind: Conflict},
		{name: "412", service: "dataverse", status: 412, body: `{"error":{"code":"0x80060882","message":"precondition"}}`, wantKind: Conflict},
		{name: "400", service: "graph", status: 400, body: `{"error":{"code":"Request_BadRequest","message":"Invalid property"}}`, wantKind: Invalid},
		{name: "422 is invalid", service: "graph", status: 422, body: `{}`, wantKind: Invalid, wantMsg: "Unprocessable Entity"},
		{name: "500 transient, non-JSON body", service: "graph", status: 500, body: `<html>oops</html>`, wantKind: Transient, wantMsg: "Internal Server Error"},
		{name: "503 transient with retry", service: "graph", status: 503, header: map[string]string{"Retry-After": "11", "client-request-id": "crid"},
			body: `{"error":{"code":"serviceNotAvailable","message":"try later"}}`, wantKind: Transient, wantRetry: 11 * time.Second, wantReqID: "crid"},
		{name: "entra flat error", service: "entra", status: 401,
			body:     `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: t","trace_id":"trace-1","error_codes":[7000215]}`,
			wantKind: Unauthorized, wantCode: "invalid_client", wantMsg: "AADSTS7000215: Invalid client secret provided.", wantReqID: "trace-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, tt.service, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header()[k] = []string{v}
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			})
			resp, err := c.Do(context.Background(), Request{Op: "op1", Method: http.MethodGet, Path: "/x"}, nil)
			require.Error(t, err)
			require.NotNil(t, resp)
			assert.Equal(t, tt.status, resp.Status)
			e, ok := AsError(err)
			require.True(t, ok)
			assert.Equal(t, tt.wantKind, e.Kind)
			assert.True(t, IsKind(fmt.Errorf("wrapped: %w", err), tt.wantKind))
			assert.Equal(t, tt.service, e.Service)
			assert.Equal(t, "op1", e.Op)
			assert.Equal(t, tt.status, e.Status)
			if tt.wantCode != "" {
				assert.Equal(t, tt.wantCode, e.Code)
			}
			if tt.wantMsg != "" {
				assert.Equal(t, tt.wantMsg, e.Message)
			}
			assert.Equal(t, tt.wantReqID, e.RequestID)
			if tt.retryRange {
				assert.InDelta(t, tt.wantRetry.Seconds(), e.RetryAfter.Seconds(), 3)
			} else {
				assert.Equal(t, tt.wantRetry, e.RetryAfter)
			}
		})
	}
}

func TestErrorLineNamesEverything(t *testing.T) {
	e := &Error{Service: "graph", Op: "addPassword", Kind: Throttled, Status: 429, Code: "TooManyRequests",
		Message: "Slow down", RequestID: "rid-1", RetryAfter: 5 * time.Second}
	line := e.Error()
	for _, part := range []string{"graph", "addPassword", "throttled", "429", "TooManyRequests", "Slow down", "rid-1", "5s"} {
		assert.Contains(t, line, part)
	}
	assert.NotContains(t, line, "\n")

	multi := &Error{Service: "dataverse", Op: "x", Kind: Invalid, Message: "first\r\n  second"}
	assert.Equal(t, "dataverse x: invalid: first second", multi.Error())

	cause := errors.New("connection refused")
	net := &Error{Service: "dataverse", Op: "whoAmI", Kind: Transient, Err: cause}
	assert.ErrorIs(t, net, cause)
	assert.Contains(t, net.Error(), "connection refused")
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"120", 2 * time.Minute},
		{" 5 ", 5 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"", 0},
		{"soon", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-30 * time.Second).Format(http.TimeFormat), 0},
		{"99999999999999999999", 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			assert.Equal(t, tt.want, ParseRetryAfter(tt.in, now))
		})
	}
}

func TestDoSendsTokenJSONAndODataQuery(t *testing.T) {
	var got *http.Request
	var body map[string]any
	c := newClient(t, "graph", func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id":"obj-1","displayName":"Marketo"}`)
	})
	var out struct {
		ID          string `json:"id"`
		DisplayName string `json:"displayName"`
	}
	resp, err := c.Do(context.Background(), Request{
		Op: "create", Method: http.MethodPatch, Path: "/applications(uniqueName='a')",
		Query:  url.Values{"$filter": {"clientId eq 'x y'"}, "$select": {"id,appId"}},
		Header: http.Header{"Prefer": {"create-if-missing"}},
		Body:   map[string]string{"displayName": "Marketo"},
	}, &out)
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, resp.Status)
	assert.Equal(t, "obj-1", out.ID)
	assert.Equal(t, "Bearer tok-123", got.Header.Get("Authorization"))
	assert.Equal(t, "create-if-missing", got.Header.Get("Prefer"))
	assert.Equal(t, "application/json", got.Header.Get("Accept"))
	assert.Contains(t, got.Header.Get("Content-Type"), "application/json")
	assert.Equal(t, http.MethodPatch, got.Method)
	assert.Equal(t, "$filter=clientId%20eq%20'x%20y'&$select=id,appId", got.URL.RawQuery)
	assert.Equal(t, "Marketo", body["displayName"])
}

func TestDoWithoutBodyOn204(t *testing.T) {
	c := newClient(t, "graph", func(w http.ResponseWriter, r *http.Request) {
		assert.Empty(t, r.Header.Get("Content-Type"))
		w.WriteHeader(http.StatusNoContent)
	})
	var out map[string]any
	resp, err := c.Do(context.Background(), Request{Op: "delete", Method: http.MethodDelete, Path: "/x"}, &out)
	require.NoError(t, err)
	assert.Equal(t, http.StatusNoContent, resp.Status)
	assert.Nil(t, out)
}

func TestDoTokenFailure(t *testing.T) {
	var calls atomic.Int32
	c := newClient(t, "graph", func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	entra := &Error{Service: "entra", Op: "token", Kind: Unauthorized, Code: "invalid_client"}
	c.Tokens = failingToken{err: entra}
	_, err := c.Do(context.Background(), Request{Op: "get", Method: http.MethodGet, Path: "/x"}, nil)
	e, ok := AsError(err)
	require.True(t, ok)
	assert.Equal(t, "entra", e.Service, "the token error is passed on as it is")

	c.Tokens = failingToken{err: errors.New("boom")}
	_, err = c.Do(context.Background(), Request{Op: "get", Method: http.MethodGet, Path: "/x"}, nil)
	assert.True(t, IsKind(err, Unauthorized))
	assert.Zero(t, calls.Load(), "no request goes out without a token")
}

func TestDoNetworkErrorsAreTransient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	c := &Client{Service: "graph", BaseURL: "http://" + addr, HTTP: &http.Client{Timeout: time.Second}}
	_, err = c.Do(context.Background(), Request{Op: "get", Method: http.MethodGet, Path: "/x"}, nil)
	assert.True(t, IsKind(err, Transient), "%v", err)

	slow := newClient(t, "graph", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	})
	slow.HTTP = &http.Client{Timeout: 50 * time.Millisecond}
	_, err = slow.Do(context.Background(), Request{Op: "get", Method: http.MethodGet, Path: "/x"}, nil)
	assert.True(t, IsKind(err, Transient), "%v", err)
}

func TestDoRejectsUndecodableSuccess(t *testing.T) {
	c := newClient(t, "graph", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"id":`) })
	var out map[string]any
	_, err := c.Do(context.Background(), Request{Op: "get", Method: http.MethodGet, Path: "/x"}, &out)
	assert.True(t, IsKind(err, Invalid), "%v", err)
}

func TestListFollowsNextLink(t *testing.T) {
	var srvURL string
	var pages atomic.Int32
	c := newClient(t, "graph", func(w http.ResponseWriter, r *http.Request) {
		pages.Add(1)
		assert.Equal(t, "Bearer tok-123", r.Header.Get("Authorization"))
		switch r.URL.Query().Get("$skiptoken") {
		case "":
			assert.Equal(t, "/v1.0/domains", r.URL.Path)
			fmt.Fprintf(w, `{"value":[{"id":"a"},{"id":"b"}],"@odata.nextLink":"%s/v1.0/domains?$skiptoken=p2"}`, srvURL)
		case "p2":
			fmt.Fprintf(w, `{"value":[{"id":"c"}],"@odata.nextLink":"%s/v1.0/domains?$skiptoken=p3"}`, srvURL)
		default:
			fmt.Fprint(w, `{"value":[]}`)
		}
	})
	srvURL = strings.TrimSuffix(c.BaseURL, "/v1.0")
	var ids []string
	err := c.List(context.Background(), Request{Op: "listDomains", Method: http.MethodGet, Path: "/domains"}, func(raw json.RawMessage) error {
		var v struct{ ID string }
		require.NoError(t, json.Unmarshal(raw, &v))
		ids = append(ids, v.ID)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b", "c"}, ids)
	assert.EqualValues(t, 3, pages.Load())

	typed, err := ListAll(context.Background(), c, Request{Op: "listDomains", Method: http.MethodGet, Path: "/domains"},
		func(v struct{ ID string }) string { return v.ID })
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b", "c"}, typed)
}

func TestListRefusesForeignNextLink(t *testing.T) {
	c := newClient(t, "graph", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"value":[{"id":"a"}],"@odata.nextLink":"https://evil.example/steal"}`)
	})
	err := c.List(context.Background(), Request{Op: "list", Method: http.MethodGet, Path: "/x"}, func(json.RawMessage) error { return nil })
	assert.True(t, IsKind(err, Invalid), "%v", err)
}

func TestListStopsOnCallbackError(t *testing.T) {
	c := newClient(t, "graph", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"value":[1,2,3]}`) })
	stop := errors.New("stop")
	n := 0
	err := c.List(context.Background(), Request{Op: "list", Method: http.MethodGet, Path: "/x"}, func(json.RawMessage) error {
		n++
		return stop
	})
	assert.ErrorIs(t, err, stop)
	assert.Equal(t, 1, n)
}

func TestEncodeQuery(t *testing.T) {
	assert.Equal(t, "", EncodeQuery(nil))
	assert.Equal(t, "$filter=name%20eq%20'a%26b%3Dc%2Bd'&$select=id",
		EncodeQuery(url.Values{"$select": {"id"}, "$filter": {"name eq 'a&b=c+d'"}}))
	assert.Equal(t, "$filter=_parentbusinessunitid_value%20eq%20null", EncodeQuery(url.Values{"$filter": {"_parentbusinessunitid_value eq null"}}))
}

func TestNewHTTPClientTrustsCAFileAndOverridesDial(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Host)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted handshake below is expected
	port, caFile := startTLS(t, srv)

	// httptest's certificate names example.com; the override dials it at 127.0.0.1, same port,
	// and TLS still verifies the name example.com.
	hc, err := NewHTTPClient(HTTPOptions{CAFile: caFile, DialOverrides: map[string]string{"example.com": "127.0.0.1"}})
	require.NoError(t, err)
	resp, err := hc.Get("https://example.com:" + port + "/")
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// Without the CA the same server is not trusted, and that is not a transient failure.
	plain, err := NewHTTPClient(HTTPOptions{DialOverrides: map[string]string{"example.com": "127.0.0.1"}})
	require.NoError(t, err)
	c := &Client{Service: "graph", BaseURL: "https://example.com:" + port, HTTP: plain}
	_, err = c.Do(context.Background(), Request{Op: "get", Method: http.MethodGet, Path: "/"}, nil)
	assert.True(t, IsKind(err, Invalid), "%v", err)
}

func TestNewHTTPClientRejectsBadOptions(t *testing.T) {
	_, err := NewHTTPClient(HTTPOptions{CAFile: filepath.Join(t.TempDir(), "missing.pem")})
	assert.Error(t, err)
	notPEM := filepath.Join(t.TempDir(), "x.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))
	_, err = NewHTTPClient(HTTPOptions{CAFile: notPEM})
	assert.Error(t, err)
	_, err = NewHTTPClient(HTTPOptions{DialOverrides: map[string]string{"*.localhost": "localhost"}})
	assert.Error(t, err, "an override target must be an IP, or it would be resolved")
}

func TestOverrideFor(t *testing.T) {
	o := map[string]string{"*.localhost": "127.0.0.1", "*.crm.localhost": "127.0.0.2", "exact.example": "10.0.0.1"}
	tests := []struct {
		host, want string
		ok         bool
	}{
		{"contoso.crm.localhost", "127.0.0.2", true},
		{"a.localhost", "127.0.0.1", true},
		{"A.LOCALHOST.", "127.0.0.1", true},
		{"localhost", "", false},
		{"exact.example", "10.0.0.1", true},
		{"sub.exact.example", "", false},
		{"graph.microsoft.com", "", false},
		{"evillocalhost", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			got, ok := overrideFor(o, tt.host)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}
