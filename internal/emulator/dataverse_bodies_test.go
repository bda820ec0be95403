package emulator

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dvFixture reads the IDs the Dataverse body tests need from the contoso org.
type dvFixture struct {
	tok, userID, roleID, cfgID, buID string
}

func newDVFixture(t *testing.T, e *env) dvFixture {
	t.Helper()
	f := dvFixture{tok: e.provDV(contosoID, contosoHost)}
	who := e.do(http.MethodGet, e.dv(contosoHost, "/WhoAmI"), f.tok, nil).json(t)
	f.userID, f.buID = who["UserId"].(string), who["BusinessUnitId"].(string)
	roles := e.do(http.MethodGet, e.dv(contosoHost, "/roles?$filter=name%20eq%20'Marketo%20Sync%20User'"), f.tok, nil).json(t)["value"].([]any)
	require.Len(t, roles, 1)
	f.roleID = roles[0].(map[string]any)["roleid"].(string)
	cfgs := e.do(http.MethodGet, e.dv(contosoHost, "/mkto_marketoconfigs"), f.tok, nil).json(t)["value"].([]any)
	require.NotEmpty(t, cfgs)
	f.cfgID = cfgs[0].(map[string]any)["mkto_marketoconfigid"].(string)
	return f
}

func (e *env) userRoleNames(userID string) []string {
	for _, o := range e.s.State().Orgs {
		for _, u := range o.Users {
			if o.Host == contosoHost && strings.EqualFold(u.ID, userID) {
				return u.RoleNames
			}
		}
	}
	return nil
}

// An absolute reference must be based on the org's own Web API root
// (associate-disassociate-entities-using-web-api: "@odata.id":"[Organization
// URI]/api/data/v9.2/…"; OData: "The URI '…' is not valid because it is not
// based on '…'"). The emulator took any host before: a role reference
// pointing at another host, org or API version was associated.
func TestReferencesMustBeBasedOnTheOrgsServiceRoot(t *testing.T) {
	e := start(t, DefaultSeed())
	f := newDVFixture(t, e)
	root := e.s.OrgURL(contosoHost) + "/api/data/v9.2/"
	assoc := e.dv(contosoHost, "/systemusers("+f.userID+")/systemuserroles_association/$ref")
	refused := map[string]string{
		"another host":        "https://evil.example/api/data/v9.2/roles(" + f.roleID + ")",
		"another org":         e.s.OrgURL("fabrikam.crm.localhost") + "/api/data/v9.2/roles(" + f.roleID + ")",
		"another API version": e.s.OrgURL(contosoHost) + "/api/data/v9.1/roles(" + f.roleID + ")",
		"plain http":          strings.Replace(root, "https://", "http://", 1) + "roles(" + f.roleID + ")",
		"network-path":        "//evil.example/api/data/v9.2/roles(" + f.roleID + ")",
		"credentials in it":   strings.Replace(root, "https://", "https://user:pw@", 1) + "roles(" + f.roleID + ")",
	}
	for name, ref := range refused {
		r := e.do(http.MethodPost, assoc, f.tok, map[string]any{"@odata.id": ref})
		assert.Equal(t, http.StatusBadRequest, r.status, "%s: %s", name, r.body)
		assert.Equal(t, "0x80048d19", r.errCode(t), name)
		assert.Contains(t, string(r.body), "is not based on '"+root+"'", name)
	}
	assert.NotContains(t, e.userRoleNames(f.userID), "Marketo Sync User", "no refused reference was associated")

	for _, ref := range []string{root + "roles(" + f.roleID + ")", "roles(" + f.roleID + ")", "/roles(" + f.roleID + ")",
		strings.ToUpper(e.s.OrgURL(contosoHost)) + "/api/data/v9.2/roles(" + f.roleID + ")"} {
		r := e.do(http.MethodPost, assoc, f.tok, map[string]any{"@odata.id": ref})
		require.Equal(t, http.StatusNoContent, r.status, "%s: %s", ref, r.body)
		assert.Contains(t, e.userRoleNames(f.userID), "Marketo Sync User")
		d := e.do(http.MethodDelete, assoc+"?$id="+url.QueryEscape(ref), f.tok, nil)
		require.Equal(t, http.StatusNoContent, d.status, "%s: %s", ref, d.body)
	}
	r := e.do(http.MethodDelete, assoc+"?$id="+url.QueryEscape(refused["another host"]), f.tok, nil)
	assert.Equal(t, http.StatusBadRequest, r.status, "disassociate by $id: %s", r.body)

	// The same rule for @odata.bind: the Marketo Config lookup and the
	// application user's business unit.
	r = e.do(http.MethodPatch, e.dv(contosoHost, "/mkto_marketoconfigs("+f.cfgID+")"), f.tok,
		map[string]any{"mkto_MarketoUserId@odata.bind": "https://evil.example/api/data/v9.2/systemusers(" + f.userID + ")"}, "If-Match", "*")
	assert.Equal(t, http.StatusBadRequest, r.status, string(r.body))
	assert.Equal(t, "0x80048d19", r.errCode(t))
	r = e.do(http.MethodPatch, e.dv(contosoHost, "/mkto_marketoconfigs("+f.cfgID+")"), f.tok,
		map[string]any{"mkto_MarketoUserId@odata.bind": root + "systemusers(" + f.userID + ")"}, "If-Match", "*")
	assert.Equal(t, http.StatusNoContent, r.status, string(r.body))
	r = e.do(http.MethodPost, e.dv(contosoHost, "/systemusers"), f.tok, map[string]any{
		"applicationid": "aaaaaaaa-0000-0000-0000-0000000000ff", "accessmode": 4,
		"businessunitid@odata.bind": "https://evil.example/api/data/v9.2/businessunits(" + f.buID + ")"})
	assert.Equal(t, http.StatusBadRequest, r.status, string(r.body))
	assert.Equal(t, "0x80048d19", r.errCode(t))
}

// PublishAllXml takes no parameters (reference/publishallxml): no body or
// {} publishes; a parameter it does not have is refused, as OData refuses
// it, and nothing is published. The emulator ignored any body before.
func TestPublishAllXmlTakesNoParameters(t *testing.T) {
	e := start(t, DefaultSeed())
	tok := e.provDV(contosoID, contosoHost)
	publish := e.dv(contosoHost, "/PublishAllXml")
	publishes := func() int {
		for _, o := range e.s.State().Orgs {
			if o.Host == contosoHost {
				return o.PublishCount
			}
		}
		return -1
	}
	require.Equal(t, http.StatusNoContent, e.do(http.MethodPost, publish, tok, nil).status)
	require.Equal(t, http.StatusNoContent, e.do(http.MethodPost, publish, tok, map[string]any{}).status)
	require.Equal(t, 2, publishes())
	for name, body := range map[string]any{
		"a parameter":             map[string]any{"ParameterXml": "<importexportxml/>"},
		"PublishXml's parameter":  map[string]any{"parameterxml": "x"},
		"not an object":           []any{1},
		"a parameter set to null": map[string]any{"Target": nil},
	} {
		r := e.do(http.MethodPost, publish, tok, body)
		assert.Equal(t, http.StatusBadRequest, r.status, "%s: %s", name, r.body)
		assert.Equal(t, "0x80048d19", r.errCode(t), name)
	}
	r := e.do(http.MethodPost, publish, tok, map[string]any{"ParameterXml": "x"})
	assert.Contains(t, string(r.body), "The parameter 'ParameterXml' in the request payload is not a valid parameter for the operation 'PublishAllXml'.")
	assert.Equal(t, 2, publishes(), "a refused publish publishes nothing")
}

// The Boolean column is created only from a definition Dataverse takes
// (columns.go). Before, a definition without RequiredLevel, with unknown
// properties or with RequiredLevel {"Value":"x"} created the column.
func TestBooleanColumnDefinitionIsCheckedAsDataverseDoes(t *testing.T) {
	e := start(t, DefaultSeed())
	tok := e.provDV(contosoID, contosoHost)
	attrs := e.dv(contosoHost, "/EntityDefinitions(LogicalName='lead')/Attributes")
	with := func(edit func(m map[string]any)) map[string]any {
		m := booleanColumn("new_Checked", "Checked")
		edit(m)
		return m
	}
	sub := func(m map[string]any, keys ...string) map[string]any {
		for _, k := range keys {
			m = m[k].(map[string]any)
		}
		return m
	}
	tests := []struct {
		name string
		body map[string]any
		code string
		says string
	}{
		{"no RequiredLevel", with(func(m map[string]any) { delete(m, "RequiredLevel") }), "0x80040203", "RequiredLevel is required"},
		{"RequiredLevel without Value", with(func(m map[string]any) { delete(sub(m, "RequiredLevel"), "Value") }), "0x80040203", "RequiredLevel is required"},
		{`"Value":"x"`, with(func(m map[string]any) { sub(m, "RequiredLevel")["Value"] = "x" }), "0x80048d19", "Cannot convert the literal 'x'"},
		{"Value in the wrong case", with(func(m map[string]any) { sub(m, "RequiredLevel")["Value"] = "none" }), "0x80048d19", "AttributeRequiredLevel"},
		{"Value as a number", with(func(m map[string]any) { sub(m, "RequiredLevel")["Value"] = 0 }), "0x80048d19", "RequiredLevel.Value"},
		{"SystemRequired on create", with(func(m map[string]any) { sub(m, "RequiredLevel")["Value"] = "SystemRequired" }), "0x80040203", "cannot be set when creating"},
		{"unknown top-level property", with(func(m map[string]any) { m["IsSyncedToMarketo"] = true }), "0x0", "Invalid property 'IsSyncedToMarketo'"},
		{"top-level property in the wrong case", with(func(m map[string]any) { m["schemaName"] = m["SchemaName"]; delete(m, "SchemaName") }), "0x0", "Invalid property 'schemaName'"},
		{"unknown nested property", with(func(m map[string]any) { sub(m, "RequiredLevel")["Valeu"] = "None" }), "0x80048d19", "'Valeu' does not exist on type 'Microsoft.Dynamics.CRM.AttributeRequiredLevelManagedProperty'"},
		{"nested property in the wrong case", with(func(m map[string]any) {
			sub(m, "DisplayName")["LocalizedLabels"].([]any)[0].(map[string]any)["languageCode"] = 1033
		}), "0x80048d19", "'languageCode' does not exist on type 'Microsoft.Dynamics.CRM.LocalizedLabel'"},
		{"no SchemaName", with(func(m map[string]any) { delete(m, "SchemaName") }), "0x80040203", "SchemaName is required"},
		{"SchemaName without prefix", with(func(m map[string]any) { m["SchemaName"] = "Checked" }), "0x80040203", "customization prefix"},
		{"no DisplayName", with(func(m map[string]any) { delete(m, "DisplayName") }), "0x80040203", "DisplayName is required"},
		{"DisplayName without labels", with(func(m map[string]any) { sub(m, "DisplayName")["LocalizedLabels"] = []any{} }), "0x80040203", "at least one LocalizedLabel"},
		{"DisplayName as a string", with(func(m map[string]any) { m["DisplayName"] = "Checked" }), "0x80048d19", "DisplayName"},
		{"label without language", with(func(m map[string]any) {
			delete(sub(m, "Description")["LocalizedLabels"].([]any)[0].(map[string]any), "LanguageCode")
		}), "0x80040203", "LanguageCode"},
		{"label of another type", with(func(m map[string]any) { sub(m, "DisplayName")["@odata.type"] = "Microsoft.Dynamics.CRM.OptionMetadata" }), "0x80048d19", "not assignable"},
		{"no OptionSet", with(func(m map[string]any) { delete(m, "OptionSet") }), "0x80040203", "TrueOption and FalseOption"},
		{"no FalseOption", with(func(m map[string]any) { delete(sub(m, "OptionSet"), "FalseOption") }), "0x80040203", "TrueOption and FalseOption"},
		{"option values swapped", with(func(m map[string]any) { sub(m, "OptionSet", "TrueOption")["Value"] = 0 }), "0x80040203", "values 1 (TrueOption) and 0"},
		{"picklist option set", with(func(m map[string]any) { sub(m, "OptionSet")["OptionSetType"] = "Picklist" }), "0x80040203", "OptionSetType must be 'Boolean'"},
		{"option set type not a member", with(func(m map[string]any) { sub(m, "OptionSet")["OptionSetType"] = "Bool" }), "0x80048d19", "OptionSetType"},
		{"another column type", with(func(m map[string]any) { m["@odata.type"] = "Microsoft.Dynamics.CRM.StringAttributeMetadata" }), "0x80040203", "Boolean columns only"},
		{"no @odata.type", with(func(m map[string]any) { delete(m, "@odata.type") }), "0x80048d19", "@odata.type"},
		{"AttributeType of another type", with(func(m map[string]any) { m["AttributeType"] = "String" }), "0x80040203", "AttributeType 'String'"},
		{"LogicalName not the SchemaName", with(func(m map[string]any) { m["LogicalName"] = "new_other" }), "0x80040203", "LogicalName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(http.MethodPost, attrs, tok, tt.body)
			require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
			assert.Equal(t, tt.code, r.errCode(t))
			assert.Contains(t, string(r.body), tt.says)
		})
	}
	for _, o := range e.s.State().Orgs {
		if o.Host == contosoHost {
			assert.NotContains(t, o.Columns["lead"], "new_checked", "no refused definition created the column")
		}
	}
	for _, level := range []string{"None", "Recommended", "ApplicationRequired"} {
		body := booleanColumn("new_Checked"+level, "Checked")
		body["RequiredLevel"].(map[string]any)["Value"] = level
		body["LogicalName"] = "new_checked" + strings.ToLower(level)
		r := e.do(http.MethodPost, attrs, tok, body)
		assert.Equal(t, http.StatusNoContent, r.status, "%s: %s", level, r.body)
	}
}

// Dataverse's documented answers to a wrong name (web-api-client-errors):
// names are case-sensitive, an unknown segment is 0x8006088a, a function
// called with the wrong method is "No HTTP resource was found", a property
// the entity does not have is "Invalid property … was found in entity".
func TestDataverseNamesAreCaseSensitive(t *testing.T) {
	e := start(t, DefaultSeed())
	tok := e.provDV(contosoID, contosoHost)
	r := e.do(http.MethodGet, e.dv(contosoHost, "/SystemUsers"), tok, nil)
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "0x8006088a", r.errCode(t))
	r = e.do(http.MethodPost, e.dv(contosoHost, "/publishallxml"), tok, nil)
	assert.Equal(t, http.StatusNotFound, r.status, "action names are case-sensitive")
	r = e.do(http.MethodPost, e.dv(contosoHost, "/WhoAmI"), tok, nil)
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Contains(t, string(r.body), "No HTTP resource was found that matches the request URI")
	r = e.do(http.MethodGet, e.dv(contosoHost, "/roles?$select=Name"), tok, nil)
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Contains(t, string(r.body), "Could not find a property named 'Name' on type 'Microsoft.Dynamics.CRM.role'.")
	who := e.do(http.MethodGet, e.dv(contosoHost, "/WhoAmI"), tok, nil).json(t)
	r = e.do(http.MethodPatch, e.dv(contosoHost, "/systemusers("+who["UserId"].(string)+")"), tok, map[string]any{"IsDisabled": false}, "If-Match", "*")
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "0x0", r.errCode(t))
	assert.Contains(t, string(r.body), "Invalid property 'IsDisabled' was found in entity 'Microsoft.Dynamics.CRM.systemuser'")
}

// A single record's $select is checked like a list's: names are
// case-sensitive (before, the emulator ignored the query of a single
// record, so $select=logicalname passed).
func TestSingleRecordSelectIsChecked(t *testing.T) {
	e := start(t, DefaultSeed())
	tok := e.provDV(contosoID, contosoHost)
	require.Equal(t, http.StatusNoContent, e.do(http.MethodPost, e.dv(contosoHost, "/EntityDefinitions(LogicalName='lead')/Attributes"), tok, booleanColumn("new_Sel", "Sel")).status)
	attr := e.dv(contosoHost, "/EntityDefinitions(LogicalName='lead')/Attributes(LogicalName='new_sel')")
	r := e.do(http.MethodGet, attr+"?$select=LogicalName", tok, nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	m := r.json(t)
	assert.Equal(t, "new_sel", m["LogicalName"])
	assert.NotContains(t, m, "SchemaName", "$select projects")
	r = e.do(http.MethodGet, attr+"?$select=logicalname", tok, nil)
	assert.Equal(t, http.StatusBadRequest, r.status, string(r.body))
	assert.Contains(t, string(r.body), "Could not find a property named 'logicalname'")

	who := e.do(http.MethodGet, e.dv(contosoHost, "/WhoAmI"), tok, nil).json(t)
	user := e.dv(contosoHost, "/systemusers("+who["UserId"].(string)+")")
	r = e.do(http.MethodGet, user+"?$select=isdisabled,accessmode", tok, nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	assert.Equal(t, false, r.json(t)["isdisabled"])
	assert.Equal(t, http.StatusBadRequest, e.do(http.MethodGet, user+"?$select=IsDisabled", tok, nil).status)
	assert.Equal(t, http.StatusBadRequest, e.do(http.MethodGet, user+"?$top=1", tok, nil).status)
}
