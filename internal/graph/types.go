// Package graph calls the Microsoft Graph v1.0 endpoints the onboarding needs. See README.md for
// every call, its request shape and the Microsoft documentation page it follows.
package graph

import (
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
	api     *msapi.Client
	lagWait time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithLagWait bounds how long a call waits out the replication delay of a
// new application (lag.go); the default is DefaultLagWait.
func WithLagWait(d time.Duration) Option { return func(c *Client) { c.lagWait = d } }

// New returns a Graph client for baseURL (e.g. https://graph.microsoft.com/v1.0).
func New(baseURL string, hc *http.Client, tokens msapi.TokenSource, opts ...Option) *Client {
	c := &Client{api: &msapi.Client{Service: "graph", BaseURL: baseURL, HTTP: hc, Tokens: tokens}, lagWait: DefaultLagWait}
	for _, o := range opts {
		o(c)
	}
	return c
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
