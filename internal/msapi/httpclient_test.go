package msapi

import (
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Over HTTP/1.1 a burst of concurrent requests to one host (the token endpoint every tenant
// shares) leaves its connections idle for the next burst instead of closing all but two and
// paying a TLS handshake for each again.
func TestNewHTTPClientReusesConnectionsOfABurst(t *testing.T) {
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond) // keep the burst's requests in flight together
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	port, caFile := startTLS(t, srv) // HTTP/1.1 only: httptest's EnableHTTP2 is off
	hc, err := NewHTTPClient(HTTPOptions{CAFile: caFile, DialOverrides: map[string]string{"example.com": "127.0.0.1"}})
	require.NoError(t, err)

	const burst = 16
	get := func() {
		var wg sync.WaitGroup
		for range burst {
			wg.Go(func() {
				resp, err := hc.Get("https://example.com:" + port + "/")
				if assert.NoError(t, err) {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					assert.Equal(t, "HTTP/1.1", resp.Proto)
				}
			})
		}
		wg.Wait()
	}
	get()
	first := opened.Load()
	require.LessOrEqual(t, first, int64(burst))
	get()
	assert.Equal(t, first, opened.Load(), "the second burst opened new connections")
}

// startTLS starts srv with TLS and returns its port and a CA file that trusts its certificate
// (which names example.com).
func startTLS(t *testing.T, srv *httptest.Server) (port, caFile string) {
	t.Helper()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
	return port, caFile
}

// A credential never follows a redirect: not a bearer token to another host
// (or down to plain http), not a token form re-posted by a 307.
func TestNewHTTPClientFollowsNoRedirect(t *testing.T) {
	var leaked atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Add(1)
	}))
	t.Cleanup(other.Close)
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/steal", code)
		}))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		port, caFile := startTLS(t, srv)
		hc, err := NewHTTPClient(HTTPOptions{CAFile: caFile, DialOverrides: map[string]string{"login.example.com": "127.0.0.1"}})
		require.NoError(t, err)

		req, err := http.NewRequest(http.MethodPost, "https://login.example.com:"+port+"/token", strings.NewReader("client_secret=s3cret"))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer tok")
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := hc.Do(req)
		if resp != nil {
			resp.Body.Close()
		}
		require.ErrorIs(t, err, ErrRedirect, "status %d", code)
		assert.Contains(t, err.Error(), other.URL[len("http://"):], "the error names where the redirect pointed")
	}
	assert.Zero(t, leaked.Load(), "a request reached the redirect's target")
}
