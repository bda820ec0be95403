package testenv

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/devserver"
)

// StartForTest starts an Env for one test with the real worker in this
// process and an encrypting client, both on the "default" namespace; all of
// it stops when t ends. Without the Temporal CLI (`make temporal`) t is
// skipped. Packages that share one Env call Start in TestMain instead.
func StartForTest(t testing.TB, o Options) (*Env, client.Client) {
	t.Helper()
	if _, err := devserver.Locate(); err != nil {
		t.Skipf("Temporal CLI not built (run `make temporal`; `make test` does): %v", err)
	}
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
