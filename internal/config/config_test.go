package config

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// isolate makes Load see neither the developer's files nor their MKTOS2S_* variables.
func isolate(t testing.TB) {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	t.Chdir(t.TempDir())
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, EnvPrefix+"_") {
			t.Setenv(name, "")
			require.NoError(t, os.Unsetenv(name))
		}
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func b64key(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

func TestLoadDefaults(t *testing.T) {
	isolate(t)
	cfg, err := Load(Options{})
	require.NoError(t, err)

	assert.Empty(t, cfg.File)
	assert.Equal(t, DefaultTemporalAddress, cfg.Temporal.Address)
	assert.Equal(t, "default", cfg.Temporal.Namespace)
	assert.Equal(t, "https://login.microsoftonline.com", cfg.Microsoft.AuthorityHost)
	assert.Equal(t, "https://graph.microsoft.com/v1.0", cfg.Microsoft.GraphBaseURL)
	assert.Contains(t, cfg.Microsoft.AllowedOrgSuffixes, ".crm4.dynamics.com")
	assert.Equal(t, MarketoConfig{"mkto_marketoconfig", "mkto_marketoconfigs", "mkto_marketoconfigid", "mkto_name", "Default", "mkto_marketouserid"},
		cfg.Dataverse.MarketoConfig)
	assert.Equal(t, 10*time.Minute, cfg.Consent.RecheckInterval)
	assert.Equal(t, 168*time.Hour, cfg.Consent.StateTTL)
	assert.Equal(t, DefaultCallbackListen, cfg.Consent.CallbackListen)
	assert.Empty(t, cfg.Consent.CallbackKey)
	assert.Equal(t, 30*time.Second, cfg.Worker.StopTimeout)
	assert.Equal(t, DefaultStickyCacheSize, cfg.Worker.StickyCacheSize)
	assert.Empty(t, cfg.Worker.PprofListen, "profiles are off unless asked for")
	assert.Empty(t, cfg.Codec.Keys)
	require.NoError(t, cfg.Validate(), "defaults must be valid")
	assert.ErrorIs(t, cfg.ValidateWorker(), ErrNoCodecKey)
}

func TestLoadPrecedence(t *testing.T) {
	isolate(t)
	// Found by the search path ./config.
	writeFile(t, ".", "config/mktos2s.yaml", `
temporal:
  address: file-host:7233
  namespace: from-file
codec:
  keys:
    k1: `+b64key(1)+`
log:
  level: debug
`)
	t.Setenv("MKTOS2S_TEMPORAL_NAMESPACE", "from-env")
	t.Setenv("MKTOS2S_LOG_LEVEL", "warn")

	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.String("log.level", "info", "")
	fs.String("address", "", "")
	fs.String("temporal.namespace", "flag-default-is-ignored", "")
	require.NoError(t, fs.Parse([]string{"--log.level=error"}))

	cfg, err := Load(Options{Flags: fs, FlagKeys: map[string]string{"address": "temporal.address"}})
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(cfg.File, filepath.Join("config", "mktos2s.yaml")), cfg.File)
	assert.Equal(t, "file-host:7233", cfg.Temporal.Address, "unset flag must not override the file")
	assert.Equal(t, "from-env", cfg.Temporal.Namespace, "env beats file; an unset flag's default does not")
	assert.Equal(t, "error", cfg.Log.Level, "a set flag beats env and file")
	assert.Equal(t, "k1", cfg.Codec.ActiveKeyID, "a single key becomes the active one")

	require.NoError(t, fs.Parse([]string{"--address=flag-host:1"}))
	cfg, err = Load(Options{Flags: fs, FlagKeys: map[string]string{"address": "temporal.address"}})
	require.NoError(t, err)
	assert.Equal(t, "flag-host:1", cfg.Temporal.Address)
}

func TestLoadEnvironmentForms(t *testing.T) {
	isolate(t)
	t.Setenv("MKTOS2S_CODEC_KEYS", "old="+b64key(1)+", New2026="+b64key(2))
	t.Setenv("MKTOS2S_CODEC_ACTIVEKEYID", "New2026")
	t.Setenv("MKTOS2S_MICROSOFT_DIALOVERRIDES", "*.localhost=127.0.0.1")
	t.Setenv("MKTOS2S_MICROSOFT_ALLOWEDORGSUFFIXES", ".crm.localhost,.CRM4.dynamics.com")
	t.Setenv("MKTOS2S_CONSENT_RECHECKINTERVAL", "45s")
	t.Setenv("MKTOS2S_WORKER_STICKYCACHESIZE", "250")
	t.Setenv("MKTOS2S_WORKER_PPROFLISTEN", "127.0.0.1:6060")
	t.Setenv("MKTOS2S_CONSENT_STATETTL", "720h")
	t.Setenv("MKTOS2S_CONSENT_CALLBACKKEY", base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{5}, 48)))
	t.Setenv("MKTOS2S_TEMPORAL_TLS_ENABLED", "true")
	t.Setenv("MKTOS2S_WORKER_MAXCONCURRENTACTIVITIES", "7")

	cfg, err := Load(Options{})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"old": b64key(1), "new2026": b64key(2)}, cfg.Codec.Keys)
	assert.Equal(t, "new2026", cfg.Codec.ActiveKeyID)
	assert.Equal(t, map[string]string{"*.localhost": "127.0.0.1"}, cfg.Microsoft.DialOverrides)
	assert.Equal(t, []string{".crm.localhost", ".crm4.dynamics.com"}, cfg.Microsoft.AllowedOrgSuffixes)
	assert.Equal(t, 45*time.Second, cfg.Consent.RecheckInterval)
	assert.Equal(t, 250, cfg.Worker.StickyCacheSize)
	assert.Equal(t, "127.0.0.1:6060", cfg.Worker.PprofListen)
	assert.Equal(t, 720*time.Hour, cfg.Consent.StateTTL)
	callbackKey, err := cfg.Consent.CallbackKeyBytes()
	require.NoError(t, err)
	assert.Equal(t, bytes.Repeat([]byte{5}, 48), callbackKey, "URL-safe unpadded base64 and keys longer than 32 bytes are accepted")
	assert.True(t, cfg.Temporal.TLS.Enabled)
	assert.Equal(t, 7, cfg.Worker.MaxConcurrentActivities)

	raw, err := cfg.Codec.RawKeys()
	require.NoError(t, err)
	assert.Equal(t, bytes.Repeat([]byte{2}, 32), raw["new2026"])
	require.NoError(t, cfg.Validate())
}

func TestLoadExplicitFileErrors(t *testing.T) {
	isolate(t)
	_, err := Load(Options{File: "missing.yaml"})
	assert.ErrorContains(t, err, "missing.yaml")

	rawKey := base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{3}, 32)) // no "=" anywhere
	t.Setenv("MKTOS2S_CODEC_KEYS", rawKey)
	_, err = Load(Options{})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), rawKey, "a malformed key list must not be echoed")
}

func TestValidateNamesEachBadKey(t *testing.T) {
	isolate(t)
	base, err := Load(Options{})
	require.NoError(t, err)

	tests := []struct {
		name   string
		mutate func(c *Config)
		keys   []string // every key the error must name
	}{
		{"address without port", func(c *Config) { c.Temporal.Address = "temporal" }, []string{"temporal.address", "MKTOS2S_TEMPORAL_ADDRESS"}},
		{"empty namespace", func(c *Config) { c.Temporal.Namespace = "" }, []string{"temporal.namespace"}},
		{"cert without key", func(c *Config) { c.Temporal.TLS.CertFile = writeFile(t, t.TempDir(), "c.pem", "x") }, []string{"temporal.tls.certFile"}},
		{"missing CA file", func(c *Config) { c.Temporal.TLS.CAFile = "/nonexistent/ca.pem" }, []string{"temporal.tls.caFile"}},
		{"short codec key", func(c *Config) {
			c.Codec.Keys = map[string]string{"k": base64.StdEncoding.EncodeToString([]byte("short"))}
			c.Codec.ActiveKeyID = "k"
		}, []string{"codec.keys", "5 bytes, want 32"}},
		{"active key not configured", func(c *Config) {
			c.Codec.Keys = map[string]string{"a": b64key(1), "b": b64key(2)}
			c.Codec.ActiveKeyID = ""
		}, []string{"codec.activeKeyId", "a, b"}},
		{"upper-case key ID", func(c *Config) {
			c.Codec.Keys = map[string]string{"K1": b64key(1)}
			c.Codec.ActiveKeyID = "K1"
		}, []string{"codec.keys", "lower-case"}},
		{"authority with tenant path", func(c *Config) { c.Microsoft.AuthorityHost = "https://login.microsoftonline.com/contoso" }, []string{"microsoft.authorityHost"}},
		{"graph over http", func(c *Config) { c.Microsoft.GraphBaseURL = "http://graph.microsoft.com/v1.0" }, []string{"microsoft.graphBaseURL"}},
		{"dial override to a name", func(c *Config) { c.Microsoft.DialOverrides = map[string]string{"*.localhost": "localhost"} }, []string{"microsoft.dialOverrides", "IP address"}},
		{"suffix without dot", func(c *Config) { c.Microsoft.AllowedOrgSuffixes = []string{"crm.dynamics.com"} }, []string{"microsoft.allowedOrgSuffixes"}},
		{"client ID not a GUID", func(c *Config) { c.Microsoft.Provisioner.ClientID = "my-app" }, []string{"microsoft.provisioner.clientId"}},
		{"secret and certificate", func(c *Config) {
			c.Microsoft.Provisioner.ClientSecret = "s"
			c.Microsoft.Provisioner.CertificateFile = writeFile(t, t.TempDir(), "p.pem", "x")
		}, []string{"microsoft.provisioner.certificateFile", "not both"}},
		{"lookup with a space", func(c *Config) { c.Dataverse.MarketoConfig.UserLookup = "mkto user" }, []string{"dataverse.marketoConfig.userLookup"}},
		{"relative redirect", func(c *Config) { c.Consent.RedirectURI = "/done" }, []string{"consent.redirectURI"}},
		{"zero recheck", func(c *Config) { c.Consent.RecheckInterval = 0 }, []string{"consent.recheckInterval"}},
		{"short callback key", func(c *Config) { c.Consent.CallbackKey = base64.StdEncoding.EncodeToString(make([]byte, 16)) },
			[]string{"consent.callbackKey", "MKTOS2S_CONSENT_CALLBACKKEY", "16 bytes, want at least 32", "openssl rand -base64 32"}},
		{"callback key not base64", func(c *Config) { c.Consent.CallbackKey = "not base64!" },
			[]string{"consent.callbackKey", "not base64", "openssl rand -base64 32"}},
		{"zero state lifetime", func(c *Config) { c.Consent.StateTTL = 0 }, []string{"consent.stateTTL", "consent timeout"}},
		{"callback listen without port", func(c *Config) { c.Consent.CallbackListen = "127.0.0.1" }, []string{"consent.callbackListen"}},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, []string{"log.level"}},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, []string{"log.format"}},
		{"codec listen", func(c *Config) { c.CodecServer.Listen = "8081" }, []string{"codecServer.listen"}},
		{"cors origin with path", func(c *Config) { c.CodecServer.CORSOrigin = "http://localhost:8233/namespaces" }, []string{"codecServer.corsOrigin"}},
		{"negative concurrency", func(c *Config) { c.Worker.MaxConcurrentActivities = -1 }, []string{"worker.maxConcurrentActivities"}},
		{"negative sticky cache", func(c *Config) { c.Worker.StickyCacheSize = -1 }, []string{"worker.stickyCacheSize"}},
		{"pprof on every interface", func(c *Config) { c.Worker.PprofListen = ":6060" }, []string{"worker.pprofListen", "loopback"}},
		{"pprof on a public address", func(c *Config) { c.Worker.PprofListen = "192.0.2.1:6060" }, []string{"worker.pprofListen"}},
		{"pprof without port", func(c *Config) { c.Worker.PprofListen = "127.0.0.1" }, []string{"worker.pprofListen"}},
		{"two problems at once", func(c *Config) {
			c.Log.Format = "xml"
			c.Temporal.Namespace = ""
		}, []string{"log.format", "temporal.namespace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			cfg.Microsoft.AllowedOrgSuffixes = append([]string(nil), base.Microsoft.AllowedOrgSuffixes...)
			tt.mutate(&cfg)
			err := cfg.Validate()
			require.Error(t, err)
			for _, k := range tt.keys {
				assert.Contains(t, err.Error(), k)
			}
		})
	}
}

func TestValidateReportsUnknownFileKeys(t *testing.T) {
	isolate(t)
	path := writeFile(t, t.TempDir(), "m.yaml", "temporal:\n  adress: x:1\n")
	cfg, err := Load(Options{File: path})
	require.NoError(t, err)
	assert.ErrorContains(t, cfg.Validate(), "temporal.adress: unknown key")
}

func TestValidateWorkerNeedsProvisioner(t *testing.T) {
	isolate(t)
	t.Setenv("MKTOS2S_CODEC_KEYS", "k1="+b64key(1))
	cfg, err := Load(Options{})
	require.NoError(t, err)
	err = cfg.ValidateWorker()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "microsoft.provisioner.clientId")
	assert.Contains(t, err.Error(), "microsoft.provisioner.clientSecret")
	assert.NotErrorIs(t, err, ErrNoCodecKey)

	cfg.Microsoft.Provisioner.ClientID = "aaaaaaaa-0000-0000-0000-000000000001"
	cfg.Microsoft.Provisioner.ClientSecret = "x"
	assert.ErrorIs(t, cfg.ValidateWorker(), ErrNoCustodyKey, "the worker refuses to start without a custody key")
	cfg.Custody.Keys = map[string]string{"c1": b64key(2)}
	cfg.Custody.ActiveKeyID = "c1"
	assert.NoError(t, cfg.ValidateWorker())
}

// The codec endpoint holds the codec keys; a custody key equal to one of
// them would let it open the secrets.
func TestCustodyKeys(t *testing.T) {
	isolate(t)
	t.Setenv("MKTOS2S_CODEC_KEYS", "k1="+b64key(1))
	t.Setenv("MKTOS2S_CUSTODY_KEYS", "C2="+b64key(2)+",c1="+b64key(3))
	t.Setenv("MKTOS2S_CUSTODY_ACTIVEKEYID", "C2")
	cfg, err := Load(Options{})
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
	assert.Equal(t, "c2", cfg.Custody.ActiveKeyID, "IDs are lower case, as for the codec")
	raw, err := cfg.Custody.RawKeys()
	require.NoError(t, err)
	assert.Len(t, raw, 2)
	assert.NotContains(t, cfg.String(), b64key(2), "custody keys are redacted")

	cfg.Custody.Keys["c1"] = b64key(1)
	err = cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "custody.keys")
	assert.Contains(t, err.Error(), "same key as codec.keys[k1]")
	assert.NotContains(t, err.Error(), b64key(1))

	cfg.Custody.Keys = map[string]string{"c1": "short"}
	cfg.Custody.ActiveKeyID = "nope"
	err = cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "custody.keys: the key c1 is not base64")
	assert.Contains(t, err.Error(), "custody.activeKeyId")
}

func TestSecretsNeverPrinted(t *testing.T) {
	isolate(t)
	secrets := map[string]string{
		"MKTOS2S_CODEC_KEYS":                         "k1=" + b64key(9),
		"MKTOS2S_CUSTODY_KEYS":                       "c1=" + b64key(7),
		"MKTOS2S_MICROSOFT_PROVISIONER_CLIENTSECRET": "provisioner-secret-value",
		"MKTOS2S_TEMPORAL_APIKEY":                    "temporal-api-key-value",
		"MKTOS2S_CODECSERVER_TOKEN":                  "codec-token-value",
		"MKTOS2S_CONSENT_CALLBACKKEY":                b64key(8),
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	cfg, err := Load(Options{})
	require.NoError(t, err)
	require.Equal(t, "provisioner-secret-value", cfg.Microsoft.Provisioner.ClientSecret, "the real value stays usable")

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "cfg", cfg)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "cfg", cfg)
	outputs := map[string]string{
		"%v":         fmt.Sprintf("%v", cfg),
		"%+v":        fmt.Sprintf("%+v", cfg),
		"%#v":        fmt.Sprintf("%#v", cfg),
		"%s":         fmt.Sprintf("%s", cfg),
		"Redacted":   fmt.Sprintf("%+v", view(cfg.Redacted())),
		"slog":       logged.String(),
		"pointer %v": fmt.Sprintf("%v", &cfg),
	}
	for name, out := range outputs {
		for _, secret := range []string{b64key(9), "provisioner-secret-value", "temporal-api-key-value", "codec-token-value", b64key(8)} {
			assert.NotContains(t, out, secret, "%s leaks a secret", name)
		}
		assert.Contains(t, out, "k1", "%s should still show the key ID", name)
	}
	assert.Contains(t, logged.String(), DefaultTemporalAddress, "non-secret values are logged")
}

func TestAllowsOrgHost(t *testing.T) {
	m := Microsoft{AllowedOrgSuffixes: []string{".crm.dynamics.com", ".crm.localhost"}}
	tests := []struct {
		host string
		want bool
	}{
		{"contoso.crm.dynamics.com", true},
		{"Contoso.CRM.Dynamics.com", true},
		{"contoso.crm.localhost", true},
		{"crm.dynamics.com", false},
		{".crm.dynamics.com", false},
		{"contoso.crm.dynamics.com.evil.example", false},
		{"evilcrm.dynamics.com", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, m.AllowsOrgHost(tt.host), tt.host)
	}
}

func TestCallbackKeyErrorsNeverEchoTheKey(t *testing.T) {
	isolate(t)
	short := base64.StdEncoding.EncodeToString([]byte("sixteen-byte-key"))
	t.Setenv("MKTOS2S_CONSENT_CALLBACKKEY", short)
	cfg, err := Load(Options{})
	require.NoError(t, err)

	verr := cfg.Validate()
	require.Error(t, verr)
	_, kerr := cfg.Consent.CallbackKeyBytes()
	require.Error(t, kerr)
	for _, e := range []error{verr, kerr} {
		assert.Contains(t, e.Error(), "consent.callbackKey")
		assert.NotContains(t, e.Error(), short)
		assert.NotContains(t, e.Error(), "sixteen-byte-key")
	}
}
