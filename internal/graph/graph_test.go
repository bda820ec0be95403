package graph

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/internal/msapi/msapitest"
)

func newWire(t *testing.T) (*msapitest.Server, *Client) {
	w := msapitest.New(t)
	return w, New(w.URL+"/v1.0", w.Client(), msapitest.Token("graph-token"))
}

var reply = msapitest.Reply

func TestUpsertApplicationCreates(t *testing.T) {
	w, c := newWire(t)
	w.On("PATCH /v1.0/applications(uniqueName='o''brien-app')", reply(201,
		`{"id":"obj-1","appId":"app-1","displayName":"Marketo","uniqueName":"o'brien-app","signInAudience":"AzureADMyOrg","web":{"redirectUris":["https://x/cb"]}}`))
	app, created, err := c.UpsertApplication(context.Background(), ApplicationSpec{
		UniqueName: "o'brien-app", DisplayName: "Marketo", RedirectURIs: []string{"https://x/cb"},
		RequiredResourceAccess: []RequiredResourceAccess{{ResourceAppID: DynamicsCRMAppID,
			ResourceAccess: []ResourceAccess{{ID: DynamicsUserImpersonationID, Type: "Scope"}}}},
	})
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, "obj-1", app.ID)
	assert.Equal(t, "app-1", app.AppID)
	assert.Equal(t, []string{"https://x/cb"}, app.RedirectURIs)

	reqs := w.Requests()
	require.Len(t, reqs, 1)
	r := reqs[0]
	assert.Equal(t, "create-if-missing", r.Header.Get("Prefer"))
	assert.Equal(t, "Bearer graph-token", r.Header.Get("Authorization"))
	assert.Equal(t, "Marketo", r.Body["displayName"])
	assert.Equal(t, "AzureADMyOrg", r.Body["signInAudience"])
	assert.Equal(t, map[string]any{"redirectUris": []any{"https://x/cb"}}, r.Body["web"])
	assert.Equal(t, []any{map[string]any{"resourceAppId": DynamicsCRMAppID,
		"resourceAccess": []any{map[string]any{"id": DynamicsUserImpersonationID, "type": "Scope"}}}}, r.Body["requiredResourceAccess"])
	assert.NotContains(t, r.Body, "uniqueName", "the key carries the uniqueName")
	assert.NotContains(t, r.Body, "passwordCredentials", "PATCH must not set passwords")
}

func TestUpsertApplicationUpdatesThenReadsBack(t *testing.T) {
	w, c := newWire(t)
	w.On("PATCH /v1.0/applications(uniqueName='u1')", reply(204, ""))
	w.On("GET /v1.0/applications(uniqueName='u1')", reply(200, `{"id":"obj-1","appId":"app-1","uniqueName":"u1","passwordCredentials":[{"keyId":"k1","displayName":"s","hint":"abc","endDateTime":"2030-01-01T00:00:00Z"}]}`))
	app, created, err := c.UpsertApplication(context.Background(), ApplicationSpec{UniqueName: "u1", DisplayName: "Marketo"})
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, "obj-1", app.ID)
	require.Len(t, app.PasswordCredentials, 1)
	assert.Equal(t, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), app.PasswordCredentials[0].EndDateTime)
	reqs := w.Requests()
	require.Len(t, reqs, 2)
	assert.Contains(t, reqs[1].RawQuery, "$select=id,appId")
}

func TestGetApplicationMissingIsNotFound(t *testing.T) {
	_, c := newWire(t)
	_, err := c.GetApplicationByUniqueName(context.Background(), "nope")
	assert.True(t, msapi.IsKind(err, msapi.NotFound), "%v", err)
}

func TestUpsertServicePrincipal(t *testing.T) {
	w, c := newWire(t)
	w.On("PATCH /v1.0/servicePrincipals(appId='app-1')", reply(201, `{"id":"sp-1","appId":"app-1","displayName":"Marketo"}`))
	sp, created, err := c.UpsertServicePrincipal(context.Background(), "app-1")
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, ServicePrincipal{ID: "sp-1", AppID: "app-1", DisplayName: "Marketo"}, sp)
	assert.Equal(t, "create-if-missing", w.Requests()[0].Header.Get("Prefer"))

	w.On("PATCH /v1.0/servicePrincipals(appId='app-1')", reply(204, ""))
	w.On("GET /v1.0/servicePrincipals(appId='app-1')", reply(200, `{"id":"sp-1","appId":"app-1","displayName":"Marketo"}`))
	sp, created, err = c.UpsertServicePrincipal(context.Background(), "app-1")
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, "sp-1", sp.ID)
}

func TestPasswords(t *testing.T) {
	w, c := newWire(t)
	w.On("POST /v1.0/applications/obj-1/addPassword", reply(200,
		`{"keyId":"k-1","displayName":"mktos2s","hint":"Abc","secretText":"Abc~secret","startDateTime":"2026-01-01T00:00:00Z","endDateTime":"2027-01-01T00:00:00Z"}`))
	w.On("POST /v1.0/applications/obj-1/removePassword", reply(204, ""))
	w.On("GET /v1.0/applications/obj-1", reply(200, `{"id":"obj-1","passwordCredentials":[{"keyId":"k-1","displayName":"mktos2s","hint":"Abc"}]}`))

	end := time.Date(2027, 1, 1, 0, 0, 0, 0, time.FixedZone("CET", 3600))
	pc, err := c.AddPassword(context.Background(), "obj-1", "mktos2s", end)
	require.NoError(t, err)
	assert.Equal(t, "k-1", pc.KeyID)
	assert.Equal(t, "Abc~secret", pc.SecretText)
	add := w.Requests()[0]
	assert.Equal(t, map[string]any{"passwordCredential": map[string]any{"displayName": "mktos2s", "endDateTime": "2026-12-31T23:00:00Z"}}, add.Body)

	require.NoError(t, c.RemovePassword(context.Background(), "obj-1", "k-1"))
	assert.Equal(t, map[string]any{"keyId": "k-1"}, w.Requests()[1].Body)

	list, err := c.ListPasswords(context.Background(), "obj-1")
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Empty(t, list[0].SecretText)
	assert.Equal(t, "$select=id,passwordCredentials", w.Requests()[2].RawQuery)
}

func TestHomeRealmDiscovery(t *testing.T) {
	w, c := newWire(t)
	w.On("POST /v1.0/policies/homeRealmDiscoveryPolicies", reply(201, `{"id":"pol-1","displayName":"HRD","definition":["{\"HomeRealmDiscoveryPolicy\":{}}"]}`))
	w.On("POST /v1.0/servicePrincipals/sp-1/homeRealmDiscoveryPolicies/$ref", reply(204, ""))
	w.On("GET /v1.0/servicePrincipals/sp-1/homeRealmDiscoveryPolicies", reply(200, `{"value":[{"id":"pol-1","displayName":"HRD","definition":[]}]}`))
	w.On("DELETE /v1.0/servicePrincipals/sp-1/homeRealmDiscoveryPolicies/pol-1/$ref", reply(204, ""))
	w.On("DELETE /v1.0/policies/homeRealmDiscoveryPolicies/pol-1", reply(204, ""))
	w.On("GET /v1.0/policies/homeRealmDiscoveryPolicies", reply(200, `{"value":[]}`))
	ctx := context.Background()

	def := []string{`{"HomeRealmDiscoveryPolicy":{"AccelerateToFederatedDomain":true}}`}
	pol, err := c.CreateHRDPolicy(ctx, "HRD", def)
	require.NoError(t, err)
	assert.Equal(t, "pol-1", pol.ID)
	assert.Equal(t, map[string]any{"displayName": "HRD", "definition": []any{def[0]}, "isOrganizationDefault": false}, w.Requests()[0].Body)

	require.NoError(t, c.AssignHRDPolicy(ctx, "sp-1", "pol-1"))
	assert.Equal(t, map[string]any{"@odata.id": w.URL + "/v1.0/policies/homeRealmDiscoveryPolicies/pol-1"}, w.Requests()[1].Body)

	assigned, err := c.ListAssignedHRDPolicies(ctx, "sp-1")
	require.NoError(t, err)
	assert.Equal(t, []HomeRealmDiscoveryPolicy{{ID: "pol-1", DisplayName: "HRD", Definition: []string{}}}, assigned)
	require.NoError(t, c.UnassignHRDPolicy(ctx, "sp-1", "pol-1"))
	require.NoError(t, c.DeleteHRDPolicy(ctx, "pol-1"))
	all, err := c.ListHRDPolicies(ctx)
	require.NoError(t, err)
	assert.Empty(t, all)
}

func TestListsAndOrganization(t *testing.T) {
	w, c := newWire(t)
	w.On("GET /v1.0/domains", reply(200, `{"value":[{"id":"fabrikam.com","authenticationType":"Federated","isVerified":true,"isDefault":false}]}`))
	w.On("GET /v1.0/oauth2PermissionGrants", reply(200, `{"value":[{"id":"g1","clientId":"sp-1","consentType":"AllPrincipals","resourceId":"crm-sp","scope":"user_impersonation"}]}`))
	w.On("GET /v1.0/organization", reply(200, `{"value":[{"id":"t1","displayName":"Contoso"}]}`))
	ctx := context.Background()

	domains, err := c.ListDomains(ctx)
	require.NoError(t, err)
	assert.Equal(t, []Domain{{ID: "fabrikam.com", AuthenticationType: "Federated", IsVerified: true}}, domains)

	grants, err := c.ListPermissionGrants(ctx, "sp-'1")
	require.NoError(t, err)
	assert.Equal(t, "AllPrincipals", grants[0].ConsentType)
	assert.Equal(t, "$filter=clientId%20eq%20'sp-''1'", w.Requests()[1].RawQuery)

	org, err := c.Organization(ctx)
	require.NoError(t, err)
	assert.Equal(t, Organization{ID: "t1", DisplayName: "Contoso"}, org)

	w.On("GET /v1.0/organization", reply(200, `{"value":[]}`))
	_, err = c.Organization(ctx)
	assert.True(t, msapi.IsKind(err, msapi.NotFound))
}

func TestDeletes(t *testing.T) {
	w, c := newWire(t)
	w.On("DELETE /v1.0/applications/obj-1", reply(204, ""))
	w.On("DELETE /v1.0/servicePrincipals/sp-1", reply(204, ""))
	require.NoError(t, c.DeleteApplication(context.Background(), "obj-1"))
	require.NoError(t, c.DeleteServicePrincipal(context.Background(), "sp-1"))
	err := c.DeleteApplication(context.Background(), "gone")
	assert.True(t, msapi.IsKind(err, msapi.NotFound))
}
