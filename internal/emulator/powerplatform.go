package emulator

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The Power Platform admin API (api.bap.microsoft.com, "BAP"), the two routes
// the one-action mode uses, following
// learn.microsoft.com/power-platform/admin/create-dataverseapplicationuser
// (addAppUser: callable by a Power Platform administrator, "the response is
// always a 200 OK response, unless you aren't correctly authenticated", makes
// the user System Administrator) and
// learn.microsoft.com/power-platform/admin/list-environments. Both take a
// token for the Power Apps Service (authorize.go) and api-version=2020-10-01.
// The error bodies of BAP are not documented; the emulator answers in the
// ARM shape {"error":{"code","message"}} that the service uses.

const (
	bapPrefix     = "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments"
	bapAPIVersion = "2020-10-01"
)

// appUserSettings is how addAppUser behaves in one environment (seed).
type appUserSettings struct {
	delay   time.Duration // before the user shows in Dataverse
	ignored bool          // answers 200, does nothing
}

type pendingAppUser struct {
	appID, displayName string
	due                time.Time
}

// unconsent turns a seeded provisioner into one nobody consented to in this
// tenant: its permissions become requests that an admin consent grants
// (grantRequestedRoles), and it asks for user_impersonation on the Power
// Apps Service so a signed-in admin can lend it a delegated token.
func unconsent(a *application) {
	a.requestedRoles, a.roles = a.roles, nil
	a.rra = append(a.rra, wireRRA{ResourceAppID: powerAppsAppID, ResourceAccess: []wireResourceAccess{{ID: powerAppsImpersonation, Type: "Scope"}}})
}

func (s *Server) bapError(w http.ResponseWriter, c *call, status int, code, msg string) {
	c.status = status
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func (s *Server) bapRoute(r *http.Request) (route, int, string, string) {
	rest := strings.TrimPrefix(r.URL.Path, bapPrefix)
	switch {
	case rest == "" && r.Method == http.MethodGet:
		return route{op: "powerplatform.listEnvironments", handle: s.bapListEnvironments}, 0, "", ""
	case strings.HasPrefix(rest, "/") && strings.HasSuffix(rest, "/addAppUser") && r.Method == http.MethodPost:
		return route{op: "powerplatform.addAppUser", handle: s.bapAddAppUser}, 0, "", ""
	case rest == "" || strings.HasSuffix(rest, "/addAppUser"):
		return route{}, http.StatusMethodNotAllowed, "MethodNotAllowed", "The requested resource does not support http method '" + r.Method + "'."
	}
	return route{}, http.StatusNotFound, "NotFound", "The requested resource does not exist."
}

// bapAuth checks api-version and the bearer token; the caller must be a
// signed-in Power Platform or Global administrator. Returns the tenant and
// admin, or nil after writing the error.
func (s *Server) bapAuth(w http.ResponseWriter, r *http.Request, c *call) (*tenant, *adminUser) {
	if v := r.URL.Query().Get("api-version"); v == "" {
		s.bapError(w, c, http.StatusBadRequest, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
		return nil, nil
	} else if v != bapAPIVersion {
		s.bapError(w, c, http.StatusBadRequest, "InvalidApiVersionParameter", fmt.Sprintf("The api-version '%s' is invalid. The supported versions are '%s'.", v, bapAPIVersion))
		return nil, nil
	}
	tok, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		s.bapError(w, c, http.StatusUnauthorized, "MissingAuthenticationToken", "The request did not have a bearer token.")
		return nil, nil
	}
	claims, err := s.verifyToken(tok)
	if err != nil {
		s.bapError(w, c, http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token is invalid: "+err.Error()+".")
		return nil, nil
	}
	if len(claims.Audience) != 1 || strings.TrimSuffix(claims.Audience[0], "/") != strings.TrimSuffix(powerAppsResource, "/") {
		s.bapError(w, c, http.StatusUnauthorized, "InvalidAuthenticationTokenAudience", "The access token has an invalid audience; request a token for "+powerAppsResource+".")
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[claims.TenantID]
	if t == nil {
		s.bapError(w, c, http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token was issued by an unknown tenant.")
		return nil, nil
	}
	var a *adminUser
	if claims.Scope != "" {
		a = t.del.admin(claims.ObjectID)
	}
	// An app-only token would need the app registered as a Power Platform
	// management application, which the provisioner is not.
	if a == nil || !a.hasRole(rolePowerPlatformAdmin, roleGlobalAdmin) {
		who := "the application " + claims.AppID
		if a != nil {
			who = a.upn
		}
		s.bapError(w, c, http.StatusForbidden, "Forbidden",
			fmt.Sprintf("The caller %s is not a Power Platform administrator of tenant %s; only a Power Platform administrator or Global administrator can add application users.", who, t.id))
		return nil, nil
	}
	c.tenant = t
	return t, a
}

func (s *Server) bapListEnvironments(w http.ResponseWriter, r *http.Request, c *call) {
	t, _ := s.bapAuth(w, r, c)
	if t == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for _, o := range s.orgs {
		if o.tenantID != t.id {
			continue
		}
		out = append(out, map[string]any{
			"id": bapPrefix + "/" + o.environmentID, "name": o.environmentID, "type": "Microsoft.BusinessAppPlatform/scopes/environments",
			"location": "europe",
			"properties": map[string]any{
				"displayName": o.rootBU.Name, "environmentSku": "Production",
				"linkedEnvironmentMetadata": map[string]any{
					"instanceUrl": s.OrgURL(o.host) + "/", "domainName": strings.SplitN(o.host, ".", 2)[0], "resourceId": o.organizationID,
				},
			},
		})
	}
	slices.SortFunc(out, func(a, b map[string]any) int { return strings.Compare(a["name"].(string), b["name"].(string)) })
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (s *Server) bapAddAppUser(w http.ResponseWriter, r *http.Request, c *call) {
	t, _ := s.bapAuth(w, r, c)
	if t == nil {
		return
	}
	envID := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, bapPrefix), "/"), "/addAppUser"))
	var in struct {
		ServicePrincipalAppID string `json:"servicePrincipalAppId"`
	}
	if prop, err := decodeExact(http.MaxBytesReader(w, r.Body, 16<<10), &in); err != nil || prop != "" || !isGUID(in.ServicePrincipalAppID) {
		s.bapError(w, c, http.StatusBadRequest, "InvalidRequestContent", `The request body must be {"servicePrincipalAppId": "<application (client) ID>"}.`)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var o *org
	for _, x := range s.orgs {
		if x.tenantID == t.id && x.environmentID == envID {
			o = x
		}
	}
	if o == nil {
		s.bapError(w, c, http.StatusNotFound, "EnvironmentNotFound", fmt.Sprintf("The environment '%s' could not be found in the tenant '%s'.", envID, t.id))
		return
	}
	c.org = o
	sp := t.spByAppID(in.ServicePrincipalAppID)
	// 200 whatever happens: an unknown app, an ignoring environment and a
	// user already present look the same to the caller.
	if sp != nil && s.visible(sp.created) && !o.appUsers.ignored {
		if u := o.userByAppID(sp.appID); u != nil {
			u.disabled = false
			o.grantSysAdmin(u)
		} else if !slices.ContainsFunc(o.pendingAppUsers, func(p pendingAppUser) bool { return strings.EqualFold(p.appID, sp.appID) }) {
			o.pendingAppUsers = append(o.pendingAppUsers, pendingAppUser{appID: strings.ToLower(sp.appID), displayName: sp.displayName, due: s.now().Add(o.appUsers.delay)})
		}
	}
	c.status = http.StatusOK
	w.WriteHeader(http.StatusOK)
}

func (o *org) grantSysAdmin(u *systemUser) {
	if r := o.roleByName("System Administrator"); r != nil && !slices.Contains(u.roleIDs, r.ID) {
		u.roleIDs = append(u.roleIDs, r.ID)
	}
}

// promoteAppUsers makes the application users whose replication delay has
// passed appear in Dataverse. Called with s.mu held, before each Dataverse request.
func (s *Server) promoteAppUsers(o *org) {
	if len(o.pendingAppUsers) == 0 {
		return
	}
	now := s.now()
	t := s.tenants[o.tenantID]
	o.pendingAppUsers = slices.DeleteFunc(o.pendingAppUsers, func(p pendingAppUser) bool {
		if now.Before(p.due) {
			return false
		}
		u := &systemUser{
			id: newGUID(), applicationID: p.appID, fullName: "# " + p.displayName, email: p.appID + "@" + t.initialDomain(),
			businessUnitID: o.rootBU.ID, accessMode: 4, created: now,
		}
		o.grantSysAdmin(u)
		o.users = append(o.users, u)
		return true
	})
}
