package activities

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/mktos2s/mktos2s/internal/custody"
	"github.com/mktos2s/mktos2s/internal/keyvault"
)

// VaultTarget names the Azure Key Vault secret a tenant's client secret is
// handed to (keyVault.url). It rides in the workflow input, so the history
// says where the secret went; the value never does.
type VaultTarget struct {
	URL        string `json:"url"`        // https://<vault>.vault.azure.net
	SecretName string `json:"secretName"` // the same name every rotation updates
}

// VaultSecretName is the default secret name for a tenant and org: Key
// Vault allows letters, digits and dashes only.
func VaultSecretName(prefix, tenantID, orgHost string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(prefix + tenantID + "-" + orgHost) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

type DeliverSecretInput struct {
	TenantID  string         `json:"tenantId"`
	OrgURL    string         `json:"orgUrl"`
	ClientID  string         `json:"clientId"`
	KeyID     string         `json:"secretKeyId"` // Entra's key ID, kept as a tag
	Secret    custody.Sealed `json:"secret"`
	ExpiresAt time.Time      `json:"expiresAt"`
	Vault     VaultTarget    `json:"vault"`
}

type DeliverSecretResult struct {
	VersionID string `json:"versionId"` // {vault}/secrets/{name}/{version}
}

// DeliverSecretToVault writes the client secret to the configured Key Vault
// (Set Secret adds a version; a retry adds another with the same value,
// which is harmless). The secret is opened here and nowhere else; the token
// is the provisioner's in keyVault.tenantId, for https://vault.azure.net.
// It sends a token only to the vault this worker is configured for.
func (a *Activities) DeliverSecretToVault(ctx context.Context, in DeliverSecretInput) (DeliverSecretResult, error) {
	want := strings.TrimRight(a.deps.KeyVaultURL, "/")
	if want == "" || !strings.EqualFold(want, strings.TrimRight(in.Vault.URL, "/")) {
		return DeliverSecretResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"this worker does not deliver to the vault %q: set keyVault.url (and keyVault.tenantId) on the worker to the same vault as the starter's", in.Vault.URL),
			ErrInvalidRequest, nil)
	}
	plain, err := a.deps.Custody.Open(in.Secret)
	if err != nil {
		return DeliverSecretResult{}, temporal.NewNonRetryableApplicationError(
			"cannot open the client secret with this worker's custody keys ("+err.Error()+"); configure the custody key it was sealed with", ErrInvalidRequest, nil)
	}
	kv := keyvault.New(want, a.deps.HTTP, a.deps.Auth.Source(a.deps.KeyVaultTenantID, a.deps.Provisioner, keyvault.Scope))
	id, err := kv.Set(ctx, keyvault.Secret{
		Name: in.Vault.SecretName, Value: plain, ContentType: "Marketo Dynamics S2S client secret", Expires: in.ExpiresAt,
		Tags: map[string]string{"tenantId": in.TenantID, "orgUrl": in.OrgURL, "clientId": in.ClientID, "entraKeyId": in.KeyID, "writtenBy": "mktos2s"},
	})
	if err != nil {
		return DeliverSecretResult{}, mapError(ctx, "deliver the client secret to Key Vault "+want, err, asProvisioner,
			fix{permission: "the Key Vault role Key Vault Secrets Officer (secrets/set) on " + want + " to the provisioner app",
				invalid: "check keyVault.url and keyVault.secretNamePrefix"})
	}
	return DeliverSecretResult{VersionID: id}, nil
}
