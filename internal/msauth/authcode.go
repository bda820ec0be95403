package msauth

import (
	"context"
	"net/url"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"

	"github.com/mktos2s/mktos2s/internal/msapi"
)

// DelegatedToken is an administrator's access token, lent to the provisioner
// for one step of the customer-admin session mode.
type DelegatedToken struct {
	AccessToken string
	ExpiresOn   time.Time
	Username    string // the admin's sign-in name from the ID token (for the audit line; not a secret)
}

// String and GoString never print the token.
func (t DelegatedToken) String() string {
	return "delegated token of " + t.Username + " until " + t.ExpiresOn.UTC().Format(time.RFC3339)
}

// GoString is String, so %#v hides the token too.
func (t DelegatedToken) GoString() string { return t.String() }

// RedeemCode exchanges an authorization code and its PKCE verifier for a
// delegated token to scope (learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow,
// "Redeem a code for an access token"), authenticating as cred. It uses an
// MSAL client of its own that is dropped on return: the refresh token Entra
// sends back lives only in that client's cache, so nothing keeps it beyond
// this call, and the Provider's shared clients never see a user's token.
func (p *Provider) RedeemCode(ctx context.Context, tenantID string, cred Credential, code, redirectURI, verifier, scope string) (DelegatedToken, error) {
	if tenantID == "" || cred.ClientID == "" || code == "" || redirectURI == "" || verifier == "" || scope == "" {
		return DelegatedToken{}, &msapi.Error{Service: "entra", Op: "redeemCode", Kind: msapi.Invalid,
			Message: "tenant ID, client ID, code, redirect URI, code verifier and scope are required"}
	}
	mc, err := newCredential(cred)
	if err != nil {
		return DelegatedToken{}, err
	}
	c, err := confidential.New(p.authorityHost+"/"+url.PathEscape(tenantID), cred.ClientID, mc,
		confidential.WithInstanceDiscovery(false), confidential.WithHTTPClient(p.hc))
	if err != nil {
		return DelegatedToken{}, &msapi.Error{Service: "entra", Op: "redeemCode", Kind: msapi.Invalid, Err: err}
	}
	res, err := c.AcquireTokenByAuthCode(ctx, code, redirectURI, []string{scope}, confidential.WithChallenge(verifier))
	if err != nil {
		e := tokenError(err)
		if me, ok := msapi.AsError(e); ok {
			me.Op = "redeemCode"
		}
		return DelegatedToken{}, e
	}
	return DelegatedToken{AccessToken: res.AccessToken, ExpiresOn: res.ExpiresOn, Username: res.Account.PreferredUsername}, nil
}
