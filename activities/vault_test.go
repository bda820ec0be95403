package activities

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/testenv/testcodec"
)

// The hand-off to Key Vault, against the emulator's Set Secret route: the
// provisioner's token for https://vault.azure.net, the secret opened only
// here, a second delivery (a rotation) adds a version of the same name.
func TestDeliverSecretToVault(t *testing.T) {
	a, srv, _ := emuActivities(t)
	vaultHost := "mktos2s" + emulator.VaultHostSuffix
	vaultURL := fmt.Sprintf("https://%s:%d", vaultHost, srv.Port())
	a.deps.KeyVaultURL, a.deps.KeyVaultTenantID = vaultURL, emuTenant
	name := VaultSecretName("mktos2s-", emuTenant, "contoso.crm.localhost:8443")
	assert.Equal(t, "mktos2s-"+emuTenant+"-contoso-crm-localhost-8443", name)
	exp := time.Date(2027, 1, 31, 12, 0, 0, 0, time.UTC)
	in := DeliverSecretInput{
		TenantID: emuTenant, OrgURL: "https://contoso.crm.localhost", ClientID: "app-1", KeyID: "key-1",
		Secret: testcodec.Seal("first-secret-value-1234567890"), ExpiresAt: exp, Vault: VaultTarget{URL: vaultURL, SecretName: name},
	}
	ctx := context.Background()
	first, err := a.DeliverSecretToVault(ctx, in)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(first.VersionID, vaultURL+"/secrets/"+name+"/"), first.VersionID)

	in.Secret, in.KeyID = testcodec.Seal("second-secret-value-0987654321"), "key-2"
	second, err := a.DeliverSecretToVault(ctx, in)
	require.NoError(t, err)
	assert.NotEqual(t, first.VersionID, second.VersionID)

	got, ok := srv.VaultSecret(vaultHost, name)
	require.True(t, ok)
	require.Len(t, got.Versions, 2, "the rotation updates the same secret: a new version")
	assert.Equal(t, "first-secret-value-1234567890", got.Versions[0].Value)
	assert.Equal(t, "second-secret-value-0987654321", got.Versions[1].Value)
	assert.Equal(t, exp, got.Versions[1].Expires)
	assert.Equal(t, "key-2", got.Versions[1].Tags["entraKeyId"])
	assert.Equal(t, emuTenant, got.Versions[1].Tags["tenantId"])
	assert.Equal(t, "aaaaaaaa-0000-0000-0000-000000000001", got.Versions[1].WrittenBy, "the provisioner's token")

	t.Run("a vault the worker is not configured for gets no token", func(t *testing.T) {
		other := in
		other.Vault.URL = fmt.Sprintf("https://evil%s:%d", emulator.VaultHostSuffix, srv.Port())
		_, err := a.DeliverSecretToVault(ctx, other)
		var ae *temporal.ApplicationError
		require.ErrorAs(t, err, &ae)
		assert.True(t, ae.NonRetryable())
		assert.Contains(t, ae.Message(), "keyVault.url")
		_, ok := srv.VaultSecret("evil"+emulator.VaultHostSuffix, name)
		assert.False(t, ok, "nothing was sent")
	})
	t.Run("a bad name is refused by the vault, and the error holds no secret", func(t *testing.T) {
		bad := in
		bad.Vault.SecretName = "bad_name"
		_, err := a.DeliverSecretToVault(ctx, bad)
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "second-secret-value")
	})
}

// The emulator's route, as Microsoft documents it: a request without a
// token gets 401 and a challenge; a bad body or name gets 400.
func TestEmulatorKeyVaultRoute(t *testing.T) {
	_, srv, hc := emuActivities(t)
	base := fmt.Sprintf("https://mktos2s%s:%d", emulator.VaultHostSuffix, srv.Port())
	req, err := http.NewRequest(http.MethodPut, base+"/secrets/x?api-version=7.4", strings.NewReader(`{"value":"v"}`))
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "resource=\""+emulator.VaultAudience+"\"")
	_, ok := srv.VaultSecret("mktos2s"+emulator.VaultHostSuffix, "x")
	assert.False(t, ok)
}
