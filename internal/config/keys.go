package config

import (
	"strings"
	"time"
)

// EnvPrefix starts every environment variable the product reads.
const EnvPrefix = "MKTOS2S"

// Key documents one configuration key. The table below is the single source
// for defaults, environment binding and the README's configuration section.
type Key struct {
	Name    string // dotted, as in mktos2s.yaml: "temporal.tls.caFile"
	Default any    // nil when the key has no default
	Secret  bool   // never printed; Redacted() masks it
	Meaning string
}

// Env is the environment variable for the key: MKTOS2S_ followed by the
// upper-cased key with dots replaced by underscores.
func (k Key) Env() string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(k.Name, ".", "_"))
}

// DefaultAllowedOrgSuffixes are the host suffixes of Dynamics 365 orgs in
// Microsoft's commercial datacenter regions (Power Platform admin docs,
// "Datacenter regions"): NAM, SAM, CAN, EUR, APJ, OCE, JPN, IND, GCC, GBR,
// FRA, ZAF, UAE, GER, CHE.
var DefaultAllowedOrgSuffixes = []string{
	".crm.dynamics.com", ".crm2.dynamics.com", ".crm3.dynamics.com", ".crm4.dynamics.com",
	".crm5.dynamics.com", ".crm6.dynamics.com", ".crm7.dynamics.com", ".crm8.dynamics.com",
	".crm9.dynamics.com", ".crm11.dynamics.com", ".crm12.dynamics.com", ".crm14.dynamics.com",
	".crm15.dynamics.com", ".crm16.dynamics.com", ".crm17.dynamics.com",
}

// Defaults that other packages and the README refer to.
const (
	DefaultTemporalAddress = "127.0.0.1:7233"
	DefaultAuthorityHost   = "https://login.microsoftonline.com"
	DefaultGraphBaseURL    = "https://graph.microsoft.com/v1.0"
	// DefaultPowerPlatformBaseURL is the Power Platform admin API (BAP).
	DefaultPowerPlatformBaseURL = "https://api.bap.microsoft.com"
	DefaultRedirectURI          = "https://login.microsoftonline.com/common/oauth2/nativeclient"
	DefaultCodecListen          = "127.0.0.1:8081"
	DefaultCORSOrigin           = "http://localhost:8233"
	DefaultCallbackListen       = "127.0.0.1:8082"
	// DefaultRequestTimeout bounds one call to Microsoft; the slow ones set their own.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultStateTTL equals the workflows' default consent timeout, so a
	// consent link outlives the wait it was issued for.
	DefaultStateTTL = 7 * 24 * time.Hour
	// DefaultStickyCacheSize bounds the workflows a worker keeps in memory.
	// The SDK's own default (10,000) held every waiting onboarding, ≈ 145 KiB
	// each (README "Performance"); an evicted one is replayed from its
	// history when it next has work, which for a waiting onboarding is rare.
	DefaultStickyCacheSize = 1000
)

// Keys lists every configuration key in documentation order.
func Keys() []Key {
	return []Key{
		{"temporal.address", DefaultTemporalAddress, false, "Temporal frontend host:port (Temporal Cloud: `<namespace>.<account>.tmprl.cloud:7233`)."},
		{"temporal.namespace", "default", false, "Temporal namespace."},
		{"temporal.tls.enabled", false, false, "Use TLS to reach Temporal (implied by temporal.apiKey or a client certificate)."},
		{"temporal.tls.caFile", nil, false, "PEM file of CAs that sign the Temporal server certificate; empty = system roots."},
		{"temporal.tls.certFile", nil, false, "PEM client certificate for mTLS (with temporal.tls.keyFile)."},
		{"temporal.tls.keyFile", nil, false, "PEM private key of the mTLS client certificate."},
		{"temporal.tls.serverName", nil, false, "Server name to verify in the Temporal certificate, when it differs from the address host."},
		{"temporal.apiKey", nil, true, "Temporal Cloud API key (sent as a bearer token; turns TLS on)."},
		{"codec.keys", nil, true, "Payload encryption keys: key ID → base64 of 32 random bytes. Env form: `id1=base64,id2=base64`. Key IDs are lower-case."},
		{"codec.activeKeyId", nil, false, "ID of the key that encrypts new payloads; optional when there is exactly one key. Other keys only decrypt (rotation)."},
		{"custody.keys", nil, true, "Custody keys that seal the client secret inside every payload, so the codec endpoint and the Temporal UI never read it: key ID → base64 of 32 random bytes, NOT a codec key. Env form: `id1=base64,id2=base64`. The worker and `starter credentials --reveal` need it; the codec endpoint must not have it."},
		{"custody.activeKeyId", nil, false, "ID of the custody key that seals new secrets; optional when there is exactly one key. Other keys only open (rotation)."},
		{"keyVault.url", nil, false, "Azure Key Vault that receives each new client secret, once, and every rotation's successor under the same name (`https://<vault>.vault.azure.net`); empty = no hand-off. Set it on the starter (it goes into the onboarding's input) and the worker (it sends the provisioner's token only to this vault)."},
		{"keyVault.tenantId", nil, false, "Directory (tenant) ID of the vault's tenant (yours, not the customer's); the provisioner app signs in there for `https://vault.azure.net/.default` and needs the role Key Vault Secrets Officer on the vault."},
		{"keyVault.secretNamePrefix", "mktos2s-", false, "Prefix of the vault secret's name; the name is prefix + tenant ID + org host (dots as dashes)."},
		{"microsoft.authorityHost", DefaultAuthorityHost, false, "Microsoft Entra authority host (the emulator: https://127.0.0.1:8443)."},
		{"microsoft.graphBaseURL", DefaultGraphBaseURL, false, "Microsoft Graph base URL including the version."},
		{"microsoft.powerPlatformBaseURL", DefaultPowerPlatformBaseURL, false, "Power Platform admin API base URL (customer-admin session mode: addAppUser with the admin's token)."},
		{"microsoft.caFile", nil, false, "Extra PEM roots for Entra, Graph and Dataverse (the emulator's CA); empty = system roots."},
		{"microsoft.dialOverrides", nil, false, "Host pattern → IP to dial instead of resolving (`*.localhost=127.0.0.1`); emulator only."},
		{"microsoft.requestTimeout", DefaultRequestTimeout, false, "How long one request to Entra, Graph or Dataverse may take. Calls Microsoft documents as slow have their own, longer limit (PublishAllXml 10 min, column creation 5 min)."},
		{"microsoft.allowedOrgSuffixes", DefaultAllowedOrgSuffixes, false, "Host suffixes a Dynamics org URL may have; anything else is refused before a token is sent to it."},
		{"microsoft.provisioner.clientId", nil, false, "Application (client) ID of the provisioner app that mktos2s signs in as in each customer tenant."},
		{"microsoft.provisioner.clientSecret", nil, true, "Client secret of the provisioner app (or use certificateFile)."},
		{"microsoft.provisioner.certificateFile", nil, false, "PEM file with the provisioner's certificate and private key (instead of a secret)."},
		{"dataverse.syncFilterSolution", nil, false, "Unique name of an unmanaged solution of the customer's (Power Apps > Solutions) that the opt-in sync-filter columns join; empty = the Default solution only, where they are not exported with any solution."},
		{"dataverse.marketoConfig.entity", "mkto_marketoconfig", false, "Logical name of the Marketo Config table; the preflight reads its user lookup's navigation property from this table's metadata."},
		{"dataverse.marketoConfig.entitySet", "mkto_marketoconfigs", false, "Entity set of the Marketo Config table in Dataverse."},
		{"dataverse.marketoConfig.idColumn", "mkto_marketoconfigid", false, "Primary key column of the Marketo Config table."},
		{"dataverse.marketoConfig.nameColumn", "mkto_name", false, "Name column used to find the Default record."},
		{"dataverse.marketoConfig.defaultName", "Default", false, "Name of the Marketo Config record to point at the sync user."},
		{"dataverse.marketoConfig.userLookup", "mkto_marketouserid", false, "Logical name (lower case) of the Marketo User lookup column, read as `_<name>_value`. Its navigation property, which binds it and keeps the SchemaName's casing, is read from the table's metadata, not configured."},
		{"consent.redirectURI", DefaultRedirectURI, false, "Where Entra sends the admin after the admin-consent page; registered on the new app."},
		{"consent.recheckInterval", 10 * time.Minute, false, "How often a waiting onboarding re-checks Graph for a consent given without the signal."},
		{"consent.callbackKey", nil, true, "HMAC key that signs the consent link's state, so the consent callback accepts only links this installation issued: base64 of at least 32 random bytes (`openssl rand -base64 32`). The worker and `starter serve` need the same key; without it consent links are unsigned and no callback can be served."},
		{"consent.stateTTL", DefaultStateTTL, false, "How long a signed consent link is accepted by the callback. Must be at least the longest `--consent-timeout` you start onboardings with (`starter start` refuses a longer one), or the link expires while the onboarding still waits."},
		{"consent.callbackListen", DefaultCallbackListen, false, "Address of the consent callback (`starter serve`); `consent.redirectURI` must reach it, e.g. through your reverse proxy."},
		{"consent.webhookURL", nil, true, "Optional https URL (a Teams or Slack incoming webhook) that gets a JSON message with the tenant, the consent link and its expiry when an onboarding starts waiting for consent, and a reminder before the wait times out. Sent by the worker, with retries; it usually embeds a token, so it is treated as a secret."},
		{"consent.reminderBefore", 24 * time.Hour, false, "How long before the consent wait times out the webhook reminder is sent (the `start` command passes it to the onboarding)."},
		{"log.level", "info", false, "debug, info, warn or error."},
		{"log.format", "json", false, "json or text."},
		{"codecServer.listen", DefaultCodecListen, false, "Address of the codec endpoint for the Temporal UI (starter codec-server)."},
		{"codecServer.token", nil, true, "Bearer token the Temporal UI must send to the codec endpoint (required to serve it)."},
		{"codecServer.corsOrigin", DefaultCORSOrigin, false, "The one browser origin (the Temporal UI) allowed to call the codec endpoint."},
		{"worker.maxConcurrentActivities", 0, false, "Activities a worker runs at once; 0 = Temporal SDK default (1000)."},
		{"worker.maxConcurrentWorkflowTasks", 0, false, "Workflow tasks a worker runs at once; 0 = Temporal SDK default (1000)."},
		{"worker.stopTimeout", 30 * time.Second, false, "On shutdown, how long running activities may take to finish before they are abandoned (and retried elsewhere)."},
		{"worker.stickyCacheSize", DefaultStickyCacheSize, false, "Workflows a worker keeps in memory between their tasks (Temporal's sticky cache, SDK default 10,000); one evicted is replayed from its history when it next has work. 0 turns the cache off: every workflow task replays."},
		{"worker.metricsListen", nil, false, "Loopback host:port serving the worker's Prometheus metrics on `/metrics` (the Temporal SDK's and the product's, README \"Production\") and readiness on `/readyz`; empty = off."},
		{"worker.pprofListen", nil, false, "Loopback host:port serving Go's `net/http/pprof` profiles of the worker (`go tool pprof http://127.0.0.1:6060/debug/pprof/profile`); empty = off."},
	}
}
