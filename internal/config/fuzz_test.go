package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad: any mktos2s.yaml loads or fails with an error, never a panic,
// and no secret it sets is printed by Validate's errors or by the redacted
// configuration (String, which is what logs see).
func FuzzLoad(f *testing.F) {
	isolate(f)
	for _, seed := range []string{
		"codec:\n  keys:\n    k1: " + b64key(1) + "\n",
		"codec:\n  keys:\n    " + b64key(2) + ": \"\"\n",
		"microsoft:\n  authorityHost: https://login.microsoftonline.com\n  provisioner:\n    clientSecret: provisioner-demo-secret\n",
		"consent:\n  callbackKey: c2hvcnQ=\n  stateTTL: -1h\n",
		"worker:\n  pprofListen: 0.0.0.0:6060\n",
		"temporal: [1, 2\n",
		"log:\n  level: {a: b}\n",
		"",
	} {
		f.Add(seed)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, yaml string) {
		file := filepath.Join(dir, "mktos2s.yaml")
		if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(Options{File: file})
		if err != nil {
			return
		}
		verr := cfg.ValidateWorker()
		shown := cfg.String()
		if verr != nil {
			shown += verr.Error()
		}
		secrets := []string{cfg.Temporal.APIKey, cfg.Microsoft.Provisioner.ClientSecret, cfg.CodecServer.Token, cfg.Consent.CallbackKey}
		for _, k := range cfg.Codec.Keys {
			secrets = append(secrets, k)
		}
		// A secret that equals text the configuration holds elsewhere (an
		// org suffix, a URL) is printed there, rightly.
		bare := cfg
		bare.Temporal.APIKey, bare.Microsoft.Provisioner.ClientSecret, bare.CodecServer.Token, bare.Consent.CallbackKey, bare.Codec.Keys = "", "", "", "", nil
		elsewhere := fmt.Sprintf("%+v", view(bare)) + yamlKeys(yaml)
		for _, s := range secrets {
			if s = strings.TrimSpace(s); len(s) >= 12 && strings.Contains(shown, s) && !strings.Contains(elsewhere, s) {
				t.Fatalf("a secret is printed: %q in %q", s, shown)
			}
		}
	})
}

// yamlKeys is the text before each ':' of a YAML document: key names that
// errors rightly quote (the unknown-key error names them).
func yamlKeys(yaml string) string {
	var b strings.Builder
	for _, line := range strings.Split(yaml, "\n") {
		k, _, _ := strings.Cut(line, ":")
		b.WriteString(strings.ToLower(k) + "\n")
	}
	return b.String()
}
