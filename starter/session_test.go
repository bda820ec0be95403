package main

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"

	"github.com/mktos2s/mktos2s/internal/devstack"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/testenv"
	"github.com/mktos2s/mktos2s/internal/workerapp"
	"github.com/mktos2s/mktos2s/workflows"
)

// Copies of Northwind (provisioner not consented, no application user) for
// the customer-admin session mode, one per test.
const northwind = "77777777-7777-7777-7777-777777777777"

var (
	sessionco  = testenv.Tenant{From: northwind, ID: "77777777-0000-4000-8000-000000000011", DisplayName: "SessionCo", OrgHost: "sessionco.crm.localhost"}
	cancelco   = testenv.Tenant{From: northwind, ID: "77777777-0000-4000-8000-000000000012", DisplayName: "CancelCo", OrgHost: "cancelco.crm.localhost"}
	helpdeskco = testenv.Tenant{From: northwind, ID: "77777777-0000-4000-8000-000000000013", DisplayName: "HelpdeskCo", OrgHost: "helpdeskco.crm.localhost"}
	ghostco    = testenv.Tenant{From: northwind, ID: "77777777-0000-4000-8000-000000000014", DisplayName: "GhostCo", OrgHost: "ghostco.crm.localhost",
		Org: func(o *emulator.SeedOrg) { o.AddAppUserIgnored = true }}
)

func init() { sharedTenants = append(sharedTenants, sessionco, cancelco, helpdeskco, ghostco) }

// sessionRun starts tn in session mode and has its admin (login; "" cancels
// the sign-in) go through the one link in one browser session. It returns
// the workflow ID, the browser and the browser's error.
func sessionRun(ctx context.Context, t *testing.T, st testStack, c client.Client, tn testenv.Tenant, login string, extra ...string) (string, *devstack.AdminBrowser, error) {
	t.Helper()
	orgURL := st.Emulator.OrgURL(tn.OrgHost)
	_, _, err := run(ctx, t, st.cfgFile, append([]string{"start", "--tenant-id", tn.ID, "--org-url", orgURL, "--admin-session", "--link-wait", "0"}, extra...)...)
	require.NoError(t, err)
	id := workflows.WorkflowID(tn.ID, strings.TrimPrefix(orgURL, "https://"))
	p, err := testenv.WaitProgress(ctx, c, id, time.Minute, func(p workflows.Progress) bool { return p.SessionURL != "" })
	require.NoError(t, err)
	assert.Equal(t, workflows.StepAdminSession, p.Step)
	assert.Nil(t, p.ProvisionerAccess)
	b, err := devstack.NewAdminBrowser(st.Emulator.CAFile())
	require.NoError(t, err)
	return id, b, b.Session(ctx, io.Discard, p.SessionURL, login)
}

func dialStack(ctx context.Context, t *testing.T, st testStack) client.Client {
	t.Helper()
	c, err := workerapp.Dial(ctx, st.Config)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// waitClosed waits for the onboarding to end and returns its last progress.
func waitClosed(ctx context.Context, t *testing.T, c client.Client, id string) workflows.Progress {
	t.Helper()
	p, err := testenv.WaitProgress(ctx, c, id, 3*time.Minute, func(p workflows.Progress) bool {
		return p.Status == workflows.StatusCompleted || p.Status == workflows.StatusFailed || p.Status == workflows.StatusCancelled
	})
	require.NoError(t, err)
	return p
}

func orgOf(t *testing.T, st testStack, tenant string) (emulator.TenantState, emulator.OrgState) {
	t.Helper()
	s := st.Emulator.State()
	var ts emulator.TenantState
	var og emulator.OrgState
	for _, x := range s.Tenants {
		if x.ID == tenant {
			ts = x
		}
	}
	for _, x := range s.Orgs {
		if x.TenantID == tenant {
			og = x
		}
	}
	require.NotEmpty(t, og.Host, "org of %s", tenant)
	return ts, og
}

// nothingLeft: no app, no owned service principal, no user in the org
// (the provisioner's own, if any, disabled).
func nothingLeft(t *testing.T, st testStack, tenant string) {
	t.Helper()
	ts, og := orgOf(t, st, tenant)
	for _, a := range ts.Applications {
		assert.True(t, a.Seeded, "app %s left behind", a.DisplayName)
	}
	for _, u := range og.Users {
		assert.True(t, u.ApplicationID == "aaaaaaaa-0000-0000-0000-000000000001" && u.Disabled, "user %s (%s) left behind or enabled", u.ID, u.ApplicationID)
	}
	assert.Empty(t, createdIn(st, tenant))
}

func createdIn(st testStack, tenant string) []string { return created(st.Emulator.State(), tenant) }

// The acceptance of issue 17: a tenant whose provisioner has no consent and
// no application user is onboarded with one human action (one browser
// session on the emulator's pages), validates, and ends with the
// provisioner's own application user disabled; no code or token is in the
// history, decoded or not.
func TestAdminSessionOnboardsWithOneHumanAction(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	st := sharedStack(t)
	c := dialStack(ctx, t, st)
	_, og := orgOf(t, st, sessionco.ID)
	require.Empty(t, og.Users, "no application user before")

	id, b, err := sessionRun(ctx, t, st, c, sessionco, "admin@sessionco.onmicrosoft.com")
	require.NoError(t, err, "the admin's one browser session")
	p := waitClosed(ctx, t, c, id)
	require.Equal(t, workflows.StatusCompleted, p.Status, p.Error)
	assert.Contains(t, p.CompletedSteps, workflows.StepAdminSession)
	assert.Contains(t, p.CompletedSteps, workflows.StepValidateConnection)
	require.NotNil(t, p.ProvisionerAccess)
	assert.Equal(t, "disabled", p.ProvisionerAccess.Until)
	assert.Equal(t, "admin@sessionco.onmicrosoft.com", p.ProvisionerAccess.LentBy)

	ts, og := orgOf(t, st, sessionco.ID)
	var prov, sync *emulator.UserState
	for i, u := range og.Users {
		if u.ApplicationID == "aaaaaaaa-0000-0000-0000-000000000001" {
			prov = &og.Users[i]
		} else {
			sync = &og.Users[i]
		}
	}
	require.NotNil(t, prov, "addAppUser made the provisioner an application user")
	assert.True(t, prov.Disabled, "just-in-time: disabled after validation")
	require.NotNil(t, sync)
	assert.False(t, sync.Disabled)
	assert.Equal(t, []string{"Marketo Sync User"}, sync.RoleNames)
	require.Len(t, ts.AuthCodes, 1, "one sign-in")
	assert.True(t, ts.AuthCodes[0].Redeemed)

	// No code in the history: neither in the stored (encrypted) events nor
	// in their decoded payloads.
	require.Len(t, b.Codes, 1)
	code := b.Codes[0]
	cd, err := workerapp.NewCodec(st.Config.Codec)
	require.NoError(t, err)
	it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	signalled := 0
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		raw, err := proto.Marshal(e)
		require.NoError(t, err)
		assert.NotContains(t, string(raw), code)
		if a := e.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == workflows.SignalAdminSession {
			signalled++
			dec, err := cd.Decode(a.GetInput().GetPayloads())
			require.NoError(t, err)
			for _, pl := range dec {
				assert.NotContains(t, string(pl.GetData()), code, "decoded signal")
				var sig workflows.AdminSessionSignal
				require.NoError(t, json.Unmarshal(pl.GetData(), &sig))
				assert.NotEmpty(t, sig.SealedCode)
			}
		}
	}
	assert.Equal(t, 1, signalled)

	out := eventually(ctx, t, st.cfgFile, func(s string) bool { return strings.Contains(s, "provisioner access") },
		"status", "--tenant-id", sessionco.ID, "--org-url", st.Emulator.OrgURL(sessionco.OrgHost))
	assert.Contains(t, out, "until disabled")
}

func TestAdminSessionCancelledAtSignIn(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	st := sharedStack(t)
	c := dialStack(ctx, t, st)
	id, _, err := sessionRun(ctx, t, st, c, cancelco, "", "--consent-timeout", "1m")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "You cancelled the sign-in")
	p, err := testenv.WaitProgress(ctx, c, id, time.Minute, func(p workflows.Progress) bool { return strings.Contains(p.Message, "cancelled the sign-in") })
	require.NoError(t, err)
	assert.Contains(t, p.Message, "the link still works")
	p = waitClosed(ctx, t, c, id)
	assert.Equal(t, workflows.StatusFailed, p.Status)
	assert.Contains(t, p.Error, "the admin cancelled the sign-in")
	assert.Contains(t, p.Error, "have a Power Platform administrator of the tenant open the new link, consent and sign in")
	assert.Contains(t, p.Error, "nothing had been created")
	nothingLeft(t, st, cancelco.ID)
}

// failedSession runs a session that must fail at the admin-session step;
// the browser's error (the session page) must name the reason too.
func failedSession(t *testing.T, tn testenv.Tenant, login, pageSays string, extra ...string) workflows.Progress {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	st := sharedStack(t)
	c := dialStack(ctx, t, st)
	id, _, err := sessionRun(ctx, t, st, c, tn, login, extra...)
	require.Error(t, err, "the session page says the onboarding stopped")
	assert.Contains(t, err.Error(), pageSays)
	p := waitClosed(ctx, t, c, id)
	assert.Equal(t, workflows.StatusFailed, p.Status)
	assert.Equal(t, workflows.StepAdminSession, p.FailedStep)
	nothingLeft(t, st, tn.ID)
	return p
}

func TestAdminSessionWithoutPowerPlatformAdminRole(t *testing.T) {
	t.Parallel()
	p := failedSession(t, helpdeskco, "helpdesk@helpdeskco.onmicrosoft.com", "not a Power Platform administrator")
	assert.Contains(t, p.Error, "helpdesk@helpdeskco.onmicrosoft.com is not a Power Platform administrator")
	assert.Contains(t, p.Error, "a Power Platform administrator (or Global administrator) of the tenant must open the link again and sign in")
}

func TestAdminSessionAddAppUser200ButNoUser(t *testing.T) {
	t.Parallel()
	p := failedSession(t, ghostco, "admin@ghostco.onmicrosoft.com", "did not appear", "--provisioner-user-wait", "3s")
	assert.Contains(t, p.Error, "accepted adding the provisioner (HTTP 200) but its application user did not appear")
	assert.Contains(t, p.Error, "a Power Platform administrator of this environment must open the link again")
	require.NotEmpty(t, p.Compensation)
	assert.Equal(t, "RevokeProvisionerAccess", p.Compensation[0].Undo, "a user that appears late would be disabled")
}
