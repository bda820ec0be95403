package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The built binary (TestMain's) starts from a config file and flags, and
// exits 0 on SIGTERM after stopping its worker. It polls a namespace of its
// own on the shared dev server, so it never takes a task of another test.
func TestWorkerBinaryStopsGracefullyOnSIGTERM(t *testing.T) {
	requireEnv(t)
	ctx := timeout(t, 2*time.Minute)
	const ns = "sigterm"
	require.NoError(t, env.AddNamespace(ctx, ns))

	dir := t.TempDir()
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	cfgFile := filepath.Join(dir, "mktos2s.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
temporal:
  address: %s
  namespace: %s
codec:
  keys:
    t1: %s
custody:
  keys:
    c1: %s
microsoft:
  provisioner:
    clientId: aaaaaaaa-0000-0000-0000-000000000001
    clientSecret: binary-test-secret
log:
  format: text
worker:
  stopTimeout: 2s
`, env.Dev.Address, ns, key, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32)))), 0o600))

	cmd := exec.CommandContext(ctx, workerBin, "--config", cfgFile, "--log-level", "debug")
	cmd.Env = append(os.Environ(), "HOME="+dir)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	var logged strings.Builder
	started := make(chan struct{})
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			logged.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "worker started") {
				once = true
				close(started)
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()

	select {
	case <-started:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-copied
		t.Fatalf("worker did not start:\n%s", logged.String())
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	waitErr := make(chan error, 1)
	go func() { <-copied; waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		assert.NoError(t, err, "exit status after SIGTERM\n%s", logged.String())
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("worker did not exit after SIGTERM")
	}
	assert.Contains(t, logged.String(), "worker stopped")
	assert.NotContains(t, logged.String(), "binary-test-secret")
	assert.NotContains(t, logged.String(), key)
}
