package main

import (
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/testenv/testcodec"

	"github.com/mktos2s/mktos2s/internal/emulator"
)

func TestSecretOrderViolations(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	ev := func(sec int, action, app, key, name string) emulator.PasswordEvent {
		return emulator.PasswordEvent{Time: t0.Add(time.Duration(sec) * time.Second), Action: action, AppObjectID: app, KeyID: key, DisplayName: name}
	}
	tests := []struct {
		name   string
		events []emulator.PasswordEvent
		want   int
	}{
		{"one add", []emulator.PasswordEvent{ev(0, "add", "a", "k1", "tag")}, 0},
		{"remove then add", []emulator.PasswordEvent{ev(0, "add", "a", "k1", "tag"), ev(1, "remove", "a", "k1", "tag"), ev(2, "add", "a", "k2", "tag")}, 0},
		{"add while the earlier one is live", []emulator.PasswordEvent{ev(0, "add", "a", "k1", "tag"), ev(2, "add", "a", "k2", "tag")}, 1},
		{"two live, third added", []emulator.PasswordEvent{ev(0, "add", "a", "k1", "tag"), ev(1, "add", "a", "k2", "tag"), ev(2, "add", "a", "k3", "tag")}, 2},
		{"app deleted ends its secrets", []emulator.PasswordEvent{ev(0, "add", "a", "k1", "tag"), ev(1, "app-deleted", "a", "k1", "tag"), ev(2, "add", "a", "k2", "tag")}, 0},
		{"another tag may be live", []emulator.PasswordEvent{ev(0, "add", "a", "k1", "other"), ev(1, "add", "a", "k2", "tag")}, 0},
		{"another app may be live", []emulator.PasswordEvent{ev(0, "add", "a", "k1", "tag"), ev(1, "add", "b", "k2", "tag")}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Len(t, secretOrderViolations(tt.events), tt.want)
		})
	}
}

// world is a one-tenant emulator state with what an onboarding may leave.
func world(apps, liveSecrets, expiredSecrets, sps, users int, role bool, configUser string) (emulator.State, *emulator.Seed) {
	now := time.Now()
	ts := emulator.TenantState{ID: "t1", Applications: []emulator.AppState{{AppID: "prov", Seeded: true}}}
	for i := range apps {
		a := emulator.AppState{AppID: "app" + string(rune('a'+i))}
		for range liveSecrets {
			a.PasswordCredentials = append(a.PasswordCredentials, emulator.PasswordState{EndDateTime: now.Add(time.Hour)})
		}
		for range expiredSecrets {
			a.PasswordCredentials = append(a.PasswordCredentials, emulator.PasswordState{EndDateTime: now.Add(-time.Hour)})
		}
		ts.Applications = append(ts.Applications, a)
	}
	ts.ServicePrincipals = append(ts.ServicePrincipals, emulator.SPState{ID: "seeded"})
	for range sps {
		ts.ServicePrincipals = append(ts.ServicePrincipals, emulator.SPState{ID: "sp", Owner: "prov"})
	}
	org := emulator.OrgState{Host: "o1.crm.localhost", TenantID: "t1", Users: []emulator.UserState{{ID: "pu", ApplicationID: "prov", RoleNames: []string{"System Administrator"}}},
		MarketoConfigs: []emulator.ConfigState{{ID: "c", Name: "Default", UserID: configUser}}}
	for range users {
		u := emulator.UserState{ID: "u1", ApplicationID: "appa"}
		if role {
			u.RoleNames = []string{"Marketo Sync User"}
		}
		org.Users = append(org.Users, u)
	}
	seed := &emulator.Seed{Orgs: []emulator.SeedOrg{{Host: "o1.crm.localhost", Users: []emulator.SeedUser{{ApplicationID: "prov"}}}}}
	return emulator.State{Tenants: []emulator.TenantState{ts}, Orgs: []emulator.OrgState{org}}, seed
}

func TestEvaluate(t *testing.T) {
	granted := onboarding{Kind: kindGranted, TenantID: "t1", OrgHost: "o1.crm.localhost"}
	denied := onboarding{Kind: kindDenied, TenantID: "t1", OrgHost: "o1.crm.localhost"}
	perm := onboarding{Kind: kindPermission, TenantID: "t1", OrgHost: "o1.crm.localhost", FailOp: "dataverse.associateRole"}
	done := outcome{Status: "completed", Validated: true}
	undone := func(step string) outcome {
		return outcome{Status: "failed", FailedStep: step, CompensationOK: true, Undos: 2}
	}
	tests := []struct {
		name  string
		ob    onboarding
		out   *outcome
		state func() (emulator.State, *emulator.Seed)
		ok    bool
	}{
		{"completed with one of each", granted, &done, func() (emulator.State, *emulator.Seed) { return world(1, 1, 1, 1, 1, true, "u1") }, true},
		{"completed with two live secrets", granted, &done, func() (emulator.State, *emulator.Seed) { return world(1, 2, 0, 1, 1, true, "u1") }, false},
		{"completed with an orphan app", granted, &done, func() (emulator.State, *emulator.Seed) { return world(2, 1, 0, 1, 1, true, "u1") }, false},
		{"completed without the role", granted, &done, func() (emulator.State, *emulator.Seed) { return world(1, 1, 0, 1, 1, false, "u1") }, false},
		{"completed but config points elsewhere", granted, &done, func() (emulator.State, *emulator.Seed) { return world(1, 1, 0, 1, 1, true, "someone") }, false},
		{"completed but not validated", granted, &outcome{Status: "completed"}, func() (emulator.State, *emulator.Seed) { return world(1, 1, 0, 1, 1, true, "u1") }, false},
		{"never ended", granted, nil, func() (emulator.State, *emulator.Seed) { return world(1, 1, 0, 1, 1, true, "u1") }, false},
		{"denied and empty", denied, ptr(undone("awaiting-admin-consent")), func() (emulator.State, *emulator.Seed) { return world(0, 0, 0, 0, 0, false, "") }, true},
		{"denied but failed at preflight", denied, ptr(undone("preflight")), func() (emulator.State, *emulator.Seed) { return world(0, 0, 0, 0, 0, false, "") }, false},
		{"denied leaving a service principal", denied, ptr(undone("awaiting-admin-consent")), func() (emulator.State, *emulator.Seed) { return world(0, 0, 0, 1, 0, false, "") }, false},
		{"403 and empty", perm, ptr(undone("assign-security-role")), func() (emulator.State, *emulator.Seed) { return world(0, 0, 0, 0, 0, false, "") }, true},
		{"403 leaving a disabled user", perm, ptr(undone("assign-security-role")), func() (emulator.State, *emulator.Seed) { return world(0, 0, 0, 0, 1, false, "") }, false},
		{"403 leaving the config pointed", perm, ptr(undone("assign-security-role")), func() (emulator.State, *emulator.Seed) { return world(0, 0, 0, 0, 0, false, "u1") }, false},
		{"completed but a second tagged secret was added while the first was live", granted, &done,
			completedWith(secretEvent(emulator.PasswordAdded, "k1"), secretEvent(emulator.PasswordAdded, "k2"), secretEvent(emulator.PasswordRemoved, "k1")), false},
		{"completed after a stale secret was removed before the next was added", granted, &done,
			completedWith(secretEvent(emulator.PasswordAdded, "k1"), secretEvent(emulator.PasswordRemoved, "k1"), secretEvent(emulator.PasswordAdded, "k2")), true},
		{"403 but an undo failed", perm, &outcome{Status: "failed", FailedStep: "assign-security-role"}, func() (emulator.State, *emulator.Seed) { return world(0, 0, 0, 0, 0, false, "") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outs := map[string]outcome{}
			if tt.out != nil {
				outs["t1"] = *tt.out
			}
			st, seed := tt.state()
			rows := evaluate([]onboarding{tt.ob}, outs, st, seed, "Marketo Sync User", time.Now())
			require.Len(t, rows, 1)
			assert.Equal(t, tt.ok, len(rows[0].Problems) == 0, "problems: %v", rows[0].Problems)
		})
	}
}

func ptr[T any](v T) *T { return &v }

// completedWith is a completed onboarding's world whose password audit log
// is events.
func completedWith(events ...emulator.PasswordEvent) func() (emulator.State, *emulator.Seed) {
	return func() (emulator.State, *emulator.Seed) {
		st, seed := world(1, 1, 0, 1, 1, true, "u1")
		st.Tenants[0].PasswordEvents = events
		return st, seed
	}
}

func secretEvent(action, keyID string) emulator.PasswordEvent {
	return emulator.PasswordEvent{Action: action, AppObjectID: "appa", KeyID: keyID, DisplayName: "onboarding/x"}
}

func TestScanSecretsFindsEveryEncoding(t *testing.T) {
	const secret = "abc~DEF.ghi_jkl-MNO0123456789pqrstuvwxyz"
	payload, err := json.Marshal(map[string]any{"metadata": map[string]string{"encoding": base64.StdEncoding.EncodeToString([]byte("json/plain"))},
		"data": base64.StdEncoding.EncodeToString([]byte(`{"clientSecret":"` + secret + `"}`))})
	require.NoError(t, err)
	tests := []struct {
		name string
		data string
		how  string
	}{
		{"plain in a log line", `{"level":"INFO","msg":"got ` + secret + `"}`, "plain"},
		{"base64 payload in a history", string(payload), "base64"},
		{"base64 at another alignment", "x" + base64.StdEncoding.EncodeToString([]byte("12"+secret+"!")), "base64"},
		{"url-safe base64", base64.RawURLEncoding.EncodeToString([]byte("?" + secret)), "base64"},
		{"absent", `{"data":"` + base64.StdEncoding.EncodeToString([]byte("nothing here")) + `","hint":"abc"}`, ""},
		{"a prefix is not the secret", secret[:20], ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits, err := scanSecrets([]string{secret}, []source{{Name: "s", Data: []byte(tt.data)}})
			require.NoError(t, err)
			if tt.how == "" {
				assert.Empty(t, hits)
				return
			}
			require.Len(t, hits, 1)
			assert.Equal(t, tt.how, hits[0].How)
			assert.Equal(t, 0, hits[0].Secret)
		})
	}
	_, err = scanSecrets([]string{"short"}, nil)
	assert.Error(t, err, "a short secret would match by chance")
}

func TestCollectSecrets(t *testing.T) {
	var doc any
	require.NoError(t, json.Unmarshal([]byte(`{
		"clientSecret": "value-of-the-result-secret",
		"secretExpiresAt": "2027-01-01T00:00:00Z",
		"resources": {"secretKeyId": "11111111-2222-3333-4444-555555555555"},
		"current": {"keyId": "k-rot", "value": "value-of-the-rotation-secret"},
		"steps": [{"secret": "value-of-an-activity-secret", "keyId": "k-act"}],
		"note": {"value": "not a secret: no keyId beside it"}
	}`), &doc))
	var got []capturedSecret
	collectSecrets(doc, nil, func(c capturedSecret) { got = append(got, c) })
	assert.ElementsMatch(t, []capturedSecret{
		{Value: "value-of-the-result-secret"},
		{KeyID: "k-rot", Value: "value-of-the-rotation-secret"},
		{KeyID: "k-act", Value: "value-of-an-activity-secret"},
	}, got)
}

// Payloads written since issue 11 carry the secret sealed with the custody
// key: the scan opens it to know what to look for.
func TestCollectSealedSecrets(t *testing.T) {
	ring := testcodec.Custody()
	seal := func(s string) string {
		v, err := ring.Seal(s)
		require.NoError(t, err)
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return string(b)
	}
	var doc any
	require.NoError(t, json.Unmarshal([]byte(`{
		"clientSecret": `+seal("value-of-the-sealed-result")+`,
		"current": {"keyId": "k-rot", "value": `+seal("value-of-the-sealed-rotation")+`},
		"res": {"keyId": "k-act", "secret": `+seal("value-of-the-sealed-activity")+`},
		"other": {"keyId": "k-x", "value": {"sealed": "AAAA", "keyId": "unknown-custody-key"}}
	}`), &doc))
	var got []capturedSecret
	collectSecrets(doc, openSealed(ring), func(c capturedSecret) { got = append(got, c) })
	assert.ElementsMatch(t, []capturedSecret{
		{Value: "value-of-the-sealed-result"},
		{KeyID: "k-rot", Value: "value-of-the-sealed-rotation"},
		{KeyID: "k-act", Value: "value-of-the-sealed-activity"},
	}, got)
}
