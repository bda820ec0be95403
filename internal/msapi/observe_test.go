package msapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type recordCalls struct {
	mu    sync.Mutex
	calls []Call
}

func (r *recordCalls) ObserveCall(c Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
}

func TestObservedLabelsCallsAndThrottling(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/busy":
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/tenant/oauth2/v2.0/token":
			w.WriteHeader(http.StatusOK)
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{}`))
		}
	}))
	defer srv.Close()
	rec := &recordCalls{}
	hc := &http.Client{Transport: Observed(nil, rec)}
	c := &Client{Service: "graph", BaseURL: srv.URL, HTTP: hc}
	ctx := context.Background()

	_, err := c.Do(ctx, Request{Op: "getApplication", Method: http.MethodGet, Path: "/ok"}, nil)
	require.NoError(t, err)
	_, err = c.Do(ctx, Request{Op: "addPassword", Method: http.MethodPost, Path: "/busy"}, nil)
	assert.True(t, IsKind(err, Throttled), "%v", err)
	_, err = c.Do(ctx, Request{Op: "addPassword", Method: http.MethodPost, Path: "/down"}, nil)
	require.Error(t, err)
	resp, err := hc.Post(srv.URL+"/tenant/oauth2/v2.0/token", "application/x-www-form-urlencoded", nil)
	require.NoError(t, err)
	resp.Body.Close()

	require.Len(t, rec.calls, 4)
	got := rec.calls
	assert.Equal(t, Call{Service: "graph", Op: "getApplication", Status: 200}, withoutDuration(got[0]))
	assert.Equal(t, Call{Service: "graph", Op: "addPassword", Status: 429, Throttled: true, RetryAfter: 3 * time.Second}, withoutDuration(got[1]))
	assert.Equal(t, Call{Service: "graph", Op: "addPassword", Status: 503}, withoutDuration(got[2]), "a 503 without Retry-After is an outage, not throttling")
	assert.Equal(t, Call{Service: "entra", Op: "token", Status: 200}, withoutDuration(got[3]), "MSAL's token requests are labelled by path")
}

func withoutDuration(c Call) Call {
	c.Duration = 0
	return c
}
