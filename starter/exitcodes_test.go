package main

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/mktos2s/mktos2s/internal/cli"
)

// runCode runs the starter as main does and returns its exit code and output.
func runCode(ctx context.Context, t *testing.T, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Run(ctx, args, &stdout, &stderr)
	return code, stdout.String() + stderr.String()
}

// TestExitCodesOfBadInput: everything refused before a command could change
// anything exits 2, whatever layer refused it (cobra, the configuration,
// the command's own validation).
func TestExitCodesOfBadInput(t *testing.T) {
	cfg := writeConfig(t, baseYAML(""))
	badCfg := writeConfig(t, baseYAML("temporal:\n  adress: localhost:7233\n"))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"--config", cfg, "strat"}, "unknown command"},
		{"unknown flag", []string{"--config", cfg, "status", "--tenant", "x"}, "unknown flag"},
		{"stray argument", []string{"--config", cfg, "status", "contoso"}, "unknown command"},
		{"missing target", []string{"--config", cfg, "status"}, "missing --tenant-id"},
		{"unknown config key", []string{"--config", badCfg, "list"}, "temporal.adress"},
		{"invalid start input", []string{"--config", cfg, "start", "--tenant-id", "nope", "--org-url", "https://x.crm.dynamics.com"}, "tenantId"},
		{"unknown list status", []string{"--config", cfg, "list", "--status", "bogus"}, "--status"},
		{"rotate --now --confirm", []string{"--config", cfg, "rotate", "--now", "--confirm", "--tenant-id", contosoTenant, "--org-url", "https://x.crm.dynamics.com"}, "exclude each other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runCode(t.Context(), t, tt.args...)
			assert.Equal(t, cli.ExitBadInput, code, out)
			assert.Contains(t, out, tt.want)
		})
	}
}

func TestVersionNeedsNoConfiguration(t *testing.T) {
	badCfg := writeConfig(t, "temporal: [not, a, map]\n")
	code, out := runCode(t.Context(), t, "--config", badCfg, "version")
	assert.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "starter ")
	assert.Contains(t, out, "Temporal Go SDK 1.")

	code, out = runCode(t.Context(), t, "exit-codes")
	assert.Equal(t, cli.ExitOK, code, out)
	for _, c := range cli.ExitCodes {
		assert.Contains(t, out, c.Meaning)
	}
}

// TestMisspeltVariableIsBadInput: MKTOS2S_TEMPORAL_ADRESS was ignored
// without a word; now every command refuses it and names the fix.
func TestMisspeltVariableIsBadInput(t *testing.T) {
	cfg := writeConfig(t, baseYAML(""))
	t.Setenv("MKTOS2S_TEMPORAL_ADRESS", "localhost:7233")
	code, out := runCode(t.Context(), t, "--config", cfg, "list")
	assert.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "MKTOS2S_TEMPORAL_ADRESS: unknown environment variable; did you mean MKTOS2S_TEMPORAL_ADDRESS (temporal.address)?")

	t.Setenv("MKTOS2S_TEMPORAL_ADRESS", "")
	os.Unsetenv("MKTOS2S_TEMPORAL_ADRESS")
	t.Setenv("MKTOS2S_CONSENT_RECHECKINTERVAL", "10 minutes")
	code, out = runCode(t.Context(), t, "--config", cfg, "list")
	assert.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, `consent.recheckInterval (MKTOS2S_CONSENT_RECHECKINTERVAL): "10 minutes" is not a duration`)
}
