// Package graph calls the Microsoft Graph v1.0 endpoints the onboarding needs. See README.md for
// every call, its request shape and the Microsoft documentation page it follows.
package graph

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/mktos2s/mktos2s/internal/msapi"
)

// Dynamics CRM's well-known first-party app and its delegated user_impersonation scope.
const (
	DynamicsCRMAppID            = "00000007-0000-0000-c000-000000000000"
	DynamicsUserImpersonationID = "78ce3f0f-a1ce-49c2-8cde-64b5c0896db4"
)

// Client calls Microsoft Graph.
type Client struct {
	api *msapi.Client
}

// New returns a Graph client for baseURL (e.g. https://graph.microsoft.com/v1.0).
func New(baseURL string, hc *http.Client, tokens msapi.TokenSource) *Client {
	return &Client{api: &msapi.Client{Service: "graph", BaseURL: baseURL, HTTP: hc, Tokens: tokens}}
}

// ResourceAccess is one permission of a RequiredResourceAccess; Type is "Scope" or "Role".
type ResourceAccess struct{ ID, Type string }

// RequiredResourceAccess is the set of permissions an app needs on one resource app.
type RequiredResourceAccess struct {
	ResourceAppID  string
	ResourceAccess []ResourceAccess
}

// PasswordCredential is a client secret; SecretText is set only by AddPassword.
type PasswordCredential struct {
	KeyID, DisplayName, Hint, SecretText string
	StartDateTime, EndDateTime           time.Time
}

// Application is an Entra app registration.
type Application struct {
	ID, AppID, DisplayName, UniqueName, SignInAudience string
	RedirectURIs                                       []string
	RequiredResourceAccess                             []RequiredResourceAccess
	PasswordCredentials                                []PasswordCredential
}

// ApplicationSpec is the desired state of an app; signInAudience is always AzureADMyOrg.
type ApplicationSpec struct {
	UniqueName, DisplayName string
	RedirectURIs            []string
	RequiredResourceAccess  []RequiredResourceAccess
}

// ServicePrincipal is an app's instance in a tenant.
type ServicePrincipal struct{ ID, AppID, DisplayName string }

// Domain is a tenant domain; AuthenticationType is "Managed" or "Federated".
type Domain struct {
	ID, AuthenticationType string
	IsVerified, IsDefault  bool
}

// HomeRealmDiscoveryPolicy is an HRD policy; Definition holds JSON documents as strings.
type HomeRealmDiscoveryPolicy struct {
	ID, DisplayName string
	Definition      []string
}

// PermissionGrant is an oauth2PermissionGrant (delegated consent).
type PermissionGrant struct{ ID, ClientID, ConsentType, ResourceID, Scope string }

// Organization is the tenant.
type Organization struct{ ID, DisplayName string }

var errNotImplemented = errors.New("not implemented")

func (c *Client) UpsertApplication(ctx context.Context, spec ApplicationSpec) (Application, bool, error) {
	return Application{}, false, errNotImplemented
}
func (c *Client) GetApplicationByUniqueName(ctx context.Context, uniqueName string) (Application, error) {
	return Application{}, errNotImplemented
}
func (c *Client) DeleteApplication(ctx context.Context, objectID string) error {
	return errNotImplemented
}
func (c *Client) UpsertServicePrincipal(ctx context.Context, appID string) (ServicePrincipal, bool, error) {
	return ServicePrincipal{}, false, errNotImplemented
}
func (c *Client) GetServicePrincipalByAppID(ctx context.Context, appID string) (ServicePrincipal, error) {
	return ServicePrincipal{}, errNotImplemented
}
func (c *Client) DeleteServicePrincipal(ctx context.Context, objectID string) error {
	return errNotImplemented
}
func (c *Client) AddPassword(ctx context.Context, appObjectID, displayName string, end time.Time) (PasswordCredential, error) {
	return PasswordCredential{}, errNotImplemented
}
func (c *Client) RemovePassword(ctx context.Context, appObjectID, keyID string) error {
	return errNotImplemented
}
func (c *Client) ListPasswords(ctx context.Context, appObjectID string) ([]PasswordCredential, error) {
	return nil, errNotImplemented
}
func (c *Client) ListDomains(ctx context.Context) ([]Domain, error) { return nil, errNotImplemented }
func (c *Client) CreateHRDPolicy(ctx context.Context, displayName string, definition []string) (HomeRealmDiscoveryPolicy, error) {
	return HomeRealmDiscoveryPolicy{}, errNotImplemented
}
func (c *Client) ListHRDPolicies(ctx context.Context) ([]HomeRealmDiscoveryPolicy, error) {
	return nil, errNotImplemented
}
func (c *Client) DeleteHRDPolicy(ctx context.Context, policyID string) error {
	return errNotImplemented
}
func (c *Client) AssignHRDPolicy(ctx context.Context, spID, policyID string) error {
	return errNotImplemented
}
func (c *Client) ListAssignedHRDPolicies(ctx context.Context, spID string) ([]HomeRealmDiscoveryPolicy, error) {
	return nil, errNotImplemented
}
func (c *Client) UnassignHRDPolicy(ctx context.Context, spID, policyID string) error {
	return errNotImplemented
}
func (c *Client) ListPermissionGrants(ctx context.Context, clientSPID string) ([]PermissionGrant, error) {
	return nil, errNotImplemented
}
func (c *Client) Organization(ctx context.Context) (Organization, error) {
	return Organization{}, errNotImplemented
}
