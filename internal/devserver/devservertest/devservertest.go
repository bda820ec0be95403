// Package devservertest starts a Temporal dev server for a test and stops it
// when the test ends.
package devservertest

import (
	"context"
	"testing"
	"time"

	"github.com/mktos2s/mktos2s/internal/devserver"
)

// Start starts a dev server for t (found with devserver.Locate unless
// o.Binary is set) and stops it in t.Cleanup. Without the Temporal CLI the
// test fails, or is skipped under -short.
func Start(t testing.TB, o devserver.Options) *devserver.Server {
	t.Helper()
	if o.Binary == "" {
		bin, err := devserver.Locate()
		if err != nil {
			if testing.Short() {
				t.Skipf("no Temporal CLI in -short mode: %v", err)
			}
			t.Fatalf("%v (build it with `make temporal`)", err)
		}
		o.Binary = bin
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := devserver.Start(ctx, o)
	if err != nil {
		t.Fatalf("start Temporal dev server: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop Temporal dev server: %v", err)
		}
	})
	return s
}
