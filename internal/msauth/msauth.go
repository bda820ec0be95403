// Package msauth acquires Microsoft Entra ID access tokens with MSAL Go's confidential client,
// for any customer tenant, with a client secret or a certificate.
package msauth

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"

	"github.com/mktos2s/mktos2s/internal/msapi"
)

// DefaultAuthorityHost is the Entra ID authority of the public cloud.
const DefaultAuthorityHost = "https://login.microsoftonline.com"

// Credential is an app's identity: a client secret or a certificate.
type Credential struct {
	ClientID       string
	Secret         string // client secret, or
	CertificatePEM []byte // PEM with CERTIFICATE and PRIVATE KEY blocks
}

// String keeps the secret and the private key out of logs and error messages: %v and %+v of
// a Credential (or of a struct that holds one) show only the client ID and the kind.
func (c Credential) String() string {
	kind := "no credential"
	switch {
	case c.Secret != "":
		kind = "client secret"
	case len(c.CertificatePEM) > 0:
		kind = "certificate"
	}
	return "msauth.Credential{ClientID: " + c.ClientID + ", " + kind + " (redacted)}"
}

// GoString is String for %#v.
func (c Credential) GoString() string { return c.String() }

// DefaultMaxClients is how many MSAL clients a Provider keeps when Options.MaxClients is 0.
// Each onboarding adds one for the provisioner in its tenant and one for its new app (the
// validation step), so a long-running worker would otherwise grow without bound; a client
// dropped here costs one token request the next time it is needed.
const DefaultMaxClients = 512

// Options configures a Provider.
type Options struct {
	AuthorityHost string       // default https://login.microsoftonline.com
	HTTPClient    *http.Client // given to MSAL (confidential.WithHTTPClient), without following redirects; nil = http.DefaultClient
	MaxClients    int          // MSAL clients kept, least recently used dropped first; 0 = DefaultMaxClients
}

// Provider hands out tokens. It keeps one MSAL client per (tenant, client ID, credential), so
// MSAL's in-memory token cache is reused across calls instead of asking Entra every time, up
// to MaxClients: the least recently used is dropped first, so the clients in use (the
// provisioner's in the tenants being onboarded) stay while one-off ones age out.
type Provider struct {
	authorityHost string
	hc            *http.Client
	salt          []byte // keys the credential fingerprints, so they are useless outside this process
	maxClients    int

	mu      sync.Mutex
	clients map[clientKey]*list.Element // of lru, whose values are *cachedClient
	lru     *list.List                  // most recently used first
}

type cachedClient struct {
	key    clientKey
	client confidential.Client
}

// clientKey identifies a cached MSAL client. The credential is only present as a SHA-256
// fingerprint, so the map never holds (or prints) a secret.
type clientKey struct {
	tenant, clientID, fingerprint string
}

// New returns a Provider.
func New(o Options) *Provider {
	host := strings.TrimRight(o.AuthorityHost, "/")
	if host == "" {
		host = DefaultAuthorityHost
	}
	salt := make([]byte, 32)
	_, _ = rand.Read(salt) // crypto/rand.Read never fails on supported platforms
	maxClients := o.MaxClients
	if maxClients <= 0 {
		maxClients = DefaultMaxClients
	}
	// The token request carries the client secret (or assertion): whatever
	// client was given, MSAL must not follow a redirect with it.
	return &Provider{authorityHost: host, hc: msapi.WithoutRedirects(o.HTTPClient), salt: salt, maxClients: maxClients,
		clients: map[clientKey]*list.Element{}, lru: list.New()}
}

// Token returns an access token for scope (e.g. "https://graph.microsoft.com/.default") in tenantID.
func (p *Provider) Token(ctx context.Context, tenantID string, cred Credential, scope string) (string, error) {
	if tenantID == "" || cred.ClientID == "" || scope == "" {
		return "", &msapi.Error{Service: "entra", Op: "token", Kind: msapi.Invalid,
			Message: "tenant ID, client ID and scope are required"}
	}
	c, err := p.client(tenantID, cred)
	if err != nil {
		return "", err
	}
	scopes := []string{scope}
	if res, err := c.AcquireTokenSilent(ctx, scopes); err == nil {
		return res.AccessToken, nil
	}
	res, err := c.AcquireTokenByCredential(ctx, scopes)
	if err != nil {
		return "", tokenError(err)
	}
	return res.AccessToken, nil
}

// Source binds a tenant, credential and scope into a msapi.TokenSource.
func (p *Provider) Source(tenantID string, cred Credential, scope string) msapi.TokenSource {
	return source{p: p, tenant: tenantID, cred: cred, scope: scope}
}

type source struct {
	p      *Provider
	tenant string
	cred   Credential
	scope  string
}

// String describes the source without its credential.
func (s source) String() string {
	return "msauth token source for " + s.cred.ClientID + " in " + s.tenant + " (" + s.scope + ")"
}

func (s source) Token(ctx context.Context) (string, error) {
	return s.p.Token(ctx, s.tenant, s.cred, s.scope)
}

// ScopeFor returns "<scheme>://<host[:port]>/.default" for any URL on a resource's host.
func ScopeFor(resourceURL string) string {
	u, err := url.Parse(resourceURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return strings.TrimRight(resourceURL, "/") + "/.default"
	}
	return u.Scheme + "://" + u.Host + "/.default"
}

func (p *Provider) client(tenantID string, cred Credential) (confidential.Client, error) {
	key := clientKey{tenant: strings.ToLower(tenantID), clientID: strings.ToLower(cred.ClientID), fingerprint: p.fingerprint(cred)}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.clients[key]; ok {
		p.lru.MoveToFront(e)
		return e.Value.(*cachedClient).client, nil
	}
	mc, err := newCredential(cred)
	if err != nil {
		return confidential.Client{}, err
	}
	opts := []confidential.Option{
		confidential.WithInstanceDiscovery(false),
		confidential.WithHTTPClient(p.hc),
	}
	c, err := confidential.New(p.authorityHost+"/"+url.PathEscape(tenantID), cred.ClientID, mc, opts...)
	if err != nil {
		// MSAL's message names the authority, never the credential.
		return confidential.Client{}, &msapi.Error{Service: "entra", Op: "newClient", Kind: msapi.Invalid, Err: err}
	}
	p.clients[key] = p.lru.PushFront(&cachedClient{key: key, client: c})
	for p.lru.Len() > p.maxClients {
		// A caller still holding the dropped client keeps a working copy; only reuse ends.
		oldest := p.lru.Back()
		p.lru.Remove(oldest)
		delete(p.clients, oldest.Value.(*cachedClient).key)
	}
	return c, nil
}

func newCredential(cred Credential) (confidential.Credential, error) {
	switch {
	case cred.Secret != "" && len(cred.CertificatePEM) > 0:
		return confidential.Credential{}, &msapi.Error{Service: "entra", Op: "credential", Kind: msapi.Invalid,
			Message: "give a client secret or a certificate, not both"}
	case cred.Secret != "":
		c, err := confidential.NewCredFromSecret(cred.Secret)
		if err != nil {
			return c, &msapi.Error{Service: "entra", Op: "credential", Kind: msapi.Invalid, Message: "empty client secret"}
		}
		return c, nil
	case len(cred.CertificatePEM) > 0:
		certs, key, err := confidential.CertFromPEM(cred.CertificatePEM, "")
		if err != nil {
			return confidential.Credential{}, &msapi.Error{Service: "entra", Op: "credential", Kind: msapi.Invalid,
				Message: "certificate PEM must hold a CERTIFICATE and an unencrypted PRIVATE KEY", Err: err}
		}
		c, err := confidential.NewCredFromCert(certs, key)
		if err != nil {
			return c, &msapi.Error{Service: "entra", Op: "credential", Kind: msapi.Invalid, Err: err}
		}
		return c, nil
	default:
		return confidential.Credential{}, &msapi.Error{Service: "entra", Op: "credential", Kind: msapi.Invalid,
			Message: "no client secret or certificate configured"}
	}
}

// fingerprint distinguishes credentials without keeping them: a rotated secret gets a new
// MSAL client (and cache), and the key is an HMAC under a per-Provider random salt, so even a
// dumped key says nothing about the secret.
func (p *Provider) fingerprint(cred Credential) string {
	h := hmac.New(sha256.New, p.salt)
	h.Write([]byte(cred.Secret))
	h.Write([]byte{0})
	h.Write(cred.CertificatePEM)
	return hex.EncodeToString(h.Sum(nil))
}

// tokenError turns an MSAL failure into an *msapi.Error. For an HTTP error MSAL returns a
// CallErr whose Resp carries Entra's body ({"error","error_description","error_codes"}); MSAL's
// own message embeds the token URL and the whole body, so it is not kept as the cause.
func tokenError(err error) error {
	var ce msalerrors.CallErr
	if errors.As(err, &ce) && ce.Resp != nil {
		var body []byte
		if ce.Resp.Body != nil {
			body, _ = io.ReadAll(io.LimitReader(ce.Resp.Body, 64<<10))
		}
		e := msapi.ErrorFromBody("entra", "token", ce.Resp.StatusCode, ce.Resp.Header, body)
		switch e.Code {
		case "invalid_client", "unauthorized_client":
			// The app or its secret is not known (yet): replication lag or a wrong credential.
			e.Kind = msapi.Unauthorized
		}
		return e
	}
	// No HTTP error response: the network failed, the context ended, or MSAL rejected a reply.
	return &msapi.Error{Service: "entra", Op: "token", Kind: msapi.Transient, Err: err}
}
