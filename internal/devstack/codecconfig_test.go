package devstack

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/mktos2s/mktos2s/internal/config"
)

// The codec endpoint, which the Temporal UI talks to, gets the codec keys
// and its own token and no other secret of the installation, in its file
// and in its environment.
func TestCodecEndpointConfigKeepsOnlyTheCodecSecrets(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "stack.yaml")
	require.NoError(t, os.WriteFile(in, []byte(`
temporal:
  address: 127.0.0.1:21400
codec:
  keys: {k1: codec-key-value}
  activeKeyId: k1
codecServer:
  token: codec-token-value
  listen: 127.0.0.1:0
custody:
  keys: {c1: custody-key-value}
  activeKeyId: c1
consent:
  callbackKey: callback-key-value
  recheckInterval: 10m
microsoft:
  provisioner:
    clientId: prov-id
    clientSecret: provisioner-secret-value
`), 0o600))
	env := []string{
		"MKTOS2S_CONSENT_CALLBACKKEY=callback-key-value",
		"MKTOS2S_MICROSOFT_PROVISIONER_CLIENTSECRET=provisioner-secret-value",
		"MKTOS2S_CUSTODY_KEYS=c1=custody-key-value",
		"MKTOS2S_CUSTODY_ACTIVEKEYID=c1",
		"MKTOS2S_CODEC_KEYS=k1=codec-key-value",
		"MKTOS2S_TEMPORAL_ADDRESS=127.0.0.1:21400",
	}
	out, kept, err := forCodecEndpoint(in, filepath.Join(dir, "codec.yaml"), env)
	require.NoError(t, err)
	assert.Equal(t, []string{"MKTOS2S_CODEC_KEYS=k1=codec-key-value", "MKTOS2S_TEMPORAL_ADDRESS=127.0.0.1:21400"}, kept)

	b, err := os.ReadFile(out)
	require.NoError(t, err)
	for _, gone := range []string{"custody-key-value", "callback-key-value", "provisioner-secret-value"} {
		assert.NotContains(t, string(b), gone)
	}
	var doc map[string]map[string]any
	require.NoError(t, yaml.Unmarshal(b, &doc))
	assert.Equal(t, map[string]any{"k1": "codec-key-value"}, doc["codec"]["keys"])
	assert.Equal(t, "codec-token-value", doc["codecServer"]["token"])
	assert.Equal(t, "10m", doc["consent"]["recheckInterval"], "what is not secret stays")
	assert.Equal(t, "prov-id", doc["microsoft"]["provisioner"].(map[string]any)["clientId"])
	assert.NotContains(t, doc, "custody")

	// The file loads as a config the codec endpoint can serve with.
	cfg, err := config.Load(config.Options{File: out})
	require.NoError(t, err)
	assert.Equal(t, "codec-token-value", cfg.CodecServer.Token)
	assert.Empty(t, cfg.Consent.CallbackKey)
	assert.Empty(t, cfg.Custody.Keys)
}
