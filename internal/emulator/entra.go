package emulator

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Entra ID (Microsoft identity platform v2.0) endpoints, following
// learn.microsoft.com/entra/identity-platform: v2-oauth2-client-creds-grant-flow,
// certificate-credentials, v2-admin-consent, reference-error-codes.

func writeEntraError(w http.ResponseWriter, status int, code, desc, reqID string) {
	var codes []int
	if n, ok := strings.CutPrefix(desc, "AADSTS"); ok {
		var v int
		if _, err := fmt.Sscanf(n, "%d", &v); err == nil {
			codes = append(codes, v)
		}
	}
	now := time.Now().UTC()
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": desc + "\r\nTrace ID: " + reqID + "\r\nCorrelation ID: " + reqID + "\r\nTimestamp: " + now.Format("2006-01-02 15:04:05Z"),
		"error_codes":       codes,
		"timestamp":         now.Format("2006-01-02 15:04:05Z"),
		"trace_id":          reqID,
		"correlation_id":    reqID,
	})
}

func (s *Server) entraRoute(r *http.Request) (route, int, string, string) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 2 {
		return route{}, http.StatusNotFound, "invalid_request", "AADSTS90012: The requested endpoint does not exist."
	}
	tail := strings.Join(parts[1:], "/")
	var rt route
	var method string
	switch tail {
	case "v2.0/.well-known/openid-configuration":
		rt, method = route{op: "entra.discovery", handle: s.discovery}, http.MethodGet
	case "discovery/v2.0/keys":
		rt, method = route{op: "entra.keys", handle: s.keys}, http.MethodGet
	case "oauth2/v2.0/token":
		rt, method = route{op: "entra.token", handle: s.token}, http.MethodPost
	case "adminconsent", "v2.0/adminconsent": // GET the page, POST its Accept or Cancel (adminconsent.go)
		rt, method = route{op: "entra.adminConsent", handle: s.adminConsent}, r.Method
		if r.Method != http.MethodPost {
			method = http.MethodGet
		}
	case "oauth2/v2.0/authorize": // GET the page, POST its form (authorize.go)
		rt, method = route{op: "entra.authorize", handle: s.authorize}, r.Method
		if r.Method != http.MethodPost {
			method = http.MethodGet
		}
	default:
		return route{}, http.StatusNotFound, "invalid_request", "AADSTS90012: The requested endpoint does not exist."
	}
	if r.Method != method {
		return route{}, http.StatusMethodNotAllowed, "invalid_request", "AADSTS900561: The endpoint only accepts " + method + " requests."
	}
	return rt, 0, "", ""
}

// tenantFromPath resolves the {tenant} segment (GUID or a domain name of the tenant).
func (s *Server) tenantFromPath(r *http.Request) (*tenant, string) {
	seg := strings.ToLower(strings.SplitN(strings.Trim(r.URL.Path, "/"), "/", 2)[0])
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tenants[seg]; ok {
		return t, seg
	}
	for _, t := range s.tenants {
		for _, d := range t.domains {
			if strings.EqualFold(d.Name, seg) {
				return t, seg
			}
		}
	}
	return nil, seg
}

func (s *Server) noTenant(w http.ResponseWriter, c *call, seg string) {
	s.writeError(w, svcEntra, c, http.StatusBadRequest, "invalid_tenant",
		fmt.Sprintf("AADSTS90002: Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", seg))
}

func (s *Server) discovery(w http.ResponseWriter, r *http.Request, c *call) {
	t, seg := s.tenantFromPath(r)
	if t == nil {
		s.noTenant(w, c, seg)
		return
	}
	base := s.URL() + "/" + t.id
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                base + "/v2.0",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "tid", "oid", "roles", "appid"},
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "microsoftonline.com",
		"request_uri_parameter_supported":       false,
	})
}

func (s *Server) keys(w http.ResponseWriter, r *http.Request, c *call) {
	if t, seg := s.tenantFromPath(r); t == nil {
		s.noTenant(w, c, seg)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": []jwk{rsaJWK(s.kid, &s.signKey.PublicKey)}})
}

// visible reports whether an object created at t has replicated (lag held in faults).
func (s *Server) visible(created time.Time) bool {
	return s.now().Sub(created) >= s.faults.lag()
}

// resourceAudience maps a requested resource to the audience of the token, or "" if unknown
// in tenant t. Called with s.mu held.
func (s *Server) resourceAudience(t *tenant, resource string) string {
	res := strings.TrimSuffix(strings.ToLower(resource), "/")
	if res == strings.ToLower(s.URL()) || res == "https://graph.microsoft.com" || res == VaultAudience {
		return res
	}
	u, err := url.Parse(res)
	if err != nil || u.Scheme != "https" || (u.Path != "" && u.Path != "/") {
		return ""
	}
	if o, ok := s.orgs[u.Hostname()]; ok && o.tenantID == t.id {
		if p := u.Port(); p == "" || p == fmt.Sprint(s.port) {
			return res
		}
	}
	return ""
}

func (s *Server) token(w http.ResponseWriter, r *http.Request, c *call) {
	t, seg := s.tenantFromPath(r)
	if t == nil {
		s.noTenant(w, c, seg)
		return
	}
	fail := func(status int, code, desc string) { s.writeError(w, svcEntra, c, status, code, desc) }
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		fail(http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body could not be parsed.")
		return
	}
	f := r.PostForm
	if f.Get("grant_type") == "" {
		fail(http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.")
		return
	}
	grant := f.Get("grant_type")
	if grant != "client_credentials" && grant != "authorization_code" && grant != "refresh_token" {
		fail(http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type '"+grant+"'.")
		return
	}
	clientID := strings.ToLower(f.Get("client_id"))
	if clientID == "" {
		fail(http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'client_id'.")
		return
	}
	// client authenticates the calling app; nil = the error was written. Called with s.mu held.
	client := func() *application {
		app := t.appByAppID(clientID)
		if app == nil || !s.visible(app.created) {
			fail(http.StatusBadRequest, "unauthorized_client", fmt.Sprintf("AADSTS700016: Application with identifier '%s' was not found in the directory '%s'.", clientID, t.displayName))
			return nil
		}
		if status, code, desc := s.clientAuthFailure(app, f, clientID, seg, t.id); status != 0 {
			fail(status, code, desc)
			return nil
		}
		return app
	}
	if grant != "client_credentials" {
		s.mu.Lock()
		defer s.mu.Unlock()
		if app := client(); app != nil {
			s.tokenDelegated(w, t, app, f, fail)
		}
		return
	}
	var scopes []string
	for _, sc := range strings.Fields(f.Get("scope")) {
		if sc != "openid" && sc != "offline_access" && sc != "profile" {
			scopes = append(scopes, sc)
		}
	}
	if len(scopes) != 1 || !strings.HasSuffix(scopes[0], "/.default") {
		fail(http.StatusBadRequest, "invalid_scope", "AADSTS1002012: The provided value for scope "+f.Get("scope")+
			" is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
		return
	}
	resource := strings.TrimSuffix(scopes[0], "/.default")

	s.mu.Lock()
	defer s.mu.Unlock()
	aud := s.resourceAudience(t, resource)
	if aud == "" {
		fail(http.StatusBadRequest, "invalid_resource", fmt.Sprintf("AADSTS500011: The resource principal named %s was not found in the tenant named %s.", resource, t.displayName))
		return
	}
	app := client()
	if app == nil {
		return
	}
	sp := t.spByAppID(clientID)
	if sp == nil || !s.visible(sp.created) {
		fail(http.StatusBadRequest, "invalid_client", fmt.Sprintf("AADSTS7000229: The client application %s is missing service principal in the tenant %s.", clientID, t.id))
		return
	}
	var roles []string
	if aud == strings.ToLower(s.URL()) || aud == "https://graph.microsoft.com" {
		roles = append(roles, app.roles...)
	}
	now := s.now()
	tok, err := s.issueToken(t.id, app.appID, sp.id, aud, roles, now, now.Add(tokenLifetime))
	if err != nil {
		fail(http.StatusInternalServerError, "server_error", "AADSTS50000: There was an error issuing a token.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": int(tokenLifetime.Seconds()) - 1,
		"ext_expires_in": int(tokenLifetime.Seconds()) - 1, "access_token": tok,
	})
}

// clientAuthFailure checks a confidential client's secret or assertion;
// status 0 = authenticated. Called with s.mu held.
func (s *Server) clientAuthFailure(app *application, f url.Values, clientID, seg, tenantID string) (int, string, string) {
	secret, assertion := f.Get("client_secret"), f.Get("client_assertion")
	switch {
	case secret != "":
		h := hashSecret(secret)
		var match *password
		for _, p := range app.passwords {
			if p.hash == h {
				match = p
			}
		}
		if match == nil || !s.visible(match.created) {
			return http.StatusUnauthorized, "invalid_client", fmt.Sprintf("AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID)
		}
		if now := s.now(); now.After(match.end) {
			return http.StatusUnauthorized, "invalid_client", fmt.Sprintf("AADSTS7000222: The provided client secret keys for app '%s' are expired.", clientID)
		} else if now.Before(match.start) {
			return http.StatusUnauthorized, "invalid_client", fmt.Sprintf("AADSTS7000215: Invalid client secret provided (not valid before %s).", match.start.UTC().Format(time.RFC3339))
		}
	case assertion != "":
		if f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			return http.StatusBadRequest, "invalid_request", "AADSTS700026: Client assertion type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer."
		}
		endpoint := s.URL() + "/" + seg + "/oauth2/v2.0/token"
		if desc := verifyAssertion(app, assertion, clientID, []string{endpoint, s.URL() + "/" + tenantID + "/oauth2/v2.0/token"}); desc != "" {
			return http.StatusUnauthorized, "invalid_client", desc
		}
	default:
		return http.StatusUnauthorized, "invalid_client", "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
	}
	return 0, "", ""
}

// verifyAssertion checks a private_key_jwt client assertion; "" = valid, else an AADSTS description.
func verifyAssertion(app *application, raw, clientID string, audiences []string) string {
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		for _, k := range []string{"x5t#S256", "x5t"} {
			v, _ := t.Header[k].(string)
			if v == "" {
				continue
			}
			thumb, err := decodeB64(v)
			if err != nil {
				return nil, err
			}
			der, ok := app.certThumbs[k+":"+string(thumb)]
			if !ok {
				return nil, errors.New("unknown certificate")
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, err
			}
			return cert.PublicKey, nil
		}
		return nil, errors.New("no x5t header")
	}, jwt.WithValidMethods([]string{"RS256", "PS256"}), jwt.WithExpirationRequired())
	switch {
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet):
		return "AADSTS700024: Client assertion is not within its valid time range."
	case err != nil:
		return fmt.Sprintf("AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application %s, or the signature is invalid.", clientID)
	case !strings.EqualFold(claims.Issuer, clientID) || !strings.EqualFold(claims.Subject, clientID):
		return "AADSTS700023: Client assertion issuer and subject must be the client_id."
	}
	for _, a := range claims.Audience {
		if slices.ContainsFunc(audiences, func(x string) bool { return strings.EqualFold(x, a) }) {
			return ""
		}
	}
	return "AADSTS700212: No matching federated identity record found for presented assertion audience."
}

func decodeB64(v string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(v); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("bad base64")
}

func (s *Server) consentPage(w http.ResponseWriter, c *call, status int, msg string) {
	c.status = status
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><html><head><title>Admin consent</title></head><body><h1>Microsoft Entra ID (emulator)</h1><p>%s</p></body></html>\n", html.EscapeString(msg))
}
