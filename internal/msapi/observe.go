package msapi

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// Call is one HTTP exchange with Microsoft as an Observer sees it.
type Call struct {
	Service string // "graph", "dataverse", or "entra" for token requests
	Op      string // the Request's Op; "token" for Entra's token endpoint; "other" when unknown
	// Status is the HTTP status; 0 when no response arrived.
	Status int
	// Throttled is true for a 429 or a 503 with Retry-After, whose
	// Retry-After (0 when absent) the caller will wait.
	Throttled  bool
	RetryAfter time.Duration
	Duration   time.Duration
}

// Observer is told of every call; it must be cheap and safe for concurrent use.
type Observer interface {
	ObserveCall(Call)
}

type callKey struct{}

type callLabel struct{ service, op string }

// withCall labels the requests made with ctx, so an observing transport
// knows which operation it carries.
func withCall(ctx context.Context, service, op string) context.Context {
	return context.WithValue(ctx, callKey{}, callLabel{service, op})
}

// Observed wraps rt (nil: http.DefaultTransport) so that obs sees every
// call: the ones Client makes, labelled with their Op, and MSAL's token
// requests through the same HTTP client.
func Observed(rt http.RoundTripper, obs Observer) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return observed{rt: rt, obs: obs, now: time.Now}
}

type observed struct {
	rt  http.RoundTripper
	obs Observer
	now func() time.Time
}

func (o observed) RoundTrip(r *http.Request) (*http.Response, error) {
	c := Call{Service: "other", Op: "other"}
	if l, ok := r.Context().Value(callKey{}).(callLabel); ok {
		c.Service, c.Op = l.service, l.op
	} else if strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
		c.Service, c.Op = "entra", "token"
	}
	start := o.now()
	resp, err := o.rt.RoundTrip(r)
	c.Duration = o.now().Sub(start)
	if err == nil {
		c.Status = resp.StatusCode
		ra := resp.Header.Get("Retry-After")
		if c.Status == http.StatusTooManyRequests || (c.Status == http.StatusServiceUnavailable && ra != "") {
			c.Throttled = true
			c.RetryAfter = ParseRetryAfter(ra, o.now())
		}
	}
	o.obs.ObserveCall(c)
	return resp, err
}
