package emulator

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFailNextTenantHitsOnlyThatTenant(t *testing.T) {
	e := start(t, nil)
	contoso, fabrikam := e.provGraph(contosoID), e.provGraph(fabrikamID)

	e.s.FailNextTenant(fabrikamID, "graph.organization", -1, http.StatusForbidden, "Authorization_RequestDenied")
	for range 2 {
		r := e.do(http.MethodGet, e.graph("/organization"), fabrikam, nil)
		require.Equal(t, http.StatusForbidden, r.status)
		assert.Equal(t, "Authorization_RequestDenied", r.errCode(t))
		assert.Equal(t, http.StatusOK, e.do(http.MethodGet, e.graph("/organization"), contoso, nil).status)
	}
	assert.Equal(t, http.StatusOK, e.do(http.MethodGet, e.graph("/domains"), fabrikam, nil).status, "other operations of the tenant are untouched")

	// The admin endpoint takes the tenant too; a Dataverse org belongs to its tenant.
	r := e.do(http.MethodPost, e.s.URL()+"/_emulator/fail", "", map[string]any{
		"op": "dataverse.whoAmI", "tenant": contosoID, "times": 1, "status": 403, "code": "0x80040220"})
	require.Equal(t, http.StatusNoContent, r.status, string(r.body))
	dv := e.provDV(contosoID, contosoHost)
	first := e.do(http.MethodGet, e.dv(contosoHost, "/WhoAmI"), dv, nil)
	assert.Equal(t, http.StatusForbidden, first.status)
	assert.Equal(t, "0x80040220", first.errCode(t))
	assert.Equal(t, http.StatusOK, e.do(http.MethodGet, e.dv(contosoHost, "/WhoAmI"), dv, nil).status, "times=1 is used up")

	e.s.FailNextTenant(fabrikamID, "graph.organization", 0, 0, "")
	assert.Equal(t, http.StatusOK, e.do(http.MethodGet, e.graph("/organization"), fabrikam, nil).status, "times=0 clears")
}

func TestPasswordEventsRecordAddsAndRemovalsWithoutValues(t *testing.T) {
	e := start(t, nil)
	tok := e.provGraph(contosoID)
	appID, objID, _, secret := e.onboard(tok, "mktos2s-audit")

	second := e.do(http.MethodPost, e.graph("/applications/"+objID+"/addPassword"), tok, map[string]any{
		"passwordCredential": map[string]any{"displayName": "second"}})
	require.Equal(t, http.StatusOK, second.status, string(second.body))
	secondKey := second.json(t)["keyId"].(string)
	require.Equal(t, http.StatusNoContent, e.do(http.MethodPost, e.graph("/applications/"+objID+"/removePassword"), tok,
		map[string]any{"keyId": secondKey}).status)
	require.Equal(t, http.StatusNoContent, e.do(http.MethodDelete, e.graph("/applications/"+objID), tok, nil).status)

	var events []PasswordEvent
	for _, ts := range e.s.State().Tenants {
		if ts.ID == contosoID {
			events = ts.PasswordEvents
		}
	}
	require.Len(t, events, 4)
	var actions, names []string
	for _, ev := range events {
		actions, names = append(actions, ev.Action), append(names, ev.DisplayName)
		assert.Equal(t, objID, ev.AppObjectID)
		assert.Equal(t, appID, ev.AppID)
		assert.False(t, ev.Time.IsZero())
	}
	assert.Equal(t, []string{PasswordAdded, PasswordAdded, PasswordRemoved, PasswordAppDeleted}, actions)
	assert.Equal(t, []string{"onboarding/mktos2s-audit", "second", "second", "onboarding/mktos2s-audit"}, names)
	assert.Equal(t, secondKey, events[2].KeyID)
	assert.Equal(t, events[0].KeyID, events[3].KeyID, "deleting the app ends the first secret")

	r := e.do(http.MethodGet, e.s.URL()+"/_emulator/state", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, string(r.body), `"passwordEvents"`)
	assert.NotContains(t, string(r.body), secret)
	assert.NotContains(t, e.logs.String(), secret)
}

func TestSecretIssuedTellsEveryIssuedValue(t *testing.T) {
	issued := map[string]string{} // key ID -> value; called under the emulator's lock
	e := startWith(t, Options{SecretIssued: func(keyID, secret string) { issued[keyID] = secret }})
	tok := e.provGraph(contosoID)
	_, objID, _, secret := e.onboard(tok, "mktos2s-issued")

	second := e.do(http.MethodPost, e.graph("/applications/"+objID+"/addPassword"), tok, map[string]any{
		"passwordCredential": map[string]any{"displayName": "second"}})
	require.Equal(t, http.StatusOK, second.status, string(second.body))
	body := second.json(t)

	var added []string
	for _, ts := range e.s.State().Tenants {
		for _, ev := range ts.PasswordEvents {
			if ev.Action == PasswordAdded {
				added = append(added, ev.KeyID)
			}
		}
	}
	require.Len(t, added, 2)
	require.Len(t, issued, 2, "one call per issued secret")
	for _, k := range added {
		assert.Len(t, issued[k], 40, "the audit's key %s was told with its value", k)
	}
	assert.Equal(t, body["secretText"], issued[body["keyId"].(string)], "the value told is the one the caller got")
	assert.Equal(t, secret, issued[added[0]])
}
