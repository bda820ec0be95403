package dataverse

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mktos2s/mktos2s/internal/msapi"
)

// Dataverse error codes this client interprets (Web API error codes reference).
const (
	// codeDuplicateRecord is "Cannot insert duplicate key": for an association, it is already there.
	codeDuplicateRecord = "0x80040237"
	// CodeUserDeleteRefused is reported when Dataverse refuses to delete an
	// application user whose Entra identity still exists: the user can
	// only be disabled.
	CodeUserDeleteRefused = "0x80048359"
)

// applicationUserAccessMode is systemuser.accessmode "Non-interactive", the mode of application users.
const applicationUserAccessMode = 4

var navRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// navigationName checks a navigation property name before it goes into a
// path or a property name: it comes from metadata, not from this program.
func navigationName(op, nav string) error {
	if navRE.MatchString(nav) {
		return nil
	}
	return &msapi.Error{Service: "dataverse", Op: op, Kind: msapi.Invalid, Message: fmt.Sprintf("navigation property %q is not a name", nav)}
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// request builds a Web API request with the OData headers Dataverse expects on every call.
func request(op, method, path string) msapi.Request {
	return msapi.Request{Op: op, Method: method, Path: path, Header: http.Header{
		"OData-MaxVersion": {"4.0"},
		"OData-Version":    {"4.0"},
	}}
}

// guid checks that an ID is a GUID before it goes into a key segment or a $filter unquoted,
// so a bad value cannot change the meaning of the query.
func guid(op, field, v string) error {
	if guidRE.MatchString(v) {
		return nil
	}
	return &msapi.Error{Service: "dataverse", Op: op, Kind: msapi.Invalid,
		Message: fmt.Sprintf("%s %q is not a GUID", field, v)}
}

// quote makes an OData string literal: single quotes, a quote inside doubled.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func notFound(op, what string) error {
	return &msapi.Error{Service: "dataverse", Op: op, Kind: msapi.NotFound, Status: http.StatusNotFound, Message: what + " not found"}
}

// WhoAmI returns the calling user (GET /WhoAmI).
func (c *Client) WhoAmI(ctx context.Context) (WhoAmI, error) {
	var out struct {
		UserID         string `json:"UserId"`
		BusinessUnitID string `json:"BusinessUnitId"`
		OrganizationID string `json:"OrganizationId"`
	}
	_, err := c.api.Do(ctx, request("whoAmI", http.MethodGet, "/WhoAmI"), &out)
	return WhoAmI(out), err
}

type wireSolution struct {
	ID           string `json:"solutionid"`
	UniqueName   string `json:"uniquename"`
	FriendlyName string `json:"friendlyname"`
	Version      string `json:"version"`
}

// FindSolution finds an installed solution whose unique or friendly name is name.
func (c *Client) FindSolution(ctx context.Context, name string) (Solution, error) {
	req := request("findSolution", http.MethodGet, "/solutions")
	req.Query = url.Values{
		"$filter": {"uniquename eq " + quote(name) + " or friendlyname eq " + quote(name)},
		"$select": {"solutionid,uniquename,friendlyname,version"},
	}
	sols, err := msapi.ListAll(ctx, c.api, req, func(w wireSolution) Solution { return Solution(w) })
	if err != nil {
		return Solution{}, err
	}
	if len(sols) == 0 {
		return Solution{}, notFound(req.Op, fmt.Sprintf("solution %q", name))
	}
	// A unique-name match is exact; a friendly name can in theory be shared.
	for _, s := range sols {
		if strings.EqualFold(s.UniqueName, name) {
			return s, nil
		}
	}
	return sols[0], nil
}

// CompareVersions compares dotted numeric versions ("4.0.0.9" < "4.0.0.14"); missing parts are 0.
func CompareVersions(a, b string) (int, error) {
	pa, err := versionParts(a)
	if err != nil {
		return 0, err
	}
	pb, err := versionParts(b)
	if err != nil {
		return 0, err
	}
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y uint64
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		switch {
		case x < y:
			return -1, nil
		case x > y:
			return 1, nil
		}
	}
	return 0, nil
}

func versionParts(v string) ([]uint64, error) {
	fields := strings.Split(strings.TrimSpace(v), ".")
	parts := make([]uint64, len(fields))
	for i, f := range fields {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("version %q: part %d (%q) is not a number", v, i+1, f)
		}
		parts[i] = n
	}
	return parts, nil
}

type wireBusinessUnit struct {
	ID   string `json:"businessunitid"`
	Name string `json:"name"`
}

// RootBusinessUnit returns the business unit without a parent.
func (c *Client) RootBusinessUnit(ctx context.Context) (BusinessUnit, error) {
	req := request("rootBusinessUnit", http.MethodGet, "/businessunits")
	req.Query = url.Values{
		"$filter": {"_parentbusinessunitid_value eq null"},
		"$select": {"businessunitid,name"},
	}
	bus, err := msapi.ListAll(ctx, c.api, req, func(w wireBusinessUnit) BusinessUnit { return BusinessUnit(w) })
	if err != nil {
		return BusinessUnit{}, err
	}
	if len(bus) == 0 {
		return BusinessUnit{}, notFound(req.Op, "root business unit")
	}
	return bus[0], nil
}

type wireRole struct {
	ID             string `json:"roleid"`
	Name           string `json:"name"`
	BusinessUnitID string `json:"_businessunitid_value"`
}

// FindRole finds a security role by name within a business unit.
func (c *Client) FindRole(ctx context.Context, name, businessUnitID string) (Role, error) {
	req := request("findRole", http.MethodGet, "/roles")
	if err := guid(req.Op, "business unit ID", businessUnitID); err != nil {
		return Role{}, err
	}
	req.Query = url.Values{
		"$filter": {"name eq " + quote(name) + " and _businessunitid_value eq " + businessUnitID},
		"$select": {"roleid,name,_businessunitid_value"},
	}
	roles, err := msapi.ListAll(ctx, c.api, req, func(w wireRole) Role { return Role(w) })
	if err != nil {
		return Role{}, err
	}
	if len(roles) == 0 {
		return Role{}, notFound(req.Op, fmt.Sprintf("role %q in business unit %s", name, businessUnitID))
	}
	return roles[0], nil
}

type wireSystemUser struct {
	ID             string `json:"systemuserid"`
	ApplicationID  string `json:"applicationid"`
	FullName       string `json:"fullname"`
	InternalEmail  string `json:"internalemailaddress"`
	BusinessUnitID string `json:"_businessunitid_value"`
	IsDisabled     bool   `json:"isdisabled"`
	AccessMode     int    `json:"accessmode"`
}

const userSelect = "systemuserid,applicationid,fullname,internalemailaddress,isdisabled,accessmode,_businessunitid_value"

// FindApplicationUser finds the application user of an Entra app (by its client ID), preferring
// an enabled one if there are several.
func (c *Client) FindApplicationUser(ctx context.Context, applicationID string) (SystemUser, error) {
	req := request("findApplicationUser", http.MethodGet, "/systemusers")
	if err := guid(req.Op, "application ID", applicationID); err != nil {
		return SystemUser{}, err
	}
	req.Query = url.Values{
		"$filter": {"applicationid eq " + applicationID},
		"$select": {userSelect},
	}
	users, err := msapi.ListAll(ctx, c.api, req, func(w wireSystemUser) SystemUser { return SystemUser(w) })
	if err != nil {
		return SystemUser{}, err
	}
	if len(users) == 0 {
		return SystemUser{}, notFound(req.Op, "application user for app "+applicationID)
	}
	for _, u := range users {
		if !u.IsDisabled {
			return u, nil
		}
	}
	return users[0], nil
}

// CreateApplicationUser creates the application user of an Entra app in a business unit, or
// adopts (and re-enables) the one that already exists, so a retried activity finds its own work.
func (c *Client) CreateApplicationUser(ctx context.Context, applicationID, businessUnitID string) (SystemUser, bool, error) {
	const op = "createApplicationUser"
	if err := guid(op, "business unit ID", businessUnitID); err != nil {
		return SystemUser{}, false, err
	}
	if u, err := c.adopt(ctx, applicationID); err == nil || !msapi.IsKind(err, msapi.NotFound) {
		return u, err == nil, err
	}
	req := request(op, http.MethodPost, "/systemusers")
	req.Header.Set("Prefer", "return=representation")
	req.Body = map[string]any{
		"applicationid":             applicationID,
		"businessunitid@odata.bind": "/businessunits(" + businessUnitID + ")",
		"accessmode":                applicationUserAccessMode,
	}
	var out wireSystemUser
	resp, err := c.api.Do(ctx, req, &out)
	if err != nil {
		// Someone (a previous attempt whose answer was lost) created it meanwhile.
		if e, ok := msapi.AsError(err); ok && (e.Kind == msapi.Conflict || strings.EqualFold(e.Code, codeDuplicateRecord)) {
			u, aerr := c.adopt(ctx, applicationID)
			if aerr == nil {
				return u, true, nil
			}
		}
		return SystemUser{}, false, err
	}
	if out.ID == "" || resp.Status == http.StatusNoContent {
		// Without a representation, read back what was created.
		u, err := c.FindApplicationUser(ctx, applicationID)
		return u, false, err
	}
	return SystemUser(out), false, nil
}

func (c *Client) adopt(ctx context.Context, applicationID string) (SystemUser, error) {
	u, err := c.FindApplicationUser(ctx, applicationID)
	if err != nil {
		return SystemUser{}, err
	}
	if u.IsDisabled {
		if err := c.SetUserDisabled(ctx, u.ID, false); err != nil {
			return SystemUser{}, err
		}
		u.IsDisabled = false
	}
	return u, nil
}

// SetUserDisabled enables or disables a user. If-Match: * keeps PATCH from creating a user
// that does not exist (Dataverse PATCH is an upsert otherwise).
func (c *Client) SetUserDisabled(ctx context.Context, userID string, disabled bool) error {
	req := request("setUserDisabled", http.MethodPatch, "/systemusers("+userID+")")
	if err := guid(req.Op, "user ID", userID); err != nil {
		return err
	}
	req.Header.Set("If-Match", "*")
	req.Body = map[string]any{"isdisabled": disabled}
	_, err := c.api.Do(ctx, req, nil)
	return err
}

// DeleteRefused reports whether err is Dataverse refusing to delete a user
// whose Entra identity still exists (CodeUserDeleteRefused).
func DeleteRefused(err error) bool {
	e, ok := msapi.AsError(err)
	return ok && strings.EqualFold(e.Code, CodeUserDeleteRefused)
}

// DeleteUser deletes a user.
func (c *Client) DeleteUser(ctx context.Context, userID string) error {
	req := request("deleteUser", http.MethodDelete, "/systemusers("+userID+")")
	if err := guid(req.Op, "user ID", userID); err != nil {
		return err
	}
	_, err := c.api.Do(ctx, req, nil)
	return err
}

// AssociateRole gives a user a security role; a role the user already has is success.
func (c *Client) AssociateRole(ctx context.Context, userID, roleID string) error {
	req := request("associateRole", http.MethodPost, "/systemusers("+userID+")/systemuserroles_association/$ref")
	if err := guid(req.Op, "user ID", userID); err != nil {
		return err
	}
	if err := guid(req.Op, "role ID", roleID); err != nil {
		return err
	}
	req.Body = map[string]string{"@odata.id": c.api.BaseURL + "/roles(" + roleID + ")"}
	_, err := c.api.Do(ctx, req, nil)
	if e, ok := msapi.AsError(err); ok && strings.EqualFold(e.Code, codeDuplicateRecord) {
		return nil
	}
	return err
}

// DisassociateRole takes a security role from a user.
func (c *Client) DisassociateRole(ctx context.Context, userID, roleID string) error {
	req := request("disassociateRole", http.MethodDelete, "/systemusers("+userID+")/systemuserroles_association("+roleID+")/$ref")
	if err := guid(req.Op, "user ID", userID); err != nil {
		return err
	}
	if err := guid(req.Op, "role ID", roleID); err != nil {
		return err
	}
	_, err := c.api.Do(ctx, req, nil)
	return err
}

// UserRoles lists a user's security roles.
func (c *Client) UserRoles(ctx context.Context, userID string) ([]Role, error) {
	req := request("userRoles", http.MethodGet, "/systemusers("+userID+")/systemuserroles_association")
	if err := guid(req.Op, "user ID", userID); err != nil {
		return nil, err
	}
	req.Query = url.Values{"$select": {"roleid,name,_businessunitid_value"}}
	return msapi.ListAll(ctx, c.api, req, func(w wireRole) Role { return Role(w) })
}

// MarketoConfig reads the Marketo solution's "Default" configuration record.
func (c *Client) MarketoConfig(ctx context.Context) (MarketoConfig, error) {
	n := c.names
	lookupValue := "_" + n.UserLookup + "_value"
	req := request("marketoConfig", http.MethodGet, "/"+n.EntitySet)
	req.Query = url.Values{
		"$filter": {n.NameColumn + " eq " + quote(n.DefaultName)},
		"$select": {n.IDColumn + "," + n.NameColumn + "," + lookupValue},
	}
	configs, err := msapi.ListAll(ctx, c.api, req, func(m map[string]any) MarketoConfig {
		str := func(k string) string { s, _ := m[k].(string); return s }
		return MarketoConfig{ID: str(n.IDColumn), Name: str(n.NameColumn), UserID: str(lookupValue)}
	})
	if err != nil {
		return MarketoConfig{}, err
	}
	if len(configs) == 0 {
		return MarketoConfig{}, notFound(req.Op, fmt.Sprintf("%s record %q", n.EntitySet, n.DefaultName))
	}
	return configs[0], nil
}

// MarketoUserNavigation reads, from the Marketo Config table's metadata,
// the navigation property of its user lookup (the many-to-one relationship
// whose ReferencingAttribute is the lookup column). Dataverse binds a
// lookup through that name, which carries the SchemaName's casing, so it
// cannot be derived from the lower-case logical name.
func (c *Client) MarketoUserNavigation(ctx context.Context) (string, error) {
	n := c.names
	req := request("marketoUserNavigation", http.MethodGet,
		"/EntityDefinitions(LogicalName="+url.PathEscape(quote(n.Entity))+")/ManyToOneRelationships")
	req.Query = url.Values{
		"$select": {"ReferencingAttribute,ReferencingEntityNavigationPropertyName,ReferencedEntity"},
		"$filter": {"ReferencingAttribute eq " + quote(n.UserLookup)},
	}
	type wireRelationship struct {
		ReferencingAttribute string `json:"ReferencingAttribute"`
		Navigation           string `json:"ReferencingEntityNavigationPropertyName"`
		ReferencedEntity     string `json:"ReferencedEntity"`
	}
	rels, err := msapi.ListAll(ctx, c.api, req, func(w wireRelationship) wireRelationship { return w })
	if err != nil {
		return "", err
	}
	for _, r := range rels {
		if strings.EqualFold(r.ReferencingAttribute, n.UserLookup) && r.Navigation != "" {
			if !strings.EqualFold(r.ReferencedEntity, "systemuser") {
				return "", &msapi.Error{Service: "dataverse", Op: req.Op, Kind: msapi.Invalid,
					Message: fmt.Sprintf("lookup %s of %s refers to %s, not systemuser", n.UserLookup, n.Entity, r.ReferencedEntity)}
			}
			return r.Navigation, nil
		}
	}
	return "", notFound(req.Op, fmt.Sprintf("a lookup column %q on table %s", n.UserLookup, n.Entity))
}

// SetMarketoConfigUser points the config record's Marketo user lookup,
// bound through its navigation property nav, at a user.
func (c *Client) SetMarketoConfigUser(ctx context.Context, configID, nav, userID string) error {
	req := request("setMarketoConfigUser", http.MethodPatch, "/"+c.names.EntitySet+"("+configID+")")
	if err := guid(req.Op, "config ID", configID); err != nil {
		return err
	}
	if err := guid(req.Op, "user ID", userID); err != nil {
		return err
	}
	if err := navigationName(req.Op, nav); err != nil {
		return err
	}
	req.Header.Set("If-Match", "*")
	req.Body = map[string]string{nav + "@odata.bind": "/systemusers(" + userID + ")"}
	_, err := c.api.Do(ctx, req, nil)
	return err
}

// ClearMarketoConfigUser empties the config record's Marketo user lookup
// (navigation property nav).
func (c *Client) ClearMarketoConfigUser(ctx context.Context, configID, nav string) error {
	req := request("clearMarketoConfigUser", http.MethodDelete, "/"+c.names.EntitySet+"("+configID+")/"+nav+"/$ref")
	if err := guid(req.Op, "config ID", configID); err != nil {
		return err
	}
	if err := navigationName(req.Op, nav); err != nil {
		return err
	}
	_, err := c.api.Do(ctx, req, nil)
	return err
}

// Time limits of the calls Microsoft documents as slow: publishing all
// customizations of a large org, and creating a column (a metadata change
// that Dataverse applies synchronously), take minutes, not seconds.
const (
	publishTimeout      = 10 * time.Minute
	createColumnTimeout = 5 * time.Minute
)

// PublishAllXml publishes all customizations.
func (c *Client) PublishAllXml(ctx context.Context) error {
	req := request("publishAllXml", http.MethodPost, "/PublishAllXml")
	req.Timeout = publishTimeout
	_, err := c.api.Do(ctx, req, nil)
	return err
}

// EnsureBooleanColumn creates a Boolean (two options) column on a table unless a column with
// that logical name (the schema name in lower case) is already there. A new column goes into
// the Default solution, and also into the unmanaged solution named by solution when set
// (header MSCRM.SolutionUniqueName), so that it travels with the customer's own solution.
func (c *Client) EnsureBooleanColumn(ctx context.Context, entityLogicalName, schemaName, displayName, solution string) (bool, error) {
	entity := "/EntityDefinitions(LogicalName=" + url.PathEscape(quote(entityLogicalName)) + ")"
	get := request("getColumn", http.MethodGet, entity+"/Attributes(LogicalName="+url.PathEscape(quote(strings.ToLower(schemaName)))+")")
	get.Query = url.Values{"$select": {"LogicalName"}}
	_, err := c.api.Do(ctx, get, nil)
	if err == nil {
		return false, nil
	}
	if !msapi.IsKind(err, msapi.NotFound) {
		return false, err
	}
	post := request("createBooleanColumn", http.MethodPost, entity+"/Attributes")
	post.Body = booleanAttribute(schemaName, displayName)
	post.Timeout = createColumnTimeout
	if solution != "" {
		post.Header.Set("MSCRM.SolutionUniqueName", solution)
	}
	if _, err := c.api.Do(ctx, post, nil); err != nil {
		return false, err
	}
	return true, nil
}

// booleanAttribute is a BooleanAttributeMetadata definition ("Create and update column
// definitions using the Web API": Boolean column example).
func booleanAttribute(schemaName, displayName string) map[string]any {
	return map[string]any{
		"@odata.type":       "Microsoft.Dynamics.CRM.BooleanAttributeMetadata",
		"AttributeType":     "Boolean",
		"AttributeTypeName": map[string]string{"Value": "BooleanType"},
		"SchemaName":        schemaName,
		"DisplayName":       label(displayName),
		"Description":       label(displayName),
		"DefaultValue":      false,
		"RequiredLevel": map[string]any{
			"Value":                      "None",
			"CanBeChanged":               true,
			"ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
		},
		"OptionSet": map[string]any{
			"@odata.type":   "Microsoft.Dynamics.CRM.BooleanOptionSetMetadata",
			"OptionSetType": "Boolean",
			"TrueOption":    map[string]any{"Value": 1, "Label": label("Yes")},
			"FalseOption":   map[string]any{"Value": 0, "Label": label("No")},
		},
	}
}

func label(text string) map[string]any {
	return map[string]any{
		"@odata.type": "Microsoft.Dynamics.CRM.Label",
		"LocalizedLabels": []map[string]any{{
			"@odata.type":  "Microsoft.Dynamics.CRM.LocalizedLabel",
			"Label":        text,
			"LanguageCode": 1033,
		}},
	}
}
