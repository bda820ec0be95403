package config

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/mktos2s/mktos2s/internal/codec"
	"github.com/mktos2s/mktos2s/internal/orgurl"
)

// ErrNoCodecKey is returned by ValidateWorker when codec.keys is empty: the
// product refuses to write payloads in plain text.
var ErrNoCodecKey = errors.New("codec.keys is empty: set MKTOS2S_CODEC_KEYS=<id>=<base64 of 32 bytes> " +
	"(generate one with: echo \"k1=$(openssl rand -base64 32)\") or codec.keys in mktos2s.yaml")

// ErrNoCustodyKey is returned by ValidateWorker when custody.keys is empty:
// the worker cannot seal the client secrets it creates, nor open them to
// validate and rotate.
var ErrNoCustodyKey = errors.New("custody.keys is empty: set MKTOS2S_CUSTODY_KEYS=<id>=<base64 of 32 bytes> " +
	"(generate one with: echo \"c1=$(openssl rand -base64 32)\"), a different key from codec.keys, or custody.keys in mktos2s.yaml")

var (
	keyIDPattern      = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	guidPattern       = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	identifierPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// problems collects one message per bad key, each naming the key, its
// environment variable and the fix.
type problems []error

func (p *problems) add(key, format string, args ...any) {
	env := Key{Name: key}.Env()
	*p = append(*p, fmt.Errorf("%s (%s): %s", key, env, fmt.Sprintf(format, args...)))
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("invalid configuration:\n  %w", errors.Join(p...))
}

// Validate checks that every key that is set is well formed. It does not
// require the keys only the worker needs; see ValidateWorker.
func (c Config) Validate() error {
	var p problems
	for _, k := range c.unknown {
		p = append(p, fmt.Errorf("%s: unknown key in %s; check its spelling against the README's configuration table", k, c.File))
	}
	for _, name := range c.unknownEnv {
		p = append(p, fmt.Errorf("%s: unknown environment variable; %s", name, envFix(name, c.envFlags)))
	}
	c.validateTemporal(&p)
	validateKeyRing(&p, "codec", c.Codec.Keys, c.Codec.ActiveKeyID)
	validateKeyRing(&p, "custody", c.Custody.Keys, c.Custody.ActiveKeyID)
	c.validateKeySeparation(&p)
	c.validateMicrosoft(&p)
	c.validateKeyVault(&p)
	c.validatePublicValues(&p)

	mc := c.Dataverse.MarketoConfig
	for key, val := range map[string]string{
		"dataverse.marketoConfig.entity":     mc.Entity,
		"dataverse.marketoConfig.entitySet":  mc.EntitySet,
		"dataverse.marketoConfig.idColumn":   mc.IDColumn,
		"dataverse.marketoConfig.nameColumn": mc.NameColumn,
		"dataverse.marketoConfig.userLookup": mc.UserLookup,
	} {
		if !identifierPattern.MatchString(val) {
			p.add(key, "%q is not a Dataverse logical name; use letters, digits and _ (see the README for the defaults)", val)
		}
	}
	if s := c.Dataverse.SyncFilterSolution; s != "" && !identifierPattern.MatchString(s) {
		p.add("dataverse.syncFilterSolution", "%q is not a solution unique name; use letters, digits and _ (Power Apps > Solutions > Name)", s)
	}
	if mc.DefaultName == "" {
		p.add("dataverse.marketoConfig.defaultName", "empty; set the name of the Marketo Config record (default \"Default\")")
	}

	if u, err := url.Parse(c.Consent.RedirectURI); err != nil || !u.IsAbs() || u.Host == "" {
		p.add("consent.redirectURI", "%q is not an absolute URL; use e.g. %s", c.Consent.RedirectURI, DefaultRedirectURI)
	}
	if u := c.Consent.WebhookURL; u != "" {
		if problem := webhookProblem(u); problem != "" {
			// Never echo the URL: it usually embeds the webhook's token.
			p.add("consent.webhookURL", "%s", problem)
		}
	}
	if c.Consent.ReminderBefore <= 0 {
		p.add("consent.reminderBefore", "%s must be positive, e.g. 24h", c.Consent.ReminderBefore)
	}
	if c.Consent.RecheckInterval <= 0 {
		p.add("consent.recheckInterval", "%s must be positive, e.g. 10m", c.Consent.RecheckInterval)
	}
	if _, problem := c.Consent.decodeCallbackKey(); problem != "" {
		p.add("consent.callbackKey", "%s; generate one with: openssl rand -base64 32", problem)
	}
	if c.Consent.StateTTL <= 0 {
		p.add("consent.stateTTL", "%s must be positive and at least the longest consent timeout you use, e.g. 168h", c.Consent.StateTTL)
	}
	if _, port, err := net.SplitHostPort(c.Consent.CallbackListen); err != nil || port == "" {
		p.add("consent.callbackListen", "%q is not host:port; use e.g. %s", c.Consent.CallbackListen, DefaultCallbackListen)
	}

	if _, err := c.Log.SlogLevel(); err != nil {
		p.add("log.level", "%q: use debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		p.add("log.format", "%q: use json or text", c.Log.Format)
	}

	if _, _, err := net.SplitHostPort(c.CodecServer.Listen); err != nil {
		p.add("codecServer.listen", "%q is not host:port; use e.g. %s", c.CodecServer.Listen, DefaultCodecListen)
	}
	if c.CodecServer.CORSOrigin != "" {
		if _, err := codec.NormalizeOrigin(c.CodecServer.CORSOrigin); err != nil {
			p.add("codecServer.corsOrigin", "%v; use the Temporal UI's address, e.g. %s", err, DefaultCORSOrigin)
		}
	}

	if c.Worker.MaxConcurrentActivities < 0 {
		p.add("worker.maxConcurrentActivities", "%d is negative; use 0 for the SDK default", c.Worker.MaxConcurrentActivities)
	}
	if c.Worker.MaxConcurrentWorkflowTasks < 0 {
		p.add("worker.maxConcurrentWorkflowTasks", "%d is negative; use 0 for the SDK default", c.Worker.MaxConcurrentWorkflowTasks)
	}
	if c.Worker.StopTimeout < 0 {
		p.add("worker.stopTimeout", "%s is negative; use e.g. 30s", c.Worker.StopTimeout)
	}
	if c.Worker.StickyCacheSize < 0 {
		p.add("worker.stickyCacheSize", "%d is negative; use e.g. %d, or 0 to turn the cache off", c.Worker.StickyCacheSize, DefaultStickyCacheSize)
	}
	if l := c.Worker.MetricsListen; l != "" {
		// Metrics name tenants' operations; scrape them through a sidecar or a tunnel, not the network.
		if host, _, err := net.SplitHostPort(l); err != nil || !isLoopbackHost(host) {
			p.add("worker.metricsListen", "%q is not a loopback host:port; use e.g. 127.0.0.1:9464", l)
		}
	}
	if l := c.Worker.PprofListen; l != "" {
		// Profiles show the worker's memory, secrets included: never off the machine.
		if host, _, err := net.SplitHostPort(l); err != nil || !isLoopbackHost(host) {
			p.add("worker.pprofListen", "%q is not a loopback host:port; use e.g. 127.0.0.1:6060", l)
		}
	}
	return p.err()
}

// ValidateWorker is Validate plus what a worker cannot run without: a codec
// key and the provisioner's credential.
func (c Config) ValidateWorker() error {
	var p problems
	if err := c.Validate(); err != nil {
		p = append(p, err)
	}
	if len(c.Codec.Keys) == 0 {
		p = append(p, ErrNoCodecKey)
	}
	if len(c.Custody.Keys) == 0 {
		p = append(p, ErrNoCustodyKey)
	}
	pr := c.Microsoft.Provisioner
	if pr.ClientID == "" {
		p.add("microsoft.provisioner.clientId", "empty; set the application (client) ID of the provisioner app")
	}
	if pr.ClientSecret == "" && pr.CertificateFile == "" {
		p.add("microsoft.provisioner.clientSecret", "no provisioner credential; set it or microsoft.provisioner.certificateFile")
	}
	if len(p) == 0 {
		return nil
	}
	return errors.Join(p...)
}

func (c Config) validateTemporal(p *problems) {
	t := c.Temporal
	if host, port, err := net.SplitHostPort(t.Address); err != nil || host == "" || port == "" {
		p.add("temporal.address", "%q is not host:port; use e.g. %s", t.Address, DefaultTemporalAddress)
	}
	if t.Namespace == "" {
		p.add("temporal.namespace", "empty; use \"default\" for a dev server or your namespace")
	}
	for key, file := range map[string]string{
		"temporal.tls.caFile":   t.TLS.CAFile,
		"temporal.tls.certFile": t.TLS.CertFile,
		"temporal.tls.keyFile":  t.TLS.KeyFile,
	} {
		checkFile(p, key, file)
	}
	if (t.TLS.CertFile == "") != (t.TLS.KeyFile == "") {
		p.add("temporal.tls.certFile", "certFile and keyFile must be set together for mTLS")
	}
}

// validateKeyRing checks codec.* or custody.*: the same shape and rules.
func validateKeyRing(p *problems, prefix string, keys map[string]string, active string) {
	for _, id := range slices.Sorted(maps.Keys(keys)) {
		if !keyIDPattern.MatchString(id) {
			p.add(prefix+".keys", "the key ID %s is not valid: use up to 64 lower-case letters, digits, '.', '_' or '-' (IDs are stored in every payload)", shownKeyID(id))
		}
	}
	if _, err := rawKeys(prefix+".keys", keys); err != nil {
		p.add(prefix+".keys", "%v; generate a key with: openssl rand -base64 32", err)
	}
	if len(keys) > 0 {
		if _, ok := keys[active]; !ok {
			var ids []string
			for _, id := range slices.Sorted(maps.Keys(keys)) {
				ids = append(ids, shownKeyID(id))
			}
			p.add(prefix+".activeKeyId", "%s is not one of %s.keys (%s); set the ID of the key that encrypts new values",
				shownKeyID(active), prefix, strings.Join(ids, ", "))
		}
	} else if active != "" {
		p.add(prefix+".activeKeyId", "%s is set but %s.keys is empty", shownKeyID(active), prefix)
	}
}

// validateKeySeparation refuses a custody key that is also a codec key: the
// codec endpoint holds the codec keys, so it could open the secrets.
func (c Config) validateKeySeparation(p *problems) {
	codecKeys, err1 := c.Codec.RawKeys()
	custodyKeys, err2 := c.Custody.RawKeys()
	if err1 != nil || err2 != nil {
		return
	}
	for _, cid := range slices.Sorted(maps.Keys(custodyKeys)) {
		for _, kid := range slices.Sorted(maps.Keys(codecKeys)) {
			if string(custodyKeys[cid]) == string(codecKeys[kid]) {
				p.add("custody.keys", "key %s is the same key as codec.keys[%s]; the codec endpoint holds the codec keys, "+
					"so the custody key must differ: generate one with openssl rand -base64 32", shownKeyID(cid), shownKeyID(kid))
			}
		}
	}
}

// VaultHostSuffixes are the Key Vault DNS zones of Microsoft's clouds.
var VaultHostSuffixes = []string{".vault.azure.net", ".vault.azure.cn", ".vault.usgovcloudapi.net"}

func (c Config) validateKeyVault(p *problems) {
	kv := c.KeyVault
	if kv.URL == "" {
		return
	}
	u, err := url.Parse(kv.URL)
	host := ""
	if err == nil {
		host = strings.ToLower(u.Hostname())
	}
	okHost := slices.ContainsFunc(VaultHostSuffixes, func(s string) bool { return strings.HasSuffix(host, s) }) ||
		(c.Microsoft.Sandboxed() && strings.HasSuffix(host, ".vault.localhost"))
	if err != nil || u.Scheme != "https" || !okHost || (u.Path != "" && u.Path != "/") {
		p.add("keyVault.url", "%q must be https://<vault>.vault.azure.net without a path (the emulator: https://<vault>.vault.localhost:<port>)", kv.URL)
	}
	if !guidPattern.MatchString(kv.TenantID) {
		p.add("keyVault.tenantId", "%q is not a GUID; set the Directory (tenant) ID of the vault's tenant", kv.TenantID)
	}
	if kv.SecretNamePrefix != "" && !regexp.MustCompile(`^[0-9a-zA-Z-]{1,60}$`).MatchString(kv.SecretNamePrefix) {
		p.add("keyVault.secretNamePrefix", "%q: use letters, digits and dashes only (Key Vault's rule), at most 60", kv.SecretNamePrefix)
	}
}

func (c Config) validateMicrosoft(p *problems) {
	m := c.Microsoft
	if u, err := url.Parse(m.AuthorityHost); err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		p.add("microsoft.authorityHost", "%q must be https://host[:port] without a path; use %s", m.AuthorityHost, DefaultAuthorityHost)
	}
	if u, err := url.Parse(m.GraphBaseURL); err != nil || u.Scheme != "https" || u.Host == "" {
		p.add("microsoft.graphBaseURL", "%q must be an https URL; use %s", m.GraphBaseURL, DefaultGraphBaseURL)
	}
	if u, err := url.Parse(m.PowerPlatformBaseURL); err != nil || u.Scheme != "https" || u.Host == "" {
		p.add("microsoft.powerPlatformBaseURL", "%q must be an https URL; use %s", m.PowerPlatformBaseURL, DefaultPowerPlatformBaseURL)
	}
	checkFile(p, "microsoft.caFile", m.CAFile)
	for _, pattern := range slices.Sorted(maps.Keys(m.DialOverrides)) {
		if strings.TrimPrefix(pattern, "*.") == "" {
			p.add("microsoft.dialOverrides", "empty host pattern; use e.g. *.localhost=127.0.0.1")
		}
		if net.ParseIP(m.DialOverrides[pattern]) == nil {
			p.add("microsoft.dialOverrides", "%s=%q: the target must be an IP address, never a name to resolve", pattern, m.DialOverrides[pattern])
		}
	}
	if len(m.AllowedOrgSuffixes) == 0 {
		p.add("microsoft.allowedOrgSuffixes", "empty; every org URL would be refused (default: the Dynamics regional suffixes)")
	}
	for _, s := range m.AllowedOrgSuffixes {
		if !strings.HasPrefix(s, ".") || len(s) < 3 {
			p.add("microsoft.allowedOrgSuffixes", "%q must start with a dot, e.g. .crm4.dynamics.com", s)
		}
	}
	pr := m.Provisioner
	if pr.ClientID != "" && !guidPattern.MatchString(pr.ClientID) {
		p.add("microsoft.provisioner.clientId", "%q is not a GUID; copy the Application (client) ID from Entra", pr.ClientID)
	}
	if pr.ClientSecret != "" && pr.CertificateFile != "" {
		p.add("microsoft.provisioner.certificateFile", "set either clientSecret or certificateFile, not both")
	}
	checkFile(p, "microsoft.provisioner.certificateFile", pr.CertificateFile)
}

func checkFile(p *problems, key, path string) {
	if path == "" {
		return
	}
	if _, err := os.Stat(path); err != nil {
		p.add(key, "cannot read %q: %v", path, errors.Unwrap(err))
	}
}

// shownKeyID quotes a codec key ID for an error message, unless it could be a
// key: an ID that is not a valid key ID, or is long enough to be base64 of a
// key, was most likely a key pasted without "id=" (lower-cased by the
// configuration loader), and is never printed.
func shownKeyID(id string) string {
	if id == "" {
		return `""`
	}
	if keyIDPattern.MatchString(id) && len(id) < 40 {
		return id
	}
	return "(ID not shown: it may be a key pasted without id=)"
}

// AllowsOrgHost reports whether host ends with one of the allowed suffixes
// (the product's one rule, internal/orgurl).
func (m Microsoft) AllowsOrgHost(host string) bool {
	return orgurl.Allowed(host, m.AllowedOrgSuffixes)
}

const redacted = "[redacted]"

// Redacted returns a copy with every secret masked, safe to log or print.
func (c Config) Redacted() Config {
	mask := func(s string) string {
		if s == "" {
			return ""
		}
		return redacted
	}
	c.Temporal.APIKey = mask(c.Temporal.APIKey)
	c.Microsoft.Provisioner.ClientSecret = mask(c.Microsoft.Provisioner.ClientSecret)
	c.CodecServer.Token = mask(c.CodecServer.Token)
	c.Consent.CallbackKey = mask(c.Consent.CallbackKey)
	c.Codec.Keys = redactKeys(c.Codec.Keys)
	c.Custody.Keys = redactKeys(c.Custody.Keys)
	c.Microsoft.AllowedOrgSuffixes = slices.Clone(c.Microsoft.AllowedOrgSuffixes)
	return c
}

func redactKeys(in map[string]string) map[string]string {
	if in == nil {
		return nil
	}
	out := make(map[string]string, len(in))
	for id := range in {
		out[id] = redacted
	}
	return out
}

// view has Config's fields but none of its methods, so printing it cannot
// recurse into String or LogValue.
type view Config

// String prints the redacted configuration, so a stray %v cannot leak a secret.
func (c Config) String() string { return fmt.Sprintf("%+v", view(c.Redacted())) }

// GoString is String for %#v.
func (c Config) GoString() string { return c.String() }

// LogValue makes slog log the redacted configuration.
func (c Config) LogValue() slog.Value { return slog.AnyValue(view(c.Redacted())) }

// isLoopbackHost accepts "localhost" and loopback IPs; an empty host would
// listen on every interface.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// webhookProblem says what is wrong with a webhook URL: it must be https,
// or http to a loopback address (tests, a local relay).
func webhookProblem(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return "not an absolute URL; paste the incoming webhook URL of your Teams or Slack channel"
	}
	if u.Scheme == "https" {
		return ""
	}
	if ip := net.ParseIP(u.Hostname()); u.Scheme == "http" && (u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback())) {
		return ""
	}
	return "must be an https URL (http only to localhost); the message carries the consent link"
}
