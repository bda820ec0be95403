package powerplatform_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/internal/msapi/emutest"
	"github.com/mktos2s/mktos2s/internal/msauth"
	"github.com/mktos2s/mktos2s/internal/powerplatform"
)

const redirect = "http://127.0.0.1:9/consent/session"

type static string

func (s static) Token(context.Context) (string, error) { return string(s), nil }

// adminToken consents to the provisioner and signs login in, then redeems the
// code the way the product does (msauth.RedeemCode, PKCE S256).
func adminToken(t *testing.T, e *emutest.Emulated, login string) msauth.DelegatedToken {
	t.Helper()
	b := e.Browser(t)
	q := url.Values{"client_id": {emutest.ProvisionerClientID}, "scope": {"https://graph.microsoft.com/.default"}, "redirect_uri": {redirect}, "state": {"x"}}
	back := b.Consent(e.Server.URL() + "/" + emutest.NorthwindTenant + "/v2.0/adminconsent?" + q.Encode())
	require.Equal(t, "True", back.Query().Get("admin_consent"), back.String())

	var raw [32]byte
	_, _ = rand.Read(raw[:])
	verifier := base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(verifier))
	q = url.Values{"client_id": {emutest.ProvisionerClientID}, "response_type": {"code"}, "redirect_uri": {redirect},
		"scope": {powerplatform.DelegatedScope + " offline_access"}, "state": {"y"}, "code_challenge_method": {"S256"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "prompt": {"select_account"}}
	back = b.SignIn(e.Server.URL()+"/"+emutest.NorthwindTenant+"/oauth2/v2.0/authorize?"+q.Encode(), login, "signin")
	require.NotEmpty(t, back.Query().Get("code"), back.String())
	tok, err := e.Auth.RedeemCode(context.Background(), emutest.NorthwindTenant, e.Provisioner(), back.Query().Get("code"), redirect, verifier, powerplatform.DelegatedScope)
	require.NoError(t, err)
	assert.Equal(t, login, tok.Username)
	assert.NotContains(t, tok.String(), tok.AccessToken)
	return tok
}

func TestEmulatedAddAppUser(t *testing.T) {
	e := emutest.StartEmulator(t)
	ctx := context.Background()
	tok := adminToken(t, e, emutest.NorthwindAdmin)
	c := powerplatform.New(e.Server.URL(), e.HTTP, static(tok.AccessToken))

	env, err := c.EnvironmentFor(ctx, e.Server.OrgURL(emutest.NorthwindOrgHost))
	require.NoError(t, err)
	assert.Equal(t, emutest.NorthwindEnv, env.Name)
	_, err = c.EnvironmentFor(ctx, e.Server.OrgURL(emutest.ContosoOrgHost))
	emutest.RequireKind(t, err, "powerplatform", msapi.NotFound, "")

	require.NoError(t, c.AddAppUser(ctx, env.Name, emutest.ProvisionerClientID))
	err = c.AddAppUser(ctx, "70000000-0000-0000-0000-00000000dead", emutest.ProvisionerClientID)
	emutest.RequireKind(t, err, "powerplatform", msapi.NotFound, "EnvironmentNotFound")
}

func TestEmulatedAddAppUserNeedsPowerPlatformAdmin(t *testing.T) {
	e := emutest.StartEmulator(t)
	tok := adminToken(t, e, emutest.NorthwindHelpdesk)
	c := powerplatform.New(e.Server.URL(), e.HTTP, static(tok.AccessToken))
	err := c.AddAppUser(context.Background(), emutest.NorthwindEnv, emutest.ProvisionerClientID)
	me := emutest.RequireKind(t, err, "powerplatform", msapi.PermissionDenied, "Forbidden")
	assert.Contains(t, me.Message, emutest.NorthwindHelpdesk)
}
