package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// Microsoft Graph v1.0, following learn.microsoft.com/graph/api: application-upsert, application-get,
// application-delete, application-addpassword, application-removepassword, serviceprincipal-upsert,
// serviceprincipal-get, serviceprincipal-delete, domain-list, homerealmdiscoverypolicy-post-homerealmdiscoverypolicies,
// serviceprincipal-post-homerealmdiscoverypolicies, serviceprincipal-list-homerealmdiscoverypolicies,
// serviceprincipal-delete-homerealmdiscoverypolicies, homerealmdiscoverypolicy-delete,
// oauth2permissiongrant-list, organization-list.

// Wire types of the Graph resources, written from the resource-type pages.
type wireResourceAccess struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

type wireRRA struct {
	ResourceAppID  string               `json:"resourceAppId"`
	ResourceAccess []wireResourceAccess `json:"resourceAccess"`
}

type wireImplicitGrant struct {
	EnableAccessTokenIssuance bool `json:"enableAccessTokenIssuance"`
	EnableIDTokenIssuance     bool `json:"enableIdTokenIssuance"`
}

type wireWeb struct {
	RedirectURIs          []string           `json:"redirectUris"`
	HomePageURL           *string            `json:"homePageUrl,omitempty"`
	LogoutURL             *string            `json:"logoutUrl,omitempty"`
	ImplicitGrantSettings *wireImplicitGrant `json:"implicitGrantSettings,omitempty"`
}

type wireRedirects struct {
	RedirectURIs []string `json:"redirectUris"`
}

// wireApplicationWrite is the body of PATCH (upsert/update) of an application.
type wireApplicationWrite struct {
	ODataType              string           `json:"@odata.type,omitempty"`
	DisplayName            *string          `json:"displayName"`
	Description            *string          `json:"description"`
	Notes                  *string          `json:"notes"`
	SignInAudience         *string          `json:"signInAudience"`
	Tags                   []string         `json:"tags"`
	IdentifierURIs         []string         `json:"identifierUris"`
	IsFallbackPublicClient *bool            `json:"isFallbackPublicClient"`
	UniqueName             *string          `json:"uniqueName"`
	Web                    *wireWeb         `json:"web"`
	Spa                    *wireRedirects   `json:"spa"`
	PublicClient           *wireRedirects   `json:"publicClient"`
	RequiredResourceAccess *[]wireRRA       `json:"requiredResourceAccess"`
	PasswordCredentials    *json.RawMessage `json:"passwordCredentials"`
	KeyCredentials         *json.RawMessage `json:"keyCredentials"`
}

type wirePasswordCredential struct {
	CustomKeyIdentifier *string `json:"customKeyIdentifier"`
	DisplayName         *string `json:"displayName"`
	EndDateTime         *string `json:"endDateTime"`
	Hint                *string `json:"hint"`
	KeyID               *string `json:"keyId"`
	SecretText          *string `json:"secretText"`
	StartDateTime       *string `json:"startDateTime"`
}

type wireServicePrincipalWrite struct {
	ODataType                 string   `json:"@odata.type,omitempty"`
	AppID                     *string  `json:"appId"`
	AccountEnabled            *bool    `json:"accountEnabled"`
	AppRoleAssignmentRequired *bool    `json:"appRoleAssignmentRequired"`
	Description               *string  `json:"description"`
	DisplayName               *string  `json:"displayName"`
	Homepage                  *string  `json:"homepage"`
	LoginURL                  *string  `json:"loginUrl"`
	Notes                     *string  `json:"notes"`
	Tags                      []string `json:"tags"`
}

type wireHRDPolicyWrite struct {
	ODataType             string   `json:"@odata.type,omitempty"`
	Definition            []string `json:"definition"`
	Description           *string  `json:"description"`
	DisplayName           *string  `json:"displayName"`
	IsOrganizationDefault *bool    `json:"isOrganizationDefault"`
}

type wireRef struct {
	ODataID string `json:"@odata.id"`
}

const (
	permAppOwnedBy  = "Application.ReadWrite.OwnedBy"
	permAppAll      = "Application.ReadWrite.All"
	permAppReadAll  = "Application.Read.All"
	permDirReadAll  = "Directory.Read.All"
	permDirRWAll    = "Directory.ReadWrite.All"
	permPolicyApp   = "Policy.ReadWrite.ApplicationConfiguration"
	permPolicyRead  = "Policy.Read.All"
	permDomainRead  = "Domain.Read.All"
	permDomainRW    = "Domain.ReadWrite.All"
	permGrantRWAll  = "DelegatedPermissionGrant.ReadWrite.All"
	permOrgReadAll  = "Organization.Read.All"
	permOrgRWAll    = "Organization.ReadWrite.All"
	msgInsufficient = "Insufficient privileges to complete the operation."
)

func (c *call) has(perms ...string) bool {
	return slices.ContainsFunc(perms, func(p string) bool { return slices.Contains(c.claims.Roles, p) })
}

// canWrite: Application.ReadWrite.All, or Application.ReadWrite.OwnedBy on
// an object the caller created (application-upsert, application-delete,
// serviceprincipal-upsert: Directory.ReadWrite.All is not listed).
func (c *call) canWrite(owner string) bool {
	return c.has(permAppAll) || (c.has(permAppOwnedBy) && owner != "" && strings.EqualFold(owner, c.claims.AppID))
}

// canRead: Microsoft documents that Application.ReadWrite.OwnedBy lets an
// app read every application and service principal of the tenant, not
// only its own (application-get, serviceprincipal-get).
func (c *call) canRead(owner string) bool {
	return c.canWrite(owner) || c.has(permAppReadAll, permDirReadAll, permAppOwnedBy)
}

// keySegment parses `name(key='value')`.
func keySegment(seg, name string) (key, val string, ok bool) {
	rest, found := strings.CutPrefix(seg, name+"(")
	if !found || !strings.HasSuffix(rest, ")") {
		return "", "", false
	}
	rest = strings.TrimSuffix(rest, ")")
	k, v, found := strings.Cut(rest, "=")
	if !found || len(v) < 2 || v[0] != '\'' || v[len(v)-1] != '\'' {
		return "", "", false
	}
	return k, strings.ReplaceAll(v[1:len(v)-1], "''", "'"), true
}

type graphHandler = func(w http.ResponseWriter, r *http.Request, c *call)

func (s *Server) graphRoute(r *http.Request) (route, int, string, string) {
	segs := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/v1.0"), "/"), "/")
	m := r.Method
	var op string
	var h graphHandler
	methods := map[string]struct {
		op string
		h  graphHandler
	}{}
	add := func(method, op string, h graphHandler) {
		methods[method] = struct {
			op string
			h  graphHandler
		}{op, h}
	}
	badSeg := func(seg string) (route, int, string, string) {
		return route{}, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", seg)
	}
	switch {
	case len(segs) == 1 && segs[0] == "domains":
		add(http.MethodGet, "graph.listDomains", s.gListDomains)
	case len(segs) == 1 && segs[0] == "organization":
		add(http.MethodGet, "graph.organization", s.gOrganization)
	case len(segs) == 1 && segs[0] == "oauth2PermissionGrants":
		add(http.MethodGet, "graph.listPermissionGrants", s.gListGrants)
	case len(segs) == 1 && segs[0] == "servicePrincipals":
		add(http.MethodPost, "graph.createServicePrincipal", s.gCreateSP)
	case len(segs) == 2 && segs[0] == "policies" && segs[1] == "homeRealmDiscoveryPolicies":
		add(http.MethodGet, "graph.listHRDPolicies", s.gListPolicies)
		add(http.MethodPost, "graph.createHRDPolicy", s.gCreatePolicy)
	case len(segs) == 3 && segs[0] == "policies" && segs[1] == "homeRealmDiscoveryPolicies":
		id := segs[2]
		add(http.MethodGet, "graph.getHRDPolicy", func(w http.ResponseWriter, r *http.Request, c *call) { s.gGetPolicy(w, c, id) })
		add(http.MethodDelete, "graph.deleteHRDPolicy", func(w http.ResponseWriter, r *http.Request, c *call) { s.gDeletePolicy(w, c, id) })
	case strings.HasPrefix(segs[0], "applications"):
		sel, rest, ok := objectSelector(segs, "applications", "uniqueName", "appId")
		if !ok {
			return badSeg(segs[0])
		}
		segs = rest
		switch {
		case len(segs) == 1:
			add(http.MethodGet, "graph.getApplication", func(w http.ResponseWriter, r *http.Request, c *call) { s.gGetApp(w, r, c, sel) })
			add(http.MethodPatch, "graph.upsertApplication", func(w http.ResponseWriter, r *http.Request, c *call) { s.gUpsertApp(w, r, c, sel) })
			add(http.MethodDelete, "graph.deleteApplication", func(w http.ResponseWriter, r *http.Request, c *call) { s.gDeleteApp(w, c, sel) })
		case len(segs) == 2 && segs[1] == "addPassword":
			add(http.MethodPost, "graph.addPassword", func(w http.ResponseWriter, r *http.Request, c *call) { s.gAddPassword(w, r, c, sel) })
		case len(segs) == 2 && segs[1] == "removePassword":
			add(http.MethodPost, "graph.removePassword", func(w http.ResponseWriter, r *http.Request, c *call) { s.gRemovePassword(w, r, c, sel) })
		default:
			return badSeg(segs[len(segs)-1])
		}
	case strings.HasPrefix(segs[0], "servicePrincipals"):
		sel, rest, ok := objectSelector(segs, "servicePrincipals", "appId")
		if !ok {
			return badSeg(segs[0])
		}
		segs = rest
		switch {
		case len(segs) == 1:
			add(http.MethodGet, "graph.getServicePrincipal", func(w http.ResponseWriter, r *http.Request, c *call) { s.gGetSP(w, c, sel) })
			if sel.key == "appId" {
				add(http.MethodPatch, "graph.upsertServicePrincipal", func(w http.ResponseWriter, r *http.Request, c *call) { s.gUpsertSP(w, r, c, sel.val) })
			}
			add(http.MethodDelete, "graph.deleteServicePrincipal", func(w http.ResponseWriter, r *http.Request, c *call) { s.gDeleteSP(w, c, sel) })
		case len(segs) == 2 && segs[1] == "homeRealmDiscoveryPolicies":
			add(http.MethodGet, "graph.listAssignedHRDPolicies", func(w http.ResponseWriter, r *http.Request, c *call) { s.gListAssigned(w, c, sel) })
		case len(segs) == 3 && segs[1] == "homeRealmDiscoveryPolicies" && segs[2] == "$ref":
			add(http.MethodPost, "graph.assignHRDPolicy", func(w http.ResponseWriter, r *http.Request, c *call) { s.gAssign(w, r, c, sel) })
		case len(segs) == 4 && segs[1] == "homeRealmDiscoveryPolicies" && segs[3] == "$ref":
			pid := segs[2]
			add(http.MethodDelete, "graph.unassignHRDPolicy", func(w http.ResponseWriter, r *http.Request, c *call) { s.gUnassign(w, c, sel, pid) })
		default:
			return badSeg(segs[len(segs)-1])
		}
	default:
		return badSeg(segs[0])
	}
	e, ok := methods[m]
	if !ok {
		return route{}, http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request target."
	}
	op, h = e.op, e.h
	return route{op: op, handle: h, auth: true}, 0, "", ""
}

type selector struct{ key, val string } // key "id", "appId" or "uniqueName"

// objectSelector reads "coll/{id}/..." or "coll(key='v')/..." and returns the selector and the
// path with the addressed object as its first segment.
func objectSelector(segs []string, coll string, keys ...string) (selector, []string, bool) {
	if segs[0] == coll {
		if len(segs) < 2 || segs[1] == "" {
			return selector{}, nil, false
		}
		return selector{"id", segs[1]}, segs[1:], true
	}
	key, v, ok := keySegment(segs[0], coll)
	if !ok || !slices.Contains(keys, key) {
		return selector{}, nil, false
	}
	return selector{key, v}, segs, true
}

func (s *Server) graphAuth(w http.ResponseWriter, r *http.Request, c *call) bool {
	tok, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		s.writeError(w, svcGraph, c, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
		return false
	}
	claims, err := s.verifyToken(tok)
	if errors.Is(err, errTokenExpired) {
		s.writeError(w, svcGraph, c, http.StatusUnauthorized, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
		return false
	}
	if err != nil {
		s.writeError(w, svcGraph, c, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid signature or issuer.")
		return false
	}
	aud := ""
	if len(claims.Audience) == 1 {
		aud = claims.Audience[0]
	}
	if aud != strings.ToLower(s.URL()) && aud != "https://graph.microsoft.com" {
		s.writeError(w, svcGraph, c, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
		return false
	}
	s.mu.Lock()
	t := s.tenants[claims.TenantID]
	s.mu.Unlock()
	if t == nil {
		s.writeError(w, svcGraph, c, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid tenant.")
		return false
	}
	c.claims, c.tenant = claims, t
	return true
}

func (s *Server) denied(w http.ResponseWriter, c *call) {
	s.writeError(w, svcGraph, c, http.StatusForbidden, "Authorization_RequestDenied", msgInsufficient)
}

// allowed reports whether the caller holds one of perms and answers 403 when it does not.
func (s *Server) allowed(w http.ResponseWriter, c *call, perms ...string) bool {
	if !c.has(perms...) {
		s.denied(w, c)
		return false
	}
	return true
}

func (s *Server) notFound(w http.ResponseWriter, c *call, id string) {
	s.writeError(w, svcGraph, c, http.StatusNotFound, "Request_ResourceNotFound",
		fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", id))
}

func (s *Server) badRequest(w http.ResponseWriter, c *call, msg string) {
	s.writeError(w, svcGraph, c, http.StatusBadRequest, "Request_BadRequest", msg)
}

// decodeStrict decodes a JSON body, rejecting unknown properties as Graph does.
func decodeStrict(r *http.Request, v any) error {
	prop, err := decodeExact(r.Body, v)
	if prop != "" {
		return fmt.Errorf("Property '%s' does not exist as a declared property or extension property.", prop)
	}
	if err != nil {
		return fmt.Errorf("Invalid request body: %v.", err)
	}
	return nil
}

// decodeGraph decodes the body as decodeStrict does and answers 400 when it cannot.
func (s *Server) decodeGraph(w http.ResponseWriter, r *http.Request, c *call, v any) bool {
	if err := decodeStrict(r, v); err != nil {
		s.badRequest(w, c, err.Error())
		return false
	}
	return true
}

// noContent answers 204 and notes the status on the call, as writeError does.
func noContent(w http.ResponseWriter, c *call) {
	c.status = http.StatusNoContent
	w.WriteHeader(http.StatusNoContent)
}

// createIfMissing reports whether a PATCH asks for upsert ("Prefer: create-if-missing").
func createIfMissing(r *http.Request) bool {
	return strings.Contains(strings.ToLower(r.Header.Get("Prefer")), "create-if-missing")
}

func (s *Server) ctxURL(entity string) string { return s.URL() + "/v1.0/$metadata#" + entity }

func (s *Server) findApp(t *tenant, sel selector) *application {
	switch sel.key {
	case "uniqueName":
		return t.appByUniqueName(sel.val)
	case "appId":
		return t.appByAppID(sel.val)
	}
	return t.apps[strings.ToLower(sel.val)]
}

// owned finds the object sel addresses with find and checks the caller with may (canRead or
// canWrite) against the object's owner, answering 404 or 403 and returning nil when either
// fails. Called with s.mu held.
func owned[T any](s *Server, w http.ResponseWriter, c *call, sel selector,
	find func(*tenant, selector) *T, owner func(*T) string, may func(*call, string) bool) *T {
	x := find(c.tenant, sel)
	if x == nil {
		s.notFound(w, c, sel.val)
		return nil
	}
	if !may(c, owner(x)) {
		s.denied(w, c)
		return nil
	}
	return x
}

// appFor is owned for applications.
func (s *Server) appFor(w http.ResponseWriter, c *call, sel selector, may func(*call, string) bool) *application {
	return owned(s, w, c, sel, s.findApp, func(a *application) string { return a.owner }, may)
}

func wirePassword(p *password, secret *string) map[string]any {
	return map[string]any{
		"customKeyIdentifier": nil, "displayName": p.displayName, "endDateTime": p.end.UTC().Format(time.RFC3339Nano),
		"hint": p.hint, "keyId": p.keyID, "secretText": secret, "startDateTime": p.start.UTC().Format(time.RFC3339Nano),
	}
}

func (s *Server) wireApp(a *application) map[string]any {
	pw := []map[string]any{}
	for _, p := range a.passwords {
		pw = append(pw, wirePassword(p, nil))
	}
	rra := a.rra
	if rra == nil {
		rra = []wireRRA{}
	}
	ru := a.redirectURIs
	if ru == nil {
		ru = []string{}
	}
	return map[string]any{
		"@odata.context": s.ctxURL("applications/$entity"),
		"id":             a.id, "appId": a.appID, "displayName": a.displayName, "uniqueName": nilIfEmpty(a.uniqueName),
		"signInAudience": a.signInAudience, "createdDateTime": a.created.UTC().Format(time.RFC3339),
		"web":                    map[string]any{"redirectUris": ru, "homePageUrl": nil, "logoutUrl": nil},
		"requiredResourceAccess": rra, "passwordCredentials": pw, "keyCredentials": []any{}, "identifierUris": []string{},
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func selectFields(m map[string]any, r *http.Request) (map[string]any, error) {
	sel := r.URL.Query().Get("$select")
	if sel == "" {
		return m, nil
	}
	out := map[string]any{"@odata.context": m["@odata.context"]}
	for _, f := range strings.Split(sel, ",") {
		f = strings.TrimSpace(f)
		v, ok := m[f]
		if !ok {
			return nil, fmt.Errorf("Could not find a property named '%s' on type 'microsoft.graph.application'.", f)
		}
		out[f] = v
	}
	return out, nil
}

func (s *Server) gGetApp(w http.ResponseWriter, r *http.Request, c *call, sel selector) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.appFor(w, c, sel, (*call).canRead)
	if a == nil {
		return
	}
	out, err := selectFields(s.wireApp(a), r)
	if err != nil {
		s.badRequest(w, c, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func validRedirect(u string) bool {
	p, err := url.Parse(u)
	if err != nil || !p.IsAbs() || p.Host == "" {
		return false
	}
	return p.Scheme == "https" || (p.Scheme == "http" && (p.Hostname() == "localhost" || p.Hostname() == "127.0.0.1"))
}

func (s *Server) gUpsertApp(w http.ResponseWriter, r *http.Request, c *call, sel selector) {
	var in wireApplicationWrite
	if !s.decodeGraph(w, r, c, &in) {
		return
	}
	if in.PasswordCredentials != nil || in.KeyCredentials != nil {
		s.badRequest(w, c, "Updating credentials with PATCH is not supported; use addPassword and removePassword.")
		return
	}
	if in.SignInAudience != nil && !slices.Contains([]string{"AzureADMyOrg", "AzureADMultipleOrgs", "AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount"}, *in.SignInAudience) {
		s.badRequest(w, c, "Invalid value specified for property 'signInAudience' of resource 'Application'.")
		return
	}
	if in.Web != nil {
		for _, u := range in.Web.RedirectURIs {
			if !validRedirect(u) {
				s.badRequest(w, c, "Invalid value specified for property 'web.redirectUris' of resource 'Application'.")
				return
			}
		}
	}
	if in.RequiredResourceAccess != nil {
		for _, rra := range *in.RequiredResourceAccess {
			if !isGUID(rra.ResourceAppID) {
				s.badRequest(w, c, "Invalid value specified for property 'resourceAppId' of resource 'RequiredResourceAccess'.")
				return
			}
			for _, ra := range rra.ResourceAccess {
				if !isGUID(ra.ID) || (ra.Type != "Scope" && ra.Type != "Role") {
					s.badRequest(w, c, "Invalid value specified for property 'resourceAccess' of resource 'RequiredResourceAccess'.")
					return
				}
			}
		}
	}
	if in.UniqueName != nil && sel.key == "uniqueName" && *in.UniqueName != sel.val {
		s.badRequest(w, c, "Property 'uniqueName' is read-only once set and cannot be updated.")
		return
	}
	create := createIfMissing(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	t := c.tenant
	a := s.findApp(t, sel)
	if a == nil {
		if !create || sel.key != "uniqueName" {
			s.notFound(w, c, sel.val)
			return
		}
		if !c.has(permAppOwnedBy, permAppAll, permDirRWAll) {
			s.denied(w, c)
			return
		}
		if in.DisplayName == nil || *in.DisplayName == "" {
			s.badRequest(w, c, "Property 'displayName' is required when creating the application.")
			return
		}
		a = &application{
			id: newGUID(), appID: newGUID(), uniqueName: sel.val, signInAudience: "AzureADMyOrg",
			certThumbs: map[string][]byte{}, owner: c.claims.AppID, created: s.now(), lagUntil: s.appLagUntil(), seq: t.next(),
		}
		applyAppWrite(a, &in)
		t.apps[a.id] = a
		w.Header().Set("Location", s.URL()+"/v1.0/applications/"+a.id)
		writeJSON(w, http.StatusCreated, s.wireApp(a))
		return
	}
	if !c.canWrite(a.owner) {
		s.denied(w, c)
		return
	}
	applyAppWrite(a, &in)
	noContent(w, c)
}

func applyAppWrite(a *application, in *wireApplicationWrite) {
	if in.DisplayName != nil {
		a.displayName = *in.DisplayName
	}
	if in.SignInAudience != nil {
		a.signInAudience = *in.SignInAudience
	}
	if in.Web != nil {
		a.redirectURIs = append([]string(nil), in.Web.RedirectURIs...)
	}
	if in.RequiredResourceAccess != nil {
		a.rra = append([]wireRRA(nil), (*in.RequiredResourceAccess)...)
	}
}

func (s *Server) gDeleteApp(w http.ResponseWriter, c *call, sel selector) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := c.tenant
	a := s.appFor(w, c, sel, (*call).canWrite)
	if a == nil {
		return
	}
	for _, p := range a.passwords {
		s.auditPassword(t, PasswordAppDeleted, a, p)
	}
	delete(t.apps, a.id)
	if sp := t.spByAppID(a.appID); sp != nil { // Entra soft-deletes the SP with its application
		s.removeSP(t, sp)
	}
	noContent(w, c)
}

func (s *Server) removeSP(t *tenant, sp *servicePrincipal) {
	delete(t.sps, sp.id)
	for id, g := range t.grants {
		if g.clientID == sp.id {
			delete(t.grants, id)
		}
	}
}

func (s *Server) gAddPassword(w http.ResponseWriter, r *http.Request, c *call, sel selector) {
	var in struct {
		PasswordCredential *wirePasswordCredential `json:"passwordCredential"`
	}
	if !s.decodeGraph(w, r, c, &in) {
		return
	}
	now := s.now()
	start, end := now, now.AddDate(2, 0, 0)
	name := ""
	if pc := in.PasswordCredential; pc != nil {
		if pc.SecretText != nil || pc.KeyID != nil || pc.Hint != nil {
			s.badRequest(w, c, "Properties 'secretText', 'keyId' and 'hint' are generated by the service and cannot be set.")
			return
		}
		if pc.DisplayName != nil {
			name = *pc.DisplayName
		}
		for _, f := range []struct {
			v   *string
			dst *time.Time
		}{{pc.StartDateTime, &start}, {pc.EndDateTime, &end}} {
			if f.v == nil {
				continue
			}
			tm, err := time.Parse(time.RFC3339Nano, *f.v)
			if err != nil {
				s.badRequest(w, c, "Invalid date/time value '"+*f.v+"'.")
				return
			}
			*f.dst = tm
		}
	}
	if !end.After(start) || !end.After(now) {
		s.badRequest(w, c, "Invalid value specified for property 'endDateTime' of resource 'PasswordCredential'.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.appFor(w, c, sel, (*call).canWrite)
	if a == nil {
		return
	}
	if s.now().Before(a.lagUntil) { // the new app has not replicated to this replica yet
		s.notFound(w, c, sel.val)
		return
	}
	secret := newSecret()
	p := &password{keyID: newGUID(), displayName: name, hint: hintOf(secret), hash: hashSecret(secret), start: start, end: end, created: now}
	a.passwords = append(a.passwords, p)
	s.auditPassword(c.tenant, PasswordAdded, a, p)
	if s.secretIssued != nil {
		s.secretIssued(p.keyID, secret)
	}
	out := wirePassword(p, &secret)
	out["@odata.context"] = s.ctxURL("microsoft.graph.passwordCredential")
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) gRemovePassword(w http.ResponseWriter, r *http.Request, c *call, sel selector) {
	var in struct {
		KeyID string `json:"keyId"`
	}
	if !s.decodeGraph(w, r, c, &in) {
		return
	}
	if !isGUID(in.KeyID) {
		s.badRequest(w, c, "Invalid value specified for property 'keyId'.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.appFor(w, c, sel, (*call).canWrite)
	if a == nil {
		return
	}
	i := slices.IndexFunc(a.passwords, func(p *password) bool { return strings.EqualFold(p.keyID, in.KeyID) })
	if i < 0 {
		// Microsoft documents only the 204. An unknown keyId is a bad
		// request on the app (the app itself exists), not a 404 the caller
		// could take for "already gone": the activities read the list
		// again to tell a removed key from a refused request.
		s.badRequest(w, c, "No password credential with keyId '"+in.KeyID+"' exists on the application.")
		return
	}
	s.auditPassword(c.tenant, PasswordRemoved, a, a.passwords[i])
	a.passwords = slices.Delete(a.passwords, i, i+1)
	noContent(w, c)
}

func (s *Server) wireSP(sp *servicePrincipal) map[string]any {
	return map[string]any{
		"@odata.context": s.ctxURL("servicePrincipals/$entity"),
		"id":             sp.id, "appId": sp.appID, "displayName": sp.displayName, "accountEnabled": true,
		"servicePrincipalType": "Application", "appOwnerOrganizationId": nil,
	}
}

func (s *Server) findSP(t *tenant, sel selector) *servicePrincipal {
	if sel.key == "appId" {
		return t.spByAppID(sel.val)
	}
	return t.sps[strings.ToLower(sel.val)]
}

// spFor is owned for service principals.
func (s *Server) spFor(w http.ResponseWriter, c *call, sel selector, may func(*call, string) bool) *servicePrincipal {
	return owned(s, w, c, sel, s.findSP, func(sp *servicePrincipal) string { return sp.owner }, may)
}

func (s *Server) gGetSP(w http.ResponseWriter, c *call, sel selector) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.spFor(w, c, sel, (*call).canRead)
	if sp == nil {
		return
	}
	writeJSON(w, http.StatusOK, s.wireSP(sp))
}

func (s *Server) gUpsertSP(w http.ResponseWriter, r *http.Request, c *call, appID string) {
	var in wireServicePrincipalWrite
	if !s.decodeGraph(w, r, c, &in) {
		return
	}
	create := createIfMissing(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.createOrUpdateSP(w, c, appID, &in, create, true)
}

func (s *Server) gCreateSP(w http.ResponseWriter, r *http.Request, c *call) {
	var in wireServicePrincipalWrite
	if !s.decodeGraph(w, r, c, &in) {
		return
	}
	if in.AppID == nil || !isGUID(*in.AppID) {
		s.badRequest(w, c, "Property 'appId' is required.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.tenant.spByAppID(*in.AppID) != nil {
		s.writeError(w, svcGraph, c, http.StatusConflict, "Request_MultipleObjectsWithSameKeyValue",
			"The service principal cannot be created, updated, or restored because the service principal name "+*in.AppID+" is already in use.")
		return
	}
	s.createOrUpdateSP(w, c, *in.AppID, &in, true, false)
}

// createOrUpdateSP is shared by upsert and POST; called with s.mu held.
func (s *Server) createOrUpdateSP(w http.ResponseWriter, c *call, appID string, in *wireServicePrincipalWrite, create, upsert bool) {
	t := c.tenant
	if in.AppID != nil && upsert && !strings.EqualFold(*in.AppID, appID) {
		s.badRequest(w, c, "Property 'appId' does not match the key.")
		return
	}
	if sp := t.spByAppID(appID); sp != nil {
		if !c.canWrite(sp.owner) {
			s.denied(w, c)
			return
		}
		if in.DisplayName != nil {
			sp.displayName = *in.DisplayName
		}
		noContent(w, c)
		return
	}
	if !create {
		s.notFound(w, c, appID)
		return
	}
	a := t.appByAppID(appID)
	if a == nil || s.now().Before(a.lagUntil) {
		// Also Entra's answer right after the app's creation, until the
		// app has replicated (learn.microsoft.com/answers/questions/5883620:
		// 400 Request_BadRequest, detail NoBackingApplicationObject).
		s.badRequest(w, c, "The appId '"+appID+"' of the service principal does not reference a valid application object.")
		return
	}
	if !c.canWrite(a.owner) {
		s.denied(w, c)
		return
	}
	sp := &servicePrincipal{id: newGUID(), appID: a.appID, displayName: a.displayName, owner: c.claims.AppID, created: s.now(), seq: t.next()}
	if in.DisplayName != nil {
		sp.displayName = *in.DisplayName
	}
	t.sps[sp.id] = sp
	w.Header().Set("Location", s.URL()+"/v1.0/servicePrincipals/"+sp.id)
	writeJSON(w, http.StatusCreated, s.wireSP(sp))
}

func (s *Server) gDeleteSP(w http.ResponseWriter, c *call, sel selector) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.spFor(w, c, sel, (*call).canWrite)
	if sp == nil {
		return
	}
	s.removeSP(c.tenant, sp)
	noContent(w, c)
}

func (s *Server) gListDomains(w http.ResponseWriter, r *http.Request, c *call) {
	if !s.allowed(w, c, permDomainRead, permDirReadAll, permDomainRW, permDirRWAll) {
		return
	}
	initial := c.tenant.initialDomain()
	vals := []map[string]any{}
	for _, d := range c.tenant.domains {
		vals = append(vals, map[string]any{
			"id": d.Name, "authenticationType": d.AuthenticationType, "isAdminManaged": true, "isDefault": d.IsDefault,
			"isInitial": d.Name == initial, "isRoot": true, "isVerified": d.IsVerified, "supportedServices": []string{"Email"},
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": s.ctxURL("domains"), "value": vals})
}

func (s *Server) gOrganization(w http.ResponseWriter, r *http.Request, c *call) {
	if !s.allowed(w, c, permOrgReadAll, permDirReadAll, permOrgRWAll, permDirRWAll) {
		return
	}
	t := c.tenant
	var vd []map[string]any
	for _, d := range t.domains {
		if d.IsVerified {
			vd = append(vd, map[string]any{"name": d.Name, "isDefault": d.IsDefault, "isInitial": d.Name == t.initialDomain(), "type": d.AuthenticationType})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": s.ctxURL("organization"), "value": []map[string]any{{
		"id": t.id, "displayName": t.displayName, "tenantType": "AAD", "verifiedDomains": vd,
	}}})
}

func (s *Server) gListGrants(w http.ResponseWriter, r *http.Request, c *call) {
	// oauth2permissiongrant-list: Directory.Read.All is the least privileged
	// application permission; DelegatedPermissionGrant.Read.All is not listed.
	if !s.allowed(w, c, permDirReadAll, permGrantRWAll, permDirRWAll) {
		return
	}
	q, err := parseQuery(r.URL.Query(), map[string]colType{"id": tString, "clientId": tString, "consentType": tString, "principalId": tString, "resourceId": tString, "scope": tString})
	if err != nil {
		s.writeError(w, svcGraph, c, http.StatusBadRequest, "Request_UnsupportedQuery", "Invalid filter clause: "+err.Error())
		return
	}
	// resources/oauth2permissiongrant: clientId, consentType, principalId and
	// resourceId "Support $filter (eq only)"; id and scope do not.
	if prop, ok := filterEqOnly(q.filter, "clientId", "consentType", "principalId", "resourceId"); !ok {
		s.writeError(w, svcGraph, c, http.StatusBadRequest, "Request_UnsupportedQuery",
			"Unsupported or invalid query filter clause specified for property '"+prop+"' of resource 'OAuth2PermissionGrant'.")
		return
	}
	s.mu.Lock()
	var gs []*permissionGrant
	for _, g := range c.tenant.grants {
		gs = append(gs, g)
	}
	s.mu.Unlock()
	sort.Slice(gs, func(i, j int) bool { return gs[i].seq < gs[j].seq })
	var recs []map[string]any
	for _, g := range gs {
		recs = append(recs, map[string]any{"id": g.id, "clientId": g.clientID, "consentType": g.consentType, "principalId": nil, "resourceId": g.resourceID, "scope": g.scope})
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": s.ctxURL("oauth2PermissionGrants"), "value": q.apply(recs, "id")})
}

// filterEqOnly reports whether every comparison in e is "prop eq …" for one
// of props; if not, it names the first property compared otherwise.
func filterEqOnly(e filterExpr, props ...string) (string, bool) {
	switch x := e.(type) {
	case nil:
		return "", true
	case cmpExpr:
		return x.prop, !x.neg && slices.Contains(props, x.prop)
	case boolExpr:
		if p, ok := filterEqOnly(x.l, props...); !ok {
			return p, false
		}
		return filterEqOnly(x.r, props...)
	}
	return "", false
}

func wirePolicy(p *hrdPolicy) map[string]any {
	return map[string]any{
		"id": p.id, "displayName": p.displayName, "description": nilIfEmpty(p.description), "definition": p.definition,
		"isOrganizationDefault": p.isOrganizationDefault, "deletedDateTime": nil,
	}
}

func (s *Server) gListPolicies(w http.ResponseWriter, r *http.Request, c *call) {
	if !s.allowed(w, c, permPolicyApp, permPolicyRead) {
		return
	}
	s.mu.Lock()
	ps := sortedPolicies(c.tenant, nil)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": s.ctxURL("policies/homeRealmDiscoveryPolicies"), "value": ps})
}

func sortedPolicies(t *tenant, only []string) []map[string]any {
	var ps []*hrdPolicy
	for _, p := range t.policies {
		if only == nil || slices.Contains(only, p.id) {
			ps = append(ps, p)
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].seq < ps[j].seq })
	out := []map[string]any{}
	for _, p := range ps {
		out = append(out, wirePolicy(p))
	}
	return out
}

func (s *Server) gGetPolicy(w http.ResponseWriter, c *call, id string) {
	if !s.allowed(w, c, permPolicyApp, permPolicyRead) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := c.tenant.policies[strings.ToLower(id)]
	if p == nil {
		s.notFound(w, c, id)
		return
	}
	writeJSON(w, http.StatusOK, wirePolicy(p))
}

func (s *Server) gCreatePolicy(w http.ResponseWriter, r *http.Request, c *call) {
	if !s.allowed(w, c, permPolicyApp) {
		return
	}
	var in wireHRDPolicyWrite
	if !s.decodeGraph(w, r, c, &in) {
		return
	}
	if in.DisplayName == nil || *in.DisplayName == "" || len(in.Definition) == 0 {
		s.badRequest(w, c, "Properties 'displayName' and 'definition' are required.")
		return
	}
	for _, d := range in.Definition {
		var def map[string]json.RawMessage
		if err := json.Unmarshal([]byte(d), &def); err != nil || def["HomeRealmDiscoveryPolicy"] == nil {
			s.badRequest(w, c, "Invalid value specified for property 'definition' of resource 'HomeRealmDiscoveryPolicy'.")
			return
		}
	}
	p := &hrdPolicy{id: newGUID(), displayName: *in.DisplayName, definition: in.Definition}
	if in.Description != nil {
		p.description = *in.Description
	}
	if in.IsOrganizationDefault != nil {
		p.isOrganizationDefault = *in.IsOrganizationDefault
	}
	s.mu.Lock()
	p.seq = c.tenant.next()
	c.tenant.policies[p.id] = p
	s.mu.Unlock()
	out := wirePolicy(p)
	out["@odata.context"] = s.ctxURL("policies/homeRealmDiscoveryPolicies/$entity")
	w.Header().Set("Location", s.URL()+"/v1.0/policies/homeRealmDiscoveryPolicies/"+p.id)
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) gDeletePolicy(w http.ResponseWriter, c *call, id string) {
	if !s.allowed(w, c, permPolicyApp) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := c.tenant.policies[strings.ToLower(id)]
	if p == nil {
		s.notFound(w, c, id)
		return
	}
	for _, sp := range c.tenant.sps {
		if slices.Contains(sp.policies, p.id) {
			s.badRequest(w, c, "The policy is still assigned to one or more objects; remove the assignments first.")
			return
		}
	}
	delete(c.tenant.policies, p.id)
	noContent(w, c)
}

func (s *Server) gListAssigned(w http.ResponseWriter, c *call, sel selector) {
	// serviceprincipal-list-homerealmdiscoverypolicies: Application.ReadWrite.OwnedBy
	// and Policy.Read.All; the service principal is checked by canRead below.
	if !s.allowed(w, c, permPolicyApp, permPolicyRead) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.spFor(w, c, sel, (*call).canRead)
	if sp == nil {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": s.ctxURL("policies/homeRealmDiscoveryPolicies"), "value": sortedPolicies(c.tenant, append([]string{}, sp.policies...))})
}

func (s *Server) gAssign(w http.ResponseWriter, r *http.Request, c *call, sel selector) {
	var in wireRef
	if !s.decodeGraph(w, r, c, &in) {
		return
	}
	// The reference is a Graph URL (serviceprincipal-post-homerealmdiscoverypolicies:
	// https://graph.microsoft.com/v1.0/policies/homeRealmDiscoveryPolicies/{id});
	// Graph refuses one on another host. The emulator's own base stands for
	// graph.microsoft.com, as it does for every call.
	u, err := url.Parse(in.ODataID)
	segs := []string{}
	if err == nil {
		segs = strings.Split(strings.Trim(u.Path, "/"), "/")
	}
	if err != nil || u.Scheme != "https" || !s.isGraphHost(u.Host) || len(segs) < 3 || segs[0] != "v1.0" ||
		(strings.Join(segs[1:len(segs)-1], "/") != "policies/homeRealmDiscoveryPolicies" && strings.Join(segs[1:len(segs)-1], "/") != "directoryObjects") {
		s.badRequest(w, c, "Invalid object identifier '"+in.ODataID+"'.")
		return
	}
	pid := strings.ToLower(segs[len(segs)-1])
	// serviceprincipal-post-homerealmdiscoverypolicies: Application.ReadWrite.OwnedBy
	// and Policy.Read.All (or Policy.ReadWrite.ApplicationConfiguration), checked
	// against the service principal by canWrite below.
	if !s.allowed(w, c, permPolicyRead, permPolicyApp) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.spFor(w, c, sel, (*call).canWrite)
	if sp == nil {
		return
	}
	if c.tenant.policies[pid] == nil {
		s.notFound(w, c, pid)
		return
	}
	if slices.Contains(sp.policies, pid) {
		s.badRequest(w, c, "One or more added object references already exist for the following modified properties: 'homeRealmDiscoveryPolicies'.")
		return
	}
	if len(sp.policies) > 0 {
		// Entra applies one Home Realm Discovery policy per service
		// principal; a second is refused until the first is unassigned.
		s.badRequest(w, c, "A conflicting object with one or more of the specified property values is present in the directory.")
		return
	}
	sp.policies = append(sp.policies, pid)
	noContent(w, c)
}

// isGraphHost: graph.microsoft.com, or the emulator's own address, which
// plays it.
func (s *Server) isGraphHost(host string) bool {
	own, _ := url.Parse(s.URL())
	return strings.EqualFold(host, "graph.microsoft.com") || own != nil && strings.EqualFold(host, own.Host)
}

func (s *Server) gUnassign(w http.ResponseWriter, c *call, sel selector, pid string) {
	// serviceprincipal-delete-homerealmdiscoverypolicies: as the assignment.
	if !s.allowed(w, c, permPolicyRead, permPolicyApp) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.spFor(w, c, sel, (*call).canWrite)
	if sp == nil {
		return
	}
	i := slices.Index(sp.policies, strings.ToLower(pid))
	if i < 0 {
		s.notFound(w, c, pid)
		return
	}
	sp.policies = slices.Delete(sp.policies, i, i+1)
	noContent(w, c)
}
