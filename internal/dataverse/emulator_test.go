package dataverse_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/dataverse"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/graph"
	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/internal/msapi/emutest"
	"github.com/mktos2s/mktos2s/internal/msauth"
)

func provisionerOrg(e *emutest.Emulated) *dataverse.Client {
	return dataverse.New(e.Server.OrgURL(emutest.ContosoOrgHost), e.HTTP,
		e.OrgTokens(emutest.ContosoTenant, emutest.ContosoOrgHost, e.Provisioner()), dataverse.DefaultMarketoConfigNames())
}

// newApp registers an app with a service principal and a secret, as the workflow does.
func newApp(t *testing.T, e *emutest.Emulated, uniqueName string) (graph.Application, graph.PasswordCredential, *graph.Client) {
	t.Helper()
	ctx := context.Background()
	g := graph.New(e.GraphURL(), e.HTTP, e.GraphTokens(emutest.ContosoTenant, e.Provisioner()))
	app, _, err := g.UpsertApplication(ctx, graph.ApplicationSpec{UniqueName: uniqueName, DisplayName: "Marketo Integration"})
	require.NoError(t, err)
	_, _, err = g.UpsertServicePrincipal(ctx, app.AppID)
	require.NoError(t, err)
	pw, err := g.AddPassword(ctx, app.ID, "mktos2s", time.Now().Add(24*time.Hour))
	require.NoError(t, err)
	return app, pw, g
}

// appUser registers an app and creates its application user in the root
// business unit, returning the user and the Marketo Sync User role.
func appUser(t *testing.T, e *emutest.Emulated, c *dataverse.Client, uniqueName string) (dataverse.SystemUser, dataverse.Role) {
	t.Helper()
	ctx := context.Background()
	app, _, _ := newApp(t, e, uniqueName)
	bu, err := c.RootBusinessUnit(ctx)
	require.NoError(t, err)
	user, _, err := c.CreateApplicationUser(ctx, app.AppID, bu.ID)
	require.NoError(t, err)
	role, err := c.FindRole(ctx, "Marketo Sync User", bu.ID)
	require.NoError(t, err)
	return user, role
}

func TestEmulatedPreflightReads(t *testing.T) {
	e := emutest.StartEmulator(t)
	c := provisionerOrg(e)
	ctx := context.Background()

	who, err := c.WhoAmI(ctx)
	require.NoError(t, err)
	assert.NotEmpty(t, who.UserID)
	assert.NotEmpty(t, who.OrganizationID)

	for _, name := range []string{"Marketo Lead Management", "MarketoLeadManagement"} {
		sol, err := c.FindSolution(ctx, name)
		require.NoError(t, err, name)
		assert.Equal(t, "MarketoLeadManagement", sol.UniqueName)
		cmp, err := dataverse.CompareVersions(sol.Version, "4.0.0.14")
		require.NoError(t, err)
		assert.GreaterOrEqual(t, cmp, 0, "seeded version %s supports the role on the sync user only", sol.Version)
	}
	_, err = c.FindSolution(ctx, "No Such Solution")
	assert.True(t, msapi.IsKind(err, msapi.NotFound), "%v", err)

	bu, err := c.RootBusinessUnit(ctx)
	require.NoError(t, err)
	assert.Equal(t, who.BusinessUnitID, bu.ID, "the provisioner's user sits in the root business unit")
	role, err := c.FindRole(ctx, "Marketo Sync User", bu.ID)
	require.NoError(t, err)
	assert.Equal(t, bu.ID, role.BusinessUnitID)
	_, err = c.FindRole(ctx, "No Such Role", bu.ID)
	assert.True(t, msapi.IsKind(err, msapi.NotFound), "%v", err)

	cfg, err := c.MarketoConfig(ctx)
	require.NoError(t, err)
	assert.Equal(t, "Default", cfg.Name)
	require.NoError(t, c.PublishAllXml(ctx))
}

func TestEmulatedNewAppIsAcceptedOnlyWithItsApplicationUser(t *testing.T) {
	e := emutest.StartEmulator(t)
	c := provisionerOrg(e)
	ctx := context.Background()
	app, pw, g := newApp(t, e, "mktos2s-sync")
	asApp := dataverse.New(e.Server.OrgURL(emutest.ContosoOrgHost), e.HTTP,
		e.OrgTokens(emutest.ContosoTenant, emutest.ContosoOrgHost, msauth.Credential{ClientID: app.AppID, Secret: pw.SecretText}),
		dataverse.DefaultMarketoConfigNames())

	_, err := asApp.WhoAmI(ctx)
	require.Error(t, err, "no application user yet")
	me, ok := msapi.AsError(err)
	require.True(t, ok)
	assert.Contains(t, []msapi.Kind{msapi.Unauthorized, msapi.PermissionDenied}, me.Kind, me.Error())

	_, err = c.FindApplicationUser(ctx, app.AppID)
	assert.True(t, msapi.IsKind(err, msapi.NotFound))

	bu, err := c.RootBusinessUnit(ctx)
	require.NoError(t, err)
	user, adopted, err := c.CreateApplicationUser(ctx, app.AppID, bu.ID)
	require.NoError(t, err)
	assert.False(t, adopted)
	assert.Equal(t, app.AppID, user.ApplicationID)
	assert.Equal(t, 4, user.AccessMode)
	assert.Equal(t, bu.ID, user.BusinessUnitID)
	assert.NotEmpty(t, user.InternalEmail, "Marketo needs the app user's email as its username")

	again, adopted, err := c.CreateApplicationUser(ctx, app.AppID, bu.ID)
	require.NoError(t, err)
	assert.True(t, adopted, "the second create adopts the first user")
	assert.Equal(t, user.ID, again.ID)

	who, err := asApp.WhoAmI(ctx)
	require.NoError(t, err)
	assert.Equal(t, user.ID, who.UserID, "Dataverse sees the new app as its application user")

	// Disabled, the user no longer lets the app in; CreateApplicationUser adopts and re-enables it.
	require.NoError(t, c.SetUserDisabled(ctx, user.ID, true))
	found, err := c.FindApplicationUser(ctx, app.AppID)
	require.NoError(t, err)
	assert.True(t, found.IsDisabled)
	_, err = asApp.WhoAmI(ctx)
	assert.Error(t, err)
	reenabled, adopted, err := c.CreateApplicationUser(ctx, app.AppID, bu.ID)
	require.NoError(t, err)
	assert.True(t, adopted)
	assert.False(t, reenabled.IsDisabled)
	_, err = asApp.WhoAmI(ctx)
	require.NoError(t, err)

	// Without its secret the app gets no new token.
	require.NoError(t, g.RemovePassword(ctx, app.ID, pw.KeyID))
	fresh := msauth.New(msauth.Options{AuthorityHost: e.Server.URL(), HTTPClient: e.HTTP})
	_, err = fresh.Token(ctx, emutest.ContosoTenant, msauth.Credential{ClientID: app.AppID, Secret: pw.SecretText},
		msauth.ScopeFor(e.Server.OrgURL(emutest.ContosoOrgHost)))
	assert.True(t, msapi.IsKind(err, msapi.Unauthorized), "%v", err)

	require.NoError(t, c.SetUserDisabled(ctx, user.ID, true))
	require.NoError(t, c.DeleteUser(ctx, user.ID))
	_, err = c.FindApplicationUser(ctx, app.AppID)
	assert.True(t, msapi.IsKind(err, msapi.NotFound), "%v", err)
}

func TestEmulatedRoleAndMarketoConfig(t *testing.T) {
	e := emutest.StartEmulator(t)
	c := provisionerOrg(e)
	ctx := context.Background()
	user, role := appUser(t, e, c, "mktos2s-role")

	require.NoError(t, c.AssociateRole(ctx, user.ID, role.ID))
	require.NoError(t, c.AssociateRole(ctx, user.ID, role.ID), "associating twice is success")
	roles, err := c.UserRoles(ctx, user.ID)
	require.NoError(t, err)
	require.Len(t, roles, 1)
	assert.Equal(t, role.ID, roles[0].ID)
	assert.Equal(t, "Marketo Sync User", roles[0].Name)

	require.NoError(t, c.DisassociateRole(ctx, user.ID, role.ID))
	roles, err = c.UserRoles(ctx, user.ID)
	require.NoError(t, err)
	assert.Empty(t, roles)
	err = c.DisassociateRole(ctx, user.ID, role.ID)
	assert.True(t, msapi.IsKind(err, msapi.NotFound), "%v", err)

	cfg, err := c.MarketoConfig(ctx)
	require.NoError(t, err)
	// The lookup's navigation property has the SchemaName's casing, and
	// Dataverse (like the emulator) refuses the lower-case logical name.
	nav, err := c.MarketoUserNavigation(ctx)
	require.NoError(t, err)
	assert.Equal(t, "mkto_MarketoUserId", nav)
	err = c.SetMarketoConfigUser(ctx, cfg.ID, "mkto_marketouserid", user.ID)
	assert.True(t, msapi.IsKind(err, msapi.Invalid), "the logical name is not the navigation property: %v", err)
	assert.True(t, msapi.IsKind(c.ClearMarketoConfigUser(ctx, cfg.ID, "mkto_marketouserid"), msapi.NotFound))
	require.NoError(t, c.SetMarketoConfigUser(ctx, cfg.ID, nav, user.ID))
	cfg, err = c.MarketoConfig(ctx)
	require.NoError(t, err)
	assert.Equal(t, user.ID, cfg.UserID)
	require.NoError(t, c.ClearMarketoConfigUser(ctx, cfg.ID, nav))
	cfg, err = c.MarketoConfig(ctx)
	require.NoError(t, err)
	assert.Empty(t, cfg.UserID)
}

func TestEmulatedBooleanColumn(t *testing.T) {
	e := emutest.StartEmulator(t)
	c := provisionerOrg(e)
	ctx := context.Background()
	created, err := c.EnsureBooleanColumn(ctx, "lead", "new_SyncToMkto", "Sync to Marketo", "")
	require.NoError(t, err)
	assert.True(t, created)
	created, err = c.EnsureBooleanColumn(ctx, "lead", "new_SyncToMkto", "Sync to Marketo", "")
	require.NoError(t, err)
	assert.False(t, created, "the column is there now")
}

func TestEmulatedDataverseErrorsAreTyped(t *testing.T) {
	e := emutest.StartEmulator(t)
	c := provisionerOrg(e)
	ctx := context.Background()
	e.CheckInjected(t, "dataverse", "dataverse.whoAmI", []emutest.Injected{
		{Status: 429, Code: "0x80072322", Kind: msapi.Throttled},
		{Status: 429, Code: "0x80072321", Kind: msapi.Throttled},
		{Status: 429, Code: "0x80072326", Kind: msapi.Throttled},
		{Status: 503, Code: "0x80040216", Kind: msapi.Transient},
		{Status: 403, Code: "0x80040220", Kind: msapi.PermissionDenied},
		{Status: 404, Code: "0x80040217", Kind: msapi.NotFound},
	}, func() error { _, err := c.WhoAmI(ctx); return err })
	_, err := c.WhoAmI(ctx)
	assert.NoError(t, err, "FailNext is used up")
}

// The slow calls carry their own time limit: with the shared client cut at
// 300 ms, a publish that takes 1 s still succeeds, while WhoAmI taking as
// long is cut off as before.
func TestEmulatedSlowCallsOutliveTheClientTimeout(t *testing.T) {
	e := emutest.StartEmulator(t)
	short := *e.HTTP
	short.Timeout = 300 * time.Millisecond
	c := dataverse.New(e.Server.OrgURL(emutest.ContosoOrgHost), &short,
		e.OrgTokens(emutest.ContosoTenant, emutest.ContosoOrgHost, e.Provisioner()), dataverse.DefaultMarketoConfigNames())
	ctx := context.Background()
	_, err := c.WhoAmI(ctx) // token cached before the latency starts
	require.NoError(t, err)
	e.Server.SetFaults(emulator.Faults{Routes: map[string]emulator.RouteFaults{
		"dataverse.publishAllXml":   {LatencyMs: 1000},
		"dataverse.createAttribute": {LatencyMs: 1000},
		"dataverse.whoAmI":          {LatencyMs: 1000},
	}})
	require.NoError(t, c.PublishAllXml(ctx))
	created, err := c.EnsureBooleanColumn(ctx, "lead", "new_SlowColumn", "Slow", "")
	require.NoError(t, err)
	assert.True(t, created)
	_, err = c.WhoAmI(ctx)
	assert.True(t, msapi.IsKind(err, msapi.Transient), "an ordinary call keeps the client's limit: %v", err)
}

// Dataverse throttles with three service protection codes (api-limits:
// number of requests 0x80072322, combined execution time 0x80072321,
// concurrent requests 0x80072326), each a 429 with Retry-After. The
// emulator's random throttling sends all three; the client reads each as
// Throttled and keeps the code and the Retry-After its retry waits for.
func TestEmulatedServiceProtectionCodesAreThrottled(t *testing.T) {
	e := emutest.StartEmulator(t)
	c := provisionerOrg(e)
	ctx := context.Background()
	_, err := c.WhoAmI(ctx) // the token is fetched before Dataverse throttles
	require.NoError(t, err)
	for _, code := range []string{"0x80072322", "0x80072321", "0x80072326"} {
		t.Run(code, func(t *testing.T) {
			e.Server.SetFaults(emulator.Faults{Routes: map[string]emulator.RouteFaults{
				"dataverse": {ThrottleProbability: 1, ThrottleCode: code, RetryAfterMinSeconds: 7, RetryAfterMaxSeconds: 7}}})
			defer e.Server.SetFaults(emulator.Faults{})
			err := c.PublishAllXml(ctx)
			me, ok := msapi.AsError(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, msapi.Throttled, me.Kind, me.Error())
			assert.Equal(t, code, me.Code)
			assert.Equal(t, 7*time.Second, me.RetryAfter)
		})
	}
	e.Server.SetFaults(emulator.Faults{Routes: map[string]emulator.RouteFaults{"dataverse": {ThrottleProbability: 1}}})
	defer e.Server.SetFaults(emulator.Faults{})
	seen := map[string]int{}
	for range 60 {
		_, err := c.WhoAmI(ctx)
		me, ok := msapi.AsError(err)
		require.True(t, ok, "%v", err)
		require.Equal(t, msapi.Throttled, me.Kind, me.Error())
		require.Equal(t, time.Second, me.RetryAfter)
		seen[me.Code]++
	}
	assert.Len(t, seen, 3, "random throttling sends every service protection code: %v", seen)
}

// The references the client writes (the role's @odata.id, the business
// unit's and the Marketo user's @odata.bind) come from its own org URL,
// which the emulator, like Dataverse, requires them to be based on; an org
// URL written with capitals and a trailing slash is the same org.
func TestEmulatedReferencesAreTheOrgsOwn(t *testing.T) {
	e := emutest.StartEmulator(t)
	orgURL := strings.ToUpper(e.Server.OrgURL(emutest.ContosoOrgHost)) + "/"
	c := dataverse.New(orgURL, e.HTTP, e.OrgTokens(emutest.ContosoTenant, emutest.ContosoOrgHost, e.Provisioner()), dataverse.DefaultMarketoConfigNames())
	ctx := context.Background()
	user, role := appUser(t, e, c, "mktos2s-refs")
	require.NoError(t, c.AssociateRole(ctx, user.ID, role.ID))
	roles, err := c.UserRoles(ctx, user.ID)
	require.NoError(t, err)
	require.Len(t, roles, 1)
	cfg, err := c.MarketoConfig(ctx)
	require.NoError(t, err)
	nav, err := c.MarketoUserNavigation(ctx)
	require.NoError(t, err)
	require.NoError(t, c.SetMarketoConfigUser(ctx, cfg.ID, nav, user.ID))
	cfg, err = c.MarketoConfig(ctx)
	require.NoError(t, err)
	assert.Equal(t, user.ID, cfg.UserID)
}
