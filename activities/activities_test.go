package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/mktos2s/mktos2s/internal/consent"
	"github.com/mktos2s/mktos2s/internal/custody"
	"github.com/mktos2s/mktos2s/internal/dataverse"
	"github.com/mktos2s/mktos2s/internal/graph"
	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/internal/testenv/testcodec"
)

func asAppErr(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "want an ApplicationError, got %T %v", err, err)
	return ae
}

func TestMapError(t *testing.T) {
	perm := fix{permission: "Graph permission Application.ReadWrite.OwnedBy", invalid: "check appDisplayName"}
	cases := []struct {
		name         string
		err          error
		who          principal
		wantType     string
		nonRetryable bool
		wantDelay    time.Duration
		wantInMsg    []string
	}{
		{"throttled keeps Retry-After", &msapi.Error{Service: "graph", Op: "addPassword", Kind: msapi.Throttled, Status: 429, RetryAfter: 7 * time.Second},
			asProvisioner, ErrThrottled, false, 7 * time.Second, []string{"throttled", "graph addPassword: throttled (HTTP 429)"}},
		{"permission denied names the permission", &msapi.Error{Service: "graph", Op: "upsertApplication", Kind: msapi.PermissionDenied, Status: 403,
			Code: "Authorization_RequestDenied", Message: "Insufficient privileges", RequestID: "req-1"},
			asProvisioner, ErrPermissionDenied, true, 0, []string{"grant Graph permission Application.ReadWrite.OwnedBy", "Authorization_RequestDenied", "request-id req-1"}},
		{"invalid names the fix", &msapi.Error{Service: "graph", Op: "upsertApplication", Kind: msapi.Invalid, Status: 400, Message: "bad displayName"},
			asProvisioner, ErrInvalidRequest, true, 0, []string{"bad displayName", "check appDisplayName"}},
		{"unauthorized provisioner is configuration", &msapi.Error{Service: "entra", Op: "token", Kind: msapi.Unauthorized, Status: 401, Code: "invalid_client"},
			asProvisioner, ErrProvisionerCredentials, true, 0, []string{"microsoft.provisioner.*"}},
		{"unauthorized new app is replication lag", &msapi.Error{Service: "entra", Op: "token", Kind: msapi.Unauthorized, Status: 401, Code: "invalid_client"},
			asNewApp, ErrReplicationLag, false, 0, []string{"not accepted yet"}},
		{"transient retries", &msapi.Error{Service: "dataverse", Op: "whoami", Kind: msapi.Transient, Status: 503},
			asProvisioner, ErrTransient, false, 0, nil},
		{"conflict retries", &msapi.Error{Service: "dataverse", Op: "associate", Kind: msapi.Conflict, Status: 412},
			asProvisioner, ErrConflict, false, 0, nil},
		{"not found retries", &msapi.Error{Service: "graph", Op: "addPassword", Kind: msapi.NotFound, Status: 404},
			asProvisioner, ErrNotFound, false, 0, nil},
		{"wrapped msapi error is found", errorsJoin(&msapi.Error{Service: "graph", Op: "x", Kind: msapi.PermissionDenied, Status: 403}),
			asProvisioner, ErrPermissionDenied, true, 0, nil},
		{"network cause is kept", &msapi.Error{Service: "dataverse", Op: "whoami", Kind: msapi.Transient, Err: errors.New("connection reset by peer")},
			asProvisioner, ErrTransient, false, 0, []string{"connection reset by peer"}},
		{"untyped error retries", errors.New("connection reset"), asProvisioner, ErrTransient, false, 0, []string{"connection reset"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ae := asAppErr(t, mapError(context.Background(), "do it", c.err, c.who, perm))
			assert.Equal(t, c.wantType, ae.Type())
			assert.Equal(t, c.nonRetryable, ae.NonRetryable())
			assert.Equal(t, c.wantDelay, ae.NextRetryDelay())
			assert.True(t, strings.HasPrefix(ae.Message(), "do it: "), ae.Message())
			for _, s := range c.wantInMsg {
				assert.Contains(t, ae.Message(), s)
			}
		})
	}
	assert.NoError(t, mapError(context.Background(), "x", nil, asProvisioner, perm))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	raw := &msapi.Error{Kind: msapi.PermissionDenied}
	assert.Same(t, raw, mapError(ctx, "x", raw, asProvisioner, perm), "a cancelled attempt is not reclassified")
}

func errorsJoin(err error) error { return errors.Join(errors.New("context"), err) }

func TestAddClientSecretKeepsExactlyOneTaggedSecret(t *testing.T) {
	const wf = "onboarding/t/contoso.crm.dynamics.com"
	g := &fakeGraph{passwords: []graph.PasswordCredential{
		{KeyID: "foreign", DisplayName: "someone else's"},
		{KeyID: "lost-1", DisplayName: SecretTag(wf)}, // value lost with a crashed attempt
		{KeyID: "other-onboarding", DisplayName: SecretTag("onboarding/t/other.crm.dynamics.com")},
	}}
	a := newFakeActivities(g, &dvState{}, nil, nil)
	in := AddClientSecretInput{TenantID: "t", AppObjectID: "obj", WorkflowID: wf, LifetimeMonths: 12}

	first, err := a.AddClientSecret(context.Background(), in)
	require.NoError(t, err)
	assert.Equal(t, []string{"lost-1"}, first.RemovedStale)
	assert.Equal(t, testcodec.CustodyKeyID, first.Secret.KeyID)
	assert.Regexp(t, `^secret-\d+$`, testcodec.Open(first.Secret), "the fake's value, sealed with the custody key")
	wire, err := json.Marshal(first)
	require.NoError(t, err)
	assert.NotContains(t, string(wire), testcodec.Open(first.Secret), "the result never carries the value in plain text")
	assert.Equal(t, time.Date(2027, 1, 31, 12, 0, 0, 0, time.UTC), first.ExpiresAt)

	// A retry (the first result was lost) replaces the secret again.
	second, err := a.AddClientSecret(context.Background(), in)
	require.NoError(t, err)
	assert.Equal(t, []string{first.KeyID}, second.RemovedStale)
	assert.NotEqual(t, first.KeyID, second.KeyID)

	var tagged, keys []string
	for _, p := range g.passwords {
		keys = append(keys, p.KeyID)
		if p.DisplayName == SecretTag(wf) {
			tagged = append(tagged, p.KeyID)
		}
	}
	assert.Equal(t, []string{second.KeyID}, tagged, "exactly one live secret for this onboarding")
	assert.ElementsMatch(t, []string{"foreign", "other-onboarding", second.KeyID}, keys, "other secrets are untouched")
}

func TestAddClientSecretToleratesAlreadyRemovedAndReportsErrors(t *testing.T) {
	const wf = "onboarding/t/o"
	g := &fakeGraph{
		passwords: []graph.PasswordCredential{{KeyID: "gone", DisplayName: SecretTag(wf)}},
		errs:      map[string]error{"RemovePassword": &msapi.Error{Service: "graph", Kind: msapi.NotFound, Status: 404}},
	}
	a := newFakeActivities(g, &dvState{}, nil, nil)
	out, err := a.AddClientSecret(context.Background(), AddClientSecretInput{AppObjectID: "obj", WorkflowID: wf, LifetimeMonths: 1})
	require.NoError(t, err)
	assert.Equal(t, []string{"gone"}, out.RemovedStale)

	g.errs = map[string]error{"AddPassword": &msapi.Error{Service: "graph", Op: "addPassword", Kind: msapi.PermissionDenied, Status: 403}}
	_, err = a.AddClientSecret(context.Background(), AddClientSecretInput{AppObjectID: "obj", WorkflowID: wf, LifetimeMonths: 1})
	ae := asAppErr(t, err)
	assert.Equal(t, ErrPermissionDenied, ae.Type())
	assert.Contains(t, ae.Message(), "Application.ReadWrite.OwnedBy")
	assert.NotContains(t, ae.Message(), testcodec.Open(out.Secret))
}

// Without a custody key the secret is not even created: its value could
// not be kept anywhere but in plain text.
func TestAddClientSecretNeedsTheCustodyKey(t *testing.T) {
	g := &fakeGraph{}
	a := newFakeActivities(g, &dvState{}, nil, nil)
	a.deps.Custody = nil
	_, err := a.AddClientSecret(context.Background(), AddClientSecretInput{AppObjectID: "obj", WorkflowID: "onboarding/t/o", LifetimeMonths: 1})
	ae := asAppErr(t, err)
	assert.True(t, ae.NonRetryable())
	assert.Contains(t, ae.Message(), "custody.keys")
	assert.Empty(t, g.passwords, "no secret was added in Entra")
}

func seededDataverse() *dvState {
	return &dvState{
		solution: dataverse.Solution{FriendlyName: "Marketo Lead Management", Version: "4.0.0.16"},
		bu:       dataverse.BusinessUnit{ID: "bu-root", Name: "contoso"},
		roles:    []dataverse.Role{{ID: "role-1", Name: "Marketo Sync User", BusinessUnitID: "bu-root"}},
		config:   dataverse.MarketoConfig{ID: "cfg-1", Name: "Default", UserID: "previous-user"},
	}
}

func preflightIn() PreflightInput {
	return PreflightInput{TenantID: "t", OrgURL: "https://contoso.crm.dynamics.com", SolutionName: "Marketo Lead Management",
		MinSolutionVersion: "4.0.0.14", RoleName: "Marketo Sync User", DetectFederation: true}
}

func TestPreflight(t *testing.T) {
	t.Run("reads everything and detects federation", func(t *testing.T) {
		g := &fakeGraph{org: graph.Organization{DisplayName: "Contoso"}, domains: []graph.Domain{
			{ID: "contoso.onmicrosoft.com", AuthenticationType: "Managed", IsVerified: true},
			{ID: "contoso.com", AuthenticationType: "Federated", IsVerified: true},
			{ID: "unverified.com", AuthenticationType: "Federated"},
		}}
		out, err := newFakeActivities(g, seededDataverse(), nil, nil).Preflight(context.Background(), preflightIn())
		require.NoError(t, err)
		assert.Equal(t, PreflightResult{TenantName: "Contoso", OrganizationID: "org-1", SolutionVersion: "4.0.0.16", BusinessUnitID: "bu-root",
			RoleID: "role-1", ConfigID: "cfg-1", ConfigUserID: "previous-user", UserLookupNavigation: "mkto_MarketoUserId",
			FederatedDomains: []string{"contoso.com"}}, out)
	})

	failures := []struct {
		name   string
		mutate func(*fakeGraph, *dvState, *PreflightInput, *Activities)
		want   string
	}{
		{"old solution", func(_ *fakeGraph, d *dvState, _ *PreflightInput, _ *Activities) { d.solution.Version = "4.0.0.9" },
			"version 4.0.0.9, older than 4.0.0.14"},
		{"no solution", func(_ *fakeGraph, _ *dvState, in *PreflightInput, _ *Activities) { in.SolutionName = "Marketo" },
			`"Marketo" is not installed`},
		{"no role", func(_ *fakeGraph, d *dvState, _ *PreflightInput, _ *Activities) { d.roles = nil },
			`role "Marketo Sync User" does not exist`},
		{"no config", func(_ *fakeGraph, d *dvState, _ *PreflightInput, _ *Activities) {
			d.errs = map[string]error{"MarketoConfig": &msapi.Error{Service: "dataverse", Kind: msapi.NotFound, Status: 404}}
		}, `Marketo Config record "Default" does not exist`},
		{"no user lookup on the config table", func(_ *fakeGraph, d *dvState, _ *PreflightInput, _ *Activities) {
			d.errs = map[string]error{"MarketoUserNavigation": &msapi.Error{Service: "dataverse", Kind: msapi.NotFound, Status: 404}}
		}, "dataverse.marketoConfig.userLookup to the Marketo User lookup's logical name"},
		{"org outside allowed suffixes", func(_ *fakeGraph, _ *dvState, _ *PreflightInput, a *Activities) {
			a.deps.AllowedOrgSuffixes = []string{".crm4.dynamics.com"}
		}, "not in microsoft.allowedOrgSuffixes"},
		{"domains permission missing", func(g *fakeGraph, _ *dvState, _ *PreflightInput, _ *Activities) {
			g.errs = map[string]error{"ListDomains": &msapi.Error{Service: "graph", Op: "listDomains", Kind: msapi.PermissionDenied, Status: 403}}
		}, "Domain.Read.All"},
	}
	for _, c := range failures {
		t.Run(c.name, func(t *testing.T) {
			g, d, in := &fakeGraph{}, seededDataverse(), preflightIn()
			a := newFakeActivities(g, d, nil, nil)
			c.mutate(g, d, &in, a)
			_, err := a.Preflight(context.Background(), in)
			ae := asAppErr(t, err)
			assert.Equal(t, ErrPreflight, ae.Type())
			assert.True(t, ae.NonRetryable())
			assert.Contains(t, ae.Message(), c.want)
		})
	}

	t.Run("throttling stays retryable", func(t *testing.T) {
		g := &fakeGraph{errs: map[string]error{"Organization": &msapi.Error{Kind: msapi.Throttled, Status: 429, RetryAfter: time.Minute}}}
		_, err := newFakeActivities(g, seededDataverse(), nil, nil).Preflight(context.Background(), preflightIn())
		assert.Equal(t, ErrThrottled, asAppErr(t, err).Type())
	})
}

// The preflight compares what the provisioner may do (the roles claim of
// its Graph token, its security role in the org) with what the steps about
// to run need, and names every gap in one message before anything is made.
func TestPreflightNamesEveryMissingPermission(t *testing.T) {
	all := []string{"Application.ReadWrite.OwnedBy", "Directory.Read.All", "Domain.Read.All", "Organization.Read.All",
		"Policy.ReadWrite.ApplicationConfiguration"}
	without := func(drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(all), func(r string) bool { return slices.Contains(drop, r) })
	}
	federated := []graph.Domain{{ID: "fabrikam.com", AuthenticationType: "Federated", IsVerified: true}}
	managed := []graph.Domain{{ID: "contoso.onmicrosoft.com", AuthenticationType: "Managed", IsVerified: true}}
	tests := []struct {
		name      string
		roles     []string
		domains   []graph.Domain
		always    bool
		provRoles []dataverse.Role
		want      []string // each in the one message
		ok        bool
	}{
		{name: "federated tenant without the policy permission", roles: without("Policy.ReadWrite.ApplicationConfiguration"), domains: federated,
			want: []string{"1 permission(s)", "Policy.ReadWrite.ApplicationConfiguration", "fabrikam.com is Federated", "Home Realm Discovery",
				"API permissions", "Grant admin consent", "nothing was created"}},
		{name: "managed tenant does not need it", roles: without("Policy.ReadWrite.ApplicationConfiguration"), domains: managed, ok: true},
		{name: "federation=always needs it without reading domains", roles: without("Policy.ReadWrite.ApplicationConfiguration", "Domain.Read.All"),
			always: true, want: []string{"Policy.ReadWrite.ApplicationConfiguration", "federation=always"}},
		{name: "a higher permission will do", roles: []string{"Application.ReadWrite.All", "Directory.ReadWrite.All", "Policy.ReadWrite.ApplicationConfiguration"},
			domains: federated, ok: true},
		{name: "everything missing at once", roles: []string{}, domains: federated, provRoles: []dataverse.Role{{Name: "Basic User"}},
			want: []string{"5 permission(s)", "Organization.Read.All", "Application.ReadWrite.OwnedBy", "Directory.Read.All", "Domain.Read.All",
				"System Administrator", "Power Platform admin center", "contoso.crm.dynamics.com"}},
		{name: "Dataverse role only", roles: all, domains: managed, provRoles: []dataverse.Role{},
			want: []string{"1 permission(s)", "Dataverse security role System Administrator"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := &fakeGraph{roles: tc.roles, domains: tc.domains, org: graph.Organization{DisplayName: "Fabrikam"}}
			d := seededDataverse()
			d.provRoles = tc.provRoles
			in := preflightIn()
			in.DetectFederation, in.AlwaysFederated = !tc.always, tc.always
			_, err := newFakeActivities(g, d, nil, nil).Preflight(context.Background(), in)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			ae := asAppErr(t, err)
			assert.Equal(t, ErrPermissionDenied, ae.Type())
			assert.True(t, ae.NonRetryable())
			for _, w := range tc.want {
				assert.Contains(t, ae.Message(), w)
			}
			assert.Zero(t, d.configReads, "the report comes before the reads that assume the permissions")
		})
	}
}

// Under a throttling storm one failed read must not throw away the attempt:
// it is repeated in place, honouring a short Retry-After, a few times.
func TestPreflightRepeatsFailedReadsInPlace(t *testing.T) {
	throttled := &msapi.Error{Service: "graph", Kind: msapi.Throttled, Status: 429, RetryAfter: 20 * time.Millisecond}
	unavailable := &msapi.Error{Service: "graph", Kind: msapi.Transient, Status: 503}
	tests := []struct {
		name      string
		method    string
		err       error
		failTimes int // -1: every call
		wantCalls int
		wantType  string // "" = preflight passes
		wantDelay time.Duration
	}{
		{"throttled twice, then read", "Organization", throttled, 2, 3, "", 0},
		{"503 three times, then read", "ListDomains", unavailable, 3, 4, "", 0},
		{"throttled on every repeat", "Organization", throttled, -1, 4, ErrThrottled, 20 * time.Millisecond},
		{"long Retry-After is left to Temporal", "Organization",
			&msapi.Error{Service: "graph", Kind: msapi.Throttled, Status: 429, RetryAfter: time.Minute}, -1, 1, ErrThrottled, time.Minute},
		{"permission denied is not repeated", "ListDomains",
			&msapi.Error{Service: "graph", Kind: msapi.PermissionDenied, Status: 403}, -1, 1, ErrPreflight, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &fakeGraph{errs: map[string]error{tt.method: tt.err}}
			if tt.failTimes >= 0 {
				g.failTimes = map[string]int{tt.method: tt.failTimes}
			}
			in := preflightIn()
			in.DetectFederation = true
			_, err := newFakeActivities(g, seededDataverse(), nil, nil).Preflight(context.Background(), in)
			assert.Equal(t, tt.wantCalls, g.calls[tt.method])
			if tt.wantType == "" {
				require.NoError(t, err)
				return
			}
			ae := asAppErr(t, err)
			assert.Equal(t, tt.wantType, ae.Type())
			assert.Equal(t, tt.wantDelay, ae.NextRetryDelay())
		})
	}
}

func TestVerifyConsent(t *testing.T) {
	crm := "sp-of-" + graph.DynamicsCRMAppID
	cases := []struct {
		name   string
		grants []graph.PermissionGrant
		want   bool
	}{
		{"tenant-wide user_impersonation", []graph.PermissionGrant{{ClientID: "sp-app", ConsentType: "AllPrincipals", ResourceID: crm, Scope: "openid user_impersonation"}}, true},
		{"only one user consented", []graph.PermissionGrant{{ClientID: "sp-app", ConsentType: "Principal", ResourceID: crm, Scope: "user_impersonation"}}, false},
		{"grant to another resource", []graph.PermissionGrant{{ClientID: "sp-app", ConsentType: "AllPrincipals", ResourceID: "graph-sp", Scope: "user_impersonation"}}, false},
		{"grant of another app", []graph.PermissionGrant{{ClientID: "sp-other", ConsentType: "AllPrincipals", ResourceID: crm, Scope: "user_impersonation"}}, false},
		{"scope substring is not the scope", []graph.PermissionGrant{{ClientID: "sp-app", ConsentType: "AllPrincipals", ResourceID: crm, Scope: "user_impersonation_x"}}, false},
		{"no grants", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := newFakeActivities(&fakeGraph{grants: c.grants}, &dvState{}, nil, nil)
			out, err := a.VerifyConsent(context.Background(), VerifyConsentInput{ServicePrincipalID: "sp-app"})
			require.NoError(t, err)
			assert.Equal(t, c.want, out.Granted)
			if !c.want {
				assert.NotEmpty(t, out.Reason)
			}
		})
	}
	t.Run("CRM service principal unreadable: the scope decides", func(t *testing.T) {
		g := &fakeGraph{
			grants: []graph.PermissionGrant{{ClientID: "sp-app", ConsentType: "AllPrincipals", ResourceID: "whatever", Scope: "user_impersonation"}},
			errs:   map[string]error{"GetServicePrincipalByAppID": &msapi.Error{Service: "graph", Kind: msapi.PermissionDenied, Status: 403}},
		}
		out, err := newFakeActivities(g, &dvState{}, nil, nil).VerifyConsent(context.Background(), VerifyConsentInput{ServicePrincipalID: "sp-app"})
		require.NoError(t, err)
		assert.True(t, out.Granted)
	})
	t.Run("grants unreadable names the permission", func(t *testing.T) {
		g := &fakeGraph{errs: map[string]error{"ListPermissionGrants": &msapi.Error{Service: "graph", Kind: msapi.PermissionDenied, Status: 403}}}
		_, err := newFakeActivities(g, &dvState{}, nil, nil).VerifyConsent(context.Background(), VerifyConsentInput{ServicePrincipalID: "sp-app"})
		assert.Contains(t, asAppErr(t, err).Message(), "Directory.Read.All")
	})
}

func TestBuildConsentURL(t *testing.T) {
	const wfID = "onboarding/tid/org"
	in := BuildConsentURLInput{TenantID: "tid", AppID: "app", WorkflowID: wfID, RunID: "first-run"}
	key := bytes.Repeat([]byte{9}, consent.MinKeyBytes)
	newSigner := func(t *testing.T) *consent.Signer {
		s, err := consent.NewSigner(key, time.Hour, nil)
		require.NoError(t, err)
		return s
	}

	t.Run("without a signer the URL carries no state for a callback to act on", func(t *testing.T) {
		out, err := newFakeActivities(&fakeGraph{}, &dvState{}, nil, nil).BuildConsentURL(context.Background(), in)
		require.NoError(t, err)
		u, err := url.Parse(out.URL)
		require.NoError(t, err)
		assert.Equal(t, "login.example", u.Host)
		assert.Equal(t, "/tid/adminconsent", u.Path)
		assert.Equal(t, "app", u.Query().Get("client_id"))
		assert.Equal(t, "https://mktos2s.example/consent", u.Query().Get("redirect_uri"))
		assert.False(t, u.Query().Has("state"))
	})

	t.Run("with a signer the state verifies to this workflow and is fresh each time", func(t *testing.T) {
		a := newFakeActivities(&fakeGraph{}, &dvState{}, nil, nil)
		a.deps.ConsentSigner = newSigner(t)
		first, err := a.BuildConsentURL(context.Background(), in)
		require.NoError(t, err)
		second, err := a.BuildConsentURL(context.Background(), in)
		require.NoError(t, err)

		u, err := url.Parse(first.URL)
		require.NoError(t, err)
		assert.Equal(t, "/tid/adminconsent", u.Path)
		assert.Equal(t, "app", u.Query().Get("client_id"))
		assert.Equal(t, "https://mktos2s.example/consent", u.Query().Get("redirect_uri"))
		claims, err := newSigner(t).Verify(u.Query().Get("state"))
		require.NoError(t, err, "a signer with the same key accepts the state")
		assert.Equal(t, wfID, claims.WorkflowID)
		assert.Equal(t, "first-run", claims.RunID, "the link is bound to the onboarding's first run")
		assert.Equal(t, "tid", claims.TenantID)
		assert.NotEqual(t, first.URL, second.URL, "every state has its own nonce")

		other, err := consent.NewSigner(bytes.Repeat([]byte{8}, consent.MinKeyBytes), time.Hour, nil)
		require.NoError(t, err)
		_, err = other.Verify(u.Query().Get("state"))
		assert.ErrorIs(t, err, consent.ErrBadSignature, "another installation's key rejects it")
	})

	t.Run("without a run ID the link is bound to the run that calls it", func(t *testing.T) {
		a := newFakeActivities(&fakeGraph{}, &dvState{}, nil, nil)
		a.deps.ConsentSigner = newSigner(t)
		var ts testsuite.WorkflowTestSuite
		env := ts.NewTestActivityEnvironment()
		env.RegisterActivity(a.BuildConsentURL)
		legacy := in
		legacy.RunID = ""
		v, err := env.ExecuteActivity(a.BuildConsentURL, legacy)
		require.NoError(t, err)
		var out BuildConsentURLResult
		require.NoError(t, v.Get(&out))
		u, err := url.Parse(out.URL)
		require.NoError(t, err)
		claims, err := newSigner(t).Verify(u.Query().Get("state"))
		require.NoError(t, err)
		assert.NotEmpty(t, claims.RunID)
	})

	t.Run("a configuration the signer refuses fails for good, naming the setting", func(t *testing.T) {
		a := newFakeActivities(&fakeGraph{}, &dvState{}, nil, nil)
		a.deps.ConsentSigner = newSigner(t)
		a.deps.ConsentRedirectURI = "/relative"
		_, err := a.BuildConsentURL(context.Background(), in)
		ae := asAppErr(t, err)
		assert.True(t, ae.NonRetryable())
		assert.Equal(t, ErrInvalidRequest, ae.Type())
		assert.Contains(t, ae.Message(), "consent.redirectURI")
	})
}

func TestUniqueName(t *testing.T) {
	assert.Equal(t, "mktos2s-11111111-aaaa-1111-1111-111111111111-contoso-crm-localhost-8443",
		UniqueName("11111111-AAAA-1111-1111-111111111111", "Contoso.CRM.localhost:8443"))
}

func TestConfigureHomeRealmDiscoveryIsIdempotent(t *testing.T) {
	g := &fakeGraph{}
	a := newFakeActivities(g, &dvState{}, nil, nil)
	in := ConfigureHomeRealmDiscoveryInput{ServicePrincipalID: "sp", AppID: "app"}
	first, err := a.ConfigureHomeRealmDiscovery(context.Background(), in)
	require.NoError(t, err)
	second, err := a.ConfigureHomeRealmDiscovery(context.Background(), in)
	require.NoError(t, err)
	assert.True(t, first.Created)
	assert.False(t, second.Created)
	assert.Equal(t, first.PolicyID, second.PolicyID)
	assert.Equal(t, 1, g.createdHRD)
	assert.Equal(t, []string{first.PolicyID}, g.assigned["sp"])
	require.Len(t, g.policies, 1)
	assert.Equal(t, HRDPolicyName("app"), g.policies[0].DisplayName)
	assert.JSONEq(t, `{"HomeRealmDiscoveryPolicy":{"AccelerateToFederatedDomain":false,"AllowCloudPasswordValidation":true}}`,
		g.policies[0].Definition[0])

	undo, err := a.RemoveHRDPolicy(context.Background(), RemoveHRDPolicyInput{ServicePrincipalID: "sp", PolicyID: first.PolicyID})
	require.NoError(t, err)
	assert.False(t, undo.AlreadyGone)
	assert.Empty(t, g.policies)
	again, err := a.RemoveHRDPolicy(context.Background(), RemoveHRDPolicyInput{ServicePrincipalID: "sp", PolicyID: first.PolicyID})
	require.NoError(t, err)
	assert.True(t, again.AlreadyGone, "already gone is success")
}

func TestMarketoConfigRememberAndRestore(t *testing.T) {
	d := seededDataverse()
	a := newFakeActivities(&fakeGraph{}, d, nil, nil)
	ctx := context.Background()
	out, err := a.ConfigureMarketoSolution(ctx, ConfigureMarketoSolutionInput{SystemUserID: "sync-user", PreviousUserID: "previous-user"})
	require.NoError(t, err)
	assert.Equal(t, "previous-user", out.PreviousUserID)
	assert.Equal(t, "sync-user", d.config.UserID)

	// A retry after success still reports the user from before onboarding.
	retry, err := a.ConfigureMarketoSolution(ctx, ConfigureMarketoSolutionInput{SystemUserID: "sync-user", PreviousUserID: "previous-user"})
	require.NoError(t, err)
	assert.Equal(t, "previous-user", retry.PreviousUserID)
	assert.Equal(t, []string{"SetMarketoConfigUser sync-user"}, d.calls, "no second write")

	_, err = a.RestoreMarketoConfig(ctx, RestoreMarketoConfigInput{ConfigID: "cfg-1", SystemUserID: "sync-user", PreviousUserID: out.PreviousUserID})
	require.NoError(t, err)
	assert.Equal(t, "previous-user", d.config.UserID)

	// Someone re-pointed the config meanwhile: leave their choice.
	d.config.UserID = "someone-else"
	res, err := a.RestoreMarketoConfig(ctx, RestoreMarketoConfigInput{ConfigID: "cfg-1", SystemUserID: "sync-user"})
	require.NoError(t, err)
	assert.NotEmpty(t, res.Note)
	assert.Equal(t, "someone-else", d.config.UserID)
}

func TestRemoveApplicationUserDisablesThenDeletes(t *testing.T) {
	d := seededDataverse()
	d.user = &dataverse.SystemUser{ID: "u1", ApplicationID: "app"}
	a := newFakeActivities(&fakeGraph{}, d, nil, nil)
	res, err := a.RemoveApplicationUser(context.Background(), RemoveApplicationUserInput{SystemUserID: "u1"})
	require.NoError(t, err)
	assert.False(t, res.AlreadyGone)
	assert.Equal(t, []string{"SetUserDisabled u1 true", "DeleteUser u1"}, d.calls)

	res, err = a.RemoveApplicationUser(context.Background(), RemoveApplicationUserInput{SystemUserID: "u1"})
	require.NoError(t, err)
	assert.True(t, res.AlreadyGone)

	d.user = &dataverse.SystemUser{ID: "u2", ApplicationID: "app"}
	d.errs = map[string]error{"DeleteUser": &msapi.Error{Service: "dataverse", Op: "deleteUser", Kind: msapi.PermissionDenied, Status: 403}}
	_, err = a.RemoveApplicationUser(context.Background(), RemoveApplicationUserInput{SystemUserID: "u2"})
	ae := asAppErr(t, err)
	assert.True(t, ae.NonRetryable())
	assert.Contains(t, ae.Message(), "System Administrator")
}

// Dataverse may refuse to delete an application user whose Entra app still
// exists (0x80048359). The undo then ends in a defined state: disabled, no
// role left, recorded as such, and not a failed compensation.
func TestRemoveApplicationUserDisabledNotDeletedWhenRefused(t *testing.T) {
	d := seededDataverse()
	d.user = &dataverse.SystemUser{ID: "u1", ApplicationID: "app"}
	d.errs = map[string]error{"DeleteUser": &msapi.Error{Service: "dataverse", Op: "deleteUser", Kind: msapi.Invalid, Status: 400,
		Code: dataverse.CodeUserDeleteRefused, Message: "cannot be deleted"}}
	a := newFakeActivities(&fakeGraph{}, d, []dataverse.Role{{ID: "role-1", Name: "Marketo Sync User"}, {ID: "role-2", Name: "Basic User"}}, nil)
	res, err := a.RemoveApplicationUser(context.Background(), RemoveApplicationUserInput{SystemUserID: "u1"})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(res.Note, DisabledNotDeleted), res.Note)
	assert.False(t, res.AlreadyGone)
	assert.Equal(t, []string{"SetUserDisabled u1 true", "DeleteUser u1", "DisassociateRole u1 role-1", "DisassociateRole u1 role-2"}, d.calls)
	assert.True(t, d.user.IsDisabled)
}

// TestRemovedMeanwhileIsGone: removePassword refuses an unknown keyId with
// a 400, so a secret removed between the list and the removal (a concurrent
// attempt, an admin) is recognised by listing again instead of failing the
// step for good; a 400 for a key that is still listed stays an error.
func TestRemovedMeanwhileIsGone(t *testing.T) {
	const wf = "onboarding/t/o"
	refused := &msapi.Error{Service: "graph", Op: "removePassword", Kind: msapi.Invalid, Status: 400, Code: "Request_BadRequest"}
	g := &fakeGraph{passwords: []graph.PasswordCredential{{KeyID: "k1", DisplayName: SecretTag(wf)}},
		errs: map[string]error{"RemovePassword": refused}, failTimes: map[string]int{"RemovePassword": 1}}
	a := newFakeActivities(g, &dvState{}, nil, nil)
	_, err := a.RemoveClientSecret(context.Background(), RemoveClientSecretInput{AppObjectID: "obj", KeyID: "k1"})
	assert.Equal(t, ErrInvalidRequest, asAppErr(t, err).Type(), "refused while still listed")

	for name, remove := range map[string]func() error{
		"undo": func() error {
			res, err := a.RemoveClientSecret(context.Background(), RemoveClientSecretInput{AppObjectID: "obj", KeyID: "k1"})
			assert.True(t, res.AlreadyGone)
			return err
		},
		"stale secret before a new one": func() error {
			out, err := a.AddClientSecret(context.Background(), AddClientSecretInput{AppObjectID: "obj", WorkflowID: wf, LifetimeMonths: 1})
			assert.Equal(t, []string{"k1"}, out.RemovedStale)
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			g.passwords = []graph.PasswordCredential{{KeyID: "k1", DisplayName: SecretTag(wf)}}
			g.errs, g.failTimes = nil, nil
			g.vanishOnRemove = true // someone else removes it after our list
			require.NoError(t, remove())
		})
	}
}

func TestRemoveClientSecretWhenAlreadyGone(t *testing.T) {
	g := &fakeGraph{passwords: []graph.PasswordCredential{{KeyID: "k1"}}}
	a := newFakeActivities(g, &dvState{}, nil, nil)
	res, err := a.RemoveClientSecret(context.Background(), RemoveClientSecretInput{AppObjectID: "obj", KeyID: "k1"})
	require.NoError(t, err)
	assert.False(t, res.AlreadyGone)
	assert.Empty(t, g.passwords)
	res, err = a.RemoveClientSecret(context.Background(), RemoveClientSecretInput{AppObjectID: "obj", KeyID: "k1"})
	require.NoError(t, err)
	assert.True(t, res.AlreadyGone)
	assert.Equal(t, []string{"k1"}, g.removeCalls, "no removePassword for an unknown keyId (Graph answers 400)")
}

func TestCreateServicePrincipalTreatsUnknownAppAsLag(t *testing.T) {
	g := &fakeGraph{errs: map[string]error{"UpsertServicePrincipal": &msapi.Error{Service: "graph", Kind: msapi.Invalid, Status: 400,
		Message: "The appId of the service principal does not reference a valid application object."}}}
	_, err := newFakeActivities(g, &dvState{}, nil, nil).CreateServicePrincipal(context.Background(), CreateServicePrincipalInput{AppID: "app"})
	ae := asAppErr(t, err)
	assert.Equal(t, ErrReplicationLag, ae.Type())
	assert.False(t, ae.NonRetryable())

	// Any other 400 is a refusal that no retry changes.
	g = &fakeGraph{errs: map[string]error{"UpsertServicePrincipal": &msapi.Error{Service: "graph", Kind: msapi.Invalid, Status: 400,
		Message: "Property 'displayName' is invalid."}}}
	_, err = newFakeActivities(g, &dvState{}, nil, nil).CreateServicePrincipal(context.Background(), CreateServicePrincipalInput{AppID: "app"})
	ae = asAppErr(t, err)
	assert.Equal(t, ErrInvalidRequest, ae.Type())
	assert.True(t, ae.NonRetryable())
}

// addPassword's 404 right after the app's creation is waited out by the
// Graph client; past its bound the activity reports ReplicationLag, as
// CreateServicePrincipal does, not a retryable "not found" that reads as if
// the app were gone.
func TestAddClientSecretReportsReplicationLag(t *testing.T) {
	lagged := fmt.Errorf("%w (waited 15s): %w", graph.ErrReplicationLag,
		&msapi.Error{Service: "graph", Op: "addPassword", Kind: msapi.NotFound, Status: 404, Code: "Request_ResourceNotFound"})
	g := &fakeGraph{errs: map[string]error{"AddPassword": lagged}}
	_, err := newFakeActivities(g, &dvState{}, nil, nil).AddClientSecret(context.Background(),
		AddClientSecretInput{AppObjectID: "obj", WorkflowID: "onboarding/t/o", LifetimeMonths: 1})
	ae := asAppErr(t, err)
	assert.Equal(t, ErrReplicationLag, ae.Type())
	assert.False(t, ae.NonRetryable())
	assert.Contains(t, ae.Message(), "not visible yet")

	// A 404 that is not the lag (the app was deleted) stays NotFound.
	g = &fakeGraph{errs: map[string]error{"AddPassword": &msapi.Error{Service: "graph", Op: "addPassword", Kind: msapi.NotFound, Status: 404}}}
	_, err = newFakeActivities(g, &dvState{}, nil, nil).AddClientSecret(context.Background(),
		AddClientSecretInput{AppObjectID: "obj", WorkflowID: "onboarding/t/o", LifetimeMonths: 1})
	assert.Equal(t, ErrNotFound, asAppErr(t, err).Type())
}

func TestValidateConnection(t *testing.T) {
	syncRole := []dataverse.Role{{ID: "role-1", Name: "Marketo Sync User"}}
	ready := func() *dvState {
		d := seededDataverse()
		d.user = &dataverse.SystemUser{ID: "u1", ApplicationID: "app", AccessMode: 4, InternalEmail: "app@contoso.example"}
		d.config.UserID = "u1"
		return d
	}
	in := ValidateConnectionInput{OrgURL: "https://o", AppID: "app", ClientSecret: testcodec.Seal("s"), SystemUserID: "u1",
		RoleName: "Marketo Sync User", SolutionName: "Marketo Lead Management", MinSolutionVersion: "4.0.0.14"}

	t.Run("all seven checks pass", func(t *testing.T) {
		out, err := newFakeActivities(&fakeGraph{}, ready(), syncRole, nil).ValidateConnection(context.Background(), in)
		require.NoError(t, err)
		assert.True(t, out.Passed)
		assert.Len(t, out.Checks, 7)
		assert.Empty(t, out.Failed())
	})
	t.Run("a missing role and a disabled user fail with reasons", func(t *testing.T) {
		d := ready()
		d.user.IsDisabled = true
		out, err := newFakeActivities(&fakeGraph{}, d, nil, nil).ValidateConnection(context.Background(), in)
		require.NoError(t, err)
		assert.False(t, out.Passed)
		failed := out.Failed()
		require.Len(t, failed, 2)
		assert.Contains(t, failed[0], CheckUserEnabled)
		assert.Contains(t, failed[1], CheckRole+`: the user holds no roles, not "Marketo Sync User"`)
	})
	t.Run("a throttled read is repeated in place", func(t *testing.T) {
		d := ready()
		d.errs = map[string]error{"MarketoConfig": &msapi.Error{Service: "dataverse", Kind: msapi.Throttled, Status: 429, RetryAfter: 20 * time.Millisecond}}
		d.failTimes = 2
		out, err := newFakeActivities(&fakeGraph{}, d, syncRole, nil).ValidateConnection(context.Background(), in)
		require.NoError(t, err)
		assert.True(t, out.Passed)
		assert.Equal(t, 3, d.configReads)
	})
	t.Run("a secret sealed with a key this worker lacks is a clear, final error", func(t *testing.T) {
		other, err := custody.New(map[string][]byte{"gone": make([]byte, 32)}, "gone")
		require.NoError(t, err)
		lost := in
		lost.ClientSecret, err = other.Seal("s")
		require.NoError(t, err)
		_, err = newFakeActivities(&fakeGraph{}, ready(), syncRole, nil).ValidateConnection(context.Background(), lost)
		ae := asAppErr(t, err)
		assert.True(t, ae.NonRetryable())
		assert.Contains(t, ae.Message(), `"gone"`)
		assert.Contains(t, ae.Message(), "custody.keys")
	})
	t.Run("a refused new secret is replication lag", func(t *testing.T) {
		lag := &msapi.Error{Service: "entra", Op: "token", Kind: msapi.Unauthorized, Status: 401, Code: "invalid_client"}
		_, err := newFakeActivities(&fakeGraph{}, ready(), syncRole, lag).ValidateConnection(context.Background(), in)
		ae := asAppErr(t, err)
		assert.Equal(t, ErrReplicationLag, ae.Type())
		assert.False(t, ae.NonRetryable())
		assert.NotContains(t, ae.Message(), "s@")
	})
	t.Run("a 403 for the new app user is replication lag too", func(t *testing.T) {
		lag := &msapi.Error{Service: "dataverse", Op: "whoami", Kind: msapi.PermissionDenied, Status: 403}
		_, err := newFakeActivities(&fakeGraph{}, ready(), syncRole, lag).ValidateConnection(context.Background(), in)
		assert.Equal(t, ErrReplicationLag, asAppErr(t, err).Type())
	})
}

// The steps that read before they write repeat a failed read in place too,
// so one 503 among their requests does not cost a whole attempt.
func TestStepsRepeatFailedReadsInPlace(t *testing.T) {
	unavailable := &msapi.Error{Service: "graph", Kind: msapi.Transient, Status: 503}
	throttled := &msapi.Error{Service: "graph", Kind: msapi.Throttled, Status: 429, RetryAfter: 20 * time.Millisecond}
	tests := []struct {
		name   string
		method string
		err    error
		run    func(*Activities) error
	}{
		{"VerifyConsent lists grants", "ListPermissionGrants", unavailable, func(a *Activities) error {
			_, err := a.VerifyConsent(context.Background(), VerifyConsentInput{ServicePrincipalID: "sp-app"})
			return err
		}},
		{"VerifyConsent finds Dynamics CRM", "GetServicePrincipalByAppID", throttled, func(a *Activities) error {
			_, err := a.VerifyConsent(context.Background(), VerifyConsentInput{ServicePrincipalID: "sp-app"})
			return err
		}},
		{"AddClientSecret lists secrets", "ListPasswords", throttled, func(a *Activities) error {
			_, err := a.AddClientSecret(context.Background(), AddClientSecretInput{AppObjectID: "obj", WorkflowID: "onboarding/t/o", LifetimeMonths: 1})
			return err
		}},
		{"ConfigureHomeRealmDiscovery lists policies", "ListHRDPolicies", unavailable, func(a *Activities) error {
			_, err := a.ConfigureHomeRealmDiscovery(context.Background(), ConfigureHomeRealmDiscoveryInput{ServicePrincipalID: "sp", AppID: "app"})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &fakeGraph{errs: map[string]error{tt.method: tt.err}, failTimes: map[string]int{tt.method: 2}}
			require.NoError(t, tt.run(newFakeActivities(g, seededDataverse(), nil, nil)))
			assert.Equal(t, 3, g.calls[tt.method], "two failed reads and the one that passed, in one attempt")
		})
	}
}

// TestRegisterApplicationRefusesALiveOnboardedApp: adopting an app that
// holds a live mktos2s secret would let this run revoke Marketo's secret and
// undo a production onboarding; a retry of the same run (no secret yet) and
// an app whose mktos2s secrets all expired are still adopted.
func TestRegisterApplicationRefusesALiveOnboardedApp(t *testing.T) {
	now := time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC) // newFakeActivities' clock
	const wf = "onboarding/t/contoso.crm.dynamics.com"
	existing := &graph.Application{ID: "app-obj-1", AppID: "app-id-1"}
	tests := []struct {
		name      string
		app       *graph.Application
		passwords []graph.PasswordCredential
		refused   bool
	}{
		{name: "new app", app: nil},
		{name: "same run's retry after a crash: adopted app without secrets", app: existing},
		{name: "only a foreign secret", app: existing,
			passwords: []graph.PasswordCredential{{KeyID: "k-admin", DisplayName: "admin's own", EndDateTime: now.AddDate(1, 0, 0)}}},
		{name: "expired onboarding secret", app: existing,
			passwords: []graph.PasswordCredential{{KeyID: "k-old", DisplayName: SecretTag(wf), EndDateTime: now.Add(-time.Hour)}}},
		{name: "live onboarding secret", app: existing, refused: true,
			passwords: []graph.PasswordCredential{{KeyID: "k-live", DisplayName: SecretTag(wf), EndDateTime: now.AddDate(0, 6, 0)}}},
		{name: "live rotation secret", app: existing, refused: true,
			passwords: []graph.PasswordCredential{{KeyID: "k-live", DisplayName: SecretTag("rotation/t/contoso.crm.dynamics.com"), EndDateTime: now.AddDate(0, 6, 0)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &fakeGraph{app: tt.app, passwords: tt.passwords}
			a := newFakeActivities(g, &dvState{}, nil, nil)
			res, err := a.RegisterApplication(context.Background(), RegisterApplicationInput{TenantID: "t", OrgHost: "contoso.crm.dynamics.com", DisplayName: "Marketo Integration"})
			if !tt.refused {
				require.NoError(t, err)
				assert.Equal(t, "app-obj-1", res.AppObjectID)
				assert.Equal(t, tt.app == nil, res.Created)
				return
			}
			ae := asAppErr(t, err)
			assert.Equal(t, ErrAlreadyOnboarded, ae.Type())
			assert.True(t, ae.NonRetryable())
			assert.Contains(t, ae.Message(), "app-id-1")
			assert.Contains(t, ae.Message(), "k-live")
			assert.Contains(t, ae.Message(), "starter rotate --now")
			assert.Contains(t, ae.Message(), "starter offboard")
			assert.Empty(t, g.removeCalls, "nothing is removed")
			assert.Zero(t, g.calls["UpsertApplication"], "the live app is not rewritten before it is refused")
		})
	}
}

// TestRegisterApplicationNamesTheRedirectKey: a refused registration names
// the configuration key that sets the redirect URI, consent.redirectURI.
func TestRegisterApplicationNamesTheRedirectKey(t *testing.T) {
	g := &fakeGraph{errs: map[string]error{"UpsertApplication": &msapi.Error{Service: "graph", Op: "upsertApplication", Kind: msapi.Invalid, Status: 400,
		Code: "Request_BadRequest", Message: "Invalid value specified for property 'web.redirectUris'"}}}
	a := newFakeActivities(g, &dvState{}, nil, nil)
	_, err := a.RegisterApplication(context.Background(), RegisterApplicationInput{TenantID: "t", OrgHost: "o", DisplayName: "Marketo Integration"})
	ae := asAppErr(t, err)
	assert.True(t, ae.NonRetryable())
	assert.Contains(t, ae.Message(), "consent.redirectURI")
	assert.NotContains(t, ae.Message(), "consentRedirectUri")
}
