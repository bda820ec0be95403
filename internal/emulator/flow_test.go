package emulator

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const redirect = "https://localhost:8400/consent-done"

// onboard plays the provisioner through app, SP and secret; it returns appId, app object id, SP id, secret.
func (e *env) onboard(tok, uniqueName string) (appID, objID, spID, secret string) {
	t := e.t
	t.Helper()
	body := map[string]any{
		"displayName": "Marketo Integration", "signInAudience": "AzureADMyOrg",
		"web": map[string]any{"redirectUris": []string{redirect}},
		"requiredResourceAccess": []any{map[string]any{"resourceAppId": dynamicsCRMAppID,
			"resourceAccess": []any{map[string]any{"id": dynamicsImpersonation, "type": "Scope"}}}},
	}
	r := e.do(http.MethodPatch, e.graph("/applications(uniqueName='"+uniqueName+"')"), tok, body, "Prefer", "create-if-missing")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	app := r.json(t)
	appID, objID = app["appId"].(string), app["id"].(string)
	r = e.do(http.MethodPatch, e.graph("/servicePrincipals(appId='"+appID+"')"), tok, map[string]any{}, "Prefer", "create-if-missing")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	spID = r.json(t)["id"].(string)
	r = e.do(http.MethodPost, e.graph("/applications/"+objID+"/addPassword"), tok, map[string]any{
		"passwordCredential": map[string]any{"displayName": "onboarding/" + uniqueName, "endDateTime": time.Now().AddDate(1, 0, 0).UTC().Format(time.RFC3339)}})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	pc := r.json(t)
	secret = pc["secretText"].(string)
	require.Len(t, secret, 40)
	assert.Equal(t, secret[:3], pc["hint"])
	return appID, objID, spID, secret
}

func TestOnboardingFlowEndToEnd(t *testing.T) {
	e := start(t, nil)
	tok := e.provGraph(contosoID)
	dvTok := e.provDV(contosoID, contosoHost)
	appID, objID, spID, secret := e.onboard(tok, "mktos2s-contoso")

	t.Run("second upsert is 204 and the same app", func(t *testing.T) {
		r := e.do(http.MethodPatch, e.graph("/applications(uniqueName='mktos2s-contoso')"), tok, map[string]any{"displayName": "Marketo Integration"}, "Prefer", "create-if-missing")
		assert.Equal(t, http.StatusNoContent, r.status)
		g := e.do(http.MethodGet, e.graph("/applications(uniqueName='mktos2s-contoso')"), tok, nil)
		require.Equal(t, http.StatusOK, g.status)
		assert.Equal(t, objID, g.json(t)["id"])
		pcs := g.json(t)["passwordCredentials"].([]any)
		require.Len(t, pcs, 1)
		assert.Nil(t, pcs[0].(map[string]any)["secretText"])
		assert.Equal(t, secret[:3], pcs[0].(map[string]any)["hint"])
		sp := e.do(http.MethodPatch, e.graph("/servicePrincipals(appId='"+appID+"')"), tok, map[string]any{}, "Prefer", "create-if-missing")
		assert.Equal(t, http.StatusNoContent, sp.status)
	})
	t.Run("requests the real service rejects", func(t *testing.T) {
		cases := map[string]struct {
			r      resp
			status int
		}{
			"PATCH missing app without Prefer": {e.do(http.MethodPatch, e.graph("/applications(uniqueName='nope')"), tok, map[string]any{"displayName": "x"}), 404},
			"misspelled property":              {e.do(http.MethodPatch, e.graph("/applications(uniqueName='mktos2s-contoso')"), tok, map[string]any{"displayname": "x"}, "Prefer", "create-if-missing"), 400},
			"create without displayName":       {e.do(http.MethodPatch, e.graph("/applications(uniqueName='new-one')"), tok, map[string]any{"signInAudience": "AzureADMyOrg"}, "Prefer", "create-if-missing"), 400},
			"passwordCredentials via PATCH":    {e.do(http.MethodPatch, e.graph("/applications(uniqueName='mktos2s-contoso')"), tok, map[string]any{"passwordCredentials": []any{}}), 400},
			"wrong method":                     {e.do(http.MethodPut, e.graph("/applications(uniqueName='mktos2s-contoso')"), tok, map[string]any{}), 405},
			"unknown segment":                  {e.do(http.MethodGet, e.graph("/aplications"), tok, nil), 400},
			"addPassword bad field":            {e.do(http.MethodPost, e.graph("/applications/"+objID+"/addPassword"), tok, map[string]any{"passwordCredential": map[string]any{"name": "x"}}), 400},
			"addPassword nested wrong case":    {e.do(http.MethodPost, e.graph("/applications/"+objID+"/addPassword"), tok, map[string]any{"passwordCredential": map[string]any{"DisplayName": "x"}}), 400},
			"addPassword sets secretText":      {e.do(http.MethodPost, e.graph("/applications/"+objID+"/addPassword"), tok, map[string]any{"passwordCredential": map[string]any{"secretText": "mine"}}), 400},
			"dataverse quoted guid":            {e.do(http.MethodGet, e.dv(contosoHost, "/systemusers?$filter=applicationid%20eq%20'"+appID+"'"), dvTok, nil), 400},
			"dataverse unknown column":         {e.do(http.MethodGet, e.dv(contosoHost, "/roles?$filter=nam%20eq%20'x'"), dvTok, nil), 400},
		}
		for name, c := range cases {
			assert.Equal(t, c.status, c.r.status, "%s: %s", name, c.r.body)
		}
	})

	t.Run("new app token: rejected by Dataverse until its app user exists", func(t *testing.T) {
		appTok := e.token(contosoID, appID, secret, e.s.OrgURL(contosoHost))
		r := e.do(http.MethodGet, e.dv(contosoHost, "/WhoAmI"), appTok, nil)
		assert.Equal(t, http.StatusForbidden, r.status)
		assert.Equal(t, "0x80072560", r.errCode(t))

		bu := e.do(http.MethodGet, e.dv(contosoHost, "/businessunits?$filter=_parentbusinessunitid_value%20eq%20null&$select=businessunitid,name"), dvTok, nil)
		require.Equal(t, http.StatusOK, bu.status, string(bu.body))
		buID := bu.json(t)["value"].([]any)[0].(map[string]any)["businessunitid"].(string)
		create := map[string]any{"applicationid": appID, "businessunitid@odata.bind": "/businessunits(" + buID + ")", "accessmode": 4}
		cr := e.do(http.MethodPost, e.dv(contosoHost, "/systemusers"), dvTok, create)
		require.Equal(t, http.StatusNoContent, cr.status, string(cr.body))
		assert.Contains(t, cr.header.Get("OData-EntityId"), "/systemusers(")
		dup := e.do(http.MethodPost, e.dv(contosoHost, "/systemusers"), dvTok, create)
		assert.Equal(t, http.StatusPreconditionFailed, dup.status)
		assert.Equal(t, "0x80040237", dup.errCode(t))

		users := e.do(http.MethodGet, e.dv(contosoHost, "/systemusers?$filter=applicationid%20eq%20"+appID), dvTok, nil).json(t)["value"].([]any)
		require.Len(t, users, 1)
		u := users[0].(map[string]any)
		assert.Equal(t, appID+"@contoso.onmicrosoft.com", u["internalemailaddress"])
		userID := u["systemuserid"].(string)

		who := e.do(http.MethodGet, e.dv(contosoHost, "/WhoAmI"), appTok, nil)
		require.Equal(t, http.StatusOK, who.status, string(who.body))
		assert.Equal(t, userID, who.json(t)["UserId"])

		// role: find, associate, duplicate, list
		roles := e.do(http.MethodGet, e.dv(contosoHost, "/roles?$filter=name%20eq%20'Marketo%20Sync%20User'%20and%20_businessunitid_value%20eq%20"+buID), dvTok, nil)
		require.Equal(t, http.StatusOK, roles.status, string(roles.body))
		rv := roles.json(t)["value"].([]any)
		require.Len(t, rv, 1)
		roleID := rv[0].(map[string]any)["roleid"].(string)
		ref := map[string]any{"@odata.id": e.s.OrgURL(contosoHost) + "/api/data/v9.2/roles(" + roleID + ")"}
		assert.Equal(t, http.StatusNoContent, e.do(http.MethodPost, e.dv(contosoHost, "/systemusers("+userID+")/systemuserroles_association/$ref"), dvTok, ref).status)
		d := e.do(http.MethodPost, e.dv(contosoHost, "/systemusers("+userID+")/systemuserroles_association/$ref"), dvTok, ref)
		assert.Equal(t, "0x80040237", d.errCode(t))
		// the sync user may read but not write
		assert.Equal(t, http.StatusForbidden, e.do(http.MethodPost, e.dv(contosoHost, "/PublishAllXml"), appTok, nil).status)

		// Marketo config
		cfg := e.do(http.MethodGet, e.dv(contosoHost, "/mkto_marketoconfigs?$filter=mkto_name%20eq%20'Default'"), dvTok, nil).json(t)["value"].([]any)
		require.Len(t, cfg, 1)
		cfgID := cfg[0].(map[string]any)["mkto_marketoconfigid"].(string)
		// The lookup binds through its navigation property, found in the
		// table's metadata in the SchemaName's casing; the logical name is refused.
		rels := e.do(http.MethodGet, e.dv(contosoHost, "/EntityDefinitions(LogicalName='mkto_marketoconfig')/ManyToOneRelationships"+
			"?$select=ReferencingEntityNavigationPropertyName&$filter=ReferencingAttribute%20eq%20'mkto_marketouserid'"), dvTok, nil)
		require.Equal(t, http.StatusOK, rels.status, string(rels.body))
		relVals := rels.json(t)["value"].([]any)
		require.Len(t, relVals, 1, "the filter picks the user lookup out of the table's relationships")
		assert.Equal(t, "mkto_MarketoUserId", relVals[0].(map[string]any)["ReferencingEntityNavigationPropertyName"])
		p := e.do(http.MethodPatch, e.dv(contosoHost, "/mkto_marketoconfigs("+cfgID+")"), dvTok, map[string]any{"mkto_marketouserid@odata.bind": "/systemusers(" + userID + ")"})
		require.Equal(t, http.StatusBadRequest, p.status, "the logical name is no navigation property: %s", p.body)
		assert.Contains(t, string(p.body), "undeclared property 'mkto_marketouserid'")
		p = e.do(http.MethodPatch, e.dv(contosoHost, "/mkto_marketoconfigs("+cfgID+")"), dvTok, map[string]any{"mkto_MarketoUserId@odata.bind": "/systemusers(" + userID + ")"})
		require.Equal(t, http.StatusNoContent, p.status, string(p.body))
		assert.Equal(t, http.StatusNoContent, e.do(http.MethodPost, e.dv(contosoHost, "/PublishAllXml"), dvTok, nil).status)

		// Boolean column
		col := booleanColumn("new_SyncToMkto", "Sync to Marketo")
		assert.Equal(t, http.StatusNotFound, e.do(http.MethodGet, e.dv(contosoHost, "/EntityDefinitions(LogicalName='lead')/Attributes(LogicalName='new_synctomkto')"), dvTok, nil).status)
		assert.Equal(t, http.StatusNoContent, e.do(http.MethodPost, e.dv(contosoHost, "/EntityDefinitions(LogicalName='lead')/Attributes"), dvTok, col).status)
		assert.Equal(t, http.StatusOK, e.do(http.MethodGet, e.dv(contosoHost, "/EntityDefinitions(LogicalName='lead')/Attributes(LogicalName='new_synctomkto')"), dvTok, nil).status)

		st := e.s.State()
		o := st.Orgs[0]
		assert.Equal(t, 1, o.PublishCount)
		assert.Equal(t, []string{"new_synctomkto"}, o.Columns["lead"])
		assert.Equal(t, userID, o.MarketoConfigs[0].UserID)
		require.Len(t, o.Users, 2)
		assert.Equal(t, []string{"Marketo Sync User"}, o.Users[1].RoleNames)

		// disabling the user locks the app out again
		assert.Equal(t, http.StatusNoContent, e.do(http.MethodPatch, e.dv(contosoHost, "/systemusers("+userID+")"), dvTok, map[string]any{"isdisabled": true}).status)
		assert.Equal(t, http.StatusForbidden, e.do(http.MethodGet, e.dv(contosoHost, "/WhoAmI"), appTok, nil).status)
	})

	t.Run("admin consent granted and denied", func(t *testing.T) {
		base := e.s.URL() + "/" + contosoID + "/adminconsent?client_id=" + appID + "&redirect_uri=" + url.QueryEscape(redirect) + "&state=s-1"
		denied := e.answerConsent(base, false)
		require.Equal(t, http.StatusFound, denied.status)
		loc, err := url.Parse(denied.header.Get("Location"))
		require.NoError(t, err)
		assert.Equal(t, "consent_required", loc.Query().Get("error"), "Entra's documented error answer")
		assert.Equal(t, "True", loc.Query().Get("admin_consent"), "which keeps admin_consent=True beside the error")
		assert.Contains(t, loc.Query().Get("error_description"), "AADSTS65004")
		assert.Equal(t, "s-1", loc.Query().Get("state"))
		grants := e.do(http.MethodGet, e.graph("/oauth2PermissionGrants?$filter=clientId%20eq%20'"+spID+"'"), tok, nil).json(t)["value"].([]any)
		assert.Empty(t, grants)

		ok := e.answerConsent(base, true)
		require.Equal(t, http.StatusFound, ok.status)
		loc, err = url.Parse(ok.header.Get("Location"))
		require.NoError(t, err)
		assert.Equal(t, "True", loc.Query().Get("admin_consent"))
		assert.Equal(t, contosoID, loc.Query().Get("tenant"))
		assert.Equal(t, "s-1", loc.Query().Get("state"))
		assert.Equal(t, strings.TrimSuffix(redirect, "/"), loc.Scheme+"://"+loc.Host+loc.Path)
		e.answerConsent(base, true) // consenting twice keeps one grant
		grants = e.do(http.MethodGet, e.graph("/oauth2PermissionGrants?$filter=clientId%20eq%20'"+spID+"'"), tok, nil).json(t)["value"].([]any)
		require.Len(t, grants, 1)
		g := grants[0].(map[string]any)
		assert.Equal(t, "AllPrincipals", g["consentType"])
		assert.Equal(t, "user_impersonation", g["scope"])

		bad := e.do(http.MethodGet, e.s.URL()+"/"+contosoID+"/adminconsent?client_id="+appID+"&redirect_uri="+url.QueryEscape("https://evil.example/"), "", nil)
		assert.Equal(t, http.StatusBadRequest, bad.status)
		noScope := e.do(http.MethodGet, e.s.URL()+"/"+contosoID+"/v2.0/adminconsent?client_id="+appID+"&redirect_uri="+url.QueryEscape(redirect)+"&state=s-2", "", nil)
		assert.Equal(t, http.StatusBadRequest, noScope.status, "the v2.0 endpoint requires scope")
		assert.Contains(t, string(noScope.body), "AADSTS900144")
	})

	t.Run("HRD policy assign and unassign", func(t *testing.T) {
		p := e.do(http.MethodPost, e.graph("/policies/homeRealmDiscoveryPolicies"), tok, map[string]any{
			"displayName": "mktos2s HRD", "definition": []string{`{"HomeRealmDiscoveryPolicy":{"AccelerateToFederatedDomain":false}}`}})
		require.Equal(t, http.StatusCreated, p.status, string(p.body))
		pid := p.json(t)["id"].(string)
		ref := map[string]any{"@odata.id": "https://graph.microsoft.com/v1.0/policies/homeRealmDiscoveryPolicies/" + pid}
		assert.Equal(t, http.StatusNoContent, e.do(http.MethodPost, e.graph("/servicePrincipals/"+spID+"/homeRealmDiscoveryPolicies/$ref"), tok, ref).status)
		assert.Equal(t, http.StatusBadRequest, e.do(http.MethodPost, e.graph("/servicePrincipals/"+spID+"/homeRealmDiscoveryPolicies/$ref"), tok, ref).status)
		other := e.do(http.MethodPost, e.graph("/policies/homeRealmDiscoveryPolicies"), tok, map[string]any{
			"displayName": "another HRD", "definition": []string{`{"HomeRealmDiscoveryPolicy":{"AccelerateToFederatedDomain":true}}`}})
		require.Equal(t, http.StatusCreated, other.status, string(other.body))
		otherID := other.json(t)["id"].(string)
		second := e.do(http.MethodPost, e.graph("/servicePrincipals/"+spID+"/homeRealmDiscoveryPolicies/$ref"), tok,
			map[string]any{"@odata.id": "https://graph.microsoft.com/v1.0/policies/homeRealmDiscoveryPolicies/" + otherID})
		assert.Equal(t, http.StatusBadRequest, second.status, "one HRD policy per service principal")
		assert.Contains(t, string(second.body), "Request_BadRequest")
		assert.Equal(t, http.StatusNoContent, e.do(http.MethodDelete, e.graph("/policies/homeRealmDiscoveryPolicies/"+otherID), tok, nil).status)
		l := e.do(http.MethodGet, e.graph("/servicePrincipals/"+spID+"/homeRealmDiscoveryPolicies"), tok, nil).json(t)["value"].([]any)
		require.Len(t, l, 1)
		assert.Equal(t, http.StatusNoContent, e.do(http.MethodDelete, e.graph("/servicePrincipals/"+spID+"/homeRealmDiscoveryPolicies/"+pid+"/$ref"), tok, nil).status)
		assert.Equal(t, http.StatusNotFound, e.do(http.MethodDelete, e.graph("/servicePrincipals/"+spID+"/homeRealmDiscoveryPolicies/"+pid+"/$ref"), tok, nil).status)
		assert.Equal(t, http.StatusNoContent, e.do(http.MethodDelete, e.graph("/policies/homeRealmDiscoveryPolicies/"+pid), tok, nil).status)
	})

	t.Run("removed secret no longer gets a token; delete app removes SP", func(t *testing.T) {
		keyID := e.s.State().Tenants[0].Applications[1].PasswordCredentials[0].KeyID
		assert.Equal(t, http.StatusNoContent, e.do(http.MethodPost, e.graph("/applications/"+objID+"/removePassword"), tok, map[string]any{"keyId": keyID}).status)
		r := e.tokenReq(contosoID, url.Values{"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {secret}, "scope": {e.s.URL() + "/.default"}})
		assert.Equal(t, http.StatusUnauthorized, r.status)
		assert.Equal(t, "invalid_client", r.errCode(t))
		unknown := e.do(http.MethodPost, e.graph("/applications/"+objID+"/removePassword"), tok, map[string]any{"keyId": keyID})
		assert.Equal(t, http.StatusBadRequest, unknown.status, "an unknown keyId is a bad request, not a 404")
		assert.Contains(t, string(unknown.body), "Request_BadRequest")
		assert.Equal(t, http.StatusNoContent, e.do(http.MethodDelete, e.graph("/applications/"+objID), tok, nil).status)
		assert.Equal(t, http.StatusNotFound, e.do(http.MethodGet, e.graph("/servicePrincipals(appId='"+appID+"')"), tok, nil).status)
		st := e.s.State().Tenants[0]
		assert.Len(t, st.Applications, 1, "only the seeded provisioner is left")
		assert.Empty(t, st.PermissionGrants)
	})

	t.Run("no secret in state or logs", func(t *testing.T) {
		raw := e.do(http.MethodGet, e.s.URL()+"/_emulator/state", "", nil)
		require.Equal(t, http.StatusOK, raw.status)
		var viaHTTP State
		require.NoError(t, json.Unmarshal(raw.body, &viaHTTP))
		goState, err := json.Marshal(e.s.State())
		require.NoError(t, err)
		for _, hay := range []string{string(raw.body), string(goState), e.logs.String()} {
			for _, secretValue := range []string{provSecret, secret, tok, dvTok} {
				assert.NotContains(t, hay, secretValue)
			}
		}
		assert.Contains(t, e.logs.String(), `"op":"graph.addPassword"`)
		assert.Equal(t, len(e.s.State().Tenants), len(viaHTTP.Tenants))
	})
}

func TestReplicationLag(t *testing.T) {
	e := start(t, nil)
	tok := e.provGraph(contosoID)
	dvTok := e.provDV(contosoID, contosoHost)
	e.s.SetFaults(Faults{ReplicationLagMs: 400})
	appID, _, _, secret := e.onboard(tok, "lagged")
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {secret}, "scope": {e.s.OrgURL(contosoHost) + "/.default"}}
	r := e.tokenReq(contosoID, form)
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "unauthorized_client", r.errCode(t))
	create := map[string]any{"applicationid": appID, "businessunitid@odata.bind": "/businessunits(c0000000-0000-0000-0000-0000000000b1)", "accessmode": 4}
	assert.Equal(t, http.StatusNotFound, e.do(http.MethodPost, e.dv(contosoHost, "/systemusers"), dvTok, create).status)

	time.Sleep(450 * time.Millisecond)
	assert.Equal(t, http.StatusOK, e.tokenReq(contosoID, form).status)
	assert.Equal(t, http.StatusNoContent, e.do(http.MethodPost, e.dv(contosoHost, "/systemusers"), dvTok, create).status)
}
