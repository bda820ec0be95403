package config

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// repoFile is a path relative to the module root, whatever the working directory.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	_, self, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Join(filepath.Dir(self), "..", "..", rel)
}

func TestREADMEDocumentsEveryKey(t *testing.T) {
	readme, err := os.ReadFile(repoFile(t, "README.md"))
	require.NoError(t, err)
	for _, k := range Keys() {
		row := "| `" + k.Name + "` | `" + k.Env() + "` |"
		assert.Contains(t, string(readme), row, "README configuration table lacks %s", k.Name)
	}
}

func TestSampleConfigs(t *testing.T) {
	emulator := repoFile(t, "config/mktos2s.emulator.yaml")
	example := repoFile(t, "config/mktos2s.example.yaml")

	t.Run("emulator", func(t *testing.T) {
		isolate(t)
		// caFile is relative: the emulator writes it under the working directory.
		writeFile(t, ".", ".data/emulator/ca.pem", "placeholder")
		cfg, err := Load(Options{File: emulator})
		require.NoError(t, err)
		require.NoError(t, cfg.ValidateWorker())
		assert.Equal(t, "https://127.0.0.1:8443", cfg.Microsoft.AuthorityHost)
		assert.Equal(t, "https://127.0.0.1:8443/v1.0", cfg.Microsoft.GraphBaseURL)
		assert.Equal(t, map[string]string{"*.localhost": "127.0.0.1"}, cfg.Microsoft.DialOverrides)
		assert.True(t, cfg.Microsoft.AllowsOrgHost("contoso.crm.localhost"))
		assert.Equal(t, "demo-only", cfg.Codec.ActiveKeyID)
		assert.Equal(t, "demo-custody", cfg.Custody.ActiveKeyID, "the demo seals secrets with its own custody key")
		assert.Equal(t, "aaaaaaaa-0000-0000-0000-000000000001", cfg.Microsoft.Provisioner.ClientID)
		key, err := cfg.Consent.CallbackKeyBytes()
		require.NoError(t, err)
		assert.Len(t, key, MinCallbackKeyBytes, "the demo signs consent links")
		assert.True(t, strings.HasSuffix(cfg.Consent.RedirectURI, "/consent/callback"), cfg.Consent.RedirectURI)
		assert.Contains(t, cfg.Consent.RedirectURI, cfg.Consent.CallbackListen, "the redirect reaches `starter serve`")
	})

	t.Run("example", func(t *testing.T) {
		isolate(t)
		cfg, err := Load(Options{File: example})
		require.NoError(t, err)
		require.NoError(t, cfg.Validate())
		assert.ErrorIs(t, cfg.ValidateWorker(), ErrNoCodecKey, "the example ships without a key")
		assert.ErrorIs(t, cfg.ValidateWorker(), ErrNoCustodyKey, "nor a custody key")
		assert.ElementsMatch(t, DefaultAllowedOrgSuffixes, cfg.Microsoft.AllowedOrgSuffixes)

		raw, err := os.ReadFile(example)
		require.NoError(t, err)
		for _, k := range Keys() {
			leaf := k.Name[strings.LastIndex(k.Name, ".")+1:]
			assert.Contains(t, string(raw), leaf+":", "example lacks %s", k.Name)
		}
	})
}
