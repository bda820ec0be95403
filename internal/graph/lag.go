package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mktos2s/mktos2s/internal/msapi"
)

// Entra replicates a new application to the directory's replicas over
// seconds: right after its creation, creating its service principal can
// answer 400 "The appId '…' of the service principal does not reference a
// valid application object" (detail NoBackingApplicationObject), and
// addPassword 404 Request_ResourceNotFound
// (learn.microsoft.com/answers/questions/5883620; Microsoft's advice,
// learn.microsoft.com/answers/questions/936575: back off 1, 2, 4, 8 s and
// retry). These two calls are the one exception to "the client never
// retries": they wait that delay out for a bounded time, because only they
// can tell it from a real refusal by its exact shape. After the bound they
// return an error that wraps ErrReplicationLag and the last *msapi.Error.

// DefaultLagWait is how long a call waits out a new application's replication.
const DefaultLagWait = 20 * time.Second

// ErrReplicationLag marks an error that is Entra's replication delay after
// the bound: retryable, later.
var ErrReplicationLag = errors.New("the new application has not replicated in Entra yet")

// IsReplicationLag reports whether err is a new application's replication
// delay: ErrReplicationLag after the bound, or the service principal's lag
// answer itself.
func IsReplicationLag(err error) bool { return errors.Is(err, ErrReplicationLag) || noBackingApp(err) }

type lagError struct {
	waited time.Duration
	last   error
}

func (e *lagError) Error() string {
	return fmt.Sprintf("%v (waited %s): %v", ErrReplicationLag, e.waited.Round(time.Millisecond), e.last)
}

func (e *lagError) Unwrap() []error { return []error{ErrReplicationLag, e.last} }

// noBackingApp is the service principal's lag: 400 naming the appId as not
// a valid application object.
func noBackingApp(err error) bool {
	e, ok := msapi.AsError(err)
	return ok && e.Status == http.StatusBadRequest &&
		(strings.EqualFold(e.Code, "NoBackingApplicationObject") || strings.Contains(e.Message, "does not reference a valid application object"))
}

// appNotReplicated is addPassword's lag: 404 Request_ResourceNotFound.
func appNotReplicated(err error) bool {
	e, ok := msapi.AsError(err)
	return ok && e.Status == http.StatusNotFound && strings.EqualFold(e.Code, "Request_ResourceNotFound")
}

// waitOutLag runs call until it succeeds, fails otherwise than lagged
// says, or c.lagWait has passed, backing off 1 s, 2 s, 4 s … between tries.
func waitOutLag[T any](ctx context.Context, c *Client, lagged func(error) bool, call func() (T, error)) (T, error) {
	start := time.Now()
	delay := time.Second
	for {
		v, err := call()
		if err == nil || !lagged(err) {
			return v, err
		}
		waited := time.Since(start)
		if waited+delay > c.lagWait {
			return v, &lagError{waited: waited, last: err}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, &lagError{waited: time.Since(start), last: err}
		case <-t.C:
		}
		delay *= 2
	}
}
