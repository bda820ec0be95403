package consent

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// The customer-admin session mode (README "One action per customer") sends
// the admin through two Microsoft screens in one browser session: the v2
// admin consent for the provisioner, then a sign-in (authorization code with
// PKCE) whose code lends the provisioner the admin's delegated token for one
// step. Both come back to the session redirect URI with a state this Signer
// issued.

// ProvisionerConsentScope is what the v2 admin consent asks for: ".default"
// = every permission configured on the provisioner's registration
// (learn.microsoft.com/entra/identity-platform/v2-admin-consent).
const ProvisionerConsentScope = "https://graph.microsoft.com/.default"

// SessionConsentURL is the link the operator sends: the v2 admin-consent
// endpoint for the provisioner (clientID) in tenantID, back to redirectURI
// (the session callback), with a signed single-use state for the run runID
// (first run ID) of workflowID.
func (s *Signer) SessionConsentURL(authorityHost, tenantID, clientID, redirectURI, workflowID, runID string) (string, error) {
	v1, err := s.ConsentURL(authorityHost, tenantID, clientID, redirectURI, workflowID, runID)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(v1)
	if err != nil {
		return "", fmt.Errorf("session consent URL: %w", err)
	}
	u.Path = strings.TrimSuffix(u.Path, "/adminconsent") + "/v2.0/adminconsent"
	q := u.Query()
	q.Set("scope", ProvisionerConsentScope)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// SignInURL is the authorization-code request (PKCE S256) that follows the
// consent in the same browser: a fresh signed state for workflowID, whose
// nonce derives the code verifier (Verifier), so the verifier is never sent,
// stored or signalled. scope is the delegated scope plus offline_access.
func (s *Signer) SignInURL(authorityHost, tenantID, clientID, redirectURI, workflowID, runID, scope string) (string, error) {
	host := strings.TrimRight(strings.TrimSpace(authorityHost), "/")
	if host == "" {
		host = DefaultAuthorityHost
	}
	if u, err := url.Parse(host); err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("authority host %q must be an https URL such as %s", authorityHost, DefaultAuthorityHost)
	}
	state, err := s.Sign(workflowID, runID)
	if err != nil {
		return "", err
	}
	c, err := s.Verify(state)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(s.Verifier(workflowID, c.Nonce)))
	q := url.Values{}
	q.Set("client_id", clientID)
	q.Set("response_type", "code")
	q.Set("redirect_uri", redirectURI)
	q.Set("response_mode", "query")
	q.Set("scope", scope)
	q.Set("state", state)
	q.Set("code_challenge", b64.EncodeToString(sum[:]))
	q.Set("code_challenge_method", "S256")
	return host + "/" + url.PathEscape(strings.TrimSpace(tenantID)) + "/oauth2/v2.0/authorize?" + q.Encode(), nil
}

// Verifier is the PKCE code verifier of a sign-in whose state had nonce:
// base64url(HMAC-SHA256(key, "pkce" 0 workflowID 0 nonce)), 43 characters
// (RFC 7636 4.1 asks for 43..128 unreserved characters). The worker holds
// the same callback key and recomputes it to redeem the code.
func (s *Signer) Verifier(workflowID, nonce string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("pkce\x00" + workflowID + "\x00" + nonce))
	return b64.EncodeToString(m.Sum(nil))
}

// SessionRedirectURI is the session callback beside the consent callback:
// the same origin, the last path element "session" (…/consent/callback →
// …/consent/session). The provisioner's registration lists it.
func SessionRedirectURI(consentRedirectURI string) (string, error) {
	u, err := url.Parse(consentRedirectURI)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return "", fmt.Errorf("consent redirect URI %q must be an absolute URL (consent.redirectURI)", consentRedirectURI)
	}
	i := strings.LastIndex(u.Path, "/")
	u.Path, u.RawQuery, u.Fragment = u.Path[:max(i, 0)]+"/session", "", ""
	return u.String(), nil
}

// SealCode encrypts an authorization code for the admin-session signal, so
// the code is never plain text in a payload, the history or the UI:
// AES-256-GCM under a key derived from the callback key, bound to the
// workflow (additional data), base64url(nonce|ciphertext). The worker holds
// the same key and opens it once, to redeem it.
func (s *Signer) SealCode(code, workflowID string) (string, error) {
	aead, err := s.codeAEAD()
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal code: %w", err)
	}
	return b64.EncodeToString(aead.Seal(nonce, nonce, []byte(code), []byte(workflowID))), nil
}

// OpenCode reverses SealCode; the error never contains the code.
func (s *Signer) OpenCode(sealed, workflowID string) (string, error) {
	aead, err := s.codeAEAD()
	if err != nil {
		return "", err
	}
	raw, err := b64.DecodeString(sealed)
	if err != nil || len(raw) < aead.NonceSize() {
		return "", errors.New("sealed code is malformed")
	}
	pt, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(workflowID))
	if err != nil {
		return "", errors.New("sealed code does not open with this callback key for this workflow")
	}
	return string(pt), nil
}

func (s *Signer) codeAEAD() (cipher.AEAD, error) {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("seal-code"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("seal code: %w", err)
	}
	return cipher.NewGCM(block)
}
