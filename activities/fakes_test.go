package activities

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mktos2s/mktos2s/internal/dataverse"
	"github.com/mktos2s/mktos2s/internal/graph"
	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/internal/msauth"
	"github.com/mktos2s/mktos2s/internal/testenv/testcodec"
)

// fakeGraph keeps the few Graph objects the activities touch. Methods a
// test does not expect panic through the nil embedded interface.
type fakeGraph struct {
	graphAPI
	passwords   []graph.PasswordCredential
	nextKey     int
	policies    []graph.HomeRealmDiscoveryPolicy
	assigned    map[string][]string // spID -> policy IDs
	grants      []graph.PermissionGrant
	domains     []graph.Domain
	org         graph.Organization
	errs        map[string]error // method -> error to return
	failTimes   map[string]int   // method -> how many calls get errs[method] before it succeeds; absent = every call
	calls       map[string]int   // method -> calls that went through err
	removeCalls []string
	createdHRD  int
	app         *graph.Application // the app UpsertApplication finds; nil = it creates one
	// vanishOnRemove removes the key just before RemovePassword looks for
	// it, as a concurrent remover would after the caller's list.
	vanishOnRemove bool
	// roles are the provisioner's Graph application permissions; nil = all it needs.
	roles []string
}

func (f *fakeGraph) GrantedRoles(context.Context) ([]string, error) {
	if err := f.err("GrantedRoles"); err != nil {
		return nil, err
	}
	if f.roles == nil {
		return []string{"Application.ReadWrite.OwnedBy", "Directory.Read.All", "Domain.Read.All",
			"Organization.Read.All", "Policy.ReadWrite.ApplicationConfiguration"}, nil
	}
	return f.roles, nil
}

// UpsertApplication adopts f.app (204 and a read-back, which carries its
// password credentials) or creates a new one, as Graph's upsert does.
func (f *fakeGraph) UpsertApplication(_ context.Context, spec graph.ApplicationSpec) (graph.Application, bool, error) {
	if err := f.err("UpsertApplication"); err != nil {
		return graph.Application{}, false, err
	}
	if f.app != nil {
		app := *f.app
		app.PasswordCredentials = slices.Clone(f.passwords)
		return app, false, nil
	}
	f.app = &graph.Application{ID: "app-obj-1", AppID: "app-id-1", UniqueName: spec.UniqueName, DisplayName: spec.DisplayName}
	return *f.app, true, nil
}

func (f *fakeGraph) GetApplicationByUniqueName(_ context.Context, uniqueName string) (graph.Application, error) {
	if err := f.err("GetApplicationByUniqueName"); err != nil {
		return graph.Application{}, err
	}
	if f.app == nil {
		return graph.Application{}, &msapi.Error{Service: "graph", Op: "getApplication", Kind: msapi.NotFound, Status: 404}
	}
	app := *f.app
	app.PasswordCredentials = slices.Clone(f.passwords)
	return app, nil
}

func (f *fakeGraph) err(method string) error {
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[method]++
	if n, ok := f.failTimes[method]; ok {
		if n == 0 {
			return nil
		}
		f.failTimes[method] = n - 1
	}
	return f.errs[method]
}

func (f *fakeGraph) ListPasswords(_ context.Context, _ string) ([]graph.PasswordCredential, error) {
	if err := f.err("ListPasswords"); err != nil {
		return nil, err
	}
	return slices.Clone(f.passwords), nil
}

func (f *fakeGraph) RemovePassword(_ context.Context, _ string, keyID string) error {
	f.removeCalls = append(f.removeCalls, keyID)
	if err := f.err("RemovePassword"); err != nil {
		return err
	}
	if f.vanishOnRemove {
		f.passwords = slices.DeleteFunc(f.passwords, func(p graph.PasswordCredential) bool { return p.KeyID == keyID })
	}
	i := slices.IndexFunc(f.passwords, func(p graph.PasswordCredential) bool { return p.KeyID == keyID })
	if i < 0 { // as the emulator answers: the app exists, the keyId does not
		return &msapi.Error{Service: "graph", Op: "removePassword", Kind: msapi.Invalid, Status: 400, Code: "Request_BadRequest"}
	}
	f.passwords = slices.Delete(f.passwords, i, i+1)
	return nil
}

func (f *fakeGraph) AddPassword(_ context.Context, _ string, displayName string, end time.Time) (graph.PasswordCredential, error) {
	if err := f.err("AddPassword"); err != nil {
		return graph.PasswordCredential{}, err
	}
	f.nextKey++
	pc := graph.PasswordCredential{KeyID: fmt.Sprintf("key-%d", f.nextKey), DisplayName: displayName, EndDateTime: end}
	f.passwords = append(f.passwords, pc)
	pc.SecretText = fmt.Sprintf("secret-%d", f.nextKey)
	return pc, nil
}

func (f *fakeGraph) ListHRDPolicies(context.Context) ([]graph.HomeRealmDiscoveryPolicy, error) {
	return slices.Clone(f.policies), f.err("ListHRDPolicies")
}

func (f *fakeGraph) CreateHRDPolicy(_ context.Context, name string, def []string) (graph.HomeRealmDiscoveryPolicy, error) {
	if err := f.err("CreateHRDPolicy"); err != nil {
		return graph.HomeRealmDiscoveryPolicy{}, err
	}
	f.createdHRD++
	p := graph.HomeRealmDiscoveryPolicy{ID: fmt.Sprintf("pol-%d", len(f.policies)+1), DisplayName: name, Definition: def}
	f.policies = append(f.policies, p)
	return p, nil
}

func (f *fakeGraph) ListAssignedHRDPolicies(_ context.Context, spID string) ([]graph.HomeRealmDiscoveryPolicy, error) {
	var out []graph.HomeRealmDiscoveryPolicy
	for _, id := range f.assigned[spID] {
		out = append(out, graph.HomeRealmDiscoveryPolicy{ID: id})
	}
	return out, nil
}

func (f *fakeGraph) AssignHRDPolicy(_ context.Context, spID, policyID string) error {
	if err := f.err("AssignHRDPolicy"); err != nil {
		return err
	}
	if f.assigned == nil {
		f.assigned = map[string][]string{}
	}
	f.assigned[spID] = append(f.assigned[spID], policyID)
	return nil
}

func (f *fakeGraph) UnassignHRDPolicy(_ context.Context, spID, policyID string) error {
	i := slices.Index(f.assigned[spID], policyID)
	if i < 0 {
		return &msapi.Error{Service: "graph", Op: "unassignHRD", Kind: msapi.NotFound, Status: 404}
	}
	f.assigned[spID] = slices.Delete(f.assigned[spID], i, i+1)
	return nil
}

func (f *fakeGraph) DeleteHRDPolicy(_ context.Context, policyID string) error {
	i := slices.IndexFunc(f.policies, func(p graph.HomeRealmDiscoveryPolicy) bool { return p.ID == policyID })
	if i < 0 {
		return &msapi.Error{Service: "graph", Op: "deleteHRD", Kind: msapi.NotFound, Status: 404}
	}
	f.policies = slices.Delete(f.policies, i, i+1)
	return nil
}

func (f *fakeGraph) GetServicePrincipalByAppID(_ context.Context, appID string) (graph.ServicePrincipal, error) {
	if err := f.err("GetServicePrincipalByAppID"); err != nil {
		return graph.ServicePrincipal{}, err
	}
	return graph.ServicePrincipal{ID: "sp-of-" + appID, AppID: appID}, nil
}

func (f *fakeGraph) ListPermissionGrants(_ context.Context, clientSPID string) ([]graph.PermissionGrant, error) {
	var out []graph.PermissionGrant
	for _, g := range f.grants {
		if g.ClientID == clientSPID {
			out = append(out, g)
		}
	}
	return out, f.err("ListPermissionGrants")
}

func (f *fakeGraph) Organization(context.Context) (graph.Organization, error) {
	return f.org, f.err("Organization")
}

func (f *fakeGraph) ListDomains(context.Context) ([]graph.Domain, error) {
	return f.domains, f.err("ListDomains")
}

func (f *fakeGraph) DeleteApplication(context.Context, string) error {
	return f.err("DeleteApplication")
}

func (f *fakeGraph) UpsertServicePrincipal(_ context.Context, appID string) (graph.ServicePrincipal, bool, error) {
	if err := f.err("UpsertServicePrincipal"); err != nil {
		return graph.ServicePrincipal{}, false, err
	}
	return graph.ServicePrincipal{ID: "sp-" + appID, AppID: appID}, true, nil
}

// fakeDataverse answers as one org; who is the credential it was built for.
type fakeDataverse struct {
	dataverseAPI
	who      msauth.Credential
	state    *dvState
	whoErr   error
	userRole []dataverse.Role
}

type dvState struct {
	solution dataverse.Solution
	bu       dataverse.BusinessUnit
	roles    []dataverse.Role
	config   dataverse.MarketoConfig
	user     *dataverse.SystemUser
	errs     map[string]error
	// failTimes is how many calls of MarketoConfig get errs["MarketoConfig"]
	// before it succeeds; 0 = every call.
	failTimes   int
	configReads int
	calls       []string
	// provRoles are the provisioner's own security roles; nil = System Administrator.
	provRoles []dataverse.Role
}

func (f *fakeDataverse) WhoAmI(context.Context) (dataverse.WhoAmI, error) {
	if f.whoErr != nil {
		return dataverse.WhoAmI{}, f.whoErr
	}
	if f.state.user != nil && f.who.ClientID == f.state.user.ApplicationID {
		return dataverse.WhoAmI{UserID: f.state.user.ID, OrganizationID: "org-1"}, nil
	}
	return dataverse.WhoAmI{UserID: "provisioner-user", OrganizationID: "org-1"}, nil
}

func (f *fakeDataverse) FindSolution(_ context.Context, name string) (dataverse.Solution, error) {
	if name != f.state.solution.FriendlyName {
		return dataverse.Solution{}, &msapi.Error{Service: "dataverse", Kind: msapi.NotFound, Status: 404}
	}
	return f.state.solution, nil
}

func (f *fakeDataverse) RootBusinessUnit(context.Context) (dataverse.BusinessUnit, error) {
	return f.state.bu, nil
}

func (f *fakeDataverse) FindRole(_ context.Context, name, bu string) (dataverse.Role, error) {
	for _, r := range f.state.roles {
		if r.Name == name && r.BusinessUnitID == bu {
			return r, nil
		}
	}
	return dataverse.Role{}, &msapi.Error{Service: "dataverse", Kind: msapi.NotFound, Status: 404}
}

func (f *fakeDataverse) MarketoConfig(context.Context) (dataverse.MarketoConfig, error) {
	f.state.configReads++
	if err := f.state.errs["MarketoConfig"]; err != nil && (f.state.failTimes == 0 || f.state.configReads <= f.state.failTimes) {
		return dataverse.MarketoConfig{}, err
	}
	return f.state.config, nil
}

func (f *fakeDataverse) MarketoUserNavigation(context.Context) (string, error) {
	if err := f.state.errs["MarketoUserNavigation"]; err != nil {
		return "", err
	}
	return "mkto_MarketoUserId", nil
}

func (f *fakeDataverse) SetMarketoConfigUser(_ context.Context, _, _ string, userID string) error {
	f.state.calls = append(f.state.calls, "SetMarketoConfigUser "+userID)
	f.state.config.UserID = userID
	return nil
}

func (f *fakeDataverse) ClearMarketoConfigUser(context.Context, string, string) error {
	f.state.calls = append(f.state.calls, "ClearMarketoConfigUser")
	f.state.config.UserID = ""
	return nil
}

func (f *fakeDataverse) FindApplicationUser(_ context.Context, appID string) (dataverse.SystemUser, error) {
	if f.state.user == nil || f.state.user.ApplicationID != appID {
		return dataverse.SystemUser{}, &msapi.Error{Service: "dataverse", Kind: msapi.NotFound, Status: 404}
	}
	return *f.state.user, nil
}

func (f *fakeDataverse) UserRoles(_ context.Context, userID string) ([]dataverse.Role, error) {
	if userID == "provisioner-user" {
		if f.state.provRoles == nil {
			return []dataverse.Role{{ID: "role-admin", Name: "System Administrator"}}, nil
		}
		return f.state.provRoles, nil
	}
	return f.userRole, nil
}

func (f *fakeDataverse) SetUserDisabled(_ context.Context, userID string, disabled bool) error {
	f.state.calls = append(f.state.calls, fmt.Sprintf("SetUserDisabled %s %t", userID, disabled))
	if f.state.user == nil || f.state.user.ID != userID {
		return &msapi.Error{Service: "dataverse", Kind: msapi.NotFound, Status: 404}
	}
	f.state.user.IsDisabled = disabled
	return nil
}

func (f *fakeDataverse) DisassociateRole(_ context.Context, userID, roleID string) error {
	f.state.calls = append(f.state.calls, "DisassociateRole "+userID+" "+roleID)
	return nil
}

func (f *fakeDataverse) DeleteUser(_ context.Context, userID string) error {
	f.state.calls = append(f.state.calls, "DeleteUser "+userID)
	if err := f.state.errs["DeleteUser"]; err != nil {
		return err
	}
	f.state.user = nil
	return nil
}

// newFakeActivities wires fakes into Activities the way New wires the
// real clients.
func newFakeActivities(g *fakeGraph, dv *dvState, userRoles []dataverse.Role, appWhoErr error) *Activities {
	a := &Activities{deps: Deps{
		AuthorityHost:      "https://login.example",
		ConsentRedirectURI: "https://mktos2s.example/consent",
		Provisioner:        msauth.Credential{ClientID: "provisioner"},
		ConfigNames:        dataverse.MarketoConfigNames{DefaultName: "Default"},
		Now:                func() time.Time { return time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC) },
		Custody:            testcodec.Custody(),
	}}
	a.graphFor = func(string) graphAPI { return g }
	a.dataverseFor = func(_, _ string, cred msauth.Credential) dataverseAPI {
		f := &fakeDataverse{who: cred, state: dv, userRole: userRoles}
		if cred.ClientID != "provisioner" {
			f.whoErr = appWhoErr
		}
		return f
	}
	return a
}
