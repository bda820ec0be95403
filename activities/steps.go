package activities

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/mktos2s/mktos2s/internal/consent"
	"github.com/mktos2s/mktos2s/internal/custody"
	"github.com/mktos2s/mktos2s/internal/dataverse"
	"github.com/mktos2s/mktos2s/internal/graph"
	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/internal/orgurl"
)

// UniqueName is the Graph alternate key of the onboarding's app. It is
// derived from the tenant and org only, so a retry or a second run for the
// same pair adopts the same app instead of registering another one.
func UniqueName(tenantID, orgHost string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(orgHost) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return "mktos2s-" + strings.ToLower(tenantID) + "-" + b.String()
}

// SecretTag is the displayName of the onboarding's client secret. The tag
// lets a retry find secrets whose value an earlier attempt lost.
func SecretTag(workflowID string) string { return "mktos2s " + workflowID }

// HRDPolicyName is the displayName of the app's Home Realm Discovery policy.
func HRDPolicyName(appID string) string { return "mktos2s-hrd-" + appID }

// hrdDefinition follows Microsoft's HRD policy for apps that must keep
// signing in with a client secret in AD FS federated tenants: no
// acceleration to the federated IdP, cloud password validation allowed.
var hrdDefinition = []string{`{"HomeRealmDiscoveryPolicy":{"AccelerateToFederatedDomain":false,"AllowCloudPasswordValidation":true}}`}

const syncFilterSchemaName = "new_SyncToMkto" // logical name new_synctomkto

// ---- preflight ------------------------------------------------------------

type PreflightInput struct {
	TenantID           string `json:"tenantId"`
	OrgURL             string `json:"orgUrl"`
	SolutionName       string `json:"solutionName"`
	MinSolutionVersion string `json:"minSolutionVersion"`
	RoleName           string `json:"roleName"`
	DetectFederation   bool   `json:"detectFederation"`
	// AlwaysFederated is federation=always: the HRD step runs whatever
	// the domains say, so its permission is checked without reading them.
	AlwaysFederated bool `json:"alwaysFederated,omitempty"`
}

type PreflightResult struct {
	TenantName      string `json:"tenantName"`
	OrganizationID  string `json:"organizationId"`
	SolutionVersion string `json:"solutionVersion"`
	BusinessUnitID  string `json:"businessUnitId"`
	RoleID          string `json:"roleId"`
	ConfigID        string `json:"configId"`
	ConfigUserID    string `json:"configUserId,omitempty"` // the Marketo user before onboarding, restored on undo
	// UserLookupNavigation is the navigation property of the Marketo
	// Config's user lookup, read from the table's metadata (its casing
	// matters); ConfigureMarketoSolution binds through it.
	UserLookupNavigation string   `json:"userLookupNavigation,omitempty"`
	FederatedDomains     []string `json:"federatedDomains,omitempty"`
}

// Preflight only reads. Anything missing fails it for good, before a single
// object is created.
func (a *Activities) Preflight(ctx context.Context, in PreflightInput) (PreflightResult, error) {
	var out PreflightResult
	u, err := url.Parse(in.OrgURL)
	if err != nil || u.Host == "" {
		return out, preflightError("orgUrl %q is not a URL", in.OrgURL)
	}
	if !a.orgAllowed(u.Hostname()) {
		return out, preflightError("org host %s is not in microsoft.allowedOrgSuffixes %v; use the org's *.dynamics.com URL or extend the setting",
			u.Hostname(), a.deps.AllowedOrgSuffixes)
	}
	g := a.graphFor(in.TenantID)
	// What the provisioner may do, before anything is tried: the roles
	// claim of its Graph token and its security roles in the org, against
	// what the steps about to run need. Every gap goes into one message.
	roles, err := reread(ctx, g.GrantedRoles)
	if err != nil {
		return out, preflightMapped(ctx, "read the provisioner's Graph permissions (token roles)", err, fix{invalid: "check tenantId"})
	}
	var missing []missingPermission
	for _, n := range []graphNeed{needOrganization, needApplications, needGrants} {
		if !n.metBy(roles) {
			missing = append(missing, a.missingGraph(n, ""))
		}
	}
	if needOrganization.metBy(roles) {
		org, err := reread(ctx, g.Organization)
		if err != nil {
			return out, preflightMapped(ctx, "read the tenant (organization)", err, fix{permission: permOrg, invalid: "check tenantId"})
		}
		out.TenantName = org.DisplayName
	}

	dv := a.provisioned(in.TenantID, in.OrgURL)
	who, err := reread(ctx, dv.WhoAmI)
	if err != nil {
		return out, preflightMapped(ctx, "sign in to the Dynamics org as the provisioner (WhoAmI)", err,
			fix{permission: permDataverse, invalid: "check orgUrl"})
	}
	out.OrganizationID = who.OrganizationID
	switch admin, err := hasAdminRole(ctx, dv, who.UserID); {
	case err != nil:
		return out, preflightMapped(ctx, "read the provisioner's security roles", err, fix{permission: permDataverse})
	case !admin:
		missing = append(missing, missingDataverseRole(u.Host))
	}

	switch {
	case in.DetectFederation && !needDomains.metBy(roles):
		missing = append(missing, a.missingGraph(needDomains, ""))
	case in.DetectFederation:
		domains, err := reread(ctx, g.ListDomains)
		if err != nil {
			return out, preflightMapped(ctx, "list the tenant's domains", err, fix{permission: permDomains})
		}
		for _, d := range domains {
			if d.IsVerified && strings.EqualFold(d.AuthenticationType, "Federated") {
				out.FederatedDomains = append(out.FederatedDomains, d.ID)
			}
		}
	}
	if (in.AlwaysFederated || len(out.FederatedDomains) > 0) && !needHRDPolicy.metBy(roles) {
		why := needHRDPolicy.why + " (federation=always)"
		if len(out.FederatedDomains) > 0 {
			why = needHRDPolicy.why + " (the verified domain " + strings.Join(out.FederatedDomains, ", ") + " is Federated)"
		}
		missing = append(missing, a.missingGraph(needHRDPolicy, why))
	}
	if len(missing) > 0 {
		return out, permissionReport(missing)
	}

	sol, err := reread(ctx, func(ctx context.Context) (dataverse.Solution, error) { return dv.FindSolution(ctx, in.SolutionName) })
	switch {
	case msapi.IsKind(err, msapi.NotFound):
		return out, preflightError("the Marketo solution %q is not installed in %s; install it first (Marketo's Step 1 of 3), or set solutionName to its unique name",
			in.SolutionName, u.Host)
	case err != nil:
		return out, preflightMapped(ctx, "find the Marketo solution", err, fix{permission: permDataverse})
	}
	cmp, err := dataverse.CompareVersions(sol.Version, in.MinSolutionVersion)
	if err != nil {
		return out, preflightError("cannot compare the Marketo solution version %q with %q: %v", sol.Version, in.MinSolutionVersion, err)
	}
	if cmp < 0 {
		return out, preflightError("the Marketo solution is version %s, older than %s; upgrade it from AppSource before onboarding",
			sol.Version, in.MinSolutionVersion)
	}
	out.SolutionVersion = sol.Version

	bu, err := reread(ctx, dv.RootBusinessUnit)
	if err != nil {
		return out, preflightMapped(ctx, "find the root business unit", err, fix{permission: permDataverse})
	}
	out.BusinessUnitID = bu.ID

	role, err := reread(ctx, func(ctx context.Context) (dataverse.Role, error) { return dv.FindRole(ctx, in.RoleName, bu.ID) })
	switch {
	case msapi.IsKind(err, msapi.NotFound):
		return out, preflightError("security role %q does not exist in the root business unit %q; it ships with the Marketo solution, reinstall or upgrade it",
			in.RoleName, bu.Name)
	case err != nil:
		return out, preflightMapped(ctx, "find the security role", err, fix{permission: permDataverse})
	}
	out.RoleID = role.ID

	cfg, err := reread(ctx, dv.MarketoConfig)
	switch {
	case msapi.IsKind(err, msapi.NotFound):
		return out, preflightError("the Marketo Config record %q does not exist; open Marketo Config in Dynamics once so the solution creates it, or set the dataverse.marketoConfig.* names",
			a.deps.ConfigNames.DefaultName)
	case err != nil:
		return out, preflightMapped(ctx, "read the Marketo Config", err, fix{permission: permDataverse, invalid: "check the dataverse.marketoConfig.* names"})
	}
	out.ConfigID, out.ConfigUserID = cfg.ID, cfg.UserID

	nav, err := reread(ctx, dv.MarketoUserNavigation)
	switch {
	case msapi.IsKind(err, msapi.NotFound), msapi.IsKind(err, msapi.Invalid):
		n := a.deps.ConfigNames
		return out, preflightError("the Marketo Config table %q has no lookup column %q to the user table (%v); set dataverse.marketoConfig.entity to the table's logical name "+
			"and dataverse.marketoConfig.userLookup to the Marketo User lookup's logical name (lower case), as Power Apps > Tables > Marketo Config > Columns shows them",
			orDefault(n.Entity, dataverse.DefaultMarketoConfigNames().Entity), orDefault(n.UserLookup, dataverse.DefaultMarketoConfigNames().UserLookup), err)
	case err != nil:
		return out, preflightMapped(ctx, "read the Marketo Config table's metadata", err, fix{permission: permDataverse})
	}
	out.UserLookupNavigation = nav
	return out, nil
}

// userNavigation is known, or read from the Marketo Config's metadata.
func userNavigation(ctx context.Context, dv dataverseAPI, known string) (string, error) {
	if known != "" {
		return known, nil
	}
	nav, err := reread(ctx, dv.MarketoUserNavigation)
	if err != nil {
		return "", mapError(ctx, "read the Marketo Config user lookup's navigation property", err, asProvisioner,
			fix{permission: permDataverse, invalid: "check dataverse.marketoConfig.entity and dataverse.marketoConfig.userLookup"})
	}
	return nav, nil
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func (a *Activities) orgAllowed(host string) bool {
	return len(a.deps.AllowedOrgSuffixes) == 0 || orgurl.Allowed(host, a.deps.AllowedOrgSuffixes)
}

// preflightMapped keeps throttling and outages retryable and makes every
// other refusal a final preflight failure.
// The steps repeat a read that was throttled or failed transiently a few
// times in place before they give the attempt up. Preflight makes seven
// reads, validation five, and the others read before they write; under a
// throttling storm one failed read threw the attempt away and waited for a
// new one: at 20% 503s and 10% 429s a preflight attempt passed about one
// time in twenty and took minutes (Temporal's retry remains the backstop).
// Writes are not repeated here: the step's own retry re-reads first. Reads are safe to repeat; Retry-After is honoured, as Microsoft
// asks, and a longer one is left to Temporal's retry (NextRetryDelay).
const (
	readRetries      = 3
	readRetryWait    = 200 * time.Millisecond // doubled on each repeat without Retry-After
	maxReadRetryWait = 5 * time.Second
)

func reread[T any](ctx context.Context, read func(context.Context) (T, error)) (T, error) {
	wait := readRetryWait
	for i := 0; ; i++ {
		v, err := read(ctx)
		if err == nil || i == readRetries || !(msapi.IsKind(err, msapi.Throttled) || msapi.IsKind(err, msapi.Transient)) {
			return v, err
		}
		d := wait
		if me, ok := msapi.AsError(err); ok && me.RetryAfter > 0 {
			if me.RetryAfter > maxReadRetryWait {
				return v, err
			}
			d = me.RetryAfter
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
		wait *= 2
	}
}

func preflightMapped(ctx context.Context, what string, err error, f fix) error {
	mapped := mapError(ctx, what, err, asProvisioner, f)
	var ae *temporal.ApplicationError
	if !errors.As(mapped, &ae) {
		return mapped
	}
	switch ae.Type() {
	case ErrThrottled, ErrTransient, ErrConflict:
		return mapped
	}
	return temporal.NewApplicationErrorWithOptions("preflight: "+ae.Message(), ErrPreflight,
		temporal.ApplicationErrorOptions{NonRetryable: true})
}

// ---- Entra app and service principal -------------------------------------

type RegisterApplicationInput struct {
	TenantID    string `json:"tenantId"`
	OrgHost     string `json:"orgHost"`
	DisplayName string `json:"displayName"`
}

type RegisterApplicationResult struct {
	AppObjectID string `json:"appObjectId"`
	AppID       string `json:"appId"`
	UniqueName  string `json:"uniqueName"`
	Created     bool   `json:"created"`
}

func (a *Activities) RegisterApplication(ctx context.Context, in RegisterApplicationInput) (RegisterApplicationResult, error) {
	spec := graph.ApplicationSpec{
		UniqueName:  UniqueName(in.TenantID, in.OrgHost),
		DisplayName: in.DisplayName,
		RequiredResourceAccess: []graph.RequiredResourceAccess{{
			ResourceAppID:  graph.DynamicsCRMAppID,
			ResourceAccess: []graph.ResourceAccess{{ID: graph.DynamicsUserImpersonationID, Type: "Scope"}},
		}},
	}
	if a.deps.ConsentRedirectURI != "" {
		spec.RedirectURIs = []string{a.deps.ConsentRedirectURI}
	}
	g := a.graphFor(in.TenantID)
	// Look before writing: the upsert rewrites the display name, redirect
	// URIs and permissions of an existing app, so an onboarded app must be
	// refused before it, not after.
	existing, err := reread(ctx, func(ctx context.Context) (graph.Application, error) {
		return g.GetApplicationByUniqueName(ctx, spec.UniqueName)
	})
	switch {
	case err == nil:
		if live := liveTaggedSecrets(existing.PasswordCredentials, a.deps.Now()); len(live) > 0 {
			return RegisterApplicationResult{}, alreadyOnboarded(existing, live)
		}
	case !msapi.IsKind(err, msapi.NotFound):
		return RegisterApplicationResult{}, mapError(ctx, "look up the application", err, asProvisioner, fix{permission: permApps})
	}
	app, created, err := g.UpsertApplication(ctx, spec)
	if err != nil {
		return RegisterApplicationResult{}, mapError(ctx, "register the application", err, asProvisioner,
			fix{permission: permApps, invalid: "check appDisplayName and consent.redirectURI"})
	}
	// Checked again: another run may have added its secret in between.
	if !created {
		if live := liveTaggedSecrets(app.PasswordCredentials, a.deps.Now()); len(live) > 0 {
			return RegisterApplicationResult{}, alreadyOnboarded(app, live)
		}
	}
	return RegisterApplicationResult{AppObjectID: app.ID, AppID: app.AppID, UniqueName: spec.UniqueName, Created: created}, nil
}

// liveTaggedSecrets are the unexpired client secrets that mktos2s added
// (an onboarding's or a rotation's tag).
//
// RegisterApplication refuses an app that has one: a run adds its own
// secret only after consent, long after this step, so a retry of the same
// run (even after a worker crash that lost the creation) never finds one.
// Only an earlier run that completed, or whose undo failed, leaves one, and
// that app is in production use: adopting it would let this run remove
// Marketo's secret (AddClientSecret replaces tagged secrets) and, if it
// failed, delete the app, its service principal and its user.
func liveTaggedSecrets(creds []graph.PasswordCredential, now time.Time) []string {
	var keys []string
	for _, pc := range creds {
		if strings.HasPrefix(pc.DisplayName, SecretTag("")) && (pc.EndDateTime.IsZero() || pc.EndDateTime.After(now)) {
			keys = append(keys, pc.KeyID)
		}
	}
	return keys
}

func alreadyOnboarded(app graph.Application, keys []string) error {
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("the app %s (client ID %s) is already onboarded: it holds %d live client secret(s) that mktos2s added (key %s), so Marketo may be using it; "+
			"nothing was changed. For a new secret run `starter rotate --now`; to start over run `starter offboard` first",
			app.ID, app.AppID, len(keys), strings.Join(keys, ", ")),
		ErrAlreadyOnboarded, nil)
}

type CreateServicePrincipalInput struct {
	TenantID string `json:"tenantId"`
	AppID    string `json:"appId"`
}

type CreateServicePrincipalResult struct {
	ServicePrincipalID string `json:"servicePrincipalId"`
	Created            bool   `json:"created"`
}

func (a *Activities) CreateServicePrincipal(ctx context.Context, in CreateServicePrincipalInput) (CreateServicePrincipalResult, error) {
	sp, created, err := a.graphFor(in.TenantID).UpsertServicePrincipal(ctx, in.AppID)
	if graph.IsReplicationLag(err) || msapi.IsKind(err, msapi.NotFound) {
		// The client waited out the new app's replication for a while
		// (graph/lag.go); Temporal's retry waits longer. Any other 400 is a
		// refusal that a retry cannot change.
		return CreateServicePrincipalResult{}, lagError("create the service principal: application %s not visible yet: %v", in.AppID, err)
	}
	if err != nil {
		return CreateServicePrincipalResult{}, mapError(ctx, "create the service principal", err, asProvisioner, fix{permission: permApps})
	}
	return CreateServicePrincipalResult{ServicePrincipalID: sp.ID, Created: created}, nil
}

// ---- admin consent ----------------------------------------------------------

type BuildConsentURLInput struct {
	TenantID   string `json:"tenantId"`
	AppID      string `json:"appId"`
	WorkflowID string `json:"workflowId"`
	// RunID is the onboarding's first run ID, which the signed link is bound
	// to; empty means the run of the workflow that calls the activity.
	RunID string `json:"runId,omitempty"`
}

type BuildConsentURLResult struct {
	URL string `json:"url"`
}

// BuildConsentURL is an activity rather than workflow code because the
// authority host, redirect URI and callback key are worker configuration,
// and a signed state is random. With Deps.ConsentSigner the URL carries a
// signed, expiring, single-use state that the consent callback checks;
// without it the URL carries no state at all, so no callback can act on it
// (the operator signals with `starter consent`, or the re-check notices).
func (a *Activities) BuildConsentURL(ctx context.Context, in BuildConsentURLInput) (BuildConsentURLResult, error) {
	if a.deps.ConsentSigner == nil {
		return BuildConsentURLResult{URL: unsignedConsentURL(a.deps.AuthorityHost, a.deps.ConsentRedirectURI, in)}, nil
	}
	if in.RunID == "" && activity.IsActivity(ctx) {
		// Workflows recorded before they passed their first run ID build the
		// URL in their first run, before any continue-as-new.
		in.RunID = activity.GetInfo(ctx).WorkflowExecution.RunID
	}
	u, err := a.deps.ConsentSigner.ConsentURL(a.deps.AuthorityHost, in.TenantID, in.AppID, a.deps.ConsentRedirectURI, in.WorkflowID, in.RunID)
	if err != nil {
		// Every cause is configuration or input that a retry cannot change.
		return BuildConsentURLResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("build the signed admin-consent URL: %v; check microsoft.authorityHost and consent.redirectURI "+
				"(an absolute URL that reaches the consent callback, `starter serve`), then start the onboarding again", err),
			ErrInvalidRequest, nil)
	}
	return BuildConsentURLResult{URL: u}, nil
}

func unsignedConsentURL(authorityHost, redirectURI string, in BuildConsentURLInput) string {
	host := strings.TrimRight(authorityHost, "/")
	if host == "" {
		host = consent.DefaultAuthorityHost
	}
	q := url.Values{}
	q.Set("client_id", in.AppID)
	if redirectURI != "" {
		q.Set("redirect_uri", redirectURI)
	}
	return host + "/" + url.PathEscape(in.TenantID) + "/adminconsent?" + q.Encode()
}

type VerifyConsentInput struct {
	TenantID           string `json:"tenantId"`
	ServicePrincipalID string `json:"servicePrincipalId"`
}

type VerifyConsentResult struct {
	Granted bool   `json:"granted"`
	Reason  string `json:"reason"` // why not, for the progress message
}

// VerifyConsent looks for the tenant-wide delegated grant of Dynamics CRM
// user_impersonation to the app's service principal. The provisioner may
// not be allowed to read the Dynamics CRM service principal (it owns only
// its own apps); then the resource is not compared: the app requests
// user_impersonation from Dynamics CRM only, so admin consent grants it
// for no other resource.
func (a *Activities) VerifyConsent(ctx context.Context, in VerifyConsentInput) (VerifyConsentResult, error) {
	g := a.graphFor(in.TenantID)
	crmID := ""
	crm, err := reread(ctx, func(ctx context.Context) (graph.ServicePrincipal, error) {
		return g.GetServicePrincipalByAppID(ctx, graph.DynamicsCRMAppID)
	})
	switch {
	case err == nil:
		crmID = crm.ID
	case msapi.IsKind(err, msapi.PermissionDenied), msapi.IsKind(err, msapi.NotFound):
	default:
		return VerifyConsentResult{}, mapError(ctx, "find the Dynamics CRM service principal", err, asProvisioner, fix{permission: permApps})
	}
	grants, err := reread(ctx, func(ctx context.Context) ([]graph.PermissionGrant, error) {
		return g.ListPermissionGrants(ctx, in.ServicePrincipalID)
	})
	if err != nil {
		return VerifyConsentResult{}, mapError(ctx, "list the app's permission grants", err, asProvisioner, fix{permission: permGrants})
	}
	for _, gr := range grants {
		if (crmID == "" || gr.ResourceID == crmID) && gr.ConsentType == "AllPrincipals" &&
			slices.Contains(strings.Fields(gr.Scope), "user_impersonation") {
			return VerifyConsentResult{Granted: true}, nil
		}
	}
	return VerifyConsentResult{Reason: "no tenant-wide grant of Dynamics CRM user_impersonation to the app yet"}, nil
}

// ---- client secret ------------------------------------------------------------

type AddClientSecretInput struct {
	TenantID       string `json:"tenantId"`
	AppObjectID    string `json:"appObjectId"`
	WorkflowID     string `json:"workflowId"`
	LifetimeMonths int    `json:"lifetimeMonths"`
	// Lifetime, when set, replaces LifetimeMonths. It exists so tests can
	// watch a secret expire in minutes; workflows validate it.
	Lifetime time.Duration `json:"lifetime,omitempty"`
	// Keep lists key IDs that are never removed as stale although they carry
	// the tag: a rotation's live secret while its successor is added.
	Keep []string `json:"keep,omitempty"`
}

// AddClientSecretResult carries the secret sealed with the custody key, so
// the codec endpoint (and the UI) that decode the payload cannot read it.
type AddClientSecretResult struct {
	KeyID        string         `json:"keyId"`
	Secret       custody.Sealed `json:"secret"`
	ExpiresAt    time.Time      `json:"expiresAt"`
	RemovedStale []string       `json:"removedStale,omitempty"` // keyIds of earlier attempts' secrets
}

// AddClientSecret leaves exactly one live secret per onboarding: secrets
// tagged by an earlier attempt are removed first, since their values were
// lost with that attempt.
func (a *Activities) AddClientSecret(ctx context.Context, in AddClientSecretInput) (AddClientSecretResult, error) {
	var out AddClientSecretResult
	if in.LifetimeMonths < 1 && in.Lifetime <= 0 {
		return out, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("secret lifetime %d months is not positive", in.LifetimeMonths), ErrInvalidRequest, nil)
	}
	// Checked before Entra is asked: a secret that cannot be sealed must not be created.
	if a.deps.Custody == nil {
		return out, temporal.NewNonRetryableApplicationError(
			"this worker has no custody key to seal the new client secret; set custody.keys (MKTOS2S_CUSTODY_KEYS) and restart it",
			ErrInvalidRequest, nil)
	}
	g := a.graphFor(in.TenantID)
	tag := SecretTag(in.WorkflowID)
	existing, err := reread(ctx, func(ctx context.Context) ([]graph.PasswordCredential, error) {
		return g.ListPasswords(ctx, in.AppObjectID)
	})
	if err != nil {
		return out, mapError(ctx, "list the app's secrets", err, asProvisioner, fix{permission: permApps})
	}
	for _, pc := range existing {
		if pc.DisplayName != tag || slices.Contains(in.Keep, pc.KeyID) {
			continue
		}
		if _, err := removePassword(ctx, g, in.AppObjectID, pc.KeyID); err != nil {
			return out, mapError(ctx, "remove a stale secret", err, asProvisioner, fix{permission: permApps})
		}
		out.RemovedStale = append(out.RemovedStale, pc.KeyID)
	}
	end := a.deps.Now().UTC().AddDate(0, in.LifetimeMonths, 0)
	if in.Lifetime > 0 {
		end = a.deps.Now().UTC().Add(in.Lifetime)
	}
	pc, err := g.AddPassword(ctx, in.AppObjectID, tag, end)
	if graph.IsReplicationLag(err) {
		// The client waited out the new app's replication for a while
		// (graph/lag.go) and nothing was added; Temporal's retry waits longer.
		return out, lagError("add the client secret: application %s not visible yet: %v", in.AppObjectID, err)
	}
	if err != nil {
		return out, mapError(ctx, "add the client secret", err, asProvisioner, fix{permission: permApps})
	}
	if out.Secret, err = a.deps.Custody.Seal(pc.SecretText); err != nil {
		// A retry removes this secret as stale (same tag) and adds a new one.
		return out, fmt.Errorf("seal the new client secret: %w", err)
	}
	out.KeyID, out.ExpiresAt = pc.KeyID, pc.EndDateTime
	if out.ExpiresAt.IsZero() {
		out.ExpiresAt = end
	}
	return out, nil
}

// ---- Dataverse --------------------------------------------------------------

type CreateApplicationUserInput struct {
	TenantID       string `json:"tenantId"`
	OrgURL         string `json:"orgUrl"`
	AppID          string `json:"appId"`
	BusinessUnitID string `json:"businessUnitId"`
}

type CreateApplicationUserResult struct {
	SystemUserID string `json:"systemUserId"`
	Username     string `json:"username"` // the application user's e-mail, Marketo's "username"
	Adopted      bool   `json:"adopted"`
}

func (a *Activities) CreateApplicationUser(ctx context.Context, in CreateApplicationUserInput) (CreateApplicationUserResult, error) {
	u, adopted, err := a.provisioned(in.TenantID, in.OrgURL).CreateApplicationUser(ctx, in.AppID, in.BusinessUnitID)
	if msapi.IsKind(err, msapi.Invalid) || msapi.IsKind(err, msapi.NotFound) {
		// Dataverse rejects an applicationid it cannot see in Entra yet.
		return CreateApplicationUserResult{}, lagError("create the application user: app %s not visible to Dataverse yet: %v", in.AppID, err)
	}
	if err != nil {
		return CreateApplicationUserResult{}, mapError(ctx, "create the application user", err, asProvisioner, fix{permission: permDataverse})
	}
	return CreateApplicationUserResult{SystemUserID: u.ID, Username: u.InternalEmail, Adopted: adopted}, nil
}

type ConfigureHomeRealmDiscoveryInput struct {
	TenantID           string `json:"tenantId"`
	ServicePrincipalID string `json:"servicePrincipalId"`
	AppID              string `json:"appId"`
}

type ConfigureHomeRealmDiscoveryResult struct {
	PolicyID string `json:"policyId"`
	Created  bool   `json:"created"`
}

// ConfigureHomeRealmDiscovery reuses the policy tagged with the app ID and
// assigns it only when it is not assigned yet.
func (a *Activities) ConfigureHomeRealmDiscovery(ctx context.Context, in ConfigureHomeRealmDiscoveryInput) (ConfigureHomeRealmDiscoveryResult, error) {
	var out ConfigureHomeRealmDiscoveryResult
	g := a.graphFor(in.TenantID)
	name := HRDPolicyName(in.AppID)
	policies, err := reread(ctx, g.ListHRDPolicies)
	if err != nil {
		return out, mapError(ctx, "list Home Realm Discovery policies", err, asProvisioner, fix{permission: permPolicy})
	}
	for _, p := range policies {
		if p.DisplayName == name {
			out.PolicyID = p.ID
			break
		}
	}
	if out.PolicyID == "" {
		p, err := g.CreateHRDPolicy(ctx, name, hrdDefinition)
		if err != nil {
			return out, mapError(ctx, "create the Home Realm Discovery policy", err, asProvisioner, fix{permission: permPolicy})
		}
		out.PolicyID, out.Created = p.ID, true
	}
	assigned, err := reread(ctx, func(ctx context.Context) ([]graph.HomeRealmDiscoveryPolicy, error) {
		return g.ListAssignedHRDPolicies(ctx, in.ServicePrincipalID)
	})
	if err != nil {
		return out, mapError(ctx, "list the service principal's HRD policies", err, asProvisioner, fix{permission: permPolicy})
	}
	if slices.ContainsFunc(assigned, func(p graph.HomeRealmDiscoveryPolicy) bool { return p.ID == out.PolicyID }) {
		return out, nil
	}
	if err := g.AssignHRDPolicy(ctx, in.ServicePrincipalID, out.PolicyID); err != nil {
		err = mapError(ctx, "assign the Home Realm Discovery policy", err, asProvisioner,
			fix{permission: permPolicy, invalid: "a service principal holds one HRD policy; remove the other one first"})
		var ae *temporal.ApplicationError
		if errors.As(err, &ae) && ae.NonRetryable() {
			// The workflow records the undo only when this activity succeeds,
			// so a policy left here would outlive the compensation. It carries
			// this app's tag and is assigned nowhere: it is ours to remove.
			if derr := g.DeleteHRDPolicy(ctx, out.PolicyID); derr != nil && !isGone(derr) {
				return out, temporal.NewApplicationErrorWithOptions(
					fmt.Sprintf("%s; the unassigned policy %s could not be deleted either (%v): delete it in Entra ID", ae.Message(), out.PolicyID, derr),
					ae.Type(), temporal.ApplicationErrorOptions{NonRetryable: true})
			}
		}
		return out, err
	}
	return out, nil
}

type AssignSecurityRoleInput struct {
	TenantID     string `json:"tenantId"`
	OrgURL       string `json:"orgUrl"`
	SystemUserID string `json:"systemUserId"`
	RoleID       string `json:"roleId"`
}

type AssignSecurityRoleResult struct {
	RoleID string `json:"roleId"`
}

func (a *Activities) AssignSecurityRole(ctx context.Context, in AssignSecurityRoleInput) (AssignSecurityRoleResult, error) {
	if err := a.provisioned(in.TenantID, in.OrgURL).AssociateRole(ctx, in.SystemUserID, in.RoleID); err != nil {
		return AssignSecurityRoleResult{}, mapError(ctx, "assign the security role", err, asProvisioner, fix{permission: permDataverse})
	}
	return AssignSecurityRoleResult{RoleID: in.RoleID}, nil
}

type ConfigureMarketoSolutionInput struct {
	TenantID     string `json:"tenantId"`
	OrgURL       string `json:"orgUrl"`
	SystemUserID string `json:"systemUserId"`
	// PreviousUserID is the Marketo user preflight saw; it stands in when a
	// retry finds the config already pointing at SystemUserID.
	PreviousUserID string `json:"previousUserId,omitempty"`
	// UserLookupNavigation is what preflight read from the metadata; empty
	// (a history recorded before it was read) = read it now.
	UserLookupNavigation string `json:"userLookupNavigation,omitempty"`
}

type ConfigureMarketoSolutionResult struct {
	ConfigID       string `json:"configId"`
	PreviousUserID string `json:"previousUserId,omitempty"`
}

func (a *Activities) ConfigureMarketoSolution(ctx context.Context, in ConfigureMarketoSolutionInput) (ConfigureMarketoSolutionResult, error) {
	dv := a.provisioned(in.TenantID, in.OrgURL)
	cfg, err := dv.MarketoConfig(ctx)
	if err != nil {
		return ConfigureMarketoSolutionResult{}, mapError(ctx, "read the Marketo Config", err, asProvisioner,
			fix{permission: permDataverse, invalid: "check the dataverse.marketoConfig.* names"})
	}
	prev := cfg.UserID
	if prev == in.SystemUserID {
		prev = in.PreviousUserID
	}
	if cfg.UserID != in.SystemUserID {
		nav, err := userNavigation(ctx, dv, in.UserLookupNavigation)
		if err != nil {
			return ConfigureMarketoSolutionResult{}, err
		}
		if err := dv.SetMarketoConfigUser(ctx, cfg.ID, nav, in.SystemUserID); err != nil {
			return ConfigureMarketoSolutionResult{}, mapError(ctx, "set the Marketo Config user", err, asProvisioner,
				fix{permission: permDataverse, invalid: "check dataverse.marketoConfig.userLookup"})
		}
	}
	return ConfigureMarketoSolutionResult{ConfigID: cfg.ID, PreviousUserID: prev}, nil
}

type PublishCustomizationsInput struct {
	TenantID string `json:"tenantId"`
	OrgURL   string `json:"orgUrl"`
}

type PublishCustomizationsResult struct{}

func (a *Activities) PublishCustomizations(ctx context.Context, in PublishCustomizationsInput) (PublishCustomizationsResult, error) {
	dv := a.provisioned(in.TenantID, in.OrgURL)
	if err := whileHeartbeating(ctx, heartbeatEvery, func() error { return dv.PublishAllXml(ctx) }); err != nil {
		return PublishCustomizationsResult{}, mapError(ctx, "publish all customizations", err, asProvisioner, fix{permission: permDataverse})
	}
	return PublishCustomizationsResult{}, nil
}

type CreateSyncFilterInput struct {
	TenantID string   `json:"tenantId"`
	OrgURL   string   `json:"orgUrl"`
	Entities []string `json:"entities"`
}

type CreateSyncFilterResult struct {
	Created []string `json:"created,omitempty"` // entities that got the column now
}

// CreateSyncFilter adds the Boolean column new_synctomkto where missing.
// The column is not removed on undo: it may already hold data.
func (a *Activities) CreateSyncFilter(ctx context.Context, in CreateSyncFilterInput) (CreateSyncFilterResult, error) {
	var out CreateSyncFilterResult
	dv := a.provisioned(in.TenantID, in.OrgURL)
	for _, e := range in.Entities {
		var created bool
		err := whileHeartbeating(ctx, heartbeatEvery, func() (err error) {
			created, err = dv.EnsureBooleanColumn(ctx, e, syncFilterSchemaName, "Sync to Marketo", a.deps.SyncFilterSolution)
			return err
		})
		if err != nil {
			return out, mapError(ctx, "add the sync filter column to "+e, err, asProvisioner,
				fix{permission: permDataverse, invalid: "check that entity " + e + " exists and is customizable, and that dataverse.syncFilterSolution (if set) is the unique name of an unmanaged solution"})
		}
		if created {
			out.Created = append(out.Created, e)
		}
	}
	return out, nil
}
