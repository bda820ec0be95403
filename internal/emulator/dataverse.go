package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Dataverse Web API v9.2, following learn.microsoft.com/power-apps/developer/data-platform/webapi:
// query-data-web-api, create-entity-web-api, update-delete-entities-using-web-api,
// associate-disassociate-entities-using-web-api, create-update-column-definitions-using-web-api,
// reference/whoami, reference/publishallxml, compose-http-requests-handle-errors.

const dvBase = "/api/data/v9.2"

// Property types of the entity sets the emulator serves, for $filter/$select checking.
var (
	solutionSchema = map[string]colType{"solutionid": tGUID, "uniquename": tString, "friendlyname": tString, "version": tString, "ismanaged": tBool}
	buSchema       = map[string]colType{"businessunitid": tGUID, "name": tString, "_parentbusinessunitid_value": tGUID}
	roleSchema     = map[string]colType{"roleid": tGUID, "name": tString, "_businessunitid_value": tGUID}
	userSchema     = map[string]colType{
		"systemuserid": tGUID, "applicationid": tGUID, "fullname": tString, "internalemailaddress": tString,
		"_businessunitid_value": tGUID, "isdisabled": tBool, "accessmode": tInt, "azureactivedirectoryobjectid": tGUID,
	}
	attrSchema = map[string]colType{"LogicalName": tString, "SchemaName": tString, "AttributeType": tString, "MetadataId": tGUID}
	relSchema  = map[string]colType{
		"SchemaName": tString, "ReferencingEntity": tString, "ReferencingAttribute": tString, "ReferencedEntity": tString,
		"ReferencedAttribute": tString, "ReferencingEntityNavigationPropertyName": tString,
		"ReferencedEntityNavigationPropertyName": tString, "MetadataId": tGUID,
	}
)

var (
	keyRE  = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\(([0-9a-fA-F-]{36})\)$`)
	nameRE = regexp.MustCompile(`^([A-Za-z]+)\(LogicalName='([A-Za-z0-9_]+)'\)$`)
)

// codeNoSegment is "Resource not found for the segment" (web-api-client-errors);
// entity set, function and action names are case-sensitive.
const codeNoSegment = "0x8006088a"

type dvHandler = func(w http.ResponseWriter, r *http.Request, c *call)

func (s *Server) dvErr(w http.ResponseWriter, c *call, status int, code, msg string) {
	s.writeError(w, svcDataverse, c, status, code, msg)
}

func (s *Server) dataverseRoute(r *http.Request) (route, int, string, string) {
	p, ok := strings.CutPrefix(r.URL.Path, dvBase+"/")
	if !ok {
		return route{}, http.StatusNotFound, codeNoSegment, "Resource not found for the segment '" + strings.TrimPrefix(r.URL.Path, "/") + "'."
	}
	segs := strings.Split(p, "/")
	methods := map[string]route{}
	add := func(m, op string, h dvHandler) { methods[m] = route{op: op, handle: h, auth: true} }
	cfgSet := ""
	s.mu.Lock()
	for _, o := range s.orgs {
		if strings.EqualFold(r.Host, o.host) || strings.HasPrefix(strings.ToLower(r.Host), o.host+":") {
			cfgSet = o.cfgNames.EntitySet
		}
	}
	s.mu.Unlock()
	badSeg := func(seg string) (route, int, string, string) {
		return route{}, http.StatusNotFound, codeNoSegment, fmt.Sprintf("Resource not found for the segment '%s'.", seg)
	}
	k := keyRE.FindStringSubmatch(segs[0])
	switch {
	case len(segs) == 1 && (segs[0] == "WhoAmI" || segs[0] == "WhoAmI()"):
		add(http.MethodGet, "dataverse.whoAmI", s.dWhoAmI)
	case len(segs) == 1 && segs[0] == "PublishAllXml":
		add(http.MethodPost, "dataverse.publishAllXml", s.dPublish)
	case len(segs) == 1 && segs[0] == "solutions":
		add(http.MethodGet, "dataverse.listSolutions", s.dList(solutionSchema, "solutionid", func(o *org) []map[string]any {
			var out []map[string]any
			for _, x := range o.solutions {
				out = append(out, map[string]any{"solutionid": strings.ToLower(x.ID), "uniquename": x.UniqueName, "friendlyname": x.FriendlyName, "version": x.Version, "ismanaged": !x.Unmanaged})
			}
			return out
		}))
	case len(segs) == 1 && segs[0] == "businessunits":
		add(http.MethodGet, "dataverse.listBusinessUnits", s.dList(buSchema, "businessunitid", func(o *org) []map[string]any {
			return []map[string]any{{"businessunitid": strings.ToLower(o.rootBU.ID), "name": o.rootBU.Name, "_parentbusinessunitid_value": nil}}
		}))
	case len(segs) == 1 && segs[0] == "roles":
		add(http.MethodGet, "dataverse.listRoles", s.dList(roleSchema, "roleid", func(o *org) []map[string]any {
			var out []map[string]any
			for _, x := range o.roles {
				out = append(out, wireRole(o, x))
			}
			return out
		}))
	case len(segs) == 1 && segs[0] == "systemusers":
		add(http.MethodGet, "dataverse.listSystemUsers", s.dList(userSchema, "systemuserid", func(o *org) []map[string]any {
			var out []map[string]any
			for _, u := range o.users {
				out = append(out, wireUser(u))
			}
			return out
		}))
		add(http.MethodPost, "dataverse.createSystemUser", s.dCreateUser)
	case k != nil && k[1] == "systemusers":
		id := strings.ToLower(k[2])
		switch {
		case len(segs) == 1:
			add(http.MethodGet, "dataverse.getSystemUser", func(w http.ResponseWriter, r *http.Request, c *call) { s.dGetUser(w, r, c, id) })
			add(http.MethodPatch, "dataverse.updateSystemUser", func(w http.ResponseWriter, r *http.Request, c *call) { s.dUpdateUser(w, r, c, id) })
			add(http.MethodDelete, "dataverse.deleteSystemUser", func(w http.ResponseWriter, r *http.Request, c *call) { s.dDeleteUser(w, c, id) })
		case len(segs) == 2 && segs[1] == "systemuserroles_association":
			add(http.MethodGet, "dataverse.listUserRoles", func(w http.ResponseWriter, r *http.Request, c *call) { s.dUserRoles(w, r, c, id) })
		case len(segs) == 3 && segs[1] == "systemuserroles_association" && segs[2] == "$ref":
			add(http.MethodPost, "dataverse.associateRole", func(w http.ResponseWriter, r *http.Request, c *call) { s.dAssociate(w, r, c, id) })
			add(http.MethodDelete, "dataverse.disassociateRole", func(w http.ResponseWriter, r *http.Request, c *call) {
				s.dDisassociate(w, c, id, r.URL.Query().Get("$id"))
			})
		case len(segs) == 3 && segs[2] == "$ref" && keyRE.MatchString(segs[1]) && keyRE.FindStringSubmatch(segs[1])[1] == "systemuserroles_association":
			rid := keyRE.FindStringSubmatch(segs[1])[2]
			add(http.MethodDelete, "dataverse.disassociateRole", func(w http.ResponseWriter, r *http.Request, c *call) { s.dDisassociate(w, c, id, "roles("+rid+")") })
		default:
			return badSeg(segs[len(segs)-1])
		}
	case cfgSet != "" && len(segs) == 1 && segs[0] == cfgSet:
		add(http.MethodGet, "dataverse.listMarketoConfigs", s.dListConfigs)
	case cfgSet != "" && k != nil && k[1] == cfgSet:
		id := strings.ToLower(k[2])
		switch {
		case len(segs) == 1:
			add(http.MethodPatch, "dataverse.updateMarketoConfig", func(w http.ResponseWriter, r *http.Request, c *call) { s.dUpdateConfig(w, r, c, id) })
		case len(segs) == 3 && segs[2] == "$ref":
			nav := segs[1]
			add(http.MethodDelete, "dataverse.clearMarketoConfigUser", func(w http.ResponseWriter, r *http.Request, c *call) { s.dClearConfigRef(w, c, id, nav) })
		default:
			return badSeg(segs[len(segs)-1])
		}
	case nameRE.MatchString(segs[0]) && nameRE.FindStringSubmatch(segs[0])[1] == "EntityDefinitions":
		entity := strings.ToLower(nameRE.FindStringSubmatch(segs[0])[2])
		switch {
		case len(segs) == 2 && segs[1] == "Attributes":
			add(http.MethodGet, "dataverse.listAttributes", func(w http.ResponseWriter, r *http.Request, c *call) { s.dListAttrs(w, r, c, entity) })
			add(http.MethodPost, "dataverse.createAttribute", func(w http.ResponseWriter, r *http.Request, c *call) { s.dCreateAttr(w, r, c, entity) })
		case len(segs) == 2 && segs[1] == "ManyToOneRelationships":
			add(http.MethodGet, "dataverse.listManyToOneRelationships", func(w http.ResponseWriter, r *http.Request, c *call) { s.dManyToOne(w, r, c, entity) })
		case len(segs) == 2 && nameRE.MatchString(segs[1]) && nameRE.FindStringSubmatch(segs[1])[1] == "Attributes":
			attr := strings.ToLower(nameRE.FindStringSubmatch(segs[1])[2])
			add(http.MethodGet, "dataverse.getAttribute", func(w http.ResponseWriter, r *http.Request, c *call) { s.dGetAttr(w, r, c, entity, attr) })
		default:
			return badSeg(segs[len(segs)-1])
		}
	default:
		return badSeg(segs[0])
	}
	rt, ok := methods[r.Method]
	if !ok {
		// web-api-client-errors: "No HTTP resource was found that matches the request URI" (404, empty code)
		return route{}, http.StatusNotFound, "", "No HTTP resource was found that matches the request URI 'https://" + r.Host + r.URL.Path + "'."
	}
	return rt, 0, "", ""
}

// dataverseAuth: token signature/lifetime, audience = this org, tenant = the org's tenant, and the
// caller must be an enabled application user whose app and service principal have replicated.
func (s *Server) dataverseAuth(w http.ResponseWriter, r *http.Request, c *call) bool {
	o := c.org
	w.Header().Set("WWW-Authenticate", fmt.Sprintf("Bearer authorization_uri=%s/%s/oauth2/authorize, resource_id=https://%s/", s.URL(), o.tenantID, o.host))
	tok, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		s.dvErr(w, c, http.StatusUnauthorized, "0x80072560", "Bearer token is missing.")
		return false
	}
	claims, err := s.verifyToken(tok)
	if err != nil {
		s.dvErr(w, c, http.StatusUnauthorized, "0x80072560", "Bearer token is invalid: "+err.Error()+".")
		return false
	}
	aud := ""
	if len(claims.Audience) == 1 {
		aud = strings.TrimSuffix(claims.Audience[0], "/")
	}
	if aud != "https://"+o.host && aud != fmt.Sprintf("https://%s:%d", o.host, s.port) {
		s.dvErr(w, c, http.StatusUnauthorized, "0x80072560", "Bearer token audience is not this organization.")
		return false
	}
	if claims.TenantID != o.tenantID {
		s.dvErr(w, c, http.StatusUnauthorized, "0x80072560", "Bearer token was issued by a tenant this organization does not trust.")
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[o.tenantID]
	app, sp := t.appByAppID(claims.AppID), t.spByAppID(claims.AppID)
	u := o.userByAppID(claims.AppID)
	if app == nil || sp == nil || !s.visible(app.created) || !s.visible(sp.created) || u == nil {
		s.dvErr(w, c, http.StatusForbidden, "0x80072560", "The user is not a member of the organization.")
		return false
	}
	if u.disabled {
		s.dvErr(w, c, http.StatusForbidden, "0x80040225", fmt.Sprintf("The specified user (Id = %s) is disabled.", u.id))
		return false
	}
	c.claims, c.tenant, c.user = claims, t, u
	return true
}

// isAdmin: writes need System Administrator; the sync user only reads, as Marketo does.
func (s *Server) requireAdmin(w http.ResponseWriter, c *call, privilege string) bool {
	for _, rid := range c.user.roleIDs {
		if r := c.org.roleByID(rid); r != nil && r.Name == "System Administrator" {
			return true
		}
	}
	s.dvErr(w, c, http.StatusForbidden, "0x80040220",
		fmt.Sprintf("Principal user (Id=%s, type=8) is missing %s privilege.", c.user.id, privilege))
	return false
}

func (s *Server) dWhoAmI(w http.ResponseWriter, r *http.Request, c *call) {
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.context": s.dvContext(c, "Microsoft.Dynamics.CRM.WhoAmIResponse"),
		"BusinessUnitId": c.user.businessUnitID, "UserId": c.user.id, "OrganizationId": c.org.organizationID,
	})
}

// dPublish is the PublishAllXml action (reference/publishallxml), which
// takes no parameters: the body is empty or {}. OData reads an action's
// body as its parameters, before the action runs, and refuses any it does
// not declare; parameter names are case-sensitive.
func (s *Server) dPublish(w http.ResponseWriter, r *http.Request, c *call) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		s.dvPayloadError(w, c, "", "The request body could not be read.")
		return
	}
	if len(bytes.TrimSpace(b)) > 0 {
		var params map[string]json.RawMessage
		if err := json.Unmarshal(b, &params); err != nil || params == nil {
			s.dvPayloadError(w, c, "", "The parameters of the operation 'PublishAllXml' must be a JSON object.")
			return
		}
		if names := slices.Sorted(maps.Keys(params)); len(names) > 0 {
			s.dvPayloadError(w, c, "", fmt.Sprintf("The parameter '%s' in the request payload is not a valid parameter for the operation 'PublishAllXml'.", names[0]))
			return
		}
	}
	if !s.requireAdmin(w, c, "prvPublishCustomization") {
		return
	}
	s.mu.Lock()
	c.org.publishCount++
	s.mu.Unlock()
	noContent(w, c)
}

func (s *Server) queryError(w http.ResponseWriter, c *call, entity string, err error) {
	var up *unknownPropError
	if errors.As(err, &up) {
		s.dvErr(w, c, http.StatusBadRequest, "0x0", fmt.Sprintf("Could not find a property named '%s' on type 'Microsoft.Dynamics.CRM.%s'.", up.prop, entity))
		return
	}
	s.dvErr(w, c, http.StatusBadRequest, "0x80060888", strings.ToUpper(err.Error()[:1])+err.Error()[1:]+".")
}

// dvQuery parses the request's query options against schema, answering 400
// (naming entity) when they do not fit.
func (s *Server) dvQuery(w http.ResponseWriter, r *http.Request, c *call, entity string, schema map[string]colType) (queryOptions, bool) {
	q, err := parseQuery(r.URL.Query(), schema)
	if err != nil {
		s.queryError(w, c, entity, err)
		return queryOptions{}, false
	}
	return q, true
}

func (s *Server) dList(schema map[string]colType, key string, rows func(o *org) []map[string]any) dvHandler {
	return func(w http.ResponseWriter, r *http.Request, c *call) {
		entity := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, dvBase+"/"), "s")
		q, ok := s.dvQuery(w, r, c, entity, schema)
		if !ok {
			return
		}
		s.mu.Lock()
		recs := rows(c.org)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{
			"@odata.context": s.dvContext(c, strings.TrimPrefix(r.URL.Path, dvBase+"/")),
			"value":          q.apply(recs, key),
		})
	}
}

func wireRole(o *org, x SeedRole) map[string]any {
	return map[string]any{"roleid": strings.ToLower(x.ID), "name": x.Name, "_businessunitid_value": strings.ToLower(o.rootBU.ID)}
}

func wireUser(u *systemUser) map[string]any {
	return map[string]any{
		"systemuserid": u.id, "applicationid": nilIfEmpty(u.applicationID), "fullname": u.fullName,
		"internalemailaddress": u.email, "_businessunitid_value": strings.ToLower(u.businessUnitID),
		"isdisabled": u.disabled, "accessmode": u.accessMode, "azureactivedirectoryobjectid": nil,
	}
}

func (s *Server) dGetUser(w http.ResponseWriter, r *http.Request, c *call, id string) {
	q, ok := s.dvRecordQuery(w, r, c, "systemuser", userSchema)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userFor(w, c, id)
	if u == nil {
		return
	}
	out := q.apply([]map[string]any{wireUser(u)}, "systemuserid")[0]
	out["@odata.context"] = s.dvContext(c, "systemusers/$entity")
	writeJSON(w, http.StatusOK, out)
}

// dvRecordQuery reads the query options of a request for one record: only
// $select applies, its names checked (case-sensitively) against schema.
func (s *Server) dvRecordQuery(w http.ResponseWriter, r *http.Request, c *call, entity string, schema map[string]colType) (queryOptions, bool) {
	for k := range r.URL.Query() {
		if strings.HasPrefix(k, "$") && k != "$select" {
			s.dvErr(w, c, http.StatusBadRequest, "0x80060888", fmt.Sprintf("The query specified in the URI is not valid. The requested resource is not a collection. Query options $filter, $orderby, $count, $skip, and $top can be applied only on collections (%s).", k))
			return queryOptions{}, false
		}
	}
	return s.dvQuery(w, r, c, entity, schema)
}

// dvNotFound answers 404 for a record of entity that does not exist.
func (s *Server) dvNotFound(w http.ResponseWriter, c *call, entity, id string) {
	s.dvErr(w, c, http.StatusNotFound, "0x80040217", fmt.Sprintf("%s With Id = %s Does Not Exist", entity, id))
}

// userFor finds the system user id of the caller's org, answering 404 when there is none.
// Called with s.mu held.
func (s *Server) userFor(w http.ResponseWriter, c *call, id string) *systemUser {
	u := c.org.userByID(id)
	if u == nil {
		s.dvNotFound(w, c, "systemuser", id)
	}
	return u
}

// dvContext is the @odata.context of what set names in the caller's org.
func (s *Server) dvContext(c *call, set string) string {
	return s.OrgURL(c.org.host) + dvBase + "/$metadata#" + set
}

// Dataverse's answers to a body it cannot take (web-api-client-errors,
// learn.microsoft.com/troubleshoot/power-platform/dataverse/dataverse-web-api-and-sdk/web-api-client-errors):
// a property the type does not have is "Invalid property … was found in
// entity" with code 0x0; what the OData reader refuses (an undeclared
// annotation-only property, a literal of the wrong type, a reference not
// based on the service root, an action parameter the action does not have)
// is 0x80048d19 "Error identified in Payload provided by the user" with the
// OData library's reason as InnerException.
const codePayload = "0x80048d19"

func (s *Server) dvInvalidProperty(w http.ResponseWriter, c *call, entity, prop string) {
	s.dvErr(w, c, http.StatusBadRequest, "0x0", fmt.Sprintf("An error occurred while validating input parameters: Microsoft.Crm.CrmException: "+
		"Invalid property '%s' was found in entity 'Microsoft.Dynamics.CRM.%s'. ---> Microsoft.OData.ODataException: "+
		"Does not support untyped value in non-open type.", prop, entity))
}

func (s *Server) dvPayloadError(w http.ResponseWriter, c *call, entitySet, reason string) {
	s.dvErr(w, c, http.StatusBadRequest, codePayload, fmt.Sprintf("Error identified in Payload provided by the user for Entity :'%s', "+
		"For more information on this error please follow this help link https://go.microsoft.com/fwlink/?linkid=2195293  ---->  "+
		"InnerException : Microsoft.OData.ODataException: %s", entitySet, reason))
}

// decodeDataverse decodes a body, naming an unknown property the way Dataverse does.
func (s *Server) decodeDataverse(w http.ResponseWriter, r *http.Request, c *call, entity string, v any) bool {
	prop, err := decodeExact(r.Body, v)
	switch {
	case err == nil:
		return true
	case prop != "":
		s.dvInvalidProperty(w, c, entity, prop)
	default:
		s.dvPayloadError(w, c, entity+"s", strings.ToUpper(err.Error()[:1])+err.Error()[1:]+".")
	}
	return false
}

// serviceRoot is the org's Web API base, which every absolute reference in
// a body must be based on.
func (s *Server) serviceRoot(c *call) string { return s.OrgURL(c.org.host) + dvBase + "/" }

// refID extracts the GUID from an @odata.bind / @odata.id value naming
// entitySet(guid). A relative value ("roles(…)", "/roles(…)") is resolved
// against the org; an absolute one must be based on this org's Web API
// root, as OData requires ("The URI '…' is not valid because it is not
// based on '…'"): another host, scheme or API version is refused, so a
// reference can never point the org at a record elsewhere. notBased
// reports that case, for the caller's payload error.
func (s *Server) refID(c *call, v, entitySet string) (id string, notBased, ok bool) {
	u, err := url.Parse(v)
	if err != nil {
		return "", false, false
	}
	path := v
	if u.IsAbs() || u.Host != "" {
		root, _ := url.Parse(s.serviceRoot(c))
		if !strings.EqualFold(u.Scheme, root.Scheme) || !strings.EqualFold(u.Host, root.Host) ||
			!strings.HasPrefix(u.Path, root.Path) || u.User != nil {
			return "", true, false
		}
		path = strings.TrimPrefix(u.Path, root.Path)
	}
	path = strings.TrimPrefix(strings.TrimPrefix(path, dvBase), "/")
	m := keyRE.FindStringSubmatch(path)
	if m == nil || m[1] != entitySet {
		return "", false, false
	}
	return strings.ToLower(m[2]), false, true
}

// badRef answers a reference refID could not take.
func (s *Server) badRef(w http.ResponseWriter, c *call, entitySet, what, v string, notBased bool) {
	if notBased {
		s.dvPayloadError(w, c, entitySet, fmt.Sprintf("The URI '%s' is not valid because it is not based on '%s'.", v, s.serviceRoot(c)))
		return
	}
	s.dvErr(w, c, http.StatusBadRequest, "0x80040203", fmt.Sprintf("Invalid argument: the value of '%s' is not a valid entity reference: '%s'.", what, v))
}

type wireSystemUserCreate struct {
	ApplicationID        *string `json:"applicationid"`
	BusinessUnitBind     *string `json:"businessunitid@odata.bind"`
	AccessMode           *int    `json:"accessmode"`
	FirstName            *string `json:"firstname"`
	LastName             *string `json:"lastname"`
	FullName             *string `json:"fullname"`
	InternalEmailAddress *string `json:"internalemailaddress"`
	IsDisabled           *bool   `json:"isdisabled"`
}

func (s *Server) dCreateUser(w http.ResponseWriter, r *http.Request, c *call) {
	if !s.requireAdmin(w, c, "prvCreateUser") {
		return
	}
	var in wireSystemUserCreate
	if !s.decodeDataverse(w, r, c, "systemuser", &in) {
		return
	}
	if in.ApplicationID == nil || !isGUID(*in.ApplicationID) {
		s.dvErr(w, c, http.StatusBadRequest, "0x80040203", "Invalid argument: 'applicationid' must be a GUID for an application user.")
		return
	}
	if in.BusinessUnitBind == nil {
		s.dvErr(w, c, http.StatusBadRequest, "0x80040203", "Invalid argument: a business unit is required ('businessunitid@odata.bind').")
		return
	}
	buID, notBased, ok := s.refID(c, *in.BusinessUnitBind, "businessunits")
	if !ok {
		s.badRef(w, c, "systemusers", "businessunitid@odata.bind", *in.BusinessUnitBind, notBased)
		return
	}
	if in.AccessMode == nil || *in.AccessMode != 4 {
		s.dvErr(w, c, http.StatusBadRequest, "0x80040203", "Invalid argument: application users must have accessmode 4 (Non-interactive).")
		return
	}
	appID := strings.ToLower(*in.ApplicationID)
	s.mu.Lock()
	defer s.mu.Unlock()
	o := c.org
	if !strings.EqualFold(buID, o.rootBU.ID) {
		s.dvNotFound(w, c, "businessunit", buID)
		return
	}
	if o.userByAppID(appID) != nil {
		s.dvErr(w, c, http.StatusPreconditionFailed, "0x80040237", "A record with matching key values already exists (applicationid).")
		return
	}
	t := s.tenants[o.tenantID]
	app, sp := t.appByAppID(appID), t.spByAppID(appID)
	if app == nil || sp == nil || !s.visible(app.created) || !s.visible(sp.created) {
		s.dvErr(w, c, http.StatusNotFound, "0x80040217", fmt.Sprintf("Application with id %s was not found in Microsoft Entra ID for tenant %s.", appID, t.id))
		return
	}
	u := &systemUser{
		id: newGUID(), applicationID: appID, fullName: "# " + app.displayName, email: appID + "@" + t.initialDomain(),
		businessUnitID: o.rootBU.ID, accessMode: 4, created: s.now(),
	}
	if in.IsDisabled != nil {
		u.disabled = *in.IsDisabled
	}
	o.users = append(o.users, u)
	loc := fmt.Sprintf("%s%s/systemusers(%s)", s.OrgURL(o.host), dvBase, u.id)
	w.Header().Set("OData-EntityId", loc)
	if strings.Contains(r.Header.Get("Prefer"), "return=representation") {
		out := wireUser(u)
		out["@odata.context"] = s.dvContext(c, "systemusers/$entity")
		writeJSON(w, http.StatusCreated, out)
		return
	}
	noContent(w, c)
}

func (s *Server) dUpdateUser(w http.ResponseWriter, r *http.Request, c *call, id string) {
	if !s.requireAdmin(w, c, "prvWriteUser") {
		return
	}
	var in struct {
		IsDisabled *bool `json:"isdisabled"`
	}
	if !s.decodeDataverse(w, r, c, "systemuser", &in) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userFor(w, c, id)
	if u == nil {
		return
	}
	if in.IsDisabled != nil {
		u.disabled = *in.IsDisabled
	}
	noContent(w, c)
}

func (s *Server) dDeleteUser(w http.ResponseWriter, c *call, id string) {
	if !s.requireAdmin(w, c, "prvDeleteUser") {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := c.org
	i := slices.IndexFunc(o.users, func(u *systemUser) bool { return u.id == id })
	if i < 0 {
		s.dvNotFound(w, c, "systemuser", id)
		return
	}
	if !o.users[i].disabled {
		s.dvErr(w, c, http.StatusBadRequest, "0x80040225", "Only disabled users can be deleted; set isdisabled to true first.")
		return
	}
	if u := o.users[i]; o.refuseAppUserDelete && u.applicationID != "" && s.tenants[o.tenantID].appByAppID(u.applicationID) != nil {
		s.dvErr(w, c, http.StatusBadRequest, "0x80048359",
			fmt.Sprintf("The user with id %s cannot be deleted: its application %s still exists in Microsoft Entra ID.", id, u.applicationID))
		return
	}
	for _, cfg := range o.configs {
		if cfg.userID == id {
			cfg.userID = ""
		}
	}
	o.users = slices.Delete(o.users, i, i+1)
	noContent(w, c)
}

func (s *Server) dUserRoles(w http.ResponseWriter, r *http.Request, c *call, id string) {
	q, ok := s.dvQuery(w, r, c, "role", roleSchema)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userFor(w, c, id)
	if u == nil {
		return
	}
	var recs []map[string]any
	for _, rid := range u.roleIDs {
		if x := c.org.roleByID(rid); x != nil {
			recs = append(recs, wireRole(c.org, *x))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": s.dvContext(c, "roles"), "value": q.apply(recs, "roleid")})
}

func (s *Server) dAssociate(w http.ResponseWriter, r *http.Request, c *call, id string) {
	if !s.requireAdmin(w, c, "prvAssignRole") {
		return
	}
	var in wireRef
	if !s.decodeDataverse(w, r, c, "role", &in) {
		return
	}
	rid, notBased, ok := s.refID(c, in.ODataID, "roles")
	if !ok {
		s.badRef(w, c, "systemusers", "@odata.id", in.ODataID, notBased)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userFor(w, c, id)
	if u == nil {
		return
	}
	if c.org.roleByID(rid) == nil {
		s.dvNotFound(w, c, "role", rid)
		return
	}
	if slices.Contains(u.roleIDs, rid) {
		s.dvErr(w, c, http.StatusPreconditionFailed, "0x80040237", "Cannot insert duplicate key.")
		return
	}
	u.roleIDs = append(u.roleIDs, rid)
	noContent(w, c)
}

func (s *Server) dDisassociate(w http.ResponseWriter, c *call, id, ref string) {
	if !s.requireAdmin(w, c, "prvAssignRole") {
		return
	}
	rid, notBased, ok := s.refID(c, ref, "roles")
	if !ok {
		s.badRef(w, c, "systemusers", "$id", ref, notBased)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userFor(w, c, id)
	if u == nil {
		return
	}
	i := slices.Index(u.roleIDs, rid)
	if i < 0 {
		s.dvErr(w, c, http.StatusNotFound, "0x80040217", fmt.Sprintf("The role %s is not associated with systemuser %s.", rid, id))
		return
	}
	u.roleIDs = slices.Delete(u.roleIDs, i, i+1)
	noContent(w, c)
}

func (s *Server) cfgSchema(o *org) map[string]colType {
	n := o.cfgNames
	return map[string]colType{n.IDColumn: tGUID, n.NameColumn: tString, "_" + n.UserLookup + "_value": tGUID}
}

func (s *Server) dListConfigs(w http.ResponseWriter, r *http.Request, c *call) {
	n := c.org.cfgNames
	entity := strings.TrimSuffix(n.EntitySet, "s")
	q, ok := s.dvQuery(w, r, c, entity, s.cfgSchema(c.org))
	if !ok {
		return
	}
	s.mu.Lock()
	var recs []map[string]any
	for _, cfg := range c.org.configs {
		recs = append(recs, map[string]any{n.IDColumn: cfg.id, n.NameColumn: cfg.name, "_" + n.UserLookup + "_value": nilIfEmpty(cfg.userID)})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": s.dvContext(c, n.EntitySet), "value": q.apply(recs, n.IDColumn)})
}

func (s *Server) dUpdateConfig(w http.ResponseWriter, r *http.Request, c *call, id string) {
	if !s.requireAdmin(w, c, "prvWrite"+c.org.cfgNames.EntitySet) {
		return
	}
	n := c.org.cfgNames
	entity := strings.TrimSuffix(n.EntitySet, "s")
	var in map[string]json.RawMessage
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		s.dvPayloadError(w, c, n.EntitySet, "The payload is not a JSON object: "+err.Error()+".")
		return
	}
	// A lookup is bound through its navigation property, case-sensitively:
	// the logical name (or any other casing) is an undeclared property.
	bindKey := n.UserLookupNavigation + "@odata.bind"
	var bind *string
	for k, v := range in {
		if nav, ok := strings.CutSuffix(k, "@odata.bind"); ok && k != bindKey {
			s.dvPayloadError(w, c, n.EntitySet, fmt.Sprintf("An undeclared property '%s' which only has property annotations in the payload "+
				"but no property value was found in the payload. In OData, only declared navigation properties and declared named streams can be "+
				"represented as properties without values.", nav))
			return
		}
		switch k {
		case bindKey:
			if err := json.Unmarshal(v, &bind); err != nil {
				s.dvPayloadError(w, c, n.EntitySet, "The value of '"+bindKey+"' must be a string or null.")
				return
			}
		case n.NameColumn:
		default:
			s.dvInvalidProperty(w, c, entity, k)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := c.org.configByID(id)
	if cfg == nil {
		s.dvNotFound(w, c, entity, id)
		return
	}
	if raw, ok := in[n.NameColumn]; ok {
		_ = json.Unmarshal(raw, &cfg.name)
	}
	if _, ok := in[bindKey]; ok {
		if bind == nil {
			cfg.userID = ""
		} else {
			uid, notBased, ok := s.refID(c, *bind, "systemusers")
			if !ok {
				s.badRef(w, c, n.EntitySet, bindKey, *bind, notBased)
				return
			}
			if c.org.userByID(uid) == nil {
				s.dvNotFound(w, c, "systemuser", uid)
				return
			}
			cfg.userID = uid
		}
	}
	noContent(w, c)
}

func (s *Server) dClearConfigRef(w http.ResponseWriter, c *call, id, nav string) {
	if !s.requireAdmin(w, c, "prvWrite"+c.org.cfgNames.EntitySet) {
		return
	}
	if nav != c.org.cfgNames.UserLookupNavigation {
		s.dvErr(w, c, http.StatusNotFound, codeNoSegment, "Resource not found for the segment '"+nav+"'.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := c.org.configByID(id)
	if cfg == nil {
		s.dvNotFound(w, c, "record", id)
		return
	}
	cfg.userID = ""
	noContent(w, c)
}

// dManyToOne serves EntityDefinitions(LogicalName='…')/ManyToOneRelationships
// (OneToManyRelationshipMetadata seen from the referencing table) for the
// Marketo Config table: its user lookup and the createdby every table has,
// so a query must filter to find the right one.
func (s *Server) dManyToOne(w http.ResponseWriter, r *http.Request, c *call, entity string) {
	q, ok := s.dvQuery(w, r, c, "OneToManyRelationshipMetadata", relSchema)
	if !ok {
		return
	}
	n := c.org.cfgNames
	rel := func(schema, attr, nav, target, targetKey, id string) map[string]any {
		return map[string]any{
			"SchemaName": schema, "ReferencingEntity": entity, "ReferencingAttribute": attr, "ReferencedEntity": target,
			"ReferencedAttribute": targetKey, "ReferencingEntityNavigationPropertyName": nav,
			"ReferencedEntityNavigationPropertyName": schema, "MetadataId": id,
		}
	}
	var recs []map[string]any
	switch {
	case entity == n.Entity:
		recs = []map[string]any{
			rel("lk_"+entity+"_createdby", "createdby", "createdby", "systemuser", "systemuserid", "7a6f0b1e-0000-4000-8000-000000000001"),
			rel(n.Entity+"_"+n.UserLookup, n.UserLookup, n.UserLookupNavigation, "systemuser", "systemuserid", "7a6f0b1e-0000-4000-8000-000000000002"),
		}
	default:
		s.mu.Lock()
		_, known := c.org.entities[entity]
		s.mu.Unlock()
		if !known {
			s.dvErr(w, c, http.StatusNotFound, "0x80040217", fmt.Sprintf("Could not find an entity with the specified LogicalName '%s'.", entity))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.context": s.dvContext(c, "EntityDefinitions('"+entity+"')/ManyToOneRelationships"),
		"value":          q.apply(recs, "MetadataId"),
	})
}

func wireAttr(col column) map[string]any {
	return map[string]any{
		"@odata.type": "#Microsoft.Dynamics.CRM.BooleanAttributeMetadata", "LogicalName": col.logicalName,
		"SchemaName": col.schemaName, "AttributeType": "Boolean", "MetadataId": col.metadataID,
	}
}

func (s *Server) entityCols(w http.ResponseWriter, c *call, entity string) map[string]column {
	cols, ok := c.org.entities[entity]
	if !ok {
		s.dvErr(w, c, http.StatusNotFound, "0x80040217", fmt.Sprintf("Could not find an entity with the specified LogicalName '%s'.", entity))
	}
	return cols
}

func (s *Server) dListAttrs(w http.ResponseWriter, r *http.Request, c *call, entity string) {
	q, ok := s.dvQuery(w, r, c, "AttributeMetadata", attrSchema)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cols := s.entityCols(w, c, entity)
	if cols == nil {
		return
	}
	var recs []map[string]any
	for _, col := range cols {
		recs = append(recs, wireAttr(col))
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": q.apply(recs, "MetadataId")})
}

func (s *Server) dGetAttr(w http.ResponseWriter, r *http.Request, c *call, entity, attr string) {
	q, ok := s.dvRecordQuery(w, r, c, "AttributeMetadata", attrSchema)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cols := s.entityCols(w, c, entity)
	if cols == nil {
		return
	}
	col, ok := cols[attr]
	if !ok {
		s.dvErr(w, c, http.StatusNotFound, "0x80040217", fmt.Sprintf("Could not find attribute with LogicalName '%s' on entity '%s'.", attr, entity))
		return
	}
	writeJSON(w, http.StatusOK, q.apply([]map[string]any{wireAttr(col)}, "MetadataId", "@odata.type")[0])
}

// dCreateAttr creates a Boolean column from a BooleanAttributeMetadata
// definition, checked as Dataverse checks it (columns.go).
func (s *Server) dCreateAttr(w http.ResponseWriter, r *http.Request, c *call, entity string) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		s.dvPayloadError(w, c, "Attributes", "The request body could not be read.")
		return
	}
	in, problem := parseBooleanColumn(b)
	switch {
	case problem == nil:
	case problem.kind == problemProperty:
		s.dvInvalidProperty(w, c, "BooleanAttributeMetadata", problem.prop)
		return
	case problem.kind == problemPayload:
		s.dvPayloadError(w, c, "Attributes", problem.message)
		return
	default:
		s.dvErr(w, c, http.StatusBadRequest, "0x80040203", problem.message)
		return
	}
	if !s.requireAdmin(w, c, "prvCreateAttribute") {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cols := s.entityCols(w, c, entity)
	if cols == nil {
		return
	}
	// MSCRM.SolutionUniqueName adds the column to that unmanaged solution
	// as well as to the Default one (CreateAttributeRequest.SolutionUniqueName).
	sol := r.Header.Get("MSCRM.SolutionUniqueName")
	if sol != "" {
		i := slices.IndexFunc(c.org.solutions, func(x SeedSolution) bool { return strings.EqualFold(x.UniqueName, sol) })
		switch {
		case i < 0:
			s.dvErr(w, c, http.StatusNotFound, "0x80040217", fmt.Sprintf("solution With UniqueName = %s Does Not Exist", sol))
			return
		case !c.org.solutions[i].Unmanaged:
			s.dvErr(w, c, http.StatusBadRequest, "0x80048033", fmt.Sprintf("Cannot add a component to the managed solution %s; name an unmanaged solution.", sol))
			return
		}
	}
	schema := *in.SchemaName
	ln := strings.ToLower(schema)
	if _, ok := cols[ln]; ok {
		s.dvErr(w, c, http.StatusBadRequest, "0x80047013", fmt.Sprintf("An attribute with the name %s already exists on entity %s.", ln, entity))
		return
	}
	col := column{logicalName: ln, schemaName: schema, displayName: *in.DisplayName.LocalizedLabels[0].Label, metadataID: newGUID(), solution: sol}
	cols[ln] = col
	w.Header().Set("OData-EntityId", fmt.Sprintf("%s%s/EntityDefinitions(LogicalName='%s')/Attributes(%s)", s.OrgURL(c.org.host), dvBase, entity, col.metadataID))
	noContent(w, c)
}
