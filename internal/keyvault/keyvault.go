// Package keyvault writes a secret to an Azure Key Vault: the one call the
// optional hand-off needs (Set Secret). It knows HTTP and JSON and nothing of
// Temporal, like internal/graph and internal/dataverse.
//
// Set Secret, api-version 7.4:
// https://learn.microsoft.com/en-us/rest/api/keyvault/secrets/set-secret/set-secret?view=rest-keyvault-secrets-7.4
//
//	PUT {vaultBaseUrl}/secrets/{secret-name}?api-version=7.4
//	{"value": "…", "contentType": "…", "attributes": {"enabled": true, "exp": <unix>}, "tags": {…}}
//	200 {"value": "…", "id": "{vaultBaseUrl}/secrets/{name}/{version}", "attributes": {…}}
//
// A PUT of an existing name adds a new version, so a rotation updates the
// same secret. Errors are {"error": {"code", "message"}} (KeyVaultError).
package keyvault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/mktos2s/mktos2s/internal/msapi"
)

// APIVersion is the Key Vault data-plane version the client speaks.
const APIVersion = "7.4"

// Scope is the token scope for Key Vault's data plane (any vault).
const Scope = "https://vault.azure.net/.default"

// namePattern is Key Vault's rule for secret names (1-127 characters).
var namePattern = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

// ValidName reports whether name is a valid Key Vault secret name.
func ValidName(name string) bool { return namePattern.MatchString(name) }

// Client writes secrets to one vault.
type Client struct{ api msapi.Client }

// New returns a client for the vault at baseURL (https://<name>.vault.azure.net).
func New(baseURL string, hc *http.Client, tokens msapi.TokenSource) *Client {
	return &Client{api: msapi.Client{Service: "keyvault", BaseURL: baseURL, HTTP: hc, Tokens: tokens}}
}

// Secret is what Set writes. Value never appears in an error.
type Secret struct {
	Name        string
	Value       string
	ContentType string
	Expires     time.Time // zero = no expiry attribute
	Tags        map[string]string
}

type attributes struct {
	Enabled bool  `json:"enabled"`
	Exp     int64 `json:"exp,omitempty"`
}

type setRequest struct {
	Value       string            `json:"value"`
	ContentType string            `json:"contentType,omitempty"`
	Attributes  attributes        `json:"attributes"`
	Tags        map[string]string `json:"tags,omitempty"`
}

type bundle struct {
	ID string `json:"id"`
}

// Set writes s as the newest version of its name and returns the version's
// ID ({vault}/secrets/{name}/{version}).
func (c *Client) Set(ctx context.Context, s Secret) (string, error) {
	if !ValidName(s.Name) {
		return "", fmt.Errorf("keyvault: secret name %q: use 1 to 127 letters, digits and dashes", s.Name)
	}
	if s.Value == "" {
		return "", errors.New("keyvault: refusing to store an empty secret")
	}
	body := setRequest{Value: s.Value, ContentType: s.ContentType, Attributes: attributes{Enabled: true}, Tags: s.Tags}
	if !s.Expires.IsZero() {
		body.Attributes.Exp = s.Expires.Unix()
	}
	var out bundle
	_, err := c.api.Do(ctx, msapi.Request{
		Op: "setSecret", Method: http.MethodPut, Path: "/secrets/" + url.PathEscape(s.Name),
		Query: url.Values{"api-version": {APIVersion}}, Body: body,
	}, &out)
	if err != nil {
		return "", err
	}
	return out.ID, nil
}
