package main

// Tests of the Day-2 commands (issue 7): `rotate` and `offboard`, run in
// process against the shared stack (dev server, emulator, in-process
// worker). Each scenario has a tenant of its own, so they run in parallel.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/activities"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/lifecycle"
	"github.com/mktos2s/mktos2s/internal/testenv"
	"github.com/mktos2s/mktos2s/internal/workerapp"
	"github.com/mktos2s/mktos2s/workflows"
)

// Tenants of the shared stack (copies of Contoso); see sharedTenants.
var (
	// rotco is rotated with --now and --confirm, then offboarded.
	rotco = testenv.Tenant{From: contosoTenant, ID: "c0000000-0000-4000-8000-000000000001", DisplayName: "Rotco", OrgHost: "rotco.crm.localhost"}
	// legacyco is onboarded, then loses its rotation, as an onboarding
	// completed before rotations existed.
	legacyco = testenv.Tenant{From: contosoTenant, ID: "c0000000-0000-4000-8000-000000000002", DisplayName: "Legacyco", OrgHost: "legacyco.crm.localhost"}
	// consentco is onboarded through the signed consent callback.
	consentco = testenv.Tenant{From: contosoTenant, ID: "c0000000-0000-4000-8000-000000000003", DisplayName: "Consentco", OrgHost: "consentco.crm.localhost"}
)

// day2Target is one tenant and org of the shared stack, as the commands name it.
type day2Target struct {
	st         testStack
	c          client.Client
	tenantID   string
	orgURL     string
	rotationID string
}

func newDay2Target(st testStack, c client.Client, tn testenv.Tenant) day2Target {
	orgURL := st.Emulator.OrgURL(tn.OrgHost)
	host := workflows.OnboardingInput{OrgURL: orgURL}.OrgHost()
	return day2Target{st: st, c: c, tenantID: tn.ID, orgURL: orgURL, rotationID: workflows.RotationWorkflowID(tn.ID, host)}
}

func (d day2Target) args(cmd ...string) []string {
	return append(cmd, "--tenant-id", d.tenantID, "--org-url", d.orgURL)
}

// run runs a starter command on this target.
func (d day2Target) run(ctx context.Context, t *testing.T, cmd ...string) (string, string, error) {
	t.Helper()
	return run(ctx, t, d.st.cfgFile, d.args(cmd...)...)
}

// onboard starts the onboarding with the starter (and startFlags), consents as the admin
// would and with `consent`, and returns the completed onboarding's result.
func (d day2Target) onboard(ctx context.Context, t *testing.T, startFlags ...string) workflows.OnboardingResult {
	t.Helper()
	_, _, err := d.run(ctx, t, append([]string{"start"}, startFlags...)...)
	require.NoError(t, err)
	waiting := progressOf(t, eventually(ctx, t, d.st.cfgFile, func(s string) bool {
		var p workflows.Progress
		return json.Unmarshal([]byte(s), &p) == nil && p.Status == workflows.StatusWaitingConsent
	}, d.args("status", "--json")...))
	adminConsents(t, d.st, waiting.ConsentURL)
	_, _, err = d.run(ctx, t, "consent", "--by", "tester")
	require.NoError(t, err)
	var res workflows.OnboardingResult
	require.NoError(t, d.c.GetWorkflow(ctx, workflows.OnboardingInput{TenantID: d.tenantID, OrgURL: d.orgURL}.WorkflowID(), "").Get(ctx, &res))
	require.NotEmpty(t, openSecret(res.ClientSecret), "sealed with the custody key")
	return res
}

// rotation is `rotate --json` once check accepts it. Commands that send a
// signal print a line before the JSON; the JSON is what follows it.
func (d day2Target) rotation(ctx context.Context, t *testing.T, what string, check func(workflows.RotationProgress) bool) workflows.RotationProgress {
	t.Helper()
	var p workflows.RotationProgress
	eventually(ctx, t, d.st.cfgFile, func(s string) bool {
		p = workflows.RotationProgress{}
		return json.Unmarshal([]byte(s), &p) == nil && check(p)
	}, d.args("rotate", "--json")...)
	require.True(t, check(p), what)
	return p
}

func rotationJSON(t *testing.T, stdout string) workflows.RotationProgress {
	t.Helper()
	i := strings.Index(stdout, "{")
	require.GreaterOrEqual(t, i, 0, stdout)
	var p workflows.RotationProgress
	require.NoError(t, json.Unmarshal([]byte(stdout[i:]), &p), stdout)
	return p
}

// credentialsPackage is the JSON of `credentials --json`.
type credentialsPackage struct {
	OrgURL, Username, ClientID, TenantID, ClientSecret string
	SecretExpiresAt                                    time.Time
	SecretMasked                                       bool
}

// Secrets are compared with == so that a failure does not print them.
func (d day2Target) credentials(ctx context.Context, t *testing.T, flags ...string) (credentialsPackage, string) {
	t.Helper()
	stdout, stderr, err := d.run(ctx, t, append([]string{"credentials", "--json"}, flags...)...)
	require.NoError(t, err)
	var pkg credentialsPackage
	require.NoError(t, json.Unmarshal([]byte(stdout), &pkg), stdout)
	return pkg, stderr
}

// reveals are the secret-revealed signals in the current rotation run's
// history, decoded with the codec (the client's), no custody key needed.
func (d day2Target) reveals(ctx context.Context, t *testing.T) []workflows.RevealSignal {
	t.Helper()
	var out []workflows.RevealSignal
	opts, err := workerapp.ClientOptions(d.st.Config, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	it := d.c.GetWorkflowHistory(ctx, d.rotationID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		sig := ev.GetWorkflowExecutionSignaledEventAttributes()
		if sig == nil || sig.GetSignalName() != workflows.SignalSecretRevealed {
			continue
		}
		var r workflows.RevealSignal
		require.NoError(t, opts.DataConverter.FromPayloads(sig.GetInput(), &r), "the codec key alone decodes the record")
		out = append(out, r)
	}
	return out
}

// secrets are the key IDs of the app's client secrets in the emulator.
func (d day2Target) secrets(t *testing.T, appID string) []string {
	t.Helper()
	var keys []string
	for _, a := range d.tenant(t, d.st.Emulator.State()).Applications {
		if strings.EqualFold(a.AppID, appID) {
			for _, p := range a.PasswordCredentials {
				keys = append(keys, strings.ToLower(p.KeyID))
			}
		}
	}
	slices.Sort(keys)
	return keys
}

func (d day2Target) tenant(t *testing.T, s emulator.State) emulator.TenantState {
	t.Helper()
	i := slices.IndexFunc(s.Tenants, func(x emulator.TenantState) bool { return strings.EqualFold(x.ID, d.tenantID) })
	require.GreaterOrEqual(t, i, 0, "tenant %s in the emulator", d.tenantID)
	return s.Tenants[i]
}

// objects is what onboardings create or change in this tenant and org; the
// record of secrets added and removed (PasswordEvents) is history, not state.
type objects struct {
	Applications      []emulator.AppState
	ServicePrincipals []emulator.SPState
	PermissionGrants  []emulator.GrantState
	HRDPolicies       []emulator.HRDPolicyState
	Users             []emulator.UserState
	MarketoConfigs    []emulator.ConfigState
}

func (d day2Target) objects(t *testing.T) objects {
	t.Helper()
	s := d.st.Emulator.State()
	ts := d.tenant(t, s)
	host := workflows.OnboardingInput{OrgURL: d.orgURL}.OrgHost()
	host, _, _ = strings.Cut(host, ":")
	i := slices.IndexFunc(s.Orgs, func(o emulator.OrgState) bool { return strings.EqualFold(o.Host, host) })
	require.GreaterOrEqual(t, i, 0, "org %s in the emulator", host)
	return objects{
		Applications: ts.Applications, ServicePrincipals: ts.ServicePrincipals, PermissionGrants: ts.PermissionGrants,
		HRDPolicies: ts.HRDPolicies, Users: s.Orgs[i].Users, MarketoConfigs: s.Orgs[i].MarketoConfigs,
	}
}

func (d day2Target) rotationStatus(ctx context.Context, t *testing.T) enumspb.WorkflowExecutionStatus {
	t.Helper()
	desc, err := d.c.DescribeWorkflowExecution(ctx, d.rotationID, "")
	require.NoError(t, err)
	return desc.GetWorkflowExecutionInfo().GetStatus()
}

// offboard runs `offboard --json` (with --dry-run when dryRun) and checks
// that every action was done, or in a dry run that none was.
func (d day2Target) offboard(ctx context.Context, t *testing.T, dryRun bool) workflows.OffboardingResult {
	t.Helper()
	args := []string{"offboard", "--json"}
	if dryRun {
		args = append(args, "--dry-run")
	}
	stdout, stderr, err := d.run(ctx, t, args...)
	require.NoError(t, err, stderr)
	id := lifecycle.OffboardingID(workflows.OffboardingInput{TenantID: d.tenantID, OrgURL: d.orgURL, DryRun: dryRun}.WithDefaults())
	assert.Contains(t, stderr, "Offboarding "+id+" started")
	if dryRun {
		// A dry run is never taken for a real offboarding.
		assert.True(t, strings.HasPrefix(id, "offboarding-dry-run/"), id)
	}
	var res workflows.OffboardingResult
	require.NoError(t, json.Unmarshal([]byte(stdout), &res), stdout)
	assert.Equal(t, dryRun, res.DryRun)
	for _, a := range res.Actions {
		assert.Equal(t, !dryRun, a.Done, "%s %s: %s", a.Action, a.Target, a.Error)
	}
	return res
}

func actionsOf(res workflows.OffboardingResult) []string {
	var out []string
	for _, a := range res.Actions {
		out = append(out, a.Action)
	}
	return out
}

func lower(ids ...string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, strings.ToLower(id))
	}
	slices.Sort(out)
	return out
}

func TestRotateAndOffboardCommands(t *testing.T) {
	st := sharedStack(t)
	setup, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := workerapp.Dial(setup, st.Config)
	require.NoError(t, err)
	t.Cleanup(c.Close)

	t.Run("rotate --now, credentials, rotate --confirm, offboard --dry-run, offboard twice", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		d := newDay2Target(st, c, rotco)
		step := func(name string, f func(t *testing.T)) {
			if !t.Run(name, f) {
				t.FailNow() // the next steps build on this one
			}
		}
		before := d.objects(t)
		res := d.onboard(ctx, t)
		oldKey := strings.ToLower(res.Resources.SecretKeyID)
		onboardingID := workflows.OnboardingInput{TenantID: d.tenantID, OrgURL: d.orgURL}.WorkflowID()

		step("start again is refused: the org is already onboarded", func(t *testing.T) {
			desc, err := c.DescribeWorkflowExecution(ctx, onboardingID, "")
			require.NoError(t, err)
			onboarded := d.objects(t)
			_, _, err = d.run(ctx, t, "start")
			require.Error(t, err)
			for _, want := range []string{"already onboarded", res.ClientID, "starter rotate --now", "starter offboard"} {
				assert.Contains(t, err.Error(), want)
			}
			again, err := c.DescribeWorkflowExecution(ctx, onboardingID, "")
			require.NoError(t, err)
			assert.Equal(t, desc.GetWorkflowExecutionInfo().GetExecution().GetRunId(), again.GetWorkflowExecutionInfo().GetExecution().GetRunId(), "no new run")
			assert.Equal(t, onboarded, d.objects(t), "nothing changed")
			assert.Equal(t, []string{oldKey}, d.secrets(t, res.ClientID), "Marketo's secret is still there")
		})

		step("rotate shows the rotation the onboarding scheduled", func(t *testing.T) {
			p := d.rotation(ctx, t, "sleeping until the lead time", func(p workflows.RotationProgress) bool { return p.Phase == workflows.PhaseSleeping })
			assert.Equal(t, oldKey, strings.ToLower(p.OldKeyID))
			assert.Empty(t, p.NewKeyID)
			assert.WithinDuration(t, res.SecretExpiresAt.Add(-workflows.DefaultRotationLeadTime), p.NextRotationAt, time.Second)
			text, _, err := d.run(ctx, t, "rotate")
			require.NoError(t, err)
			assert.Contains(t, text, "(cycle 0): "+workflows.PhaseSleeping)
			assert.Contains(t, text, "Next rotation "+p.NextRotationAt.UTC().Format(time.RFC3339))
		})

		var newKey string
		step("rotate --now adds a new secret and keeps the old one", func(t *testing.T) {
			stdout, _, err := d.run(ctx, t, "rotate", "--now", "--by", "tester", "--json")
			require.NoError(t, err)
			assert.Contains(t, stdout, "Sent "+workflows.SignalRotateNow+" to "+d.rotationID)
			rotationJSON(t, stdout)
			p := d.rotation(ctx, t, "a new secret waits for Marketo", func(p workflows.RotationProgress) bool {
				return p.Phase == workflows.PhaseAwaitingMarketo && p.NewKeyID != ""
			})
			newKey = strings.ToLower(p.NewKeyID)
			assert.NotEqual(t, oldKey, newKey)
			assert.Equal(t, oldKey, strings.ToLower(p.OldKeyID))
			assert.Equal(t, lower(oldKey, newKey), d.secrets(t, res.ClientID), "both secrets live until the confirmation")
		})

		var newSecret string
		step("credentials masks the new secret; --reveal shows the real one", func(t *testing.T) {
			masked, stderr, err := d.run(ctx, t, "credentials")
			require.NoError(t, err)
			assert.Contains(t, masked, "Client Secret   ******** (hidden")
			assert.Contains(t, stderr, "NOTE: this is the NEW secret (key "+newKey)
			assert.Contains(t, stderr, "starter rotate --confirm --tenant-id "+d.tenantID)

			pkg, stderr := d.credentials(ctx, t, "--reveal", "--reason", "ticket 42")
			assert.Contains(t, stderr, "password manager")
			assert.Contains(t, stderr, "client secret revealed", "the structured audit line")
			assert.Contains(t, stderr, "ticket 42")
			assert.False(t, pkg.SecretMasked)
			// The reveal is in the rotation's history, readable without the custody key.
			reveals := d.reveals(ctx, t)
			require.Len(t, reveals, 1, "one secret-revealed signal")
			assert.Equal(t, "ticket 42", reveals[0].Reason)
			assert.Equal(t, d.tenantID, reveals[0].TenantID)
			assert.Equal(t, newKey, strings.ToLower(reveals[0].KeyID))
			assert.NotEmpty(t, reveals[0].By, "the OS user")
			// The rotation counts it; status and rotate show it.
			p := d.rotation(ctx, t, "the reveal is counted", func(p workflows.RotationProgress) bool { return p.Reveals == 1 })
			require.NotNil(t, p.LastReveal)
			assert.Equal(t, "ticket 42", p.LastReveal.Reason)
			assert.Equal(t, reveals[0].By, p.LastReveal.By)
			status, _, err := d.run(ctx, t, "status")
			require.NoError(t, err)
			assert.Contains(t, status, "Secret revealed 1 time(s); last by "+reveals[0].By)
			assert.Contains(t, status, "(reason: ticket 42)")
			assert.Equal(t, res.ClientID, pkg.ClientID)
			newSecret = pkg.ClientSecret
			require.False(t, openSecret(res.ClientSecret) == newSecret, "--reveal shows the rotation's new secret, not the onboarding's")
			assert.False(t, strings.Contains(masked+stderr, newSecret), "the new secret is printed without --reveal")
			assert.False(t, strings.Contains(masked, openSecret(res.ClientSecret)), "the old secret is printed without --reveal")
			// The emulator issues tokens only for secrets really on the app.
			assert.Equal(t, http.StatusOK, tokenStatus(t, st, d.tenantID, res.ClientID, newSecret))
			assert.Equal(t, http.StatusOK, tokenStatus(t, st, d.tenantID, res.ClientID, openSecret(res.ClientSecret)), "the old one still works")
			assert.Equal(t, http.StatusUnauthorized, tokenStatus(t, st, d.tenantID, res.ClientID, newSecret+"x"))

			hidden, _ := d.credentials(ctx, t)
			assert.True(t, hidden.SecretMasked)
			assert.Equal(t, "********", hidden.ClientSecret)
			assert.Equal(t, pkg.SecretExpiresAt, hidden.SecretExpiresAt, "the new secret's expiry")
			assert.True(t, pkg.SecretExpiresAt.After(res.SecretExpiresAt), "the new secret outlives the old one")
		})

		step("rotate --confirm signs in with the new secret, then removes the old one", func(t *testing.T) {
			stdout, _, err := d.run(ctx, t, "rotate", "--confirm", "--by", "tester")
			require.NoError(t, err)
			assert.Contains(t, stdout, "Sent "+workflows.SignalMarketoUpdated+" to "+d.rotationID)
			p := d.rotation(ctx, t, "the next cycle sleeps", func(p workflows.RotationProgress) bool {
				return p.Cycle == 1 && p.Phase == workflows.PhaseSleeping
			})
			assert.Equal(t, newKey, strings.ToLower(p.OldKeyID), "the new secret is the live one")
			assert.Equal(t, []string{newKey}, d.secrets(t, res.ClientID), "exactly one secret left, the new one")
			assert.Equal(t, http.StatusOK, tokenStatus(t, st, d.tenantID, res.ClientID, newSecret))
			assert.Equal(t, http.StatusUnauthorized, tokenStatus(t, st, d.tenantID, res.ClientID, openSecret(res.ClientSecret)), "the old secret is refused")

			pkg, stderr := d.credentials(ctx, t, "--reveal")
			assert.True(t, newSecret == pkg.ClientSecret, "credentials --reveal shows the new secret, now the live one")
			assert.NotContains(t, stderr, "NOTE", "no rotation waits for Marketo any more")
			status, _, err := d.run(ctx, t, "status")
			require.NoError(t, err)
			assert.Contains(t, status, "Secret rotation for tenant "+d.tenantID)
			assert.Contains(t, status, "(cycle 1)")
		})

		wantActions := []string{"clear-marketo-config-user", "remove-role-association", "remove-application-user",
			"remove-client-secret", "remove-service-principal", "remove-application"}
		step("offboard --dry-run lists everything and changes nothing", func(t *testing.T) {
			onboarded := d.objects(t)
			plan := d.offboard(ctx, t, true)
			assert.Equal(t, wantActions, actionsOf(plan))
			i := slices.Index(actionsOf(plan), "remove-client-secret")
			require.GreaterOrEqual(t, i, 0)
			assert.Equal(t, newKey, strings.ToLower(plan.Actions[i].Target))

			text, _, err := d.run(ctx, t, "offboard", "--dry-run")
			require.NoError(t, err)
			assert.Contains(t, text, "Dry run")
			assert.Contains(t, text, "· remove-application ")
			assert.Equal(t, onboarded, d.objects(t), "a dry run changes nothing in the emulator")
			assert.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, d.rotationStatus(ctx, t), "nor stops the rotation")
		})

		step("offboard removes everything and stops the rotation", func(t *testing.T) {
			assert.Equal(t, wantActions, actionsOf(d.offboard(ctx, t, false)))
			assert.Equal(t, before, d.objects(t), "the tenant and org are as before the onboarding")
			assert.Equal(t, http.StatusUnauthorized, tokenStatus(t, st, d.tenantID, res.ClientID, newSecret), "the app is gone")
			assert.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, d.rotationStatus(ctx, t))
		})

		step("a second offboard finds nothing and changes nothing", func(t *testing.T) {
			stdout, _, err := d.run(ctx, t, "offboard")
			require.NoError(t, err)
			assert.Contains(t, stdout, "Nothing of this onboarding exists; nothing to remove.")
			assert.Equal(t, before, d.objects(t))
		})

		step("credentials and rotate --now say the tenant was offboarded and show nothing stale", func(t *testing.T) {
			stdout, _, err := d.run(ctx, t, "credentials", "--reveal")
			require.Error(t, err)
			assert.Contains(t, err.Error(), "was offboarded at")
			assert.Contains(t, err.Error(), "there are no credentials")
			assert.Empty(t, stdout, "no package, not even the stopped rotation's deleted secret")

			_, _, err = d.run(ctx, t, "rotate", "--now")
			require.Error(t, err)
			assert.Contains(t, err.Error(), "was offboarded at")
			assert.Contains(t, err.Error(), "there is nothing to rotate")
			assert.NotContains(t, err.Error(), "older onboarding")
			assert.Equal(t, before, d.objects(t), "no secret was added")
			assert.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, d.rotationStatus(ctx, t))
		})

		step("after the offboarding, and after a cancelled run, start is allowed again", func(t *testing.T) {
			for range 2 {
				stdout, _, err := d.run(ctx, t, "start")
				require.NoError(t, err)
				assert.Contains(t, stdout, "Started onboarding "+onboardingID)
				// Cancelled while it waits, so no step is interrupted half-way.
				eventually(ctx, t, d.st.cfgFile, func(s string) bool {
					var p workflows.Progress
					return json.Unmarshal([]byte(s), &p) == nil && p.Status == workflows.StatusWaitingConsent
				}, d.args("status", "--json")...)
				_, _, err = d.run(ctx, t, "cancel")
				require.NoError(t, err)
				require.Error(t, d.c.GetWorkflow(ctx, onboardingID, "").Get(ctx, nil), "cancelled")
			}
			assert.Equal(t, before, d.objects(t), "the cancelled runs undid what they created")
		})
	})

	t.Run("rotate --now starts a rotation for an onboarding that never had one", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		d := newDay2Target(st, c, legacyco)
		// Not the default lifetime (12 months): the rotation must keep the onboarding's.
		res := d.onboard(ctx, t, "--secret-months", "3")
		require.WithinDuration(t, time.Now().AddDate(0, 3, 0), res.SecretExpiresAt, 48*time.Hour)
		oldKey := strings.ToLower(res.Resources.SecretKeyID)

		// An onboarding that completed before rotations existed has none:
		// delete the one this onboarding started, history and all.
		_, err := c.WorkflowService().DeleteWorkflowExecution(ctx, &workflowservice.DeleteWorkflowExecutionRequest{
			Namespace:         st.Config.Temporal.Namespace,
			WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: d.rotationID},
		})
		require.NoError(t, err)
		require.NoError(t, testenv.Poll(ctx, 30*time.Second, func() error {
			_, err := c.DescribeWorkflowExecution(ctx, d.rotationID, "")
			var nf *serviceerror.NotFound
			if errors.As(err, &nf) {
				return nil
			}
			return errors.New("the rotation is not deleted yet")
		}))

		_, _, err = d.run(ctx, t, "rotate")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "no rotation is running as "+d.rotationID)
		assert.Contains(t, err.Error(), "`rotate --now` starts one")
		pkg, _ := d.credentials(ctx, t, "--reveal")
		assert.True(t, openSecret(res.ClientSecret) == pkg.ClientSecret, "without a rotation, the onboarding's secret is the live one")
		// The reveal needs a record: it started the rotation the onboarding
		// would have had, with the secret-revealed signal in its history.
		require.Len(t, d.reveals(ctx, t), 1, "the reveal is recorded in the rotation it started")

		stdout, _, err := d.run(ctx, t, "rotate", "--now", "--by", "tester")
		require.NoError(t, err)
		assert.Contains(t, stdout, "Sent "+workflows.SignalRotateNow+" to "+d.rotationID)
		p := d.rotation(ctx, t, "the started rotation adds a secret at once", func(p workflows.RotationProgress) bool {
			return p.Phase == workflows.PhaseAwaitingMarketo && p.NewKeyID != ""
		})
		assert.Equal(t, oldKey, strings.ToLower(p.OldKeyID), "the rotation starts from the onboarding's secret")
		assert.WithinDuration(t, res.SecretExpiresAt, p.OldExpiresAt, time.Second)
		assert.WithinDuration(t, res.SecretExpiresAt, p.NewExpiresAt, time.Hour, "the new secret lives as long as the onboarding's (--secret-months 3)")
		newKey := strings.ToLower(p.NewKeyID)
		assert.Equal(t, lower(oldKey, newKey), d.secrets(t, res.ClientID))
		for _, a := range d.tenant(t, st.Emulator.State()).Applications {
			for _, pw := range a.PasswordCredentials {
				if strings.EqualFold(pw.KeyID, newKey) {
					assert.Equal(t, activities.SecretTag(d.rotationID), pw.DisplayName, "tagged, so offboarding finds it")
				}
			}
		}

		pkg, _ = d.credentials(ctx, t, "--reveal")
		newSecret := pkg.ClientSecret
		require.False(t, openSecret(res.ClientSecret) == newSecret, "--reveal shows the rotation's new secret")
		assert.Equal(t, res.Username, pkg.Username)
		assert.Equal(t, http.StatusOK, tokenStatus(t, st, d.tenantID, res.ClientID, newSecret))

		_, _, err = d.run(ctx, t, "rotate", "--confirm", "--by", "tester")
		require.NoError(t, err)
		p = d.rotation(ctx, t, "the next cycle sleeps", func(p workflows.RotationProgress) bool {
			return p.Cycle == 1 && p.Phase == workflows.PhaseSleeping
		})
		assert.Equal(t, newKey, strings.ToLower(p.OldKeyID))
		assert.Equal(t, []string{newKey}, d.secrets(t, res.ClientID), "exactly one secret left, the new one")
		assert.Equal(t, http.StatusOK, tokenStatus(t, st, d.tenantID, res.ClientID, newSecret))
		assert.Equal(t, http.StatusUnauthorized, tokenStatus(t, st, d.tenantID, res.ClientID, openSecret(res.ClientSecret)), "the old secret is refused")

		// A rotation that stopped starts again from its last run's input
		// (the live secret is the rotated one, not the onboarding's).
		require.NoError(t, c.TerminateWorkflow(ctx, d.rotationID, "", "test: the rotation stops"))
		stdout, _, err = d.run(ctx, t, "rotate", "--now", "--by", "tester")
		require.NoError(t, err, stdout)
		p = d.rotation(ctx, t, "the restarted rotation adds a secret at once", func(p workflows.RotationProgress) bool {
			return p.Phase == workflows.PhaseAwaitingMarketo && p.NewKeyID != "" && !strings.EqualFold(p.NewKeyID, newKey)
		})
		assert.Equal(t, newKey, strings.ToLower(p.OldKeyID), "restarted from the stopped rotation's live secret")
		assert.Equal(t, 1, p.Cycle, "the cycle count carries over")
	})
}
