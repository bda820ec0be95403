package msauth

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
)

// capture holds the last failed HTTP response MSAL saw during one token request. MSAL reports
// such failures as apps/errors.CallErr; reading the response here instead keeps that package
// (and its pretty-printer dependency) out of the build and gives the exact body.
type capture struct {
	mu     sync.Mutex
	ok     bool
	status int
	header http.Header
	body   []byte
}

func (c *capture) get() (int, http.Header, []byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, c.header, c.body, c.ok
}

type captureKey struct{}

func withCapture(ctx context.Context, c *capture) context.Context {
	return context.WithValue(ctx, captureKey{}, c)
}

// capturingClient is the HTTP client handed to MSAL.
type capturingClient struct{ hc *http.Client }

func (cc capturingClient) Do(req *http.Request) (*http.Response, error) {
	resp, err := cc.hc.Do(req)
	if err != nil || resp.StatusCode < 300 {
		return resp, err
	}
	c, _ := req.Context().Value(captureKey{}).(*capture)
	if c == nil {
		return resp, nil
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr != nil {
		return resp, nil
	}
	c.mu.Lock()
	c.ok, c.status, c.header, c.body = true, resp.StatusCode, resp.Header.Clone(), body
	c.mu.Unlock()
	return resp, nil
}

func (cc capturingClient) CloseIdleConnections() { cc.hc.CloseIdleConnections() }
