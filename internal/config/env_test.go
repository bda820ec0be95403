package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUnknownEnvironmentVariablesAreReportedWithTheFix(t *testing.T) {
	cfg, err := Load(Options{Environ: []string{
		"MKTOS2S_TEMPORAL_ADRESS=localhost:7233", // a typo
		"MKTOS2S_TENANT_ID=11111111-1111-1111-1111-111111111111",
		"MKTOS2S_TEMPORAL_BIN=/usr/bin/temporal",
		"MKTOS2S_SOMETHING_ELSE=1",
		"HOME=/root",
	}, EnvFlags: []string{"MKTOS2S_TENANT_ID"}})
	require.NoError(t, err)
	err = cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "MKTOS2S_TEMPORAL_ADRESS: unknown environment variable; did you mean MKTOS2S_TEMPORAL_ADDRESS (temporal.address)?")
	assert.Contains(t, err.Error(), "MKTOS2S_SOMETHING_ELSE: unknown environment variable; no configuration key reads it")
	assert.NotContains(t, err.Error(), "MKTOS2S_TENANT_ID", "a flag's variable is known")
	assert.NotContains(t, err.Error(), "MKTOS2S_TEMPORAL_BIN", "a tool variable is known")
}

func TestUnparsableValuesNameKeyVariableAndFix(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mktos2s.yaml")
	require.NoError(t, os.WriteFile(file, []byte("worker:\n  stickyCacheSize: lots\n"), 0o600))
	t.Setenv("MKTOS2S_CONSENT_RECHECKINTERVAL", "10 minutes")
	t.Setenv("MKTOS2S_TEMPORAL_TLS_ENABLED", "yes please")
	_, err := Load(Options{File: file})
	require.Error(t, err)
	for _, want := range []string{
		`consent.recheckInterval (MKTOS2S_CONSENT_RECHECKINTERVAL): "10 minutes" is not a duration; write it like 90s, 10m or 1h30m`,
		`worker.stickyCacheSize (MKTOS2S_WORKER_STICKYCACHESIZE): "lots" is not a whole number`,
		`temporal.tls.enabled (MKTOS2S_TEMPORAL_TLS_ENABLED): "yes please" is not true or false`,
	} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NotContains(t, err.Error(), "time: unknown unit")
}
