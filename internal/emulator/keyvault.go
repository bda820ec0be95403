package emulator

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// The Key Vault data plane, for the optional hand-off of the client secret
// (issue 11): one route, Set Secret, on any host under VaultHostSuffix
// (https://<vault>.vault.localhost:<port>, standing in for
// https://<vault>.vault.azure.net). Shapes from Microsoft's documentation:
// https://learn.microsoft.com/en-us/rest/api/keyvault/secrets/set-secret/set-secret?view=rest-keyvault-secrets-7.4
//
//	PUT /secrets/{secret-name}?api-version=7.4   (name ^[0-9a-zA-Z-]+$, 1-127)
//	{"value": required, "contentType", "attributes": {"enabled","nbf","exp"}, "tags"}
//	200 {"value", "id": "{vault}/secrets/{name}/{version}", "contentType", "tags",
//	     "attributes": {"enabled","exp","created","updated","recoveryLevel"}}
//
// A PUT of an existing name adds a version. Errors are KeyVaultError,
// {"error": {"code", "message"}}; a request without a token gets 401 with a
// WWW-Authenticate challenge naming the authority and the resource.

// VaultHostSuffix marks a Key Vault host of the emulator.
const VaultHostSuffix = ".vault.localhost"

// VaultAudience is the token audience Key Vault accepts (scope https://vault.azure.net/.default).
const VaultAudience = "https://vault.azure.net"

var vaultSecretName = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

type vaultVersion struct {
	id          string
	value       string
	contentType string
	tags        map[string]string
	exp         int64
	created     int64
	byApp       string
}

// VaultSecret is what a test may see of a vault secret: its versions, newest last.
type VaultSecret struct {
	Versions []VaultSecretVersion
}

// VaultSecretVersion is one version of a vault secret.
type VaultSecretVersion struct {
	ID          string
	Value       string
	ContentType string
	Tags        map[string]string
	Expires     time.Time
	WrittenBy   string // appid of the token
}

// VaultSecret returns the versions of secret name in the vault at host
// (e.g. mktos2s.vault.localhost). Values are kept only in memory and are
// not part of State().
func (s *Server) VaultSecret(host, name string) (VaultSecret, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vs, ok := s.vaults[strings.ToLower(host)][strings.ToLower(name)]
	if !ok {
		return VaultSecret{}, false
	}
	var out VaultSecret
	for _, v := range vs {
		e := VaultSecretVersion{ID: v.id, Value: v.value, ContentType: v.contentType, Tags: v.tags, WrittenBy: v.byApp}
		if v.exp != 0 {
			e.Expires = time.Unix(v.exp, 0).UTC()
		}
		out.Versions = append(out.Versions, e)
	}
	return out, true
}

func isVaultHost(host string) bool {
	return strings.HasSuffix(host, VaultHostSuffix) && len(host) > len(VaultHostSuffix)
}

func writeVaultError(w http.ResponseWriter, c *call, status int, code, msg string) {
	c.status = status
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

// serveKeyVault answers one request to a vault host.
func (s *Server) serveKeyVault(w http.ResponseWriter, r *http.Request, c *call, host string) {
	c.op = "keyvault.unknown"
	w.Header().Set("x-ms-request-id", c.reqID)
	name, ok := strings.CutPrefix(r.URL.Path, "/secrets/")
	if !ok || strings.Contains(name, "/") {
		writeVaultError(w, c, http.StatusNotFound, "NotFound", "The emulator serves only PUT /secrets/{secret-name} of Key Vault.")
		return
	}
	c.op = "keyvault.setSecret"
	if r.Method != http.MethodPut {
		writeVaultError(w, c, http.StatusMethodNotAllowed, "BadParameter", "The emulator serves only PUT (Set Secret) on /secrets/{secret-name}.")
		return
	}
	tok, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer authorization="`+s.URL()+`/common", resource="`+VaultAudience+`"`)
		writeVaultError(w, c, http.StatusUnauthorized, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
		return
	}
	claims, err := s.verifyToken(tok)
	if err != nil || len(claims.Audience) != 1 || strings.TrimSuffix(claims.Audience[0], "/") != VaultAudience {
		writeVaultError(w, c, http.StatusUnauthorized, "Unauthorized", "AKV10022: Invalid audience or token.")
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		writeVaultError(w, c, http.StatusBadRequest, "BadParameter", "The request URI contains an invalid or missing api-version.")
		return
	}
	if !vaultSecretName.MatchString(name) {
		writeVaultError(w, c, http.StatusBadRequest, "BadParameter", "The request URI contains an invalid name: "+name)
		return
	}
	var in struct {
		Value       *string           `json:"value"`
		ContentType string            `json:"contentType"`
		Tags        map[string]string `json:"tags"`
		Attributes  *struct {
			Enabled *bool  `json:"enabled"`
			NBF     *int64 `json:"nbf"`
			Exp     *int64 `json:"exp"`
		} `json:"attributes"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || in.Value == nil {
		writeVaultError(w, c, http.StatusBadRequest, "BadParameter", "Property value is required and the body must be a SecretSetParameters object.")
		return
	}
	if len(in.Tags) > 15 {
		writeVaultError(w, c, http.StatusBadRequest, "BadParameter", "A secret can have at most 15 tags.")
		return
	}
	now := s.now().Unix()
	v := vaultVersion{
		id:    "https://" + strings.ToLower(r.Host) + "/secrets/" + name + "/" + strings.ReplaceAll(newGUID(), "-", ""),
		value: *in.Value, contentType: in.ContentType, tags: in.Tags, created: now, byApp: claims.AppID,
	}
	enabled := true
	attrs := map[string]any{"created": now, "updated": now, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}
	if in.Attributes != nil {
		if in.Attributes.Enabled != nil {
			enabled = *in.Attributes.Enabled
		}
		if in.Attributes.Exp != nil {
			v.exp = *in.Attributes.Exp
			attrs["exp"] = v.exp
		}
		if in.Attributes.NBF != nil {
			attrs["nbf"] = *in.Attributes.NBF
		}
	}
	attrs["enabled"] = enabled
	s.mu.Lock()
	if s.vaults == nil {
		s.vaults = map[string]map[string][]vaultVersion{}
	}
	vault := s.vaults[host]
	if vault == nil {
		vault = map[string][]vaultVersion{}
		s.vaults[host] = vault
	}
	key := strings.ToLower(name) // names are case-insensitive in Key Vault
	vault[key] = append(vault[key], v)
	s.mu.Unlock()

	out := map[string]any{"value": v.value, "id": v.id, "attributes": attrs}
	if v.contentType != "" {
		out["contentType"] = v.contentType
	}
	if len(v.tags) > 0 {
		out["tags"] = v.tags
	}
	writeJSON(w, http.StatusOK, out)
}
