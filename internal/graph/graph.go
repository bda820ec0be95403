package graph

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mktos2s/mktos2s/internal/msapi"
)

// Wire shapes of Graph v1.0 resources (learn.microsoft.com/graph/api/resources/...).

type wireResourceAccess struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

type wireRequiredResourceAccess struct {
	ResourceAppID  string               `json:"resourceAppId"`
	ResourceAccess []wireResourceAccess `json:"resourceAccess"`
}

type wirePasswordCredential struct {
	KeyID         string     `json:"keyId,omitempty"`
	DisplayName   string     `json:"displayName,omitempty"`
	Hint          string     `json:"hint,omitempty"`
	SecretText    string     `json:"secretText,omitempty"`
	StartDateTime *time.Time `json:"startDateTime,omitempty"`
	EndDateTime   *time.Time `json:"endDateTime,omitempty"`
}

type wireWeb struct {
	RedirectURIs []string `json:"redirectUris"`
}

type wireApplication struct {
	ID                     string                       `json:"id,omitempty"`
	AppID                  string                       `json:"appId,omitempty"`
	DisplayName            string                       `json:"displayName,omitempty"`
	UniqueName             string                       `json:"uniqueName,omitempty"`
	SignInAudience         string                       `json:"signInAudience,omitempty"`
	Web                    *wireWeb                     `json:"web,omitempty"`
	RequiredResourceAccess []wireRequiredResourceAccess `json:"requiredResourceAccess,omitempty"`
	PasswordCredentials    []wirePasswordCredential     `json:"passwordCredentials,omitempty"`
}

type wireServicePrincipal struct {
	ID          string `json:"id"`
	AppID       string `json:"appId"`
	DisplayName string `json:"displayName"`
}

type wireDomain struct {
	ID                 string `json:"id"`
	AuthenticationType string `json:"authenticationType"`
	IsVerified         bool   `json:"isVerified"`
	IsDefault          bool   `json:"isDefault"`
}

type wireHRDPolicy struct {
	ID                    string   `json:"id,omitempty"`
	DisplayName           string   `json:"displayName"`
	Definition            []string `json:"definition"`
	IsOrganizationDefault *bool    `json:"isOrganizationDefault,omitempty"`
}

type wirePermissionGrant struct {
	ID          string `json:"id"`
	ClientID    string `json:"clientId"`
	ConsentType string `json:"consentType"`
	ResourceID  string `json:"resourceId"`
	Scope       string `json:"scope"`
}

type wireOrganization struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
}

type odataRef struct {
	ID string `json:"@odata.id"`
}

const appSelect = "id,appId,displayName,uniqueName,signInAudience,web,requiredResourceAccess,passwordCredentials"

// literal quotes s as an OData string literal in a key segment; OData doubles a quote inside one.
func literal(s string) string {
	return "'" + url.PathEscape(strings.ReplaceAll(s, "'", "''")) + "'"
}

// filterLiteral is literal for a $filter value, which msapi.EncodeQuery escapes itself.
func filterLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func seg(s string) string { return url.PathEscape(s) }

func createIfMissing() http.Header {
	return http.Header{"Prefer": {"create-if-missing"}}
}

// UpsertApplication creates or updates the app registration whose uniqueName is spec.UniqueName
// (PATCH /applications(uniqueName='…') with Prefer: create-if-missing). created tells whether
// Graph answered 201; on 204 the app is read back.
func (c *Client) UpsertApplication(ctx context.Context, spec ApplicationSpec) (Application, bool, error) {
	body := wireApplication{
		DisplayName:    spec.DisplayName,
		SignInAudience: "AzureADMyOrg",
		Web:            &wireWeb{RedirectURIs: nonNil(spec.RedirectURIs)},
	}
	for _, r := range spec.RequiredResourceAccess {
		w := wireRequiredResourceAccess{ResourceAppID: r.ResourceAppID, ResourceAccess: []wireResourceAccess{}}
		for _, a := range r.ResourceAccess {
			w.ResourceAccess = append(w.ResourceAccess, wireResourceAccess(a))
		}
		body.RequiredResourceAccess = append(body.RequiredResourceAccess, w)
	}
	if body.RequiredResourceAccess == nil {
		body.RequiredResourceAccess = []wireRequiredResourceAccess{}
	}
	return upsert(ctx, c, msapi.Request{
		Op: "upsertApplication", Method: http.MethodPatch,
		Path:   "/applications(uniqueName=" + literal(spec.UniqueName) + ")",
		Header: createIfMissing(), Body: body,
	}, fromWireApp, func(w wireApplication) string { return w.ID },
		func() (Application, error) { return c.GetApplicationByUniqueName(ctx, spec.UniqueName) })
}

// upsert sends a PATCH with Prefer: create-if-missing. Graph answers 201 with the new object,
// or 204 without a body when it updated one, which is then read back with get.
func upsert[W, T any](ctx context.Context, c *Client, req msapi.Request, conv func(W) T, id func(W) string, get func() (T, error)) (T, bool, error) {
	var out W
	resp, err := c.api.Do(ctx, req, &out)
	if err != nil {
		var zero T
		return zero, false, err
	}
	created := resp.Status == http.StatusCreated
	if created && id(out) != "" {
		return conv(out), true, nil
	}
	v, err := get()
	return v, created, err
}

// GetApplicationByUniqueName reads an app by its uniqueName alternate key.
func (c *Client) GetApplicationByUniqueName(ctx context.Context, uniqueName string) (Application, error) {
	var out wireApplication
	_, err := c.api.Do(ctx, msapi.Request{
		Op: "getApplication", Method: http.MethodGet,
		Path:  "/applications(uniqueName=" + literal(uniqueName) + ")",
		Query: url.Values{"$select": {appSelect}},
	}, &out)
	if err != nil {
		return Application{}, err
	}
	return fromWireApp(out), nil
}

// DeleteApplication deletes an app registration by object ID.
func (c *Client) DeleteApplication(ctx context.Context, objectID string) error {
	_, err := c.api.Do(ctx, msapi.Request{Op: "deleteApplication", Method: http.MethodDelete,
		Path: "/applications/" + seg(objectID)}, nil)
	return err
}

// UpsertServicePrincipal creates the app's service principal if it is missing
// (PATCH /servicePrincipals(appId='…') with Prefer: create-if-missing and an empty body:
// the appId in the key is all a new service principal needs). It waits out
// the new app's replication for a bounded time (lag.go).
func (c *Client) UpsertServicePrincipal(ctx context.Context, appID string) (ServicePrincipal, bool, error) {
	type result struct {
		sp      ServicePrincipal
		created bool
	}
	r, err := waitOutLag(ctx, c, noBackingApp, func() (result, error) {
		sp, created, err := c.upsertServicePrincipal(ctx, appID)
		return result{sp, created}, err
	})
	return r.sp, r.created, err
}

func (c *Client) upsertServicePrincipal(ctx context.Context, appID string) (ServicePrincipal, bool, error) {
	return upsert(ctx, c, msapi.Request{
		Op: "upsertServicePrincipal", Method: http.MethodPatch,
		Path:   "/servicePrincipals(appId=" + literal(appID) + ")",
		Header: createIfMissing(), Body: struct{}{},
	}, func(w wireServicePrincipal) ServicePrincipal { return ServicePrincipal(w) },
		func(w wireServicePrincipal) string { return w.ID },
		func() (ServicePrincipal, error) { return c.GetServicePrincipalByAppID(ctx, appID) })
}

// GetServicePrincipalByAppID reads a service principal by its appId alternate key.
func (c *Client) GetServicePrincipalByAppID(ctx context.Context, appID string) (ServicePrincipal, error) {
	var out wireServicePrincipal
	_, err := c.api.Do(ctx, msapi.Request{
		Op: "getServicePrincipal", Method: http.MethodGet,
		Path:  "/servicePrincipals(appId=" + literal(appID) + ")",
		Query: url.Values{"$select": {"id,appId,displayName"}},
	}, &out)
	return ServicePrincipal(out), err
}

// DeleteServicePrincipal deletes a service principal by object ID.
func (c *Client) DeleteServicePrincipal(ctx context.Context, objectID string) error {
	_, err := c.api.Do(ctx, msapi.Request{Op: "deleteServicePrincipal", Method: http.MethodDelete,
		Path: "/servicePrincipals/" + seg(objectID)}, nil)
	return err
}

// AddPassword adds a client secret; the returned SecretText is the only copy there will ever be.
// It waits out the new app's replication for a bounded time (lag.go).
func (c *Client) AddPassword(ctx context.Context, appObjectID, displayName string, end time.Time) (PasswordCredential, error) {
	cred := wirePasswordCredential{DisplayName: displayName}
	if !end.IsZero() {
		e := end.UTC()
		cred.EndDateTime = &e
	}
	// A 404 is never a secret added (the write did not apply), so waiting
	// it out cannot add two.
	out, err := waitOutLag(ctx, c, appNotReplicated, func() (wirePasswordCredential, error) {
		var out wirePasswordCredential
		_, err := c.api.Do(ctx, msapi.Request{
			Op: "addPassword", Method: http.MethodPost,
			Path: "/applications/" + seg(appObjectID) + "/addPassword",
			Body: struct {
				PasswordCredential wirePasswordCredential `json:"passwordCredential"`
			}{cred},
		}, &out)
		return out, err
	})
	if err != nil {
		return PasswordCredential{}, err
	}
	return fromWirePassword(out), nil
}

// RemovePassword removes a client secret by keyId.
func (c *Client) RemovePassword(ctx context.Context, appObjectID, keyID string) error {
	_, err := c.api.Do(ctx, msapi.Request{
		Op: "removePassword", Method: http.MethodPost,
		Path: "/applications/" + seg(appObjectID) + "/removePassword",
		Body: struct {
			KeyID string `json:"keyId"`
		}{keyID},
	}, nil)
	return err
}

// ListPasswords lists an app's client secrets (metadata only; Graph never returns their values again).
func (c *Client) ListPasswords(ctx context.Context, appObjectID string) ([]PasswordCredential, error) {
	var out wireApplication
	_, err := c.api.Do(ctx, msapi.Request{
		Op: "listPasswords", Method: http.MethodGet,
		Path:  "/applications/" + seg(appObjectID),
		Query: url.Values{"$select": {"id,passwordCredentials"}},
	}, &out)
	if err != nil {
		return nil, err
	}
	creds := make([]PasswordCredential, 0, len(out.PasswordCredentials))
	for _, p := range out.PasswordCredentials {
		creds = append(creds, fromWirePassword(p))
	}
	return creds, nil
}

// ListDomains lists the tenant's domains (authenticationType tells Managed from Federated).
func (c *Client) ListDomains(ctx context.Context) ([]Domain, error) {
	return msapi.ListAll(ctx, c.api, msapi.Request{Op: "listDomains", Method: http.MethodGet, Path: "/domains"},
		func(w wireDomain) Domain { return Domain(w) })
}

// CreateHRDPolicy creates a (non-default) home realm discovery policy.
func (c *Client) CreateHRDPolicy(ctx context.Context, displayName string, definition []string) (HomeRealmDiscoveryPolicy, error) {
	isDefault := false
	var out wireHRDPolicy
	_, err := c.api.Do(ctx, msapi.Request{
		Op: "createHRDPolicy", Method: http.MethodPost, Path: "/policies/homeRealmDiscoveryPolicies",
		Body: wireHRDPolicy{DisplayName: displayName, Definition: nonNil(definition), IsOrganizationDefault: &isDefault},
	}, &out)
	if err != nil {
		return HomeRealmDiscoveryPolicy{}, err
	}
	return fromWireHRD(out), nil
}

// ListHRDPolicies lists the tenant's home realm discovery policies.
func (c *Client) ListHRDPolicies(ctx context.Context) ([]HomeRealmDiscoveryPolicy, error) {
	return msapi.ListAll(ctx, c.api, msapi.Request{Op: "listHRDPolicies", Method: http.MethodGet, Path: "/policies/homeRealmDiscoveryPolicies"}, fromWireHRD)
}

// DeleteHRDPolicy deletes a home realm discovery policy.
func (c *Client) DeleteHRDPolicy(ctx context.Context, policyID string) error {
	_, err := c.api.Do(ctx, msapi.Request{Op: "deleteHRDPolicy", Method: http.MethodDelete,
		Path: "/policies/homeRealmDiscoveryPolicies/" + seg(policyID)}, nil)
	return err
}

// AssignHRDPolicy assigns a policy to a service principal by reference.
func (c *Client) AssignHRDPolicy(ctx context.Context, spID, policyID string) error {
	_, err := c.api.Do(ctx, msapi.Request{
		Op: "assignHRDPolicy", Method: http.MethodPost,
		Path: "/servicePrincipals/" + seg(spID) + "/homeRealmDiscoveryPolicies/$ref",
		Body: odataRef{ID: strings.TrimRight(c.api.BaseURL, "/") + "/policies/homeRealmDiscoveryPolicies/" + seg(policyID)},
	}, nil)
	return err
}

// ListAssignedHRDPolicies lists the policies assigned to a service principal.
func (c *Client) ListAssignedHRDPolicies(ctx context.Context, spID string) ([]HomeRealmDiscoveryPolicy, error) {
	return msapi.ListAll(ctx, c.api, msapi.Request{Op: "listAssignedHRDPolicies", Method: http.MethodGet,
		Path: "/servicePrincipals/" + seg(spID) + "/homeRealmDiscoveryPolicies"}, fromWireHRD)
}

// UnassignHRDPolicy removes a policy from a service principal.
func (c *Client) UnassignHRDPolicy(ctx context.Context, spID, policyID string) error {
	_, err := c.api.Do(ctx, msapi.Request{Op: "unassignHRDPolicy", Method: http.MethodDelete,
		Path: "/servicePrincipals/" + seg(spID) + "/homeRealmDiscoveryPolicies/" + seg(policyID) + "/$ref"}, nil)
	return err
}

// ListPermissionGrants lists the delegated permission grants whose client is the given service principal.
func (c *Client) ListPermissionGrants(ctx context.Context, clientSPID string) ([]PermissionGrant, error) {
	return msapi.ListAll(ctx, c.api, msapi.Request{Op: "listPermissionGrants", Method: http.MethodGet, Path: "/oauth2PermissionGrants",
		Query: url.Values{"$filter": {"clientId eq " + filterLiteral(clientSPID)}}},
		func(w wirePermissionGrant) PermissionGrant { return PermissionGrant(w) })
}

// Organization returns the tenant (GET /organization has exactly one element).
func (c *Client) Organization(ctx context.Context) (Organization, error) {
	orgs, err := msapi.ListAll(ctx, c.api, msapi.Request{Op: "organization", Method: http.MethodGet, Path: "/organization",
		Query: url.Values{"$select": {"id,displayName"}}},
		func(w wireOrganization) Organization { return Organization(w) })
	if err != nil {
		return Organization{}, err
	}
	if len(orgs) == 0 {
		return Organization{}, &msapi.Error{Service: "graph", Op: "organization", Kind: msapi.NotFound, Message: "no organization returned"}
	}
	return orgs[0], nil
}

func fromWireApp(w wireApplication) Application {
	a := Application{ID: w.ID, AppID: w.AppID, DisplayName: w.DisplayName, UniqueName: w.UniqueName, SignInAudience: w.SignInAudience}
	if w.Web != nil {
		a.RedirectURIs = w.Web.RedirectURIs
	}
	for _, r := range w.RequiredResourceAccess {
		rr := RequiredResourceAccess{ResourceAppID: r.ResourceAppID}
		for _, x := range r.ResourceAccess {
			rr.ResourceAccess = append(rr.ResourceAccess, ResourceAccess(x))
		}
		a.RequiredResourceAccess = append(a.RequiredResourceAccess, rr)
	}
	for _, p := range w.PasswordCredentials {
		a.PasswordCredentials = append(a.PasswordCredentials, fromWirePassword(p))
	}
	return a
}

func fromWirePassword(w wirePasswordCredential) PasswordCredential {
	p := PasswordCredential{KeyID: w.KeyID, DisplayName: w.DisplayName, Hint: w.Hint, SecretText: w.SecretText}
	if w.StartDateTime != nil {
		p.StartDateTime = *w.StartDateTime
	}
	if w.EndDateTime != nil {
		p.EndDateTime = *w.EndDateTime
	}
	return p
}

func fromWireHRD(w wireHRDPolicy) HomeRealmDiscoveryPolicy {
	return HomeRealmDiscoveryPolicy{ID: w.ID, DisplayName: w.DisplayName, Definition: w.Definition}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
