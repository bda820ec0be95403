package dataverse

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/internal/msapi/msapitest"
)

const (
	appID  = "0f9a6d3e-1111-4c4c-8888-000000000001"
	buID   = "0f9a6d3e-2222-4c4c-8888-000000000002"
	userID = "0f9a6d3e-3333-4c4c-8888-000000000003"
	roleID = "0f9a6d3e-4444-4c4c-8888-000000000004"
	cfgID  = "0f9a6d3e-5555-4c4c-8888-000000000005"
	base   = "/api/data/v9.2"
)

var reply = msapitest.Reply

func newWire(t *testing.T, names MarketoConfigNames) (*msapitest.Server, *Client) {
	w := msapitest.New(t)
	return w, New(w.URL+"/", w.Client(), msapitest.Token("dv-token"), names)
}

func TestEveryRequestCarriesODataHeaders(t *testing.T) {
	w, c := newWire(t, MarketoConfigNames{})
	w.On("GET "+base+"/WhoAmI", reply(200, `{"@odata.context":"x","BusinessUnitId":"bu","UserId":"u","OrganizationId":"o"}`))
	who, err := c.WhoAmI(context.Background())
	require.NoError(t, err)
	assert.Equal(t, WhoAmI{UserID: "u", BusinessUnitID: "bu", OrganizationID: "o"}, who)
	h := w.Last().Header
	assert.Equal(t, "4.0", h.Get("OData-MaxVersion"))
	assert.Equal(t, "4.0", h.Get("OData-Version"))
	assert.Equal(t, "application/json", h.Get("Accept"))
	assert.Equal(t, "Bearer dv-token", h.Get("Authorization"))
}

func TestFindSolution(t *testing.T) {
	w, c := newWire(t, MarketoConfigNames{})
	w.On("GET "+base+"/solutions", reply(200, `{"value":[
		{"solutionid":"s1","uniquename":"Other","friendlyname":"Marketo Lead Management","version":"1.0"},
		{"solutionid":"s2","uniquename":"MarketoLeadManagement","friendlyname":"Marketo Lead Management","version":"4.0.0.16"}]}`))
	sol, err := c.FindSolution(context.Background(), "MarketoLeadManagement")
	require.NoError(t, err)
	assert.Equal(t, Solution{ID: "s2", UniqueName: "MarketoLeadManagement", FriendlyName: "Marketo Lead Management", Version: "4.0.0.16"}, sol)
	assert.Equal(t, "$filter=uniquename%20eq%20'MarketoLeadManagement'%20or%20friendlyname%20eq%20'MarketoLeadManagement'&$select=solutionid,uniquename,friendlyname,version",
		w.Last().RawQuery)

	w.On("GET "+base+"/solutions", reply(200, `{"value":[]}`))
	_, err = c.FindSolution(context.Background(), "Bob's")
	assert.True(t, msapi.IsKind(err, msapi.NotFound))
	assert.Contains(t, w.Last().RawQuery, "'Bob''s'")
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
		err  bool
	}{
		{"4.0.0.9", "4.0.0.14", -1, false},
		{"4.0.0.14", "4.0.0.14", 0, false},
		{"4.0.0.16", "4.0.0.14", 1, false},
		{"4.1", "4.0.0.14", 1, false},
		{"4.0", "4.0.0.0", 0, false},
		{"10.0.0.0", "9.9.9.9", 1, false},
		{"4.0.0.x", "4.0.0.14", 0, true},
		{"", "1", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.a+" vs "+tt.b, func(t *testing.T) {
			got, err := CompareVersions(tt.a, tt.b)
			if tt.err {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestRootBusinessUnitAndRole(t *testing.T) {
	w, c := newWire(t, MarketoConfigNames{})
	w.On("GET "+base+"/businessunits", reply(200, `{"value":[{"businessunitid":"`+buID+`","name":"contoso"}]}`))
	w.On("GET "+base+"/roles", reply(200, `{"value":[{"roleid":"`+roleID+`","name":"Marketo Sync User","_businessunitid_value":"`+buID+`"}]}`))
	bu, err := c.RootBusinessUnit(context.Background())
	require.NoError(t, err)
	assert.Equal(t, BusinessUnit{ID: buID, Name: "contoso"}, bu)
	assert.Equal(t, "$filter=_parentbusinessunitid_value%20eq%20null&$select=businessunitid,name", w.Last().RawQuery)

	role, err := c.FindRole(context.Background(), "Marketo Sync User", buID)
	require.NoError(t, err)
	assert.Equal(t, Role{ID: roleID, Name: "Marketo Sync User", BusinessUnitID: buID}, role)
	assert.Equal(t, "$filter=name%20eq%20'Marketo%20Sync%20User'%20and%20_businessunitid_value%20eq%20"+buID+"&$select=roleid,name,_businessunitid_value", w.Last().RawQuery)

	n := len(w.Requests())
	_, err = c.FindRole(context.Background(), "x", "1 or true")
	assert.True(t, msapi.IsKind(err, msapi.Invalid))
	assert.Len(t, w.Requests(), n, "a non-GUID never reaches the server")
}

func TestCreateApplicationUserCreates(t *testing.T) {
	w, c := newWire(t, MarketoConfigNames{})
	w.On("GET "+base+"/systemusers", reply(200, `{"value":[]}`))
	w.On("POST "+base+"/systemusers", reply(201, `{"systemuserid":"`+userID+`","applicationid":"`+appID+`","accessmode":4,"isdisabled":false,"_businessunitid_value":"`+buID+`"}`))
	u, adopted, err := c.CreateApplicationUser(context.Background(), appID, buID)
	require.NoError(t, err)
	assert.False(t, adopted)
	assert.Equal(t, userID, u.ID)
	assert.Equal(t, 4, u.AccessMode)
	post := w.Last()
	assert.Equal(t, "return=representation", post.Header.Get("Prefer"))
	assert.Equal(t, map[string]any{"applicationid": appID, "businessunitid@odata.bind": "/businessunits(" + buID + ")", "accessmode": float64(4)}, post.Body)
}

func TestCreateApplicationUserAdoptsAndEnables(t *testing.T) {
	w, c := newWire(t, MarketoConfigNames{})
	w.On("GET "+base+"/systemusers", reply(200, `{"value":[{"systemuserid":"`+userID+`","applicationid":"`+appID+`","isdisabled":true,"accessmode":4}]}`))
	w.On("PATCH "+base+"/systemusers("+userID+")", reply(204, ""))
	u, adopted, err := c.CreateApplicationUser(context.Background(), appID, buID)
	require.NoError(t, err)
	assert.True(t, adopted)
	assert.False(t, u.IsDisabled)
	patch := w.Last()
	assert.Equal(t, http.MethodPatch, patch.Method)
	assert.Equal(t, "*", patch.Header.Get("If-Match"), "an update must not become an upsert")
	assert.Equal(t, map[string]any{"isdisabled": false}, patch.Body)
	for _, r := range w.Requests() {
		assert.NotEqual(t, http.MethodPost, r.Method)
	}
}

func TestCreateApplicationUserRaceAdoptsTheWinner(t *testing.T) {
	w, c := newWire(t, MarketoConfigNames{})
	calls := 0
	w.On("GET "+base+"/systemusers", func(*http.Request, map[string]any) (int, string) {
		calls++
		if calls == 1 {
			return 200, `{"value":[]}`
		}
		return 200, `{"value":[{"systemuserid":"` + userID + `","applicationid":"` + appID + `","isdisabled":false}]}`
	})
	w.On("POST "+base+"/systemusers", reply(412, `{"error":{"code":"0x80040237","message":"A record with matching key values already exists."}}`))
	u, adopted, err := c.CreateApplicationUser(context.Background(), appID, buID)
	require.NoError(t, err)
	assert.True(t, adopted)
	assert.Equal(t, userID, u.ID)
}

func TestUserLifecycleCalls(t *testing.T) {
	w, c := newWire(t, MarketoConfigNames{})
	ctx := context.Background()
	w.On("DELETE "+base+"/systemusers("+userID+")", reply(204, ""))
	w.On("POST "+base+"/systemusers("+userID+")/systemuserroles_association/$ref", reply(204, ""))
	w.On("DELETE "+base+"/systemusers("+userID+")/systemuserroles_association("+roleID+")/$ref", reply(204, ""))
	w.On("GET "+base+"/systemusers("+userID+")/systemuserroles_association", reply(200, `{"value":[{"roleid":"`+roleID+`","name":"Marketo Sync User","_businessunitid_value":"`+buID+`"}]}`))
	w.On("POST "+base+"/PublishAllXml", reply(204, ""))

	require.NoError(t, c.AssociateRole(ctx, userID, roleID))
	assert.Equal(t, map[string]any{"@odata.id": w.URL + base + "/roles(" + roleID + ")"}, w.Last().Body)

	roles, err := c.UserRoles(ctx, userID)
	require.NoError(t, err)
	assert.Equal(t, []Role{{ID: roleID, Name: "Marketo Sync User", BusinessUnitID: buID}}, roles)
	assert.Equal(t, "$select=roleid,name,_businessunitid_value", w.Last().RawQuery)

	require.NoError(t, c.DisassociateRole(ctx, userID, roleID))
	require.NoError(t, c.DeleteUser(ctx, userID))
	require.NoError(t, c.PublishAllXml(ctx))
	assert.Nil(t, w.Last().Body)

	w.On("POST "+base+"/systemusers("+userID+")/systemuserroles_association/$ref",
		reply(400, `{"error":{"code":"0x80040237","message":"Cannot insert duplicate key."}}`))
	assert.NoError(t, c.AssociateRole(ctx, userID, roleID), "already associated is success")

	w.On("DELETE "+base+"/systemusers("+userID+")/systemuserroles_association("+roleID+")/$ref",
		reply(404, `{"error":{"code":"0x80040217","message":"not associated"}}`))
	assert.True(t, msapi.IsKind(c.DisassociateRole(ctx, userID, roleID), msapi.NotFound))
}

func TestMarketoConfigWithCustomNames(t *testing.T) {
	names := MarketoConfigNames{Entity: "acme_config", EntitySet: "acme_configs", IDColumn: "acme_configid", NameColumn: "acme_name", DefaultName: "Main", UserLookup: "acme_userid"}
	w, c := newWire(t, names)
	ctx := context.Background()
	w.On("GET "+base+"/acme_configs", reply(200, `{"value":[{"acme_configid":"`+cfgID+`","acme_name":"Main","_acme_userid_value":null}]}`))
	w.On("GET "+base+"/EntityDefinitions(LogicalName='acme_config')/ManyToOneRelationships", reply(200, `{"value":[
		{"ReferencingAttribute":"acme_userid","ReferencingEntityNavigationPropertyName":"acme_UserId","ReferencedEntity":"systemuser","MetadataId":"x"}]}`))
	w.On("PATCH "+base+"/acme_configs("+cfgID+")", reply(204, ""))
	w.On("DELETE "+base+"/acme_configs("+cfgID+")/acme_UserId/$ref", reply(204, ""))

	cfg, err := c.MarketoConfig(ctx)
	require.NoError(t, err)
	assert.Equal(t, MarketoConfig{ID: cfgID, Name: "Main"}, cfg)
	assert.Equal(t, "$filter=acme_name%20eq%20'Main'&$select=acme_configid,acme_name,_acme_userid_value", w.Last().RawQuery)

	nav, err := c.MarketoUserNavigation(ctx)
	require.NoError(t, err)
	assert.Equal(t, "acme_UserId", nav, "the navigation property keeps the SchemaName's casing")
	assert.Equal(t, "$filter=ReferencingAttribute%20eq%20'acme_userid'&$select=ReferencingAttribute,ReferencingEntityNavigationPropertyName,ReferencedEntity",
		w.Last().RawQuery)

	require.NoError(t, c.SetMarketoConfigUser(ctx, cfgID, nav, userID))
	assert.Equal(t, map[string]any{"acme_UserId@odata.bind": "/systemusers(" + userID + ")"}, w.Last().Body)
	assert.Equal(t, "*", w.Last().Header.Get("If-Match"))
	require.NoError(t, c.ClearMarketoConfigUser(ctx, cfgID, nav))
	assert.Error(t, c.SetMarketoConfigUser(ctx, cfgID, "x@odata.bind\"", userID), "a name from metadata is checked before use")

	w.On("GET "+base+"/EntityDefinitions(LogicalName='acme_config')/ManyToOneRelationships", reply(200, `{"value":[
		{"ReferencingAttribute":"acme_userid","ReferencingEntityNavigationPropertyName":"acme_UserId","ReferencedEntity":"team"}]}`))
	_, err = c.MarketoUserNavigation(ctx)
	assert.True(t, msapi.IsKind(err, msapi.Invalid), "a lookup to another table: %v", err)
	w.On("GET "+base+"/EntityDefinitions(LogicalName='acme_config')/ManyToOneRelationships", reply(200, `{"value":[]}`))
	_, err = c.MarketoUserNavigation(ctx)
	assert.True(t, msapi.IsKind(err, msapi.NotFound), "%v", err)

	w.On("GET "+base+"/acme_configs", reply(200, `{"value":[]}`))
	_, err = c.MarketoConfig(ctx)
	assert.True(t, msapi.IsKind(err, msapi.NotFound))
}

func TestDefaultMarketoConfigNamesFillGaps(t *testing.T) {
	c := New("https://org.crm.dynamics.com", nil, nil, MarketoConfigNames{EntitySet: "x_configs"})
	assert.Equal(t, "x_configs", c.names.EntitySet)
	assert.Equal(t, DefaultMarketoConfigNames().UserLookup, c.names.UserLookup)
	assert.Equal(t, "https://org.crm.dynamics.com/api/data/v9.2", c.api.BaseURL)
}

func TestEnsureBooleanColumn(t *testing.T) {
	w, c := newWire(t, MarketoConfigNames{})
	ctx := context.Background()
	attr := "GET " + base + "/EntityDefinitions(LogicalName='lead')/Attributes(LogicalName='new_synctomkto')"
	w.On(attr, reply(200, `{"LogicalName":"new_synctomkto"}`))
	created, err := c.EnsureBooleanColumn(ctx, "lead", "new_SyncToMkto", "Sync to Marketo", "")
	require.NoError(t, err)
	assert.False(t, created)
	assert.Len(t, w.Requests(), 1)

	w.On(attr, reply(404, `{"error":{"code":"0x80040217","message":"Could not find attribute"}}`))
	w.On("POST "+base+"/EntityDefinitions(LogicalName='lead')/Attributes", reply(204, ""))
	created, err = c.EnsureBooleanColumn(ctx, "lead", "new_SyncToMkto", "Sync to Marketo", "")
	require.NoError(t, err)
	assert.True(t, created)
	body := w.Last().Body
	assert.Equal(t, "Microsoft.Dynamics.CRM.BooleanAttributeMetadata", body["@odata.type"])
	assert.Equal(t, "new_SyncToMkto", body["SchemaName"])
	assert.Equal(t, "Boolean", body["AttributeType"])
	opts := body["OptionSet"].(map[string]any)
	assert.EqualValues(t, 1, opts["TrueOption"].(map[string]any)["Value"])
	assert.EqualValues(t, 0, opts["FalseOption"].(map[string]any)["Value"])
	labels := body["DisplayName"].(map[string]any)["LocalizedLabels"].([]any)
	assert.Equal(t, "Sync to Marketo", labels[0].(map[string]any)["Label"])

	assert.Empty(t, w.Last().Header.Get("MSCRM.SolutionUniqueName"), "no solution named: Default only")
	_, err = c.EnsureBooleanColumn(ctx, "lead", "new_SyncToMkto", "Sync to Marketo", "ContosoCustomizations")
	require.NoError(t, err)
	assert.Equal(t, "ContosoCustomizations", w.Last().Header.Get("MSCRM.SolutionUniqueName"))

	w.On(attr, reply(403, `{"error":{"code":"0x80040220","message":"no privilege"}}`))
	_, err = c.EnsureBooleanColumn(ctx, "lead", "new_SyncToMkto", "Sync to Marketo", "")
	assert.True(t, msapi.IsKind(err, msapi.PermissionDenied))
}
