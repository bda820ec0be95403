package testenv

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/devserver"
)

// RequireTemporalCLI fails t when the Temporal CLI is not built, and skips
// it instead with -short. `make test` builds the CLI, so a missing one is a
// broken setup that a silent skip would hide, with every integration test
// "passing".
func RequireTemporalCLI(t testing.TB) {
	t.Helper()
	requireCLI(t, testing.Short())
}

func requireCLI(t testing.TB, short bool) {
	t.Helper()
	_, err := devserver.Locate()
	switch {
	case err == nil:
	case short:
		t.Skipf("Temporal CLI not built; skipped with -short: %v", err)
	default:
		t.Fatalf("Temporal CLI not built: %v; build it with `make temporal` (`make test` does), or run `go test -short` to skip the tests that need it", err)
	}
}

// StartForTest starts an Env for one test with the real worker in this
// process and an encrypting client, both on the "default" namespace; all of
// it stops when t ends. Without the Temporal CLI (`make temporal`) t fails,
// or is skipped with -short. Packages that share one Env call Start in
// TestMain instead.
func StartForTest(t testing.TB, o Options) (*Env, client.Client) {
	t.Helper()
	RequireTemporalCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Close() })
	w, err := env.NewWorker(ctx, "default", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	c, err := env.Dial(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return env, c
}
