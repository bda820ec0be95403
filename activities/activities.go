// Package activities holds the side effects of the onboarding: one activity
// per step and one undo per kind of resource. Each activity is idempotent
// across retries and worker crashes (it re-finds what an earlier attempt
// created before creating anything) and turns the typed errors of
// internal/msapi into Temporal errors in one place (errors.go). The order of
// the steps lives in package workflows, not here.
package activities

import (
	"context"
	"net/http"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/mktos2s/mktos2s/internal/consent"
	"github.com/mktos2s/mktos2s/internal/custody"
	"github.com/mktos2s/mktos2s/internal/dataverse"
	"github.com/mktos2s/mktos2s/internal/graph"
	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/internal/msauth"
	"github.com/mktos2s/mktos2s/internal/orgurl"
)

// Deps are the clients and settings every activity shares.
type Deps struct {
	Auth               *msauth.Provider
	HTTP               *http.Client
	GraphBaseURL       string // e.g. https://graph.microsoft.com/v1.0
	AuthorityHost      string // e.g. https://login.microsoftonline.com
	ConsentRedirectURI string // registered on the app; the admin lands there after consenting
	Provisioner        msauth.Credential
	ConfigNames        dataverse.MarketoConfigNames
	// SyncFilterSolution is the unmanaged solution the sync-filter columns
	// join (besides Default); empty = Default only.
	SyncFilterSolution string
	ConsentSigner      *consent.Signer // signs consent URLs for the consent callback; nil = unsigned URLs, which no callback accepts
	// PowerPlatformBaseURL is the Power Platform admin API (customer-admin
	// session mode); "" = https://api.bap.microsoft.com.
	PowerPlatformBaseURL string
	// AllowedOrgSuffixes restricts the Dynamics org hosts the worker will
	// touch (e.g. ".crm.dynamics.com"); empty allows every host.
	AllowedOrgSuffixes []string
	// Webhook receives the consent hand-off notifications; nil = none.
	Webhook *Webhook
	// Custody seals the client secrets AddClientSecret creates and opens
	// them where one is needed (validation). The worker refuses to start
	// without it.
	Custody *custody.Keyring
	// KeyVaultURL and KeyVaultTenantID are the vault DeliverSecretToVault
	// writes to (keyVault.*) and the tenant the provisioner signs in to for
	// it; empty URL = no hand-off.
	KeyVaultURL      string
	KeyVaultTenantID string
	// Now is the clock for secret end dates; nil means time.Now.
	Now func() time.Time
}

// Activities are registered with a worker via Register; workflows refer to
// them through a nil *Activities (method values only name the activity).
type Activities struct {
	deps Deps
	// The factories exist so tests can swap the Microsoft clients for fakes.
	graphFor     func(tenantID string) graphAPI
	dataverseFor func(tenantID, orgURL string, cred msauth.Credential) dataverseAPI
}

// New builds the activities over the real Graph and Dataverse clients.
func New(d Deps) *Activities {
	if d.Now == nil {
		d.Now = time.Now
	}
	a := &Activities{deps: d}
	a.graphFor = func(tenantID string) graphAPI {
		return graph.New(d.GraphBaseURL, d.HTTP, d.Auth.Source(tenantID, d.Provisioner, msauth.ScopeFor(d.GraphBaseURL)))
	}
	a.dataverseFor = func(tenantID, orgURL string, cred msauth.Credential) dataverseAPI {
		tokens := d.Auth.Source(tenantID, cred, msauth.ScopeFor(orgURL))
		if _, err := orgurl.Check(orgURL, d.AllowedOrgSuffixes); err != nil {
			tokens = refusedOrg{err}
		}
		return dataverse.New(orgURL, d.HTTP, tokens, d.ConfigNames)
	}
	return a
}

// Register registers every activity of a on r under its method name.
func Register(r worker.ActivityRegistry, a *Activities) {
	r.RegisterActivity(a)
}

// graphAPI is the part of *graph.Client the activities use.
type graphAPI interface {
	UpsertApplication(ctx context.Context, spec graph.ApplicationSpec) (graph.Application, bool, error)
	GetApplicationByUniqueName(ctx context.Context, uniqueName string) (graph.Application, error)
	DeleteApplication(ctx context.Context, objectID string) error
	UpsertServicePrincipal(ctx context.Context, appID string) (graph.ServicePrincipal, bool, error)
	GetServicePrincipalByAppID(ctx context.Context, appID string) (graph.ServicePrincipal, error)
	DeleteServicePrincipal(ctx context.Context, objectID string) error
	AddPassword(ctx context.Context, appObjectID, displayName string, end time.Time) (graph.PasswordCredential, error)
	RemovePassword(ctx context.Context, appObjectID, keyID string) error
	ListPasswords(ctx context.Context, appObjectID string) ([]graph.PasswordCredential, error)
	ListDomains(ctx context.Context) ([]graph.Domain, error)
	CreateHRDPolicy(ctx context.Context, displayName string, definition []string) (graph.HomeRealmDiscoveryPolicy, error)
	ListHRDPolicies(ctx context.Context) ([]graph.HomeRealmDiscoveryPolicy, error)
	DeleteHRDPolicy(ctx context.Context, policyID string) error
	AssignHRDPolicy(ctx context.Context, spID, policyID string) error
	ListAssignedHRDPolicies(ctx context.Context, spID string) ([]graph.HomeRealmDiscoveryPolicy, error)
	UnassignHRDPolicy(ctx context.Context, spID, policyID string) error
	ListPermissionGrants(ctx context.Context, clientSPID string) ([]graph.PermissionGrant, error)
	Organization(ctx context.Context) (graph.Organization, error)
	GrantedRoles(ctx context.Context) ([]string, error)
}

// dataverseAPI is the part of *dataverse.Client the activities use.
type dataverseAPI interface {
	WhoAmI(ctx context.Context) (dataverse.WhoAmI, error)
	FindSolution(ctx context.Context, name string) (dataverse.Solution, error)
	RootBusinessUnit(ctx context.Context) (dataverse.BusinessUnit, error)
	FindRole(ctx context.Context, name, businessUnitID string) (dataverse.Role, error)
	FindApplicationUser(ctx context.Context, applicationID string) (dataverse.SystemUser, error)
	CreateApplicationUser(ctx context.Context, applicationID, businessUnitID string) (dataverse.SystemUser, bool, error)
	SetUserDisabled(ctx context.Context, userID string, disabled bool) error
	DeleteUser(ctx context.Context, userID string) error
	AssociateRole(ctx context.Context, userID, roleID string) error
	DisassociateRole(ctx context.Context, userID, roleID string) error
	UserRoles(ctx context.Context, userID string) ([]dataverse.Role, error)
	MarketoConfig(ctx context.Context) (dataverse.MarketoConfig, error)
	MarketoUserNavigation(ctx context.Context) (string, error)
	SetMarketoConfigUser(ctx context.Context, configID, nav, userID string) error
	ClearMarketoConfigUser(ctx context.Context, configID, nav string) error
	PublishAllXml(ctx context.Context) error
	EnsureBooleanColumn(ctx context.Context, entityLogicalName, schemaName, displayName, solution string) (bool, error)
}

// provisioned is the Dataverse client authenticated as the provisioner.
func (a *Activities) provisioned(tenantID, orgURL string) dataverseAPI {
	return a.dataverseFor(tenantID, orgURL, a.deps.Provisioner)
}

// refusedOrg is the token source of a Dataverse client for an org URL that
// is not a Dynamics org of microsoft.allowedOrgSuffixes: no token is
// acquired for it, so no request (and no credential) leaves for that host,
// whichever workflow or activity input named it. The error is final.
type refusedOrg struct{ err error }

func (r refusedOrg) Token(context.Context) (string, error) {
	return "", &msapi.Error{Service: "dataverse", Op: "token", Kind: msapi.Invalid, Message: r.err.Error()}
}
