// Package powerplatform calls the Power Platform admin API (api.bap.microsoft.com,
// "BAP") with an administrator's delegated token: list the environments and add an
// application user to one of them. It knows HTTP and JSON, nothing of Temporal; the
// call table with Microsoft's pages is README.md.
package powerplatform

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/mktos2s/mktos2s/internal/msapi"
)

const (
	// DefaultBaseURL is the public cloud's admin API.
	DefaultBaseURL = "https://api.bap.microsoft.com"
	// APIVersion is the version both documented routes take.
	APIVersion = "2020-10-01"
	// Resource is the Power Apps Service, the audience of the admin API's tokens.
	Resource = "https://service.powerapps.com/"
	// DelegatedScope is what the signed-in admin lends the provisioner. The
	// double slash is right: resource URI "https://service.powerapps.com/"
	// plus "/user_impersonation".
	DelegatedScope = Resource + "/user_impersonation"

	envPath = "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments"
)

// Client calls the admin API for one administrator.
type Client struct{ c *msapi.Client }

// New returns a client over baseURL (DefaultBaseURL in production) whose
// bearer tokens come from tokens (an admin's delegated Power Apps Service token).
func New(baseURL string, hc *http.Client, tokens msapi.TokenSource) *Client {
	if baseURL == "" {
		baseURL = DefaultBaseURL
	}
	return &Client{c: &msapi.Client{Service: "powerplatform", BaseURL: baseURL, HTTP: hc, Tokens: tokens}}
}

// Environment is one Power Platform environment.
type Environment struct {
	Name        string // the environment ID (a GUID), the {environmentId} of the routes
	DisplayName string
	InstanceURL string // the Dataverse org URL, e.g. https://contoso.crm.dynamics.com/; "" without Dataverse
}

type wireEnvironment struct {
	Name       string `json:"name"`
	Properties struct {
		DisplayName               string `json:"displayName"`
		LinkedEnvironmentMetadata *struct {
			InstanceURL string `json:"instanceUrl"`
		} `json:"linkedEnvironmentMetadata"`
	} `json:"properties"`
}

func query() url.Values { return url.Values{"api-version": {APIVersion}} }

// ListEnvironments lists the tenant's environments.
func (c *Client) ListEnvironments(ctx context.Context) ([]Environment, error) {
	return msapi.ListAll(ctx, c.c, msapi.Request{Op: "listEnvironments", Method: http.MethodGet, Path: envPath, Query: query()},
		func(w wireEnvironment) Environment {
			e := Environment{Name: w.Name, DisplayName: w.Properties.DisplayName}
			if m := w.Properties.LinkedEnvironmentMetadata; m != nil {
				e.InstanceURL = m.InstanceURL
			}
			return e
		})
}

// EnvironmentFor finds the environment whose Dataverse org is orgURL (same
// host, case-insensitive); an msapi NotFound error when there is none.
func (c *Client) EnvironmentFor(ctx context.Context, orgURL string) (Environment, error) {
	want, err := url.Parse(orgURL)
	if err != nil || want.Host == "" {
		return Environment{}, &msapi.Error{Service: "powerplatform", Op: "environmentFor", Kind: msapi.Invalid, Message: fmt.Sprintf("org URL %q is not an absolute URL", orgURL)}
	}
	envs, err := c.ListEnvironments(ctx)
	if err != nil {
		return Environment{}, err
	}
	for _, e := range envs {
		if u, err := url.Parse(e.InstanceURL); err == nil && strings.EqualFold(u.Host, want.Host) {
			return e, nil
		}
	}
	return Environment{}, &msapi.Error{Service: "powerplatform", Op: "environmentFor", Kind: msapi.NotFound,
		Message: fmt.Sprintf("no environment of this tenant has the Dataverse org %s (%d environments listed)", want.Host, len(envs))}
}

// AddAppUser asks for appID's service principal to become an application
// user with System Administrator in the environment. Microsoft answers 200
// whether or not anything happened: read Dataverse's application users to
// know.
func (c *Client) AddAppUser(ctx context.Context, environmentID, appID string) error {
	_, err := c.c.Do(ctx, msapi.Request{
		Op: "addAppUser", Method: http.MethodPost, Path: envPath + "/" + url.PathEscape(environmentID) + "/addAppUser", Query: query(),
		Body: map[string]string{"servicePrincipalAppId": appID},
	}, nil)
	return err
}
