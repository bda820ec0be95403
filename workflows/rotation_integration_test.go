package workflows_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/activities"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/internal/msauth"
	"github.com/mktos2s/mktos2s/internal/testenv"
	"github.com/mktos2s/mktos2s/internal/testenv/testcodec"
	"github.com/mktos2s/mktos2s/workflows"
)

// Tenants of the emulator's default seed.
const (
	contosoTenant = "11111111-1111-1111-1111-111111111111"
	fabrikam      = "22222222-2222-2222-2222-222222222222"
)

// day2Env is the real dev server, the emulator and the in-process worker.
func day2Env(t *testing.T) (*testenv.Env, client.Client) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the Temporal dev server and the emulator")
	}
	return testenv.StartForTest(t, testenv.Options{})
}

func rotationProgress(ctx context.Context, c client.Client, id string) (workflows.RotationProgress, error) {
	var p workflows.RotationProgress
	v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryProgress)
	if err != nil {
		return p, err
	}
	return p, v.Get(&p)
}

func waitRotation(t *testing.T, ctx context.Context, c client.Client, id string, what string, done func(workflows.RotationProgress) bool) workflows.RotationProgress {
	t.Helper()
	var last workflows.RotationProgress
	var lastErr error
	require.Eventually(t, func() bool {
		last, lastErr = rotationProgress(ctx, c, id)
		return lastErr == nil && done(last)
	}, 90*time.Second, 200*time.Millisecond, "waiting for the rotation: %s; last progress %+v, error %v", what, last, lastErr)
	return last
}

func tenantOf(st emulator.State, id string) emulator.TenantState {
	for _, ts := range st.Tenants {
		if ts.ID == id {
			return ts
		}
	}
	return emulator.TenantState{}
}

func orgOf(st emulator.State, host string) emulator.OrgState {
	for _, o := range st.Orgs {
		if o.Host == host {
			return o
		}
	}
	return emulator.OrgState{}
}

// ourApp is the onboarding's app (by its unique name), nil when gone.
func ourApp(ts emulator.TenantState, host string) *emulator.AppState {
	for _, a := range ts.Applications {
		if a.UniqueName == activities.UniqueName(ts.ID, host) {
			return &a
		}
	}
	return nil
}

// assertNothingLeft: no app, service principal, grant, policy, user or
// Marketo Config reference of the onboarding remains in the emulator.
func assertNothingLeft(t *testing.T, st emulator.State, tenantID, host, appID string) {
	t.Helper()
	ts := tenantOf(st, tenantID)
	assert.Nil(t, ourApp(ts, host), "application left")
	for _, a := range ts.Applications {
		assert.True(t, a.Seeded, "an application mktos2s created is left: %s", a.DisplayName)
	}
	for _, sp := range ts.ServicePrincipals {
		assert.NotEqual(t, appID, sp.AppID, "service principal left")
	}
	for _, p := range ts.HRDPolicies {
		assert.NotEqual(t, activities.HRDPolicyName(appID), p.DisplayName, "HRD policy left")
	}
	org := orgOf(st, strings.Split(host, ":")[0])
	for _, u := range org.Users {
		assert.NotEqual(t, appID, u.ApplicationID, "application user left")
	}
	for _, cfg := range org.MarketoConfigs {
		for _, u := range org.Users {
			assert.False(t, cfg.UserID == u.ID && u.ApplicationID == appID, "Marketo Config still points at the sync user")
		}
	}
}

func tokenWith(ctx context.Context, env *testenv.Env, tenantID, appID, secret string) error {
	hc, err := msapi.NewHTTPClient(msapi.HTTPOptions{CAFile: env.Emu.CAFile(), DialOverrides: map[string]string{"*.localhost": "127.0.0.1"}})
	if err != nil {
		return err
	}
	// A fresh provider: no token cached from the worker's sign-ins.
	p := msauth.New(msauth.Options{AuthorityHost: env.Emu.URL(), HTTPClient: hc})
	_, err = p.Token(ctx, tenantID, msauth.Credential{ClientID: appID, Secret: secret}, msauth.ScopeFor(env.Emu.URL()))
	return err
}

// TestDay2OnTheDevServer onboards Contoso with a two-minute secret, lets
// the rotation add a new secret, confirms it, and checks the emulator ends
// with exactly one live secret, the new one, while the old one is refused
// by the token endpoint; then offboards and finds nothing left. A second
// tenant is offboarded while its onboarding still waits for consent.
func TestDay2OnTheDevServer(t *testing.T) {
	t.Parallel() // overlaps the two-minute consent wait of TestLongConsentWaitOnTheDevServer
	env, c := day2Env(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	t.Run("rotation then offboarding of a fully onboarded tenant", func(t *testing.T) {
		host := "contoso.crm.localhost"
		orgURL := env.Emu.OrgURL(host)
		in := workflows.OnboardingInput{TenantID: contosoTenant, OrgURL: orgURL, Rotation: &workflows.RotationSettings{
			SecretLifetime: 2 * time.Minute, LeadTime: 105 * time.Second, ReminderInterval: 2 * time.Second,
		}}
		run, err := testenv.StartOnboarding(ctx, c, in)
		require.NoError(t, err)
		require.NoError(t, env.Consent(ctx, c, run.GetID(), time.Minute))
		var res workflows.OnboardingResult
		require.NoError(t, run.Get(ctx, &res))
		orgHost := in.WithDefaults().OrgHost()
		rotationID := workflows.RotationWorkflowID(contosoTenant, orgHost)
		asleep := waitRotation(t, ctx, c, rotationID, "asleep", func(p workflows.RotationProgress) bool { return p.Phase == workflows.PhaseSleeping })
		maybeRecord(t, ctx, c, rotationID, "", "rotation-asleep.json")
		assert.Equal(t, res.Resources.SecretKeyID, asleep.OldKeyID)

		// The rotation wakes 15 s after the onboarding's secret was made.
		p := waitRotation(t, ctx, c, rotationID, "new secret waiting", func(p workflows.RotationProgress) bool {
			return p.Phase == workflows.PhaseAwaitingMarketo && p.Reminders >= 1
		})
		assert.Equal(t, res.Resources.SecretKeyID, p.OldKeyID)
		require.NotEmpty(t, p.NewKeyID)
		app := ourApp(tenantOf(env.Emu.State(), contosoTenant), orgHost)
		require.NotNil(t, app)
		assert.Len(t, app.PasswordCredentials, 2, "old and new secret live until the confirmation")
		maybeRecord(t, ctx, c, rotationID, "", "rotation-awaiting-marketo.json")

		v, err := c.QueryWorkflow(ctx, rotationID, "", workflows.QueryCredentials, true)
		require.NoError(t, err)
		var creds workflows.RotationCredentials
		require.NoError(t, v.Get(&creds))
		require.True(t, creds.AwaitingConfirmation)
		require.Equal(t, p.NewKeyID, creds.SecretKeyID)
		newSecret, oldSecret := testcodec.Open(creds.ClientSecret), testcodec.Open(res.ClientSecret)
		require.NotEmpty(t, newSecret, "sealed with the worker's custody key")
		require.NotEmpty(t, oldSecret)
		require.NotEqual(t, oldSecret, newSecret)

		require.NoError(t, c.SignalWorkflow(ctx, rotationID, "", workflows.SignalMarketoUpdated, workflows.OperatorSignal{By: "test"}))
		after := waitRotation(t, ctx, c, rotationID, "next cycle", func(p workflows.RotationProgress) bool { return p.Cycle == 1 })
		assert.Equal(t, creds.SecretKeyID, after.OldKeyID, "the new secret is now the live one")

		app = ourApp(tenantOf(env.Emu.State(), contosoTenant), orgHost)
		require.NotNil(t, app)
		require.Len(t, app.PasswordCredentials, 1, "exactly one live secret")
		assert.Equal(t, creds.SecretKeyID, app.PasswordCredentials[0].KeyID, "and it is the new one")
		assert.NoError(t, tokenWith(ctx, env, contosoTenant, res.ClientID, newSecret), "the new secret signs in")
		err = tokenWith(ctx, env, contosoTenant, res.ClientID, oldSecret)
		require.Error(t, err, "the old secret is refused")
		assert.True(t, msapi.IsKind(err, msapi.Unauthorized), "want invalid_client, got %v", err)

		// Offboarding: the rotation stops and nothing is left.
		off, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.OffboardingWorkflowID(contosoTenant, orgHost), TaskQueue: workflows.TaskQueue},
			workflows.OffboardingWorkflowType, workflows.OffboardingInput{TenantID: contosoTenant, OrgURL: orgURL, VerifyDelay: time.Second})
		require.NoError(t, err)
		var offRes workflows.OffboardingResult
		require.NoError(t, off.Get(ctx, &offRes))
		maybeRecord(t, ctx, c, off.GetID(), off.GetRunID(), "offboarding-completed.json")
		var actions []string
		for _, a := range offRes.Actions {
			if len(actions) == 0 || actions[len(actions)-1] != a.Action { // the next cycle may have added a secret meanwhile
				actions = append(actions, a.Action)
			}
			assert.True(t, a.Done, "%s %s: %s", a.Action, a.Target, a.Error)
		}
		assert.Equal(t, []string{"clear-marketo-config-user", "remove-role-association", "remove-application-user",
			"remove-client-secret", "remove-service-principal", "remove-application"}, actions)
		assertNothingLeft(t, env.Emu.State(), contosoTenant, orgHost, res.ClientID)
		desc, err := c.DescribeWorkflowExecution(ctx, rotationID, "")
		require.NoError(t, err)
		assert.Equal(t, "Canceled", fmt.Sprint(desc.GetWorkflowExecutionInfo().GetStatus()), "the rotation was stopped")

		// Idempotent: a second offboarding finds nothing to do.
		again, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.OffboardingWorkflowID(contosoTenant, orgHost), TaskQueue: workflows.TaskQueue},
			workflows.OffboardingWorkflowType, workflows.OffboardingInput{TenantID: contosoTenant, OrgURL: orgURL})
		require.NoError(t, err)
		var againRes workflows.OffboardingResult
		require.NoError(t, again.Get(ctx, &againRes))
		assert.Empty(t, againRes.Actions)
	})

	t.Run("offboarding of a half-onboarded tenant", func(t *testing.T) {
		host := "fabrikam.crm.localhost"
		orgURL := env.Emu.OrgURL(host)
		in := workflows.OnboardingInput{TenantID: fabrikam, OrgURL: orgURL}
		run, err := testenv.StartOnboarding(ctx, c, in)
		require.NoError(t, err)
		_, err = testenv.WaitProgress(ctx, c, run.GetID(), time.Minute, func(p workflows.Progress) bool {
			return p.Step == workflows.StepAwaitingAdminConsent && p.ConsentURL != ""
		})
		require.NoError(t, err)
		orgHost := in.WithDefaults().OrgHost()
		app := ourApp(tenantOf(env.Emu.State(), fabrikam), orgHost)
		require.NotNil(t, app, "the app exists while consent is awaited")

		dry, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.OffboardingWorkflowID(fabrikam, orgHost), TaskQueue: workflows.TaskQueue},
			workflows.OffboardingWorkflowType, workflows.OffboardingInput{TenantID: fabrikam, OrgURL: orgURL, DryRun: true})
		require.NoError(t, err)
		var plan workflows.OffboardingResult
		require.NoError(t, dry.Get(ctx, &plan))
		require.Len(t, plan.Actions, 2)
		assert.Equal(t, "remove-service-principal", plan.Actions[0].Action)
		assert.Equal(t, "remove-application", plan.Actions[1].Action)
		assert.NotNil(t, ourApp(tenantOf(env.Emu.State(), fabrikam), orgHost), "a dry run removes nothing")

		off, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.OffboardingWorkflowID(fabrikam, orgHost), TaskQueue: workflows.TaskQueue},
			workflows.OffboardingWorkflowType, workflows.OffboardingInput{TenantID: fabrikam, OrgURL: orgURL, VerifyDelay: time.Second})
		require.NoError(t, err)
		require.NoError(t, off.Get(ctx, nil))
		assert.Error(t, run.Get(ctx, nil), "the waiting onboarding was cancelled")
		assertNothingLeft(t, env.Emu.State(), fabrikam, orgHost, app.AppID)
	})
}
