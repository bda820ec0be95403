// Package msapi is the HTTP plumbing shared by the Microsoft Graph and Dataverse clients:
// bearer tokens, JSON in and out, Microsoft's error bodies turned into typed errors, Retry-After,
// request IDs and OData paging. It never retries: Temporal's activity retry policies do, and the
// Kind and RetryAfter of an *Error tell them how.
package msapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mktos2s/mktos2s/internal/inert"
)

// maxRetryAfterSeconds keeps absurd values from overflowing time.Duration.
const maxRetryAfterSeconds = 24 * 60 * 60

// Kind classifies a failed call by what the caller should do about it.
type Kind string

// Kinds of failure.
const (
	Throttled        Kind = "throttled"         // 429, Dataverse 0x80072322/0x80072321/0x80072326; RetryAfter set
	PermissionDenied Kind = "permission-denied" // 403
	Unauthorized     Kind = "unauthorized"      // 401, and Entra invalid_client/unauthorized_client
	NotFound         Kind = "not-found"         // 404
	Conflict         Kind = "conflict"          // 409, 412
	Invalid          Kind = "invalid"           // 400 and other 4xx
	Transient        Kind = "transient"         // 5xx, timeouts, connection resets
)

// Dataverse service protection API limit codes: the number of requests, the combined execution
// time and the number of concurrent requests. Dataverse sends them with 429 today, but the code
// is the documented contract, so it decides even if the status ever differs.
var dataverseThrottleCodes = []string{"0x80072322", "0x80072321", "0x80072326"}

// Error is a failed call to Entra ID, Microsoft Graph or Dataverse.
type Error struct {
	Service    string // "graph" | "dataverse" | "entra"
	Op         string // e.g. "addPassword"
	Kind       Kind
	Status     int
	Code       string // error.code from the body
	Message    string // error.message (never contains a secret)
	RequestID  string
	RetryAfter time.Duration
	Err        error // underlying cause (network error), may be nil
}

// Error renders one line an operator can act on and quote to Microsoft support.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s", e.Service, e.Op, e.Kind)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d", e.Status)
		if e.Code != "" {
			fmt.Fprintf(&b, " %s", inert.Text(e.Code))
		}
		b.WriteString(")")
	} else if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", inert.Text(e.Code))
	}
	if e.Message != "" {
		// Services sometimes send multi-line messages; the log line stays one line. The text
		// is the service's (a customer's Dataverse plugin can set it): no escape sequence of
		// it reaches a terminal, a log or the UI.
		fmt.Fprintf(&b, ": %s", strings.Join(strings.Fields(inert.Text(e.Message)), " "))
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [request-id %s]", inert.Text(e.RequestID))
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " [retry after %s]", e.RetryAfter)
	}
	return b.String()
}

// Unwrap exposes the network cause, so errors.Is(err, context.DeadlineExceeded) works.
func (e *Error) Unwrap() error { return e.Err }

// AsError finds an *Error in err's chain.
func AsError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// IsKind reports whether err's chain holds an *Error of kind k.
func IsKind(err error, k Kind) bool {
	e, ok := AsError(err)
	return ok && e.Kind == k
}

// KindFor maps an HTTP status and a Microsoft error code to a Kind.
func KindFor(status int, code string) Kind {
	for _, c := range dataverseThrottleCodes {
		if strings.EqualFold(code, c) {
			return Throttled
		}
	}
	switch {
	case status == http.StatusTooManyRequests:
		return Throttled
	case status == http.StatusUnauthorized:
		return Unauthorized
	case status == http.StatusForbidden:
		return PermissionDenied
	case status == http.StatusNotFound:
		return NotFound
	case status == http.StatusConflict, status == http.StatusPreconditionFailed:
		return Conflict
	case status == http.StatusRequestTimeout, status >= 500:
		return Transient
	default:
		return Invalid
	}
}

// ParseRetryAfter reads a Retry-After header value, which is either delta-seconds or an
// HTTP-date (RFC 9110 section 10.2.3). Unparseable or past values give 0.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if isDigits(v) {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs <= 0 || secs > maxRetryAfterSeconds {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	if d := t.Sub(now); d > 0 {
		return d.Round(time.Second)
	}
	return 0
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
