package graph_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/graph"
	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/internal/msapi/emutest"
	"github.com/mktos2s/mktos2s/internal/msauth"
)

func provisionerGraph(e *emutest.Emulated, tenant string) *graph.Client {
	return graph.New(e.GraphURL(), e.HTTP, e.GraphTokens(tenant, e.Provisioner()))
}

func marketoSpec(uniqueName string) graph.ApplicationSpec {
	return graph.ApplicationSpec{
		UniqueName: uniqueName, DisplayName: "Marketo Integration",
		RedirectURIs: []string{"https://localhost:8088/consent/callback"},
		RequiredResourceAccess: []graph.RequiredResourceAccess{{
			ResourceAppID:  graph.DynamicsCRMAppID,
			ResourceAccess: []graph.ResourceAccess{{ID: graph.DynamicsUserImpersonationID, Type: "Scope"}},
		}},
	}
}

func tenantState(t *testing.T, s emulator.State, id string) emulator.TenantState {
	t.Helper()
	for _, ts := range s.Tenants {
		if ts.ID == id {
			return ts
		}
	}
	t.Fatalf("tenant %s not in emulator state", id)
	return emulator.TenantState{}
}

func TestEmulatedApplicationLifecycle(t *testing.T) {
	e := emutest.StartEmulator(t)
	c := provisionerGraph(e, emutest.ContosoTenant)
	ctx := context.Background()

	org, err := c.Organization(ctx)
	require.NoError(t, err)
	assert.Equal(t, emutest.ContosoTenant, org.ID)
	assert.Equal(t, "Contoso", org.DisplayName)

	app, created, err := c.UpsertApplication(ctx, marketoSpec("mktos2s-contoso"))
	require.NoError(t, err)
	assert.True(t, created)
	assert.NotEmpty(t, app.ID)
	assert.NotEmpty(t, app.AppID)
	assert.Equal(t, "AzureADMyOrg", app.SignInAudience)
	assert.Equal(t, []string{"https://localhost:8088/consent/callback"}, app.RedirectURIs)
	require.Len(t, app.RequiredResourceAccess, 1)
	assert.Equal(t, graph.DynamicsCRMAppID, app.RequiredResourceAccess[0].ResourceAppID)

	again, created, err := c.UpsertApplication(ctx, marketoSpec("mktos2s-contoso"))
	require.NoError(t, err)
	assert.False(t, created, "the second upsert updates")
	assert.Equal(t, app.ID, again.ID)
	assert.Equal(t, app.AppID, again.AppID)

	got, err := c.GetApplicationByUniqueName(ctx, "mktos2s-contoso")
	require.NoError(t, err)
	assert.Equal(t, app.ID, got.ID)

	sp, created, err := c.UpsertServicePrincipal(ctx, app.AppID)
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, app.AppID, sp.AppID)
	sp2, created, err := c.UpsertServicePrincipal(ctx, app.AppID)
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, sp.ID, sp2.ID)
	byAppID, err := c.GetServicePrincipalByAppID(ctx, app.AppID)
	require.NoError(t, err)
	assert.Equal(t, sp.ID, byAppID.ID)

	end := time.Now().Add(180 * 24 * time.Hour).UTC().Truncate(time.Second)
	pw, err := c.AddPassword(ctx, app.ID, "mktos2s", end)
	require.NoError(t, err)
	assert.NotEmpty(t, pw.SecretText)
	assert.NotEmpty(t, pw.KeyID)
	assert.WithinDuration(t, end, pw.EndDateTime, time.Second)
	list, err := c.ListPasswords(ctx, app.ID)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, pw.KeyID, list[0].KeyID)
	assert.Empty(t, list[0].SecretText, "Graph never returns a secret twice")

	// The new app can sign in with its new secret, and not once the secret is removed.
	newApp := msauth.Credential{ClientID: app.AppID, Secret: pw.SecretText}
	_, err = e.GraphTokens(emutest.ContosoTenant, newApp).Token(ctx)
	require.NoError(t, err)
	require.NoError(t, c.RemovePassword(ctx, app.ID, pw.KeyID))
	list, err = c.ListPasswords(ctx, app.ID)
	require.NoError(t, err)
	assert.Empty(t, list)
	fresh := msauth.New(msauth.Options{AuthorityHost: e.Server.URL(), HTTPClient: e.HTTP})
	_, err = fresh.Token(ctx, emutest.ContosoTenant, newApp, msauth.ScopeFor(e.GraphURL()))
	assert.True(t, msapi.IsKind(err, msapi.Unauthorized), "%v", err)

	require.NoError(t, c.DeleteServicePrincipal(ctx, sp.ID))
	require.NoError(t, c.DeleteApplication(ctx, app.ID))
	_, err = c.GetApplicationByUniqueName(ctx, "mktos2s-contoso")
	assert.True(t, msapi.IsKind(err, msapi.NotFound), "%v", err)
	_, err = c.GetServicePrincipalByAppID(ctx, app.AppID)
	assert.True(t, msapi.IsKind(err, msapi.NotFound), "%v", err)
	err = c.DeleteApplication(ctx, app.ID)
	assert.True(t, msapi.IsKind(err, msapi.NotFound), "deleting twice is NotFound, which undo treats as done: %v", err)

	ts := tenantState(t, e.Server.State(), emutest.ContosoTenant)
	for _, a := range ts.Applications {
		assert.NotEqual(t, app.AppID, a.AppID, "nothing left behind")
	}
}

func TestEmulatedConsentGrantIsVisible(t *testing.T) {
	e := emutest.StartEmulator(t)
	c := provisionerGraph(e, emutest.ContosoTenant)
	ctx := context.Background()
	app, _, err := c.UpsertApplication(ctx, marketoSpec("mktos2s-consent"))
	require.NoError(t, err)
	sp, _, err := c.UpsertServicePrincipal(ctx, app.AppID)
	require.NoError(t, err)

	grants, err := c.ListPermissionGrants(ctx, sp.ID)
	require.NoError(t, err)
	assert.Empty(t, grants, "no consent yet")

	// An admin opens the consent URL and clicks Accept; the emulator records the grant and redirects.
	q := url.Values{"client_id": {app.AppID}, "redirect_uri": {app.RedirectURIs[0]}, "state": {"xyz"}}
	noFollow := *e.HTTP
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	link := e.Server.URL() + "/" + emutest.ContosoTenant + "/adminconsent?" + q.Encode()
	page, err := noFollow.Get(link)
	require.NoError(t, err)
	page.Body.Close()
	require.Equal(t, http.StatusOK, page.StatusCode, "the link shows the consent page")
	grants, err = c.ListPermissionGrants(ctx, sp.ID)
	require.NoError(t, err)
	assert.Empty(t, grants, "opening the page grants nothing")
	resp, err := emulator.AnswerConsent(ctx, &noFollow, link, true)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, "True", loc.Query().Get("admin_consent"))
	assert.Equal(t, "xyz", loc.Query().Get("state"))

	grants, err = c.ListPermissionGrants(ctx, sp.ID)
	require.NoError(t, err)
	require.Len(t, grants, 1)
	assert.Equal(t, sp.ID, grants[0].ClientID)
	assert.Equal(t, "AllPrincipals", grants[0].ConsentType)
	assert.Contains(t, grants[0].Scope, "user_impersonation")
}

func TestEmulatedHomeRealmDiscoveryOnFederatedTenant(t *testing.T) {
	e := emutest.StartEmulator(t)
	c := provisionerGraph(e, emutest.FabrikamTenant)
	ctx := context.Background()

	domains, err := c.ListDomains(ctx)
	require.NoError(t, err)
	federated := false
	for _, d := range domains {
		federated = federated || (d.AuthenticationType == "Federated" && d.IsVerified)
	}
	assert.True(t, federated, "Fabrikam has a verified federated domain: %+v", domains)

	app, _, err := c.UpsertApplication(ctx, marketoSpec("mktos2s-fabrikam"))
	require.NoError(t, err)
	sp, _, err := c.UpsertServicePrincipal(ctx, app.AppID)
	require.NoError(t, err)

	def := []string{`{"HomeRealmDiscoveryPolicy":{"AccelerateToFederatedDomain":false,"AllowCloudPasswordValidation":true}}`}
	pol, err := c.CreateHRDPolicy(ctx, "mktos2s HRD "+app.AppID, def)
	require.NoError(t, err)
	assert.NotEmpty(t, pol.ID)
	assert.Equal(t, def, pol.Definition)

	all, err := c.ListHRDPolicies(ctx)
	require.NoError(t, err)
	assert.Contains(t, ids(all), pol.ID)

	require.NoError(t, c.AssignHRDPolicy(ctx, sp.ID, pol.ID))
	assigned, err := c.ListAssignedHRDPolicies(ctx, sp.ID)
	require.NoError(t, err)
	assert.Equal(t, []string{pol.ID}, ids(assigned))

	require.NoError(t, c.UnassignHRDPolicy(ctx, sp.ID, pol.ID))
	assigned, err = c.ListAssignedHRDPolicies(ctx, sp.ID)
	require.NoError(t, err)
	assert.Empty(t, assigned)
	require.NoError(t, c.DeleteHRDPolicy(ctx, pol.ID))
	all, err = c.ListHRDPolicies(ctx)
	require.NoError(t, err)
	assert.NotContains(t, ids(all), pol.ID)
}

func TestEmulatedErrorsAreTyped(t *testing.T) {
	e := emutest.StartEmulator(t)
	c := provisionerGraph(e, emutest.ContosoTenant)
	ctx := context.Background()
	app, _, err := c.UpsertApplication(ctx, marketoSpec("mktos2s-errors"))
	require.NoError(t, err)

	e.CheckInjected(t, "graph", "graph.addPassword", []emutest.Injected{
		{Status: 429, Code: "TooManyRequests", Kind: msapi.Throttled},
		{Status: 503, Code: "serviceNotAvailable", Kind: msapi.Transient},
		{Status: 403, Code: "Authorization_RequestDenied", Kind: msapi.PermissionDenied},
		{Status: 409, Code: "Request_MultipleObjectsWithSameKeyValue", Kind: msapi.Conflict},
		{Status: 400, Code: "Request_BadRequest", Kind: msapi.Invalid},
	}, func() error { _, err := c.AddPassword(ctx, app.ID, "x", time.Time{}); return err })

	bad := graph.New(e.GraphURL(), e.HTTP, e.GraphTokens(emutest.ContosoTenant, msauth.Credential{ClientID: emutest.ProvisionerClientID, Secret: "wrong-secret-zq9"}))
	_, err = bad.Organization(ctx)
	me := emutest.RequireKind(t, err, "entra", msapi.Unauthorized, "invalid_client")
	assert.NotContains(t, me.Error(), "wrong-secret-zq9", "the secret is never echoed")
}

func ids(ps []graph.HomeRealmDiscoveryPolicy) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func TestEmulatedReplicationLagIsUnauthorizedThenPasses(t *testing.T) {
	e := emutest.StartEmulator(t)
	e.Server.SetFaults(emulator.Faults{ReplicationLagMs: 400})
	c := provisionerGraph(e, emutest.ContosoTenant)
	ctx := context.Background()
	app, _, err := c.UpsertApplication(ctx, marketoSpec("mktos2s-lag"))
	require.NoError(t, err)
	_, _, err = c.UpsertServicePrincipal(ctx, app.AppID)
	require.NoError(t, err)
	pw, err := c.AddPassword(ctx, app.ID, "mktos2s", time.Time{})
	require.NoError(t, err)

	tokens := e.GraphTokens(emutest.ContosoTenant, msauth.Credential{ClientID: app.AppID, Secret: pw.SecretText})
	_, err = tokens.Token(ctx)
	emutest.RequireKind(t, err, "entra", msapi.Unauthorized, "")
	// Unauthorized is retryable by the activity's policy: once Entra has replicated, it passes.
	require.Eventually(t, func() bool { _, err := tokens.Token(ctx); return err == nil }, 5*time.Second, 100*time.Millisecond)
}
