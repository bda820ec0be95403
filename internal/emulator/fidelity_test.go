package emulator

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Requests Graph refuses, which the emulator once accepted (issue 13, item 6).
func TestGraphRefusesWhatMicrosoftRefuses(t *testing.T) {
	e := start(t, nil)
	tok := e.provGraph(contosoID)
	_, objID, spID, _ := e.onboard(tok, "mktos2s-fidelity")

	t.Run("oauth2PermissionGrants $filter: eq on clientId, consentType, principalId, resourceId only", func(t *testing.T) {
		// resources/oauth2permissiongrant: those four "Support $filter (eq only)".
		for _, f := range []string{"clientId eq '" + spID + "'", "consentType eq 'AllPrincipals'", "resourceId eq '" + spID + "'",
			"principalId eq null", "clientId eq '" + spID + "' and consentType eq 'AllPrincipals'"} {
			r := e.do(http.MethodGet, e.graph("/oauth2PermissionGrants?$filter="+url.QueryEscape(f)), tok, nil)
			assert.Equal(t, http.StatusOK, r.status, "%s: %s", f, r.body)
		}
		for f, prop := range map[string]string{
			"scope eq 'user_impersonation'":               "scope",
			"id eq 'x'":                                   "id",
			"clientId ne '" + spID + "'":                  "clientId",
			"clientId eq '" + spID + "' and scope eq 'x'": "scope",
			"consentType eq 'AllPrincipals' or id eq 'x'": "id",
		} {
			r := e.do(http.MethodGet, e.graph("/oauth2PermissionGrants?$filter="+url.QueryEscape(f)), tok, nil)
			require.Equal(t, http.StatusBadRequest, r.status, "%s: %s", f, r.body)
			assert.Equal(t, "Request_UnsupportedQuery", r.errCode(t), f)
			assert.Contains(t, string(r.body), "property '"+prop+"' of resource 'OAuth2PermissionGrant'", f)
		}
	})

	t.Run("HRD assignment: @odata.id is a Graph v1.0 URL of the policy", func(t *testing.T) {
		p := e.do(http.MethodPost, e.graph("/policies/homeRealmDiscoveryPolicies"), tok, map[string]any{
			"displayName": "mktos2s HRD", "definition": []string{`{"HomeRealmDiscoveryPolicy":{"AccelerateToFederatedDomain":false}}`}})
		require.Equal(t, http.StatusCreated, p.status, string(p.body))
		pid := p.json(t)["id"].(string)
		assign := e.graph("/servicePrincipals/" + spID + "/homeRealmDiscoveryPolicies/$ref")
		for _, ref := range []string{
			"https://evil.example/v1.0/policies/homeRealmDiscoveryPolicies/" + pid,
			"http://graph.microsoft.com/v1.0/policies/homeRealmDiscoveryPolicies/" + pid,
			"https://graph.microsoft.com.evil.example/v1.0/policies/homeRealmDiscoveryPolicies/" + pid,
			"https://graph.microsoft.com/beta/policies/homeRealmDiscoveryPolicies/" + pid,
			"https://graph.microsoft.com/v1.0/somethingElse/" + pid,
			"/v1.0/policies/homeRealmDiscoveryPolicies/" + pid,
		} {
			r := e.do(http.MethodPost, assign, tok, map[string]any{"@odata.id": ref})
			assert.Equal(t, http.StatusBadRequest, r.status, ref)
			assert.Equal(t, "Request_BadRequest", r.errCode(t), ref)
		}
		assert.Empty(t, tenantPolicies(e, spID), "no refused reference was assigned")
		r := e.do(http.MethodPost, assign, tok, map[string]any{"@odata.id": e.graph("/policies/homeRealmDiscoveryPolicies/" + pid)})
		assert.Equal(t, http.StatusNoContent, r.status, "the configured Graph base (the emulator's, standing for graph.microsoft.com): %s", r.body)
	})

	t.Run("nested property names are matched exactly", func(t *testing.T) {
		add := e.graph("/applications/" + objID + "/addPassword")
		for _, body := range []map[string]any{
			{"passwordCredential": map[string]any{"DisplayName": "x"}},
			{"passwordCredential": map[string]any{"displayname": "x"}},
			{"PasswordCredential": map[string]any{"displayName": "x"}},
		} {
			r := e.do(http.MethodPost, add, tok, body)
			assert.Equal(t, http.StatusBadRequest, r.status, "%v: %s", body, r.body)
			assert.Contains(t, string(r.body), "does not exist as a declared property")
		}
		upd := e.do(http.MethodPatch, e.graph("/applications(uniqueName='mktos2s-fidelity')"), tok, map[string]any{
			"web": map[string]any{"RedirectUris": []string{"https://localhost:8400/x"}}})
		assert.Equal(t, http.StatusBadRequest, upd.status, "web.RedirectUris: %s", upd.body)
		r := e.do(http.MethodPost, add, tok, map[string]any{"passwordCredential": map[string]any{"displayName": "exact"}})
		assert.Equal(t, http.StatusOK, r.status, string(r.body))
	})
}

func tenantPolicies(e *env, spID string) []string {
	var out []string
	for _, ts := range e.s.State().Tenants {
		for _, sp := range ts.ServicePrincipals {
			if sp.ID == spID {
				out = append(out, sp.HRDPolicies...)
			}
		}
	}
	return out
}

// Faults.AppLagMs: Entra's replication delay right after an application's
// creation, in the shapes Entra answers with.
func TestNewApplicationReplicationLag(t *testing.T) {
	e := start(t, nil)
	tok := e.provGraph(contosoID)
	e.s.SetFaults(Faults{AppLagMs: 400, AppLagProbability: 1})
	r := e.do(http.MethodPatch, e.graph("/applications(uniqueName='mktos2s-lag')"), tok,
		map[string]any{"displayName": "Marketo Integration"}, "Prefer", "create-if-missing")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	appID, objID := r.json(t)["appId"].(string), r.json(t)["id"].(string)
	sp := e.do(http.MethodPatch, e.graph("/servicePrincipals(appId='"+appID+"')"), tok, map[string]any{}, "Prefer", "create-if-missing")
	assert.Equal(t, http.StatusBadRequest, sp.status)
	assert.Equal(t, "Request_BadRequest", sp.errCode(t))
	assert.Contains(t, string(sp.body), "does not reference a valid application object")
	pw := e.do(http.MethodPost, e.graph("/applications/"+objID+"/addPassword"), tok, map[string]any{"passwordCredential": map[string]any{"displayName": "x"}})
	assert.Equal(t, http.StatusNotFound, pw.status)
	assert.Equal(t, "Request_ResourceNotFound", pw.errCode(t))
	for _, ts := range e.s.State().Tenants {
		if ts.ID == contosoID {
			assert.Empty(t, ts.PasswordEvents, "a lagged addPassword adds nothing")
		}
	}

	time.Sleep(450 * time.Millisecond)
	sp = e.do(http.MethodPatch, e.graph("/servicePrincipals(appId='"+appID+"')"), tok, map[string]any{}, "Prefer", "create-if-missing")
	assert.Equal(t, http.StatusCreated, sp.status, string(sp.body))
	pw = e.do(http.MethodPost, e.graph("/applications/"+objID+"/addPassword"), tok, map[string]any{"passwordCredential": map[string]any{"displayName": "x"}})
	assert.Equal(t, http.StatusOK, pw.status, string(pw.body))

	e.s.SetFaults(Faults{AppLagMs: 60_000, AppLagProbability: 0.0001})
	r = e.do(http.MethodPatch, e.graph("/applications(uniqueName='mktos2s-lucky')"), tok,
		map[string]any{"displayName": "Marketo Integration"}, "Prefer", "create-if-missing")
	require.Equal(t, http.StatusCreated, r.status)
	sp = e.do(http.MethodPatch, e.graph("/servicePrincipals(appId='"+r.json(t)["appId"].(string)+"')"), tok, map[string]any{}, "Prefer", "create-if-missing")
	assert.Equal(t, http.StatusCreated, sp.status, "an app the probability spared has no lag")
}
