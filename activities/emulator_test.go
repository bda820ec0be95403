package activities

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/consent"
	"github.com/mktos2s/mktos2s/internal/dataverse"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/internal/msauth"
	"github.com/mktos2s/mktos2s/internal/testenv/testcodec"
)

const (
	emuTenant = "11111111-1111-1111-1111-111111111111" // Contoso in the default seed
	emuHost   = "contoso.crm.localhost"
)

// emuActivities starts the emulator and builds the real activities over it,
// as the worker does in sandbox mode.
func emuActivities(t *testing.T) (*Activities, *emulator.Server, *http.Client) {
	t.Helper()
	return emuActivitiesSeeded(t, nil)
}

// emuActivitiesSeeded is emuActivities over seed (nil = the default seed).
func emuActivitiesSeeded(t *testing.T, seed *emulator.Seed) (*Activities, *emulator.Server, *http.Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := emulator.Start(ctx, emulator.Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Seed: seed})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	hc, err := msapi.NewHTTPClient(msapi.HTTPOptions{CAFile: srv.CAFile(), DialOverrides: map[string]string{"*.localhost": "127.0.0.1"}})
	require.NoError(t, err)
	a := New(Deps{
		Auth:               msauth.New(msauth.Options{AuthorityHost: srv.URL(), HTTPClient: hc}),
		HTTP:               hc,
		GraphBaseURL:       srv.URL() + "/v1.0",
		AuthorityHost:      srv.URL(),
		ConsentRedirectURI: "https://127.0.0.1/consent-done",
		Provisioner:        msauth.Credential{ClientID: "aaaaaaaa-0000-0000-0000-000000000001", Secret: "provisioner-demo-secret"},
		ConfigNames:        dataverse.DefaultMarketoConfigNames(),
		Custody:            testcodec.Custody(),
	})
	return a, srv, hc
}

func tenantState(t *testing.T, srv *emulator.Server) emulator.TenantState {
	t.Helper()
	for _, ts := range srv.State().Tenants {
		if ts.ID == emuTenant {
			return ts
		}
	}
	t.Fatalf("tenant %s not in the emulator state", emuTenant)
	return emulator.TenantState{}
}

func ownedApps(ts emulator.TenantState) []emulator.AppState {
	var out []emulator.AppState
	for _, app := range ts.Applications {
		if !app.Seeded {
			out = append(out, app)
		}
	}
	return out
}

// TestEmulatorAppSecretConsentAndUndo drives the Entra side of the
// onboarding through the real clients: re-runs adopt the same app, a
// retried AddClientSecret leaves exactly one tagged secret, consent given
// on the consent page is verified, and the undos leave nothing behind.
func TestEmulatorAppSecretConsentAndUndo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator")
	}
	a, srv, hc := emuActivities(t)
	ctx := context.Background()
	orgURL := srv.OrgURL(emuHost)
	wfID := "onboarding/" + emuTenant + "/" + emuHost

	pre, err := a.Preflight(ctx, PreflightInput{TenantID: emuTenant, OrgURL: orgURL, SolutionName: "Marketo Lead Management",
		MinSolutionVersion: "4.0.0.14", RoleName: "Marketo Sync User", DetectFederation: true})
	require.NoError(t, err)
	assert.Empty(t, pre.FederatedDomains, "Contoso has only a managed domain")
	assert.NotEmpty(t, pre.RoleID)

	reg := RegisterApplicationInput{TenantID: emuTenant, OrgHost: emuHost, DisplayName: "Marketo Integration"}
	app, err := a.RegisterApplication(ctx, reg)
	require.NoError(t, err)
	again, err := a.RegisterApplication(ctx, reg)
	require.NoError(t, err)
	assert.Equal(t, app.AppObjectID, again.AppObjectID, "a re-run adopts the app by uniqueName")
	require.Len(t, ownedApps(tenantState(t, srv)), 1)

	sp, err := a.CreateServicePrincipal(ctx, CreateServicePrincipalInput{TenantID: emuTenant, AppID: app.AppID})
	require.NoError(t, err)

	in := AddClientSecretInput{TenantID: emuTenant, AppObjectID: app.AppObjectID, WorkflowID: wfID, LifetimeMonths: 12}
	first, err := a.AddClientSecret(ctx, in)
	require.NoError(t, err)
	second, err := a.AddClientSecret(ctx, in) // as if the first result had been lost
	require.NoError(t, err)
	assert.Equal(t, []string{first.KeyID}, second.RemovedStale)
	creds := ownedApps(tenantState(t, srv))[0].PasswordCredentials
	require.Len(t, creds, 1, "exactly one live secret")
	assert.Equal(t, second.KeyID, creds[0].KeyID)
	assert.Equal(t, SecretTag(wfID), creds[0].DisplayName)
	_, err = a.RegisterApplication(ctx, reg)
	assert.Equal(t, ErrAlreadyOnboarded, asAppErr(t, err).Type(), "an app with a live onboarding secret is not adopted by another run")
	renamed := reg
	renamed.DisplayName = "Renamed by another run"
	_, err = a.RegisterApplication(ctx, renamed)
	assert.Equal(t, ErrAlreadyOnboarded, asAppErr(t, err).Type())
	assert.Equal(t, "Marketo Integration", ownedApps(tenantState(t, srv))[0].DisplayName, "the onboarded app is refused before it is rewritten")

	v, err := a.VerifyConsent(ctx, VerifyConsentInput{TenantID: emuTenant, ServicePrincipalID: sp.ServicePrincipalID})
	require.NoError(t, err)
	assert.False(t, v.Granted)

	signer, err := consent.NewSigner(bytes.Repeat([]byte{3}, consent.MinKeyBytes), time.Hour, nil)
	require.NoError(t, err)
	a.deps.ConsentSigner = signer
	link, err := a.BuildConsentURL(ctx, BuildConsentURLInput{TenantID: emuTenant, AppID: app.AppID, WorkflowID: wfID, RunID: "run-1"})
	require.NoError(t, err)
	noFollow := *hc
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := emulator.AnswerConsent(ctx, &noFollow, link.URL, true)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode, "the emulator accepts the consent URL")
	back, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	assert.True(t, strings.EqualFold(back.Query().Get("admin_consent"), "true"))
	claims, err := signer.Verify(back.Query().Get("state"))
	require.NoError(t, err, "Entra hands the signed state back unchanged")
	assert.Equal(t, wfID, claims.WorkflowID)

	v, err = a.VerifyConsent(ctx, VerifyConsentInput{TenantID: emuTenant, ServicePrincipalID: sp.ServicePrincipalID})
	require.NoError(t, err)
	assert.True(t, v.Granted, v.Reason)

	for _, undo := range []func() (UndoResult, error){
		func() (UndoResult, error) {
			return a.RemoveClientSecret(ctx, RemoveClientSecretInput{TenantID: emuTenant, AppObjectID: app.AppObjectID, KeyID: second.KeyID})
		},
		func() (UndoResult, error) {
			return a.RemoveServicePrincipal(ctx, RemoveServicePrincipalInput{TenantID: emuTenant, ServicePrincipalID: sp.ServicePrincipalID})
		},
		func() (UndoResult, error) {
			return a.RemoveApplication(ctx, RemoveApplicationInput{TenantID: emuTenant, AppObjectID: app.AppObjectID})
		},
	} {
		res, err := undo()
		require.NoError(t, err)
		assert.False(t, res.AlreadyGone)
	}
	ts := tenantState(t, srv)
	assert.Empty(t, ownedApps(ts))
	for _, s := range ts.ServicePrincipals {
		assert.NotEqual(t, app.AppID, s.AppID, "service principal left behind")
	}

	res, err := a.RemoveApplication(ctx, RemoveApplicationInput{TenantID: emuTenant, AppObjectID: app.AppObjectID})
	require.NoError(t, err)
	assert.True(t, res.AlreadyGone, "undo of a deleted app is success")
}

// TestEmulatorDataverseStepsAndValidation runs the Dataverse half through
// the real clients: the application user, role and Marketo Config, publish,
// the sync filter, and the validation as the new app with its new secret;
// then the undos restore the org.
func TestEmulatorDataverseStepsAndValidation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator")
	}
	a, srv, _ := emuActivities(t)
	ctx := context.Background()
	orgURL := srv.OrgURL(emuHost)
	wfID := "onboarding/" + emuTenant + "/" + emuHost

	pre, err := a.Preflight(ctx, PreflightInput{TenantID: emuTenant, OrgURL: orgURL, SolutionName: "Marketo Lead Management",
		MinSolutionVersion: "4.0.0.14", RoleName: "Marketo Sync User"})
	require.NoError(t, err)
	app, err := a.RegisterApplication(ctx, RegisterApplicationInput{TenantID: emuTenant, OrgHost: emuHost, DisplayName: "Marketo Integration"})
	require.NoError(t, err)
	_, err = a.CreateServicePrincipal(ctx, CreateServicePrincipalInput{TenantID: emuTenant, AppID: app.AppID})
	require.NoError(t, err)
	secret, err := a.AddClientSecret(ctx, AddClientSecretInput{TenantID: emuTenant, AppObjectID: app.AppObjectID, WorkflowID: wfID, LifetimeMonths: 1})
	require.NoError(t, err)

	user, err := a.CreateApplicationUser(ctx, CreateApplicationUserInput{TenantID: emuTenant, OrgURL: orgURL, AppID: app.AppID, BusinessUnitID: pre.BusinessUnitID})
	require.NoError(t, err)
	again, err := a.CreateApplicationUser(ctx, CreateApplicationUserInput{TenantID: emuTenant, OrgURL: orgURL, AppID: app.AppID, BusinessUnitID: pre.BusinessUnitID})
	require.NoError(t, err)
	assert.Equal(t, user.SystemUserID, again.SystemUserID)
	assert.True(t, again.Adopted)

	_, err = a.AssignSecurityRole(ctx, AssignSecurityRoleInput{TenantID: emuTenant, OrgURL: orgURL, SystemUserID: user.SystemUserID, RoleID: pre.RoleID})
	require.NoError(t, err)
	cfg, err := a.ConfigureMarketoSolution(ctx, ConfigureMarketoSolutionInput{TenantID: emuTenant, OrgURL: orgURL,
		SystemUserID: user.SystemUserID, PreviousUserID: pre.ConfigUserID})
	require.NoError(t, err)
	assert.Equal(t, pre.ConfigUserID, cfg.PreviousUserID)
	_, err = a.PublishCustomizations(ctx, PublishCustomizationsInput{TenantID: emuTenant, OrgURL: orgURL})
	require.NoError(t, err)
	filter, err := a.CreateSyncFilter(ctx, CreateSyncFilterInput{TenantID: emuTenant, OrgURL: orgURL, Entities: []string{"lead", "contact"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"lead", "contact"}, filter.Created)
	filter, err = a.CreateSyncFilter(ctx, CreateSyncFilterInput{TenantID: emuTenant, OrgURL: orgURL, Entities: []string{"lead"}})
	require.NoError(t, err)
	assert.Empty(t, filter.Created, "the column exists already")

	val, err := a.ValidateConnection(ctx, ValidateConnectionInput{TenantID: emuTenant, OrgURL: orgURL, AppID: app.AppID,
		ClientSecret: secret.Secret, SystemUserID: user.SystemUserID, RoleName: "Marketo Sync User",
		SolutionName: "Marketo Lead Management", MinSolutionVersion: "4.0.0.14"})
	require.NoError(t, err)
	assert.True(t, val.Passed, "%v", val.Failed())
	assert.Len(t, val.Checks, 7)

	// Undo, newest first, as the saga does.
	_, err = a.RestoreMarketoConfig(ctx, RestoreMarketoConfigInput{TenantID: emuTenant, OrgURL: orgURL, ConfigID: cfg.ConfigID,
		SystemUserID: user.SystemUserID, PreviousUserID: cfg.PreviousUserID})
	require.NoError(t, err)
	_, err = a.RemoveRoleAssociation(ctx, RemoveRoleAssociationInput{TenantID: emuTenant, OrgURL: orgURL, SystemUserID: user.SystemUserID, RoleID: pre.RoleID})
	require.NoError(t, err)
	_, err = a.RemoveApplicationUser(ctx, RemoveApplicationUserInput{TenantID: emuTenant, OrgURL: orgURL, SystemUserID: user.SystemUserID})
	require.NoError(t, err)

	for _, org := range srv.State().Orgs {
		if !strings.HasPrefix(org.Host, emuHost) {
			continue
		}
		for _, u := range org.Users {
			assert.NotEqual(t, app.AppID, u.ApplicationID, "application user left behind")
		}
	}
	gone, err := a.RemoveRoleAssociation(ctx, RemoveRoleAssociationInput{TenantID: emuTenant, OrgURL: orgURL, SystemUserID: user.SystemUserID, RoleID: pre.RoleID})
	require.NoError(t, err)
	assert.True(t, gone.AlreadyGone)
}

// TestEmulatorHRDAssignRefusedLeavesNoPolicy: the workflow records the HRD
// undo only after the activity succeeds, so when the assignment is refused
// for good the activity itself must not leave its new policy behind.
func TestEmulatorHRDAssignRefusedLeavesNoPolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator")
	}
	a, srv, _ := emuActivities(t)
	ctx := context.Background()
	app, err := a.RegisterApplication(ctx, RegisterApplicationInput{TenantID: emuTenant, OrgHost: emuHost, DisplayName: "Marketo Integration"})
	require.NoError(t, err)
	sp, err := a.CreateServicePrincipal(ctx, CreateServicePrincipalInput{TenantID: emuTenant, AppID: app.AppID})
	require.NoError(t, err)

	srv.FailNextTenant(emuTenant, "graph.assignHRDPolicy", 1, http.StatusForbidden, "Authorization_RequestDenied")
	_, err = a.ConfigureHomeRealmDiscovery(ctx, ConfigureHomeRealmDiscoveryInput{TenantID: emuTenant, ServicePrincipalID: sp.ServicePrincipalID, AppID: app.AppID})
	require.Error(t, err)
	ae := asAppErr(t, err)
	assert.Equal(t, ErrPermissionDenied, ae.Type())
	assert.True(t, ae.NonRetryable())
	assert.Contains(t, ae.Message(), "Policy.ReadWrite.ApplicationConfiguration")
	assert.Empty(t, tenantState(t, srv).HRDPolicies, "the refused policy must not outlive the activity")

	// A transient refusal keeps the policy: the retry reuses it.
	srv.FailNextTenant(emuTenant, "graph.assignHRDPolicy", 1, http.StatusServiceUnavailable, "serviceUnavailable")
	_, err = a.ConfigureHomeRealmDiscovery(ctx, ConfigureHomeRealmDiscoveryInput{TenantID: emuTenant, ServicePrincipalID: sp.ServicePrincipalID, AppID: app.AppID})
	require.Error(t, err)
	require.Len(t, tenantState(t, srv).HRDPolicies, 1)
	first := tenantState(t, srv).HRDPolicies[0].ID
	out, err := a.ConfigureHomeRealmDiscovery(ctx, ConfigureHomeRealmDiscoveryInput{TenantID: emuTenant, ServicePrincipalID: sp.ServicePrincipalID, AppID: app.AppID})
	require.NoError(t, err)
	assert.Equal(t, first, out.PolicyID)
	assert.False(t, out.Created)
}

// TestEmulatorRefusedUserDeleteEndsDisabledNotDeleted: an org that refuses
// to delete an application user whose Entra app still exists (0x80048359,
// seed refuseAppUserDelete) leaves the undo in its defined end state over
// the real clients: the user disabled and holding no role, recorded as
// "disabled, not deleted", not a failed compensation. Once the app is gone
// from Entra, the same undo deletes the user.
func TestEmulatorRefusedUserDeleteEndsDisabledNotDeleted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator")
	}
	seed := emulator.DefaultSeed()
	refusing := false
	for i := range seed.Orgs {
		if seed.Orgs[i].Host == emuHost {
			seed.Orgs[i].RefuseAppUserDelete, refusing = true, true
		}
	}
	require.True(t, refusing, "the default seed has org %s", emuHost)
	a, srv, _ := emuActivitiesSeeded(t, seed)
	ctx := context.Background()
	orgURL := srv.OrgURL(emuHost)

	pre, err := a.Preflight(ctx, PreflightInput{TenantID: emuTenant, OrgURL: orgURL, SolutionName: "Marketo Lead Management",
		MinSolutionVersion: "4.0.0.14", RoleName: "Marketo Sync User"})
	require.NoError(t, err)
	app, err := a.RegisterApplication(ctx, RegisterApplicationInput{TenantID: emuTenant, OrgHost: emuHost, DisplayName: "Marketo Integration"})
	require.NoError(t, err)
	_, err = a.CreateServicePrincipal(ctx, CreateServicePrincipalInput{TenantID: emuTenant, AppID: app.AppID})
	require.NoError(t, err)
	user, err := a.CreateApplicationUser(ctx, CreateApplicationUserInput{TenantID: emuTenant, OrgURL: orgURL, AppID: app.AppID, BusinessUnitID: pre.BusinessUnitID})
	require.NoError(t, err)
	_, err = a.AssignSecurityRole(ctx, AssignSecurityRoleInput{TenantID: emuTenant, OrgURL: orgURL, SystemUserID: user.SystemUserID, RoleID: pre.RoleID})
	require.NoError(t, err)

	appUser := func() (emulator.UserState, bool) {
		for _, org := range srv.State().Orgs {
			for _, u := range org.Users {
				if u.ID == user.SystemUserID {
					return u, true
				}
			}
		}
		return emulator.UserState{}, false
	}

	res, err := a.RemoveApplicationUser(ctx, RemoveApplicationUserInput{TenantID: emuTenant, OrgURL: orgURL, SystemUserID: user.SystemUserID})
	require.NoError(t, err, "a refused delete is a defined end state, not a failed undo")
	assert.True(t, strings.HasPrefix(res.Note, DisabledNotDeleted), res.Note)
	assert.Contains(t, res.Note, dataverse.CodeUserDeleteRefused)
	assert.False(t, res.AlreadyGone)
	u, ok := appUser()
	require.True(t, ok, "Dataverse kept the user")
	assert.True(t, u.Disabled, "the user cannot sign in")
	assert.Empty(t, u.RoleIDs, "the user holds no role")

	again, err := a.RemoveApplicationUser(ctx, RemoveApplicationUserInput{TenantID: emuTenant, OrgURL: orgURL, SystemUserID: user.SystemUserID})
	require.NoError(t, err, "a repeated undo ends the same way")
	assert.True(t, strings.HasPrefix(again.Note, DisabledNotDeleted), again.Note)

	_, err = a.RemoveApplication(ctx, RemoveApplicationInput{TenantID: emuTenant, AppObjectID: app.AppObjectID})
	require.NoError(t, err)
	res, err = a.RemoveApplicationUser(ctx, RemoveApplicationUserInput{TenantID: emuTenant, OrgURL: orgURL, SystemUserID: user.SystemUserID})
	require.NoError(t, err)
	assert.Empty(t, res.Note, "with the app gone from Entra the user is deleted")
	_, ok = appUser()
	assert.False(t, ok, "the user is deleted")
}
