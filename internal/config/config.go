// Package config loads the configuration shared by the worker and the
// starter: the file mktos2s.yaml, MKTOS2S_* environment variables and
// command-line flags, in increasing order of precedence.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Config is the typed view of every key in Keys().
type Config struct {
	Temporal    Temporal    `mapstructure:"temporal"`
	Codec       Codec       `mapstructure:"codec"`
	Custody     Custody     `mapstructure:"custody"`
	KeyVault    KeyVault    `mapstructure:"keyVault"`
	Microsoft   Microsoft   `mapstructure:"microsoft"`
	Dataverse   Dataverse   `mapstructure:"dataverse"`
	Consent     Consent     `mapstructure:"consent"`
	Log         Log         `mapstructure:"log"`
	CodecServer CodecServer `mapstructure:"codecServer"`
	Worker      Worker      `mapstructure:"worker"`

	// File is the config file that was read, empty when none was found.
	File string `mapstructure:"-"`

	unknown    []string // keys in the file that no code reads, likely typos
	unknownEnv []string // MKTOS2S_* variables that no key or flag reads
	envFlags   []string
}

type Temporal struct {
	Address   string `mapstructure:"address"`
	Namespace string `mapstructure:"namespace"`
	TLS       TLS    `mapstructure:"tls"`
	APIKey    string `mapstructure:"apiKey"`
}

type TLS struct {
	Enabled    bool   `mapstructure:"enabled"`
	CAFile     string `mapstructure:"caFile"`
	CertFile   string `mapstructure:"certFile"`
	KeyFile    string `mapstructure:"keyFile"`
	ServerName string `mapstructure:"serverName"`
}

type Codec struct {
	Keys        map[string]string `mapstructure:"keys"` // key ID → base64 of 32 bytes
	ActiveKeyID string            `mapstructure:"activeKeyId"`
}

// Custody is the key ring that seals the client secret inside payloads
// (internal/custody). Same shape and rotation as Codec; a different key, held
// by the worker and the operator's starter but never by the codec endpoint.
type Custody struct {
	Keys        map[string]string `mapstructure:"keys"` // key ID → base64 of 32 bytes
	ActiveKeyID string            `mapstructure:"activeKeyId"`
}

// KeyVault is the optional hand-off of each new client secret to an Azure
// Key Vault secret (README "Secret custody").
type KeyVault struct {
	URL              string `mapstructure:"url"`
	TenantID         string `mapstructure:"tenantId"`
	SecretNamePrefix string `mapstructure:"secretNamePrefix"`
}

type Microsoft struct {
	AuthorityHost string `mapstructure:"authorityHost"`
	GraphBaseURL  string `mapstructure:"graphBaseURL"`
	// PowerPlatformBaseURL is the Power Platform admin API (customer-admin session mode).
	PowerPlatformBaseURL string            `mapstructure:"powerPlatformBaseURL"`
	CAFile               string            `mapstructure:"caFile"`
	DialOverrides        map[string]string `mapstructure:"dialOverrides"`
	RequestTimeout       time.Duration     `mapstructure:"requestTimeout"`
	AllowedOrgSuffixes   []string          `mapstructure:"allowedOrgSuffixes"`
	Provisioner          Provisioner       `mapstructure:"provisioner"`
}

type Provisioner struct {
	ClientID        string `mapstructure:"clientId"`
	ClientSecret    string `mapstructure:"clientSecret"`
	CertificateFile string `mapstructure:"certificateFile"`
}

type Dataverse struct {
	MarketoConfig      MarketoConfig `mapstructure:"marketoConfig"`
	SyncFilterSolution string        `mapstructure:"syncFilterSolution"`
}

// MarketoConfig names the Marketo solution's configuration table; Adobe does
// not document them, so they are configurable (see dataverse.MarketoConfigNames).
type MarketoConfig struct {
	Entity      string `mapstructure:"entity"`
	EntitySet   string `mapstructure:"entitySet"`
	IDColumn    string `mapstructure:"idColumn"`
	NameColumn  string `mapstructure:"nameColumn"`
	DefaultName string `mapstructure:"defaultName"`
	UserLookup  string `mapstructure:"userLookup"`
}

type Consent struct {
	RedirectURI     string        `mapstructure:"redirectURI"`
	RecheckInterval time.Duration `mapstructure:"recheckInterval"`
	CallbackKey     string        `mapstructure:"callbackKey"` // base64 of >= 32 bytes; see CallbackKeyBytes
	StateTTL        time.Duration `mapstructure:"stateTTL"`
	CallbackListen  string        `mapstructure:"callbackListen"`
	// WebhookURL receives the consent hand-off notifications (a Teams or
	// Slack incoming webhook); it usually embeds a token, so it is secret.
	WebhookURL     string        `mapstructure:"webhookURL"`
	ReminderBefore time.Duration `mapstructure:"reminderBefore"`
}

type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

type CodecServer struct {
	Listen     string `mapstructure:"listen"`
	Token      string `mapstructure:"token"`
	CORSOrigin string `mapstructure:"corsOrigin"`
}

type Worker struct {
	MaxConcurrentActivities    int           `mapstructure:"maxConcurrentActivities"`
	MaxConcurrentWorkflowTasks int           `mapstructure:"maxConcurrentWorkflowTasks"`
	StopTimeout                time.Duration `mapstructure:"stopTimeout"`
	StickyCacheSize            int           `mapstructure:"stickyCacheSize"`
	PprofListen                string        `mapstructure:"pprofListen"`
	MetricsListen              string        `mapstructure:"metricsListen"`
}

// Options tell Load where to look.
type Options struct {
	// File is an explicit config file (--config). When empty, mktos2s.yaml is
	// searched in ., ./config and $HOME/.config/mktos2s; none found is fine.
	File string
	// Flags are bound over file and environment: a flag named like a key
	// ("temporal.address") binds to it, and FlagKeys maps other flag names
	// ("address") to keys. Only flags the user set take effect.
	Flags    *pflag.FlagSet
	FlagKeys map[string]string
	// EnvFlags are the MKTOS2S_* variables a program reads for its flags
	// (the starter's MKTOS2S_TENANT_ID); any other MKTOS2S_* variable that
	// is no key's is reported by Validate as a likely typo.
	EnvFlags []string
	// Environ is the environment to check; nil = os.Environ().
	Environ []string
}

// Load reads the configuration. It does not validate it: call Validate or
// ValidateWorker, which name every bad key at once.
func Load(o Options) (Config, error) {
	v := viper.New()
	for _, k := range Keys() {
		if k.Default != nil {
			v.SetDefault(k.Name, k.Default)
		}
		// Explicit binding makes keys without a default (maps, secrets)
		// visible to Unmarshal when they come only from the environment.
		if err := v.BindEnv(k.Name, k.Env()); err != nil {
			return Config{}, fmt.Errorf("config: bind %s: %w", k.Env(), err)
		}
	}
	if err := bindFlags(v, o); err != nil {
		return Config{}, err
	}

	var cfg Config
	if o.File != "" {
		v.SetConfigFile(o.File)
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("config: read %s: %w", o.File, err)
		}
	} else {
		v.SetConfigName("mktos2s")
		v.SetConfigType("yaml")
		v.AddConfigPath(".")
		v.AddConfigPath("./config")
		if home, err := os.UserHomeDir(); err == nil {
			v.AddConfigPath(filepath.Join(home, ".config", "mktos2s"))
		}
		if err := v.ReadInConfig(); err != nil {
			var notFound viper.ConfigFileNotFoundError
			if !errors.As(err, &notFound) {
				return Config{}, fmt.Errorf("config: %w", err)
			}
		}
	}
	cfg.File = v.ConfigFileUsed()
	cfg.unknown = unknownKeys(v.AllKeys())
	cfg.unknownEnv, cfg.envFlags = unknownEnv(environ(o), o.EnvFlags), o.EnvFlags
	if p := unparsable(v); len(p) > 0 {
		return Config{}, p.err()
	}

	hook := viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		stringToMapHook,
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	))
	if err := v.Unmarshal(&cfg, hook); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	cfg.normalize()
	return cfg, nil
}

// unknownKeys returns the keys that are neither a documented key nor an entry
// of a map-valued key.
func unknownKeys(all []string) []string {
	known := map[string]bool{}
	var maps []string
	for _, k := range Keys() {
		name := strings.ToLower(k.Name)
		known[name] = true
		if name == "codec.keys" || name == "custody.keys" || name == "microsoft.dialoverrides" {
			maps = append(maps, name+".")
		}
	}
	var out []string
	for _, k := range all {
		if !known[k] && !slices.ContainsFunc(maps, func(p string) bool { return strings.HasPrefix(k, p) }) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func bindFlags(v *viper.Viper, o Options) error {
	if o.Flags == nil {
		return nil
	}
	known := make(map[string]string, len(Keys()))
	for _, k := range Keys() {
		known[strings.ToLower(k.Name)] = k.Name
	}
	var err error
	o.Flags.VisitAll(func(f *pflag.Flag) {
		key, ok := o.FlagKeys[f.Name]
		if !ok {
			key, ok = known[strings.ToLower(f.Name)]
		}
		if ok && err == nil {
			err = v.BindPFlag(key, f)
		}
	})
	if err != nil {
		return fmt.Errorf("config: bind flags: %w", err)
	}
	return nil
}

// stringToMapHook reads the environment form "a=1,b=2" of map keys
// (codec.keys, microsoft.dialOverrides).
func stringToMapHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to != reflect.TypeFor[map[string]string]() {
		return data, nil
	}
	return ParsePairs(data.(string))
}

// ParsePairs parses "id1=value1,id2=value2". Values may contain "=" (base64
// padding); the first "=" separates ID and value.
func ParsePairs(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, val, ok := strings.Cut(item, "=")
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		// Never echo the item, nor the part before "=": a bare base64 key ends
		// in "=" padding, so that part may be the key itself.
		if !ok || k == "" {
			return nil, fmt.Errorf("expected id=value pairs separated by commas, got an item without id=")
		}
		if val == "" {
			return nil, fmt.Errorf("expected id=value pairs separated by commas, got an item with nothing after its first \"=\" " +
				"(a bare base64 key? write it as <id>=<key>, e.g. k1=<key>)")
		}
		out[strings.ToLower(k)] = val
	}
	return out, nil
}

func (c *Config) normalize() {
	// Viper lower-cases map keys read from files, so IDs are compared in lower case everywhere.
	c.Codec.ActiveKeyID = defaultActive(c.Codec.ActiveKeyID, c.Codec.Keys)
	c.Custody.ActiveKeyID = defaultActive(c.Custody.ActiveKeyID, c.Custody.Keys)
	for i, s := range c.Microsoft.AllowedOrgSuffixes {
		c.Microsoft.AllowedOrgSuffixes[i] = strings.ToLower(strings.TrimSpace(s))
	}
	c.Microsoft.AuthorityHost = strings.TrimRight(c.Microsoft.AuthorityHost, "/")
	c.Microsoft.GraphBaseURL = strings.TrimRight(c.Microsoft.GraphBaseURL, "/")
	c.KeyVault.URL = strings.TrimRight(strings.TrimSpace(c.KeyVault.URL), "/")
}

// defaultActive lower-cases an active key ID, and picks the only key when
// none is named.
func defaultActive(active string, keys map[string]string) string {
	active = strings.ToLower(strings.TrimSpace(active))
	if active == "" && len(keys) == 1 {
		for id := range keys {
			active = id
		}
	}
	return active
}

// RawKeys decodes codec.keys. Standard and URL-safe base64, padded or not,
// are accepted; every key must be 32 bytes.
func (c Codec) RawKeys() (map[string][]byte, error) { return rawKeys("codec.keys", c.Keys) }

// RawKeys decodes custody.keys like Codec.RawKeys.
func (c Custody) RawKeys() (map[string][]byte, error) { return rawKeys("custody.keys", c.Keys) }

func rawKeys(name string, keys map[string]string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(keys))
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(keys)) {
		raw, err := decodeBase64(keys[id])
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: the key %s is not base64", name, shownKeyID(id)))
		case len(raw) != 32:
			errs = append(errs, fmt.Errorf("%s: the key %s has %d bytes, want 32", name, shownKeyID(id), len(raw)))
		default:
			out[id] = raw
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// MinCallbackKeyBytes is the shortest consent.callbackKey accepted (the
// HMAC-SHA256 key size of internal/consent).
const MinCallbackKeyBytes = 32

// CallbackKeyBytes decodes consent.callbackKey; nil without error when it is
// not set. Like RawKeys it accepts every base64 alphabet, and its errors
// never contain the key.
func (c Consent) CallbackKeyBytes() ([]byte, error) {
	raw, problem := c.decodeCallbackKey()
	if problem != "" {
		return nil, fmt.Errorf("consent.callbackKey: %s; generate one with: openssl rand -base64 32", problem)
	}
	return raw, nil
}

func (c Consent) decodeCallbackKey() (raw []byte, problem string) {
	if c.CallbackKey == "" {
		return nil, ""
	}
	raw, err := decodeBase64(strings.TrimSpace(c.CallbackKey))
	switch {
	case err != nil:
		return nil, "not base64"
	case len(raw) < MinCallbackKeyBytes:
		return nil, fmt.Sprintf("%d bytes, want at least %d random bytes", len(raw), MinCallbackKeyBytes)
	}
	return raw, ""
}

func decodeBase64(s string) ([]byte, error) {
	var firstErr error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s)
		if err == nil {
			return b, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// SlogLevel is log.level as a slog level.
func (l Log) SlogLevel() (slog.Level, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(l.Level)); err != nil {
		return 0, fmt.Errorf("log.level %q: want debug, info, warn or error", l.Level)
	}
	return lvl, nil
}
