package config

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The emulator's file with Microsoft's real URLs: every public secret in it
// is refused by name, none of them printed.
func TestPublicValuesRefusedOutsideTheSandbox(t *testing.T) {
	emulator := repoFile(t, "config/mktos2s.emulator.yaml")
	for _, tc := range []struct {
		name, authority, graph string
		refused                bool
	}{
		{"emulator", "https://127.0.0.1:8443", "https://127.0.0.1:8443/v1.0", false},
		{"emulator by name", "https://login.localhost:8443", "https://graph.localhost/v1.0", false},
		{"real Microsoft", DefaultAuthorityHost, DefaultGraphBaseURL, true},
		{"only Graph real", "https://127.0.0.1:8443", DefaultGraphBaseURL, true},
		{"only Entra real", DefaultAuthorityHost, "https://[::1]:8443/v1.0", true},
		{"lookalike", "https://127.0.0.1.nip.io", "https://localhost.example.com/v1.0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			writeFile(t, ".", ".data/emulator/ca.pem", "placeholder")
			t.Setenv("MKTOS2S_MICROSOFT_AUTHORITYHOST", tc.authority)
			t.Setenv("MKTOS2S_MICROSOFT_GRAPHBASEURL", tc.graph)
			cfg, err := Load(Options{File: emulator})
			require.NoError(t, err)
			err = cfg.ValidateWorker()
			if !tc.refused {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			msg := err.Error()
			for _, key := range []string{"codec.keys", "custody.keys", "consent.callbackKey", "codecServer.token", "microsoft.provisioner.clientSecret"} {
				assert.Contains(t, msg, key+" (", "%s is not refused", key)
			}
			assert.Contains(t, msg, "public value of config/mktos2s.emulator.yaml")
			for _, secret := range []string{cfg.Codec.Keys["demo-only"], cfg.Custody.Keys["demo-custody"], cfg.Consent.CallbackKey, cfg.CodecServer.Token, cfg.Microsoft.Provisioner.ClientSecret} {
				assert.NotContains(t, msg, secret)
			}
		})
	}
}

// Re-encoding a public key in another base64 alphabet does not get it past.
func TestPublicKeyRefusedInAnyEncoding(t *testing.T) {
	isolate(t)
	raw, err := base64.StdEncoding.DecodeString("URSzuJJ7wnuLe3oK6l1/7B+E0MkqK/PWrhVR0DDnteY=")
	require.NoError(t, err)
	t.Setenv("MKTOS2S_CODEC_KEYS", "prod="+base64.RawURLEncoding.EncodeToString(raw))
	cfg, err := Load(Options{})
	require.NoError(t, err)
	require.ErrorContains(t, cfg.Validate(), "the key prod is the public value of config/mktos2s.emulator.yaml codec.keys")
}

// A key pasted without "id=" is never echoed, not even lower-cased: base64
// padding made the key the ID, and the ID was printed (2^33 case guesses
// recover it).
func TestCodecKeyErrorsNeverEchoTheKey(t *testing.T) {
	padded := b64key(7)                                     // "BwcH…Bwc="
	lower := "abcdefghijklmnopqrstuvwxyz0123456789abcdefg=" // a key whose lower-case form is a valid ID
	for _, env := range []string{padded, strings.TrimRight(padded, "="), lower, "k1=" + padded + "," + padded, padded + "=x"} {
		t.Run(env[:8], func(t *testing.T) {
			isolate(t)
			t.Setenv("MKTOS2S_CODEC_KEYS", env)
			cfg, err := Load(Options{})
			if err == nil {
				err = cfg.ValidateWorker()
			}
			require.Error(t, err)
			msg := strings.ToLower(err.Error())
			assert.Contains(t, msg, "codec")
			for _, secret := range []string{padded, lower} {
				core := strings.ToLower(strings.TrimRight(secret, "="))
				assert.NotContains(t, msg, core[:16], "the error echoes the key")
			}
		})
	}
}
