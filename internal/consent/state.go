// Package consent receives Microsoft Entra's admin-consent redirect and turns
// it into the onboarding's admin-consent signal. The redirect carries back the
// state parameter of the consent URL; mktos2s signs that state so that only a
// consent URL it issued, for that workflow, unexpired and used once, can
// signal a workflow.
package consent

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// MinKeyBytes is the shortest callback key accepted: HMAC-SHA256 gains
// nothing from more, and less would make the key guessable offline from any
// observed state.
const MinKeyBytes = 32

// DefaultAuthorityHost is the public cloud's Entra host.
const DefaultAuthorityHost = "https://login.microsoftonline.com"

// maxStateLen bounds the work done on hostile input; a real state is a few
// hundred characters (an org host is at most 253).
const maxStateLen = 2048

const nonceBytes = 16

// Verification failures. They are sentinels so that callers can tell them
// apart with errors.Is; the wrapped text never contains the state.
var (
	ErrMalformed    = errors.New("consent state is malformed")
	ErrBadSignature = errors.New("consent state signature does not match")
	ErrExpired      = errors.New("consent state has expired")
)

// Claims are what a verified state vouches for.
type Claims struct {
	WorkflowID string    // onboarding/<tenant>/<org host>
	RunID      string    // first run of the onboarding the link was made for; empty in links signed before runs were bound
	TenantID   string    // from WorkflowID
	OrgHost    string    // from WorkflowID
	Nonce      string    // single-use; see ReplayGuard
	Expires    time.Time // whole seconds
}

// payload is the signed part of a state. Short names keep the consent URL
// short; everything in it is public (the workflow ID is shown to operators
// anyway), so it is signed, not encrypted.
type payload struct {
	WorkflowID string `json:"w"`
	// RunID binds the link to one onboarding, not only to its workflow ID,
	// which a later onboarding of the same tenant and org reuses.
	RunID   string `json:"r,omitempty"`
	Expires int64  `json:"e"` // unix seconds
	Nonce   string `json:"n"`
}

// b64 is strict so that each payload and signature has exactly one
// encoding: a state cannot be varied without invalidating it.
var b64 = base64.RawURLEncoding.Strict()

// Signer issues and verifies consent states.
type Signer struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

// NewSigner returns a Signer whose states live for ttl. key is the
// configured consent.callbackKey (at least MinKeyBytes random bytes); now is
// the clock, nil for time.Now.
func NewSigner(key []byte, ttl time.Duration, now func() time.Time) (*Signer, error) {
	if len(key) < MinKeyBytes {
		// The length only, never the key: this error may be logged.
		return nil, fmt.Errorf("consent.callbackKey must be at least %d random bytes, got %d; generate one with `openssl rand -base64 32`", MinKeyBytes, len(key))
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("consent state lifetime must be positive, got %s; use the consent timeout, e.g. 168h", ttl)
	}
	if now == nil {
		now = time.Now
	}
	return &Signer{key: bytes.Clone(key), ttl: ttl, now: now}, nil
}

// Sign returns a state for the run runID of workflowID: base64url(payload) "."
// base64url(HMAC-SHA256(key, payload)). runID is the first run ID of the
// onboarding (the run chain's ID, which continue-as-new keeps). It uses only
// URL-safe characters, so it needs no escaping in a query.
func (s *Signer) Sign(workflowID, runID string) (string, error) {
	if _, _, err := splitWorkflowID(workflowID); err != nil {
		return "", err
	}
	if !validRunID(runID) {
		return "", fmt.Errorf("%w: run ID %q is not a Temporal run ID", ErrMalformed, runID)
	}
	n := make([]byte, nonceBytes)
	if _, err := rand.Read(n); err != nil {
		return "", fmt.Errorf("consent state nonce: %w", err)
	}
	p, err := json.Marshal(payload{
		WorkflowID: workflowID,
		RunID:      runID,
		Expires:    s.now().Add(s.ttl).Unix(),
		Nonce:      b64.EncodeToString(n),
	})
	if err != nil {
		return "", fmt.Errorf("consent state: %w", err)
	}
	return b64.EncodeToString(p) + "." + b64.EncodeToString(s.mac(p)), nil
}

// Verify checks a state's signature and expiry and returns its claims. The
// error is ErrMalformed, ErrBadSignature or ErrExpired (test with errors.Is);
// with ErrExpired the claims are returned too, so a caller can say when.
// Verify does not check for reuse: that is the ReplayGuard's job.
func (s *Signer) Verify(state string) (Claims, error) {
	if len(state) > maxStateLen {
		return Claims{}, fmt.Errorf("%w: longer than %d characters", ErrMalformed, maxStateLen)
	}
	// Go's base64 decoders skip \r and \n even in strict mode; refusing them
	// keeps one spelling per state.
	if strings.ContainsAny(state, "\r\n") {
		return Claims{}, fmt.Errorf("%w: line breaks in the state", ErrMalformed)
	}
	enc, encSig, ok := strings.Cut(state, ".")
	if !ok || enc == "" || encSig == "" {
		return Claims{}, fmt.Errorf("%w: want <payload>.<signature>", ErrMalformed)
	}
	p, err := b64.DecodeString(enc)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: payload is not base64url", ErrMalformed)
	}
	sig, err := b64.DecodeString(encSig)
	if err != nil || len(sig) != sha256.Size {
		return Claims{}, fmt.Errorf("%w: signature is not a base64url HMAC-SHA256", ErrMalformed)
	}
	// Nothing of the payload is interpreted before its signature is checked.
	if !hmac.Equal(sig, s.mac(p)) {
		return Claims{}, ErrBadSignature
	}
	var pl payload
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pl); err != nil || pl.Nonce == "" || pl.Expires <= 0 || (pl.RunID != "" && !validRunID(pl.RunID)) {
		return Claims{}, fmt.Errorf("%w: signed payload lacks workflow ID, expiry or nonce", ErrMalformed)
	}
	tenant, host, err := splitWorkflowID(pl.WorkflowID)
	if err != nil {
		return Claims{}, err
	}
	c := Claims{WorkflowID: pl.WorkflowID, RunID: pl.RunID, TenantID: tenant, OrgHost: host, Nonce: pl.Nonce, Expires: time.Unix(pl.Expires, 0).UTC()}
	if !s.now().Before(c.Expires) {
		return c, fmt.Errorf("%w at %s", ErrExpired, c.Expires.Format(time.RFC3339))
	}
	return c, nil
}

func (s *Signer) mac(p []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write(p)
	return m.Sum(nil)
}

// ConsentURL is the admin-consent link for one onboarding:
// {authorityHost}/{tenant}/adminconsent?client_id=…&redirect_uri=…&state=…
// (the endpoint that grants the permissions configured on the app
// registration; the v2.0 variant would need an explicit scope list). An
// empty authorityHost means DefaultAuthorityHost. tenantID must be the
// workflow's tenant, or the callback would be rejected later.
func (s *Signer) ConsentURL(authorityHost, tenantID, clientID, redirectURI, workflowID, runID string) (string, error) {
	host := strings.TrimRight(strings.TrimSpace(authorityHost), "/")
	if host == "" {
		host = DefaultAuthorityHost
	}
	if u, err := url.Parse(host); err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("authority host %q must be an https URL such as %s", authorityHost, DefaultAuthorityHost)
	}
	if u, err := url.Parse(redirectURI); err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" {
		return "", fmt.Errorf("consent redirect URI %q must be an absolute URL without a fragment (consent.redirectURI)", redirectURI)
	}
	if strings.TrimSpace(clientID) == "" {
		return "", errors.New("consent URL: the application (client) ID is empty")
	}
	wfTenant, _, err := splitWorkflowID(workflowID)
	if err != nil {
		return "", err
	}
	if !strings.EqualFold(strings.TrimSpace(tenantID), wfTenant) {
		return "", fmt.Errorf("consent URL: tenant %q is not the tenant of workflow %q", tenantID, workflowID)
	}
	state, err := s.Sign(workflowID, runID)
	if err != nil {
		return "", err
	}
	q := url.Values{}
	q.Set("client_id", clientID)
	q.Set("redirect_uri", redirectURI)
	q.Set("state", state)
	return host + "/" + url.PathEscape(strings.TrimSpace(tenantID)) + "/adminconsent?" + q.Encode(), nil
}

// splitWorkflowID parses "onboarding/<tenantID>/<org host>" (DESIGN.md's
// fixed workflow ID). It is parsed here rather than imported from package
// workflows because workflows depends on activities, which build consent URLs.
func splitWorkflowID(id string) (tenant, host string, err error) {
	parts := strings.Split(id, "/")
	if len(parts) != 3 || parts[0] != "onboarding" || parts[1] == "" || parts[2] == "" {
		return "", "", fmt.Errorf("%w: workflow ID %q is not onboarding/<tenant ID>/<org host>", ErrMalformed, id)
	}
	return parts[1], parts[2], nil
}

// validRunID accepts what Temporal issues as run IDs (UUIDs) without tying
// the state to one UUID format: 1 to 64 characters of letters, digits and '-'.
func validRunID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}
