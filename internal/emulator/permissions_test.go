package emulator

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// seedWithRoles is the default seed whose Contoso provisioner holds roles.
func seedWithRoles(roles ...string) *Seed {
	s := DefaultSeed()
	s.Tenants[0].Provisioner.Roles = roles
	return s
}

// The permissions the emulator demands are the least privileged ones of
// Microsoft's API pages, with the higher ones those pages list also taken.
func TestGraphPermissionsFollowMicrosoftsTables(t *testing.T) {
	t.Run("oauth2PermissionGrants need Directory.Read.All, not DelegatedPermissionGrant.Read.All", func(t *testing.T) {
		e := start(t, seedWithRoles("Application.ReadWrite.OwnedBy", "DelegatedPermissionGrant.Read.All"))
		r := e.do(http.MethodGet, e.graph("/oauth2PermissionGrants?$filter=clientId%20eq%20'x'"), e.provGraph(contosoID), nil)
		assert.Equal(t, http.StatusForbidden, r.status, string(r.body))
		e = start(t, seedWithRoles("Application.ReadWrite.OwnedBy", "Directory.Read.All"))
		r = e.do(http.MethodGet, e.graph("/oauth2PermissionGrants?$filter=clientId%20eq%20'x'"), e.provGraph(contosoID), nil)
		assert.Equal(t, http.StatusOK, r.status, string(r.body))
	})

	t.Run("Application.ReadWrite.OwnedBy reads every service principal", func(t *testing.T) {
		e := start(t, seedWithRoles("Application.ReadWrite.OwnedBy"))
		tok := e.provGraph(contosoID)
		r := e.do(http.MethodGet, e.graph("/servicePrincipals(appId='"+dynamicsCRMAppID+"')"), tok, nil)
		require.Equal(t, http.StatusOK, r.status, "the Dynamics CRM service principal, which it does not own: %s", r.body)
		assert.Equal(t, "Dynamics CRM", r.json(t)["displayName"])
		r = e.do(http.MethodDelete, e.graph("/servicePrincipals/"+r.json(t)["id"].(string)), tok, nil)
		assert.Equal(t, http.StatusForbidden, r.status, "but changes only its own")
	})

	t.Run("HRD assignment takes OwnedBy and Policy.Read.All; creation takes Policy.ReadWrite.ApplicationConfiguration", func(t *testing.T) {
		e := start(t, seedWithRoles("Application.ReadWrite.OwnedBy", "Policy.Read.All"))
		tok := e.provGraph(contosoID)
		_, _, spID, _ := e.onboard(tok, "mktos2s-hrd-read")
		body := map[string]any{"displayName": "p", "definition": []string{`{"HomeRealmDiscoveryPolicy":{}}`}}
		r := e.do(http.MethodPost, e.graph("/policies/homeRealmDiscoveryPolicies"), tok, body)
		assert.Equal(t, http.StatusForbidden, r.status, "creating needs Policy.ReadWrite.ApplicationConfiguration")

		e.s.mu.Lock()
		p := &hrdPolicy{id: newGUID(), displayName: "made by an admin", definition: []string{`{"HomeRealmDiscoveryPolicy":{}}`}}
		e.s.tenants[contosoID].policies[p.id] = p
		e.s.mu.Unlock()
		r = e.do(http.MethodPost, e.graph("/servicePrincipals/"+spID+"/homeRealmDiscoveryPolicies/$ref"), tok,
			map[string]any{"@odata.id": e.graph("/policies/homeRealmDiscoveryPolicies/" + p.id)})
		assert.Equal(t, http.StatusNoContent, r.status, string(r.body))
		r = e.do(http.MethodDelete, e.graph("/servicePrincipals/"+spID+"/homeRealmDiscoveryPolicies/"+p.id+"/$ref"), tok, nil)
		assert.Equal(t, http.StatusNoContent, r.status, string(r.body))
	})

	t.Run("tokens carry the seeded roles", func(t *testing.T) {
		e := start(t, seedWithRoles("Organization.Read.All", "Domain.Read.All"))
		claims, err := e.s.verifyToken(e.provGraph(contosoID))
		require.NoError(t, err)
		assert.ElementsMatch(t, []string{"Organization.Read.All", "Domain.Read.All"}, claims.Roles)
		claims, err = e.s.verifyToken(e.provDV(contosoID, contosoHost))
		require.NoError(t, err)
		assert.Empty(t, claims.Roles, "Graph permissions are not roles of Dataverse")
	})
}

func TestRefusedAppUserDeleteWhileTheAppExists(t *testing.T) {
	seed := DefaultSeed()
	seed.Orgs[0].RefuseAppUserDelete = true
	e := start(t, seed)
	tok, dvTok := e.provGraph(contosoID), e.provDV(contosoID, contosoHost)
	appID, objID, _, _ := e.onboard(tok, "mktos2s-refuse")
	r := e.do(http.MethodPost, e.dv(contosoHost, "/systemusers"), dvTok, map[string]any{"applicationid": appID,
		"businessunitid@odata.bind": "/businessunits(" + e.s.orgs[contosoHost].rootBU.ID + ")", "accessmode": 4}, "Prefer", "return=representation")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	uid := r.json(t)["systemuserid"].(string)
	require.Equal(t, http.StatusNoContent, e.do(http.MethodPatch, e.dv(contosoHost, "/systemusers("+uid+")"), dvTok, map[string]any{"isdisabled": true}).status)

	r = e.do(http.MethodDelete, e.dv(contosoHost, "/systemusers("+uid+")"), dvTok, nil)
	require.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "0x80048359", r.errCode(t))
	require.Equal(t, http.StatusNoContent, e.do(http.MethodDelete, e.graph("/applications/"+objID), tok, nil).status)
	assert.Equal(t, http.StatusNoContent, e.do(http.MethodDelete, e.dv(contosoHost, "/systemusers("+uid+")"), dvTok, nil).status,
		"once the app is gone from Entra the user can be deleted")
}
