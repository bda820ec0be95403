package activities

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/consent"
	"github.com/mktos2s/mktos2s/internal/dataverse"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/internal/msapi/emutest"
	"github.com/mktos2s/mktos2s/internal/msauth"
	"github.com/mktos2s/mktos2s/internal/powerplatform"
)

const (
	ghostTenant = "77777777-0000-4000-8000-000000000001" // Northwind's copy whose addAppUser does nothing
	ghostHost   = "ghost.crm.localhost"
	testRun     = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
)

type sessionFixture struct {
	a      *Activities
	srv    *emulator.Server
	e      *emutest.Emulated
	signer *consent.Signer
}

func startSession(t *testing.T) *sessionFixture {
	t.Helper()
	seed := emulator.DefaultSeed()
	// Ghost: Northwind again, but its environment ignores addAppUser.
	nt := seed.Tenants[len(seed.Tenants)-1]
	require.Equal(t, emutest.NorthwindTenant, nt.ID)
	nt.ID, nt.DisplayName = ghostTenant, "Ghost"
	nt.Domains = []emulator.SeedDomain{{Name: "ghost.onmicrosoft.com", AuthenticationType: "Managed", IsVerified: true, IsDefault: true}}
	nt.Admins = []emulator.SeedAdmin{{UPN: "admin@ghost.onmicrosoft.com", DisplayName: "Ghost Admin", Roles: []string{"Power Platform Administrator"}}}
	og := seed.Orgs[len(seed.Orgs)-1]
	og.Host, og.TenantID, og.OrganizationID, og.EnvironmentID, og.AddAppUserIgnored = ghostHost, ghostTenant, "", "", true
	og.RootBusinessUnit, og.Solutions, og.Roles = emulator.SeedBusinessUnit{Name: "ghost"}, nil, []emulator.SeedRole{{Name: "System Administrator"}}
	og.MarketoConfig.Records = nil
	seed.Tenants, seed.Orgs = append(seed.Tenants, nt), append(seed.Orgs, og)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := emulator.Start(ctx, emulator.Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Seed: seed})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	hc, err := msapi.NewHTTPClient(msapi.HTTPOptions{CAFile: srv.CAFile(), DialOverrides: map[string]string{"*.localhost": "127.0.0.1"}})
	require.NoError(t, err)
	signer, err := consent.NewSigner(bytes.Repeat([]byte{7}, consent.MinKeyBytes), time.Hour, nil)
	require.NoError(t, err)
	auth := msauth.New(msauth.Options{AuthorityHost: srv.URL(), HTTPClient: hc})
	a := New(Deps{
		Auth: auth, HTTP: hc, GraphBaseURL: srv.URL() + "/v1.0", AuthorityHost: srv.URL(),
		ConsentRedirectURI:   "http://127.0.0.1:9/consent/callback",
		Provisioner:          msauth.Credential{ClientID: emutest.ProvisionerClientID, Secret: emutest.ProvisionerSecret},
		ConfigNames:          dataverse.DefaultMarketoConfigNames(),
		ConsentSigner:        signer,
		PowerPlatformBaseURL: srv.URL(),
	})
	return &sessionFixture{a: a, srv: srv, e: &emutest.Emulated{Server: srv, HTTP: hc, Auth: auth}, signer: signer}
}

// session plays the admin's one action: the link, its consent screen, the
// sign-in; it returns what the session callback would signal.
func (f *sessionFixture) session(t *testing.T, tenant, host, login string) AddProvisionerAppUserInput {
	t.Helper()
	wf := "onboarding/" + tenant + "/" + host
	link, err := f.a.BuildSessionURL(context.Background(), BuildSessionURLInput{TenantID: tenant, WorkflowID: wf, RunID: testRun})
	require.NoError(t, err)
	b := f.e.Browser(t)
	back := b.Consent(link.URL)
	require.Equal(t, "True", back.Query().Get("admin_consent"), back.String())
	assert.Equal(t, "/consent/session", back.Path)
	signIn, err := f.signer.SignInURL(f.srv.URL(), tenant, emutest.ProvisionerClientID, "http://127.0.0.1:9/consent/session", wf, testRun,
		powerplatform.DelegatedScope+" offline_access")
	require.NoError(t, err)
	back = b.SignIn(signIn, login, "signin")
	code := back.Query().Get("code")
	require.NotEmpty(t, code, back.String())
	claims, err := f.signer.Verify(back.Query().Get("state"))
	require.NoError(t, err)
	sealed, err := f.signer.SealCode(code, wf)
	require.NoError(t, err)
	return AddProvisionerAppUserInput{TenantID: tenant, OrgURL: f.srv.OrgURL(host), WorkflowID: wf, SealedCode: sealed, Nonce: claims.Nonce, SignedInAt: time.Now()}
}

func (f *sessionFixture) provisionerUser(host string) *emulator.UserState {
	for _, o := range f.srv.State().Orgs {
		if o.Host != host {
			continue
		}
		for _, u := range o.Users {
			if u.ApplicationID == emutest.ProvisionerClientID {
				return &u
			}
		}
	}
	return nil
}

func TestSessionAddsAwaitsAndRevokesTheProvisioner(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator")
	}
	f := startSession(t)
	ctx := context.Background()
	in := f.session(t, emutest.NorthwindTenant, emutest.NorthwindOrgHost, emutest.NorthwindAdmin)
	assert.NotContains(t, in.SealedCode, "code=")

	added, err := f.a.AddProvisionerAppUser(ctx, in)
	require.NoError(t, err)
	assert.Equal(t, emutest.NorthwindEnv, added.EnvironmentID)
	assert.Equal(t, emutest.NorthwindAdmin, added.AdminUsername)
	assert.False(t, added.AlreadyMember)
	assert.Nil(t, f.provisionerUser(emutest.NorthwindOrgHost), "replication delay: not there yet")

	got, err := f.a.AwaitProvisionerAppUser(ctx, AwaitProvisionerAppUserInput{TenantID: in.TenantID, OrgURL: in.OrgURL, MaxWait: 20 * time.Second, Poll: 100 * time.Millisecond})
	require.NoError(t, err)
	u := f.provisionerUser(emutest.NorthwindOrgHost)
	require.NotNil(t, u)
	assert.Equal(t, u.ID, got.SystemUserID)
	assert.Equal(t, []string{"System Administrator"}, u.RoleNames)

	again, err := f.a.AddProvisionerAppUser(ctx, in) // a retry whose first answer was lost
	require.NoError(t, err)
	assert.True(t, again.AlreadyMember)

	rev, err := f.a.RevokeProvisionerAccess(ctx, RevokeProvisionerAccessInput{TenantID: in.TenantID, OrgURL: in.OrgURL})
	require.NoError(t, err)
	assert.True(t, rev.Disabled)
	assert.False(t, rev.Deleted)
	assert.True(t, f.provisionerUser(emutest.NorthwindOrgHost).Disabled, "just-in-time: the provisioner's own user is disabled")
	rev, err = f.a.RevokeProvisionerAccess(ctx, RevokeProvisionerAccessInput{TenantID: in.TenantID, OrgURL: in.OrgURL})
	require.NoError(t, err, "revoking twice is fine")
	assert.True(t, rev.Disabled)

	_, err = f.a.AddProvisionerAppUser(ctx, in)
	ae := asAppErr(t, err)
	assert.Equal(t, ErrAdminSession, ae.Type())
	assert.True(t, ae.NonRetryable())
	assert.Contains(t, ae.Error(), "used already")
	assert.Contains(t, ae.Error(), "opens the link again")

	for _, ts := range f.srv.State().Tenants {
		for _, c := range ts.AuthCodes {
			assert.True(t, c.Redeemed)
		}
	}
}

func TestSessionAdminWithoutPowerPlatformRole(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator")
	}
	f := startSession(t)
	in := f.session(t, emutest.NorthwindTenant, emutest.NorthwindOrgHost, emutest.NorthwindHelpdesk)
	_, err := f.a.AddProvisionerAppUser(context.Background(), in)
	ae := asAppErr(t, err)
	assert.Equal(t, ErrAdminSession, ae.Type())
	assert.True(t, ae.NonRetryable())
	assert.Contains(t, ae.Error(), emutest.NorthwindHelpdesk)
	assert.Contains(t, ae.Error(), "a Power Platform administrator (or Global administrator) of the tenant must open the link again")
	assert.Nil(t, f.provisionerUser(emutest.NorthwindOrgHost), "nothing added")
}

func TestSessionAddAppUserAnswers200ButTheUserNeverAppears(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator")
	}
	f := startSession(t)
	ctx := context.Background()
	in := f.session(t, ghostTenant, ghostHost, "admin@ghost.onmicrosoft.com")
	_, err := f.a.AddProvisionerAppUser(ctx, in)
	require.NoError(t, err, "the API says 200")
	_, err = f.a.AwaitProvisionerAppUser(ctx, AwaitProvisionerAppUserInput{TenantID: in.TenantID, OrgURL: in.OrgURL, MaxWait: time.Second, Poll: 100 * time.Millisecond})
	ae := asAppErr(t, err)
	assert.Equal(t, ErrAdminSession, ae.Type())
	assert.True(t, ae.NonRetryable())
	assert.Contains(t, ae.Error(), "did not appear in "+in.OrgURL)
	assert.Contains(t, ae.Error(), "Power Platform administrator of this environment must open the link again")
	assert.Nil(t, f.provisionerUser(ghostHost))
}

func TestSessionSignInCancelledLeavesNoCode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator")
	}
	f := startSession(t)
	wf := "onboarding/" + emutest.NorthwindTenant + "/" + emutest.NorthwindOrgHost
	link, err := f.a.BuildSessionURL(context.Background(), BuildSessionURLInput{TenantID: emutest.NorthwindTenant, WorkflowID: wf, RunID: testRun})
	require.NoError(t, err)
	b := f.e.Browser(t)
	b.Consent(link.URL)
	signIn, err := f.signer.SignInURL(f.srv.URL(), emutest.NorthwindTenant, emutest.ProvisionerClientID, "http://127.0.0.1:9/consent/session", wf, testRun, powerplatform.DelegatedScope)
	require.NoError(t, err)
	back := b.SignIn(signIn, "", "cancel")
	assert.Equal(t, "access_denied", back.Query().Get("error"))
	assert.Equal(t, "cancel", back.Query().Get("error_subcode"))
	assert.Empty(t, back.Query().Get("code"))
	status, loc, _ := b.Open(http.MethodGet, strings.Replace(signIn, "/authorize?", "/authorize?prompt=none&", 1), nil)
	require.Equal(t, http.StatusFound, status)
	assert.Equal(t, "login_required", loc.Query().Get("error"), "a cancelled sign-in leaves no session to reuse silently")
	for _, ts := range f.srv.State().Tenants {
		if ts.ID == emutest.NorthwindTenant {
			assert.Empty(t, ts.AuthCodes, "no code was issued")
		}
	}
}
