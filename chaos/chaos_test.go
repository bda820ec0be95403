package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/devserver"
)

// TestChaosShort is the short chaos run of `make test`: real dev server on a
// database file, the emulator's fault storm, a worker SIGKILL and a server
// restart while onboardings run, then the state table and the secret-leak
// scan. `make chaos` is the full run.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("the short chaos run takes about 3 minutes")
	}
	if _, err := devserver.Locate(); err != nil {
		t.Skipf("Temporal CLI not built (run `make temporal`; `make test` does): %v", err)
	}
	o := ShortOptions()
	o.Dir = t.TempDir()
	var out bytes.Buffer
	w := io.Writer(&out)
	if testing.Verbose() {
		w = io.MultiWriter(&out, os.Stdout)
	}
	rep, err := Run(context.Background(), o, w)
	require.NoError(t, err, out.String())

	assert.GreaterOrEqual(t, rep.Kills, 1, "the worker was SIGKILLed while onboardings ran")
	assert.GreaterOrEqual(t, rep.ServerRestarts, 1, "the dev server was restarted on its database file")
	assert.Len(t, rep.Rows, o.total())
	assert.Positive(t, rep.Leak.Secrets, "the leak scan looked for something")
	assert.Positive(t, rep.Leak.Histories, "the leak scan read histories")
	assert.Positive(t, rep.Leak.DBFiles, "the leak scan read the database")
	assert.Empty(t, rep.Leak.Hits, "no secret in any history, search attribute or log")
	assert.Empty(t, rep.Violations, out.String())
}
