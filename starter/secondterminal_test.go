package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/cli"
	"github.com/mktos2s/mktos2s/internal/devstack"
	"github.com/mktos2s/mktos2s/internal/testenv"
)

// TestSecondTerminalAfterDevstackDev: `devstack dev` prints the command a
// second terminal runs; that terminal's starter, given nothing but what was
// printed (no codec key, no address of its own), starts an onboarding and
// reads its status, and the file is gone once the stack stops.
func TestSecondTerminalAfterDevstackDev(t *testing.T) {
	needTemporal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The dev stack's own config has no codec key: it generates one that
	// lives only as long as the process, which a second terminal cannot know.
	cfgFile := writeConfig(t, "log:\n  level: warn\n  format: text\n")
	devCtx, stopDev := context.WithCancel(ctx)
	var out testenv.Buffer
	root := devstack.NewRoot()
	root.SetArgs([]string{"--config", cfgFile, "dev", "--no-ui", "--temporal-port", "0", "--emulator-addr", "127.0.0.1:0",
		"--codec-listen", "127.0.0.1:0", "--callback-listen", "127.0.0.1:0", "--data-dir", t.TempDir()})
	root.SetOut(&out)
	root.SetErr(&out)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(devCtx) }()
	defer func() { stopDev(); <-done }()

	printed := regexp.MustCompile(`other terminals\s+starter (--config \S+) list`)
	org := regexp.MustCompile(`demo org\s+tenant (\S+), org URL (\S+)`)
	require.Eventually(t, func() bool {
		return printed.MatchString(out.String()) && strings.Contains(out.String(), "Press Ctrl-C")
	},
		90*time.Second, 50*time.Millisecond, "devstack dev never printed the second terminal's command:\n%s", out.String())
	flags := strings.Fields(printed.FindStringSubmatch(out.String())[1])
	m := org.FindStringSubmatch(out.String())
	require.NotNil(t, m, out.String())
	target := []string{"--tenant-id", m[1], "--org-url", m[2]}

	second := func(args ...string) (int, string) {
		return runCode(ctx, t, append(append([]string{}, flags...), args...)...)
	}
	code, text := second("list")
	require.Equal(t, cli.ExitOK, code, text)
	code, text = second(append([]string{"start", "--link-wait", "0"}, target...)...)
	require.Equal(t, cli.ExitOK, code, text)
	assert.Contains(t, text, "Follow it with: starter "+strings.Join(flags, " ")+" status ", "the hint carries the config")
	code, text = second(append([]string{"status"}, target...)...)
	assert.Equal(t, cli.ExitWaiting, code, text)
	assert.Contains(t, text, "Onboarding onboarding/"+m[1])
	assert.NotContains(t, text, "codec")

	stopDev()
	require.NoError(t, <-done)
	done <- nil
	_, err := os.Stat(flags[1])
	assert.True(t, os.IsNotExist(err), "the file is removed when the stack stops")
}

// TestDevstackDevRefusesATakenPort: a taken Temporal port is reported with
// the real reason, and nothing (not the emulator's CA file) is written.
func TestDevstackDevRefusesATakenPort(t *testing.T) {
	needTemporal(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	dataDir := t.TempDir()
	cfgFile := writeConfig(t, "log:\n  level: warn\n  format: text\n")
	var out bytes.Buffer
	root := devstack.NewRoot()
	root.SetArgs([]string{"--config", cfgFile, "dev", "--no-ui", "--temporal-port", strconv.Itoa(port), "--emulator-addr", "127.0.0.1:0",
		"--codec-listen", "127.0.0.1:0", "--callback-listen", "127.0.0.1:0", "--data-dir", dataDir})
	root.SetOut(&out)
	root.SetErr(&out)
	err = root.ExecuteContext(t.Context())
	require.Error(t, err, out.String())
	assert.Contains(t, err.Error(), fmt.Sprintf("the Temporal frontend (--temporal-port, temporal.address) cannot listen on 127.0.0.1:%d", port))
	assert.NotContains(t, out.String(), "mktos2s local stack:", "it never says it started")
	entries, err := os.ReadDir(dataDir)
	require.NoError(t, err)
	assert.Empty(t, entries, "no CA file, no client config")
}
