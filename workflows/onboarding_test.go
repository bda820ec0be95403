package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	sdkpb "go.temporal.io/api/sdk/v1"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/mktos2s/mktos2s/activities"
	"github.com/mktos2s/mktos2s/internal/testenv/testcodec"
)

const (
	testTenant = "11111111-1111-1111-1111-111111111111"
	testOrgURL = "https://contoso.crm.localhost:8443"
	testSecret = "s3cr3t-value-never-in-progress"
)

// testSealed is testSecret sealed once with the test custody key, so it
// compares equal wherever the workflow passes it on.
var testSealed = testcodec.Seal(testSecret)

// stepActivity is the plan with the activity that performs each step and
// the undo activities of what it creates, in the order the workflow runs
// them: derived from onboardingPlan and resourceTable, never spelled here.
var stepActivity = func() (out []struct {
	step, activity string
	undos          []string
}) {
	for _, s := range onboardingPlan() {
		if s.when != nil {
			if skipped, _ := s.when(input().WithDefaults()); skipped {
				continue // the admin session (opt-in) has its own tests (session_test.go)
			}
		}
		e := struct {
			step, activity string
			undos          []string
		}{step: s.name, activity: activityName(s.activity)}
		for _, r := range createdBy(s.name) {
			e.undos = append(e.undos, activityName(r.undo))
		}
		out = append(out, e)
	}
	return out
}()

// undoNames are the undo activities of every resource.
var undoNames = func() (out []string) {
	for _, r := range resourceTable() {
		out = append(out, activityName(r.undo))
	}
	return out
}()

// harness runs Onboarding against mocked activities and records the order
// in which activities start.
type harness struct {
	testsuite.WorkflowTestSuite
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment

	mu        sync.Mutex
	started   []string
	consent   atomic.Bool // whether VerifyConsent sees a grant
	federated bool
	failAt    string            // activity name that fails for good
	failUndo  string            // undo activity that fails for good
	undoNote  map[string]string // note an undo activity returns (it succeeded in a defined end state)
	// refuseUserWhileApp makes RemoveApplicationUser end "disabled, not
	// deleted" until RemoveApplication has run, as Dataverse does.
	refuseUserWhileApp bool
	invalid            bool // validation returns a failed check
	slowCheck          time.Duration
	rotations          []RotationInput // inputs of the SecretRotation children started

	// The AwaitConsent mock re-checks like the real activity: at its start
	// and every interval after, until grantAt or its deadline.
	t0        time.Time
	grantAt   time.Time // when the grant becomes visible; zero: never
	poll      activities.AwaitConsentInput
	pollStart time.Time
	polls     int
	checks    []time.Time // when each CheckConsent attempt started
}

var harnessStart = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, t0: harnessStart}
	h.env = h.NewTestWorkflowEnvironment()
	h.env.SetStartTime(harnessStart)
	Register(h.env) // a completed onboarding starts its rotation as a child (mocked in mock)
	h.env.SetOnActivityStartedListener(h.started1)
	// Preflight runs as a local activity (changeLeanHistory): it is a step all the same.
	h.env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.started = append(h.started, info.ActivityType.Name)
	})
	return h
}

// started1 records a started activity (and the consent poll's input).
func (h *harness) started1(info *activity.Info, _ context.Context, args converter.EncodedValues) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.started = append(h.started, info.ActivityType.Name)
	if info.ActivityType.Name == "AwaitConsent" {
		require.NoError(h.t, args.Get(&h.poll))
		h.pollStart = h.env.Now()
		h.polls++
	}
	if info.ActivityType.Name == "CheckConsent" {
		h.checks = append(h.checks, h.env.Now())
	}
}

// pollWait is how long the AwaitConsent mock runs from now: to the first
// re-check at or after grantAt, or to its deadline.
func (h *harness) pollWait() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failAt == "AwaitConsent" {
		return 0
	}
	now, in := h.env.Now(), h.poll
	end := in.Until
	if !h.grantAt.IsZero() {
		at := now
		if h.grantAt.After(now) {
			n := (h.grantAt.Sub(now) + in.Interval - 1) / in.Interval
			at = now.Add(n * in.Interval)
		}
		if !at.After(end) {
			end = at
		}
	}
	return max(end.Sub(now), 0)
}

func permanent(msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, activities.ErrPermissionDenied, nil)
}

// mock installs the activity mocks; call after setting the knobs.
func (h *harness) mock() {
	var a *activities.Activities
	env := h.env
	fail := func(name string) error {
		if h.failAt == name {
			return permanent(name + " refused: grant X")
		}
		return nil
	}
	env.OnActivity(a.Preflight, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.PreflightInput) (activities.PreflightResult, error) {
			r := activities.PreflightResult{BusinessUnitID: "bu-1", RoleID: "role-1", ConfigID: "cfg-1", ConfigUserID: "old-user"}
			if h.federated && in.DetectFederation {
				r.FederatedDomains = []string{"fabrikam.com"}
			}
			return r, fail("Preflight")
		})
	env.OnActivity(a.RegisterApplication, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.RegisterApplicationInput) (activities.RegisterApplicationResult, error) {
			return activities.RegisterApplicationResult{AppObjectID: "app-obj", AppID: "app-id", Created: true}, fail("RegisterApplication")
		})
	env.OnActivity(a.CreateServicePrincipal, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.CreateServicePrincipalInput) (activities.CreateServicePrincipalResult, error) {
			return activities.CreateServicePrincipalResult{ServicePrincipalID: "sp-1"}, fail("CreateServicePrincipal")
		})
	env.OnActivity(a.BuildConsentURL, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BuildConsentURLInput) (activities.BuildConsentURLResult, error) {
			return activities.BuildConsentURLResult{URL: "https://login.example/" + in.TenantID + "/adminconsent?client_id=" + in.AppID}, nil
		})
	env.OnActivity(a.VerifyConsent, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.VerifyConsentInput) (activities.VerifyConsentResult, error) {
			if err := fail("VerifyConsent"); err != nil {
				return activities.VerifyConsentResult{}, err
			}
			if h.consent.Load() {
				return activities.VerifyConsentResult{Granted: true}, nil
			}
			return activities.VerifyConsentResult{Reason: "no grant yet"}, nil
		})
	env.OnActivity(a.AwaitConsent, mock.Anything, mock.Anything).AfterFn(h.pollWait).Return(
		func(_ context.Context, in activities.AwaitConsentInput) (activities.AwaitConsentResult, error) {
			if err := fail("AwaitConsent"); err != nil {
				return activities.AwaitConsentResult{Checks: 1}, err
			}
			h.mu.Lock()
			started := h.pollStart
			h.mu.Unlock()
			checks := int(env.Now().Sub(started)/in.Interval) + 1
			if h.consent.Load() {
				return activities.AwaitConsentResult{Granted: true, Checks: checks}, nil
			}
			return activities.AwaitConsentResult{Checks: checks, Reason: "no grant yet"}, nil
		})
	env.OnActivity(a.CheckConsent, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.VerifyConsentInput) (activities.VerifyConsentResult, error) {
			if err := fail("CheckConsent"); err != nil {
				return activities.VerifyConsentResult{}, err
			}
			if h.consent.Load() {
				return activities.VerifyConsentResult{Granted: true}, nil
			}
			return activities.VerifyConsentResult{}, temporal.NewApplicationError("admin consent not granted yet: no grant yet", activities.ErrConsentPending)
		})
	env.OnActivity(a.AddClientSecret, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.AddClientSecretInput) (activities.AddClientSecretResult, error) {
			return activities.AddClientSecretResult{KeyID: "key-1", Secret: testSealed, ExpiresAt: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
				fail("AddClientSecret")
		})
	env.OnActivity(a.CreateApplicationUser, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.CreateApplicationUserInput) (activities.CreateApplicationUserResult, error) {
			return activities.CreateApplicationUserResult{SystemUserID: "user-1", Username: "app@contoso.example"}, fail("CreateApplicationUser")
		})
	env.OnActivity(a.ConfigureHomeRealmDiscovery, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.ConfigureHomeRealmDiscoveryInput) (activities.ConfigureHomeRealmDiscoveryResult, error) {
			return activities.ConfigureHomeRealmDiscoveryResult{PolicyID: "hrd-1", Created: true}, fail("ConfigureHomeRealmDiscovery")
		})
	env.OnActivity(a.AssignSecurityRole, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.AssignSecurityRoleInput) (activities.AssignSecurityRoleResult, error) {
			return activities.AssignSecurityRoleResult{RoleID: in.RoleID}, fail("AssignSecurityRole")
		})
	env.OnActivity(a.ConfigureMarketoSolution, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ConfigureMarketoSolutionInput) (activities.ConfigureMarketoSolutionResult, error) {
			return activities.ConfigureMarketoSolutionResult{ConfigID: "cfg-1", PreviousUserID: in.PreviousUserID}, fail("ConfigureMarketoSolution")
		})
	env.OnActivity(a.PublishCustomizations, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.PublishCustomizationsInput) (activities.PublishCustomizationsResult, error) {
			return activities.PublishCustomizationsResult{}, fail("PublishCustomizations")
		})
	env.OnActivity(a.CreateSyncFilter, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CreateSyncFilterInput) (activities.CreateSyncFilterResult, error) {
			return activities.CreateSyncFilterResult{Created: in.Entities}, fail("CreateSyncFilter")
		})
	env.OnActivity(a.ValidateConnection, mock.Anything, mock.Anything).After(h.slowCheck).Return(
		func(_ context.Context, in activities.ValidateConnectionInput) (activities.ValidateConnectionResult, error) {
			if testcodec.Open(in.ClientSecret) != testSecret {
				return activities.ValidateConnectionResult{}, permanent("validation got the wrong secret")
			}
			checks := []activities.Check{{Name: activities.CheckCredentials, Passed: true}, {Name: activities.CheckRole, Passed: !h.invalid}}
			if h.invalid {
				checks[1].Reason = "the user holds no roles"
			}
			return activities.ValidateConnectionResult{Checks: checks, Passed: !h.invalid}, fail("ValidateConnection")
		})
	env.OnWorkflow(RotationWorkflowType, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in RotationInput) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.rotations = append(h.rotations, in)
		return nil
	})
	env.OnActivity(a.RemoveApplication, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.RemoveApplicationInput) (activities.UndoResult, error) {
			return h.undoResult("RemoveApplication")
		})
	env.OnActivity(a.RemoveServicePrincipal, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.RemoveServicePrincipalInput) (activities.UndoResult, error) {
			return h.undoResult("RemoveServicePrincipal")
		})
	env.OnActivity(a.RemoveClientSecret, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.RemoveClientSecretInput) (activities.UndoResult, error) {
			return h.undoResult("RemoveClientSecret")
		})
	env.OnActivity(a.RemoveApplicationUser, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.RemoveApplicationUserInput) (activities.UndoResult, error) {
			return h.undoResult("RemoveApplicationUser")
		})
	env.OnActivity(a.RemoveHRDPolicy, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.RemoveHRDPolicyInput) (activities.UndoResult, error) {
			return h.undoResult("RemoveHRDPolicy")
		})
	env.OnActivity(a.RemoveRoleAssociation, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.RemoveRoleAssociationInput) (activities.UndoResult, error) {
			return h.undoResult("RemoveRoleAssociation")
		})
	env.OnActivity(a.RestoreMarketoConfig, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RestoreMarketoConfigInput) (activities.UndoResult, error) {
			if in.PreviousUserID != "old-user" || in.SystemUserID != "user-1" {
				return activities.UndoResult{}, permanent("restore got the wrong users")
			}
			return h.undoResult("RestoreMarketoConfig")
		})
}

func (h *harness) undoResult(name string) (activities.UndoResult, error) {
	if h.failUndo == name {
		return activities.UndoResult{}, permanent(name + " refused")
	}
	if name == "RemoveApplicationUser" && h.refuseUserWhileApp && !slices.Contains(h.startedActivities(), "RemoveApplication") {
		return activities.UndoResult{Note: activities.DisabledNotDeleted + ": Dataverse refused to delete application user user-1 while its app exists in Entra (0x80048359)"}, nil
	}
	return activities.UndoResult{Note: h.undoNote[name]}, nil
}

func (h *harness) startedActivities() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.started...)
}

func (h *harness) undos() []string {
	var out []string
	for _, s := range h.startedActivities() {
		if slices.Contains(undoNames, s) {
			out = append(out, s)
		}
	}
	return out
}

func (h *harness) signal(after time.Duration, payload any) {
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(SignalAdminConsent, payload) }, after)
}

// grantAndSignal makes the grant visible and signals it, as an admin would.
func (h *harness) grantAndSignal(after time.Duration) {
	h.grant(after)
	h.signal(after, ConsentSignal{Granted: true, By: "admin@contoso"})
}

// grant makes the grant visible after the given time, without a signal.
func (h *harness) grant(after time.Duration) {
	h.mu.Lock()
	h.grantAt = h.t0.Add(after)
	h.mu.Unlock()
	h.env.RegisterDelayedCallback(func() { h.consent.Store(true) }, after)
}

func (h *harness) progress() Progress {
	v, err := h.env.QueryWorkflow(QueryProgress)
	require.NoError(h.t, err)
	var p Progress
	require.NoError(h.t, v.Get(&p))
	return p
}

// queryAt records the progress at a point in workflow time.
func (h *harness) queryAt(after time.Duration, into *Progress) {
	h.env.RegisterDelayedCallback(func() { *into = h.progress() }, after)
}

func input() OnboardingInput {
	return OnboardingInput{TenantID: testTenant, OrgURL: testOrgURL, SyncFilterEntities: []string{"lead", "contact"}}
}

func appErr(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "want an ApplicationError, got %v", err)
	return ae
}

func TestOnboardingHappyPath(t *testing.T) {
	h := newHarness(t)
	h.mock()
	var waiting Progress
	h.queryAt(30*time.Second, &waiting)
	h.grantAndSignal(time.Minute)

	h.env.ExecuteWorkflow(Onboarding, input())
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())

	var res OnboardingResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	assert.Equal(t, OnboardingResult{
		OrgURL: testOrgURL, Username: "app@contoso.example", ClientID: "app-id", TenantID: testTenant,
		ClientSecret: testSealed, SecretExpiresAt: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		Validation: []activities.Check{{Name: activities.CheckCredentials, Passed: true}, {Name: activities.CheckRole, Passed: true}},
		Resources: Resources{AppObjectID: "app-obj", AppID: "app-id", ServicePrincipalID: "sp-1", SecretKeyID: "key-1",
			SystemUserID: "user-1", RoleID: "role-1", ConfigID: "cfg-1", ConfigPreviousUserID: "old-user"},
		CompletedSteps: []string{StepPreflight, StepRegisterApplication, StepCreateServicePrincipal, StepAwaitingAdminConsent,
			StepAddClientSecret, StepCreateApplicationUser, StepAssignSecurityRole, StepConfigureMarketoSolution,
			StepPublishCustomizations, StepCreateSyncFilter, StepValidateConnection},
	}, res)

	// Consent is verified once at entry (not yet) and once on the signal.
	// The poll re-checks in the background; the signal is verified once.
	assert.Equal(t, []string{"Preflight", "RegisterApplication", "CreateServicePrincipal", "BuildConsentURL", "CheckConsent",
		"VerifyConsent", "AddClientSecret", "CreateApplicationUser", "AssignSecurityRole", "ConfigureMarketoSolution",
		"PublishCustomizations", "CreateSyncFilter", "ValidateConnection"}, h.startedActivities())
	assert.Empty(t, h.undos())

	// While waiting, progress shows where it stands and the consent URL.
	assert.Equal(t, StepAwaitingAdminConsent, waiting.Step)
	assert.Equal(t, StatusWaitingConsent, waiting.Status)
	assert.Equal(t, "https://login.example/"+testTenant+"/adminconsent?client_id=app-id", waiting.ConsentURL)
	assert.Equal(t, []string{StepPreflight, StepRegisterApplication, StepCreateServicePrincipal}, waiting.CompletedSteps)
	assert.Equal(t, Resources{AppObjectID: "app-obj", AppID: "app-id", ServicePrincipalID: "sp-1", RoleID: "role-1", ConfigID: "cfg-1"},
		waiting.Resources)
	assert.False(t, waiting.ConsentVerified)
	assert.Contains(t, waiting.Message, "re-checked every 10m0s until 2026-03-09T09:00:00Z")
	assert.Equal(t, harnessStart, waiting.ConsentWaitingSince.UTC())
	assert.Equal(t, harnessStart.Add(DefaultConsentTimeout), waiting.ConsentExpiresAt.UTC())

	done := h.progress()
	assert.Equal(t, StepCompleted, done.Step)
	assert.Equal(t, StatusCompleted, done.Status)
	assert.True(t, done.ConsentVerified)
	assert.Empty(t, done.Error)
	assert.Equal(t, "key-1", done.Resources.SecretKeyID)
	assert.Equal(t, res.CompletedSteps, done.CompletedSteps)
}

// runQueriedDuringValidation runs a granted onboarding whose validation
// takes an hour and returns the harness and the progress queried half-way
// through it, when the secret exists and the run is not over.
func runQueriedDuringValidation(t *testing.T) (*harness, Progress) {
	h := newHarness(t)
	h.slowCheck = time.Hour
	h.mock()
	var mid Progress
	h.grantAndSignal(time.Minute)
	h.queryAt(30*time.Minute, &mid)
	h.env.ExecuteWorkflow(Onboarding, input())
	require.NoError(t, h.env.GetWorkflowError())
	assert.Equal(t, StepValidateConnection, mid.Step)
	return h, mid
}

func TestSecretNeverInProgress(t *testing.T) {
	h, mid := runQueriedDuringValidation(t)
	for _, p := range []Progress{mid, h.progress()} {
		b, err := json.Marshal(p)
		require.NoError(t, err)
		assert.NotContains(t, string(b), testSecret)
		assert.Contains(t, string(b), `"secretKeyId":"key-1"`) // the ID is there, the value is not
	}
}

func TestOnboardingProgressJSONFieldNames(t *testing.T) {
	b, err := json.Marshal(Progress{})
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for _, k := range []string{"step", "status", "consentUrl", "completedSteps", "resources", "error", "updatedAt", "consentVerified"} {
		assert.Contains(t, m, k)
	}
}

func TestConsentDeniedCompensatesEverything(t *testing.T) {
	h := newHarness(t)
	h.mock()
	h.signal(time.Hour, ConsentSignal{Granted: false, By: "ciso@contoso", Note: "not this quarter", Source: ConsentSourceOperator})
	h.env.ExecuteWorkflow(Onboarding, input())

	err := h.env.GetWorkflowError()
	require.Error(t, err)
	ae := appErr(t, err)
	assert.Equal(t, activities.ErrConsentNotGranted, ae.Type())
	assert.Contains(t, err.Error(), "denied by ciso@contoso: not this quarter")
	assert.Equal(t, []string{"RemoveServicePrincipal", "RemoveApplication"}, h.undos())

	var report FailureReport
	require.NoError(t, ae.Details(&report))
	assert.Equal(t, StepAwaitingAdminConsent, report.FailedStep)
	assert.Equal(t, []UndoOutcome{{Step: StepCreateServicePrincipal, Undo: "RemoveServicePrincipal", OK: true},
		{Step: StepRegisterApplication, Undo: "RemoveApplication", OK: true}}, report.Compensation)

	p := h.progress()
	assert.Equal(t, StepFailed, p.Step)
	assert.Equal(t, StatusFailed, p.Status)
	assert.Equal(t, StepAwaitingAdminConsent, p.FailedStep)
	assert.Contains(t, p.Error, "denied")
}

func TestConsentTimeoutCompensates(t *testing.T) {
	h := newHarness(t)
	h.mock()
	in := input()
	in.ConsentTimeout = time.Hour
	in.ConsentRecheckInterval = 10 * time.Minute
	h.env.ExecuteWorkflow(Onboarding, in)

	err := h.env.GetWorkflowError()
	require.Error(t, err)
	assert.Equal(t, activities.ErrConsentNotGranted, appErr(t, err).Type())
	assert.Contains(t, err.Error(), "not granted within 1h0m0s")
	assert.Equal(t, []string{"RemoveServicePrincipal", "RemoveApplication"}, h.undos())
	// One check at entry plus one per re-check interval within the hour,
	// all attempts of one activity; nothing else was scheduled.
	require.Len(t, h.checks, 1+6)
	for i, at := range h.checks {
		assert.Equal(t, harnessStart.Add(time.Duration(i)*10*time.Minute), at.UTC(), "check %d", i)
	}
	assert.NotContains(t, h.startedActivities(), "VerifyConsent")
}

func TestConsentNoticedByRecheckWithoutSignal(t *testing.T) {
	h := newHarness(t)
	h.mock()
	h.grant(25 * time.Minute)
	h.env.ExecuteWorkflow(Onboarding, input())
	require.NoError(t, h.env.GetWorkflowError())
	assert.Contains(t, h.progress().CompletedSteps, StepValidateConnection)
}

func TestSignalBeforeGrantVisibleKeepsWaiting(t *testing.T) {
	h := newHarness(t)
	h.mock()
	var afterSignal Progress
	h.signal(time.Minute, ConsentSignal{Granted: true, By: "admin@contoso"}) // grant not visible yet
	h.queryAt(2*time.Minute, &afterSignal)
	h.grant(5 * time.Minute)
	h.env.ExecuteWorkflow(Onboarding, input())

	require.NoError(t, h.env.GetWorkflowError())
	assert.Equal(t, StepAwaitingAdminConsent, afterSignal.Step)
	assert.Contains(t, afterSignal.Message, "signalled by admin@contoso at 2026-03-02T09:01:00Z but the grant is not visible")
	assert.False(t, afterSignal.ConsentVerified)
}

func TestMalformedConsentSignalIsIgnored(t *testing.T) {
	for name, payload := range map[string]any{
		"string":          "yes please",
		"granted missing": map[string]string{"by": "admin"},
		"granted wrong":   map[string]string{"granted": "maybe"},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.mock()
			var afterBad Progress
			h.signal(time.Minute, payload)
			h.queryAt(2*time.Minute, &afterBad)
			h.grantAndSignal(3 * time.Minute)
			h.env.ExecuteWorkflow(Onboarding, input())

			require.NoError(t, h.env.GetWorkflowError())
			assert.Equal(t, StepAwaitingAdminConsent, afterBad.Step)
			assert.Contains(t, afterBad.Message, "ignored a malformed admin-consent signal")
			assert.Empty(t, h.undos())
		})
	}
}

func TestCancelWhileWaitingForConsentCompensates(t *testing.T) {
	h := newHarness(t)
	h.mock()
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, time.Hour)
	h.env.ExecuteWorkflow(Onboarding, input())

	err := h.env.GetWorkflowError()
	require.Error(t, err)
	var ce *temporal.CanceledError
	require.True(t, errors.As(err, &ce), "want a CanceledError, got %v", err)
	assert.Equal(t, []string{"RemoveServicePrincipal", "RemoveApplication"}, h.undos())
	p := h.progress()
	assert.Equal(t, StatusCancelled, p.Status)
	assert.Len(t, p.Compensation, 2)
}

func TestFederationDecidesHRDStep(t *testing.T) {
	cases := []struct {
		mode         FederationMode
		federated    bool
		wantHRD      bool
		wantDetected bool
	}{
		{FederationAuto, true, true, true},
		{FederationAuto, false, false, true},
		{FederationAlways, false, true, false},
		{FederationNever, true, false, false},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/federated=%t", c.mode, c.federated), func(t *testing.T) {
			h := newHarness(t)
			h.federated = c.federated
			h.mock()
			var detect atomic.Bool
			// Preflight is a local activity (changeLeanHistory): its input is seen here.
			h.env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, args []any) {
				h.mu.Lock()
				h.started = append(h.started, info.ActivityType.Name)
				h.mu.Unlock()
				if in, ok := args[0].(activities.PreflightInput); ok && info.ActivityType.Name == "Preflight" {
					detect.Store(in.DetectFederation)
				}
			})
			h.grantAndSignal(time.Minute)
			in := input()
			in.Federation = c.mode
			h.env.ExecuteWorkflow(Onboarding, in)

			require.NoError(t, h.env.GetWorkflowError())
			assert.Equal(t, c.wantDetected, detect.Load())
			assert.Equal(t, c.wantHRD, slices.Contains(h.startedActivities(), "ConfigureHomeRealmDiscovery"))
			p := h.progress()
			assert.Equal(t, c.wantHRD, p.Federated)
			assert.Equal(t, c.wantHRD, slices.Contains(p.CompletedSteps, StepConfigureHomeRealmDiscovery))
			if c.wantHRD {
				assert.Equal(t, "hrd-1", p.Resources.HRDPolicyID)
			}
		})
	}
}

// TestFailureAtEachStepUndoesExactlyThePreviousSteps runs every step with
// all optional steps on, fails it for good, and checks the undo order.
func TestFailureAtEachStepUndoesExactlyThePreviousSteps(t *testing.T) {
	for k, s := range stepActivity {
		t.Run(s.step, func(t *testing.T) {
			h := newHarness(t)
			h.federated = true
			h.failAt = s.activity
			h.mock()
			h.grantAndSignal(time.Minute)
			h.env.ExecuteWorkflow(Onboarding, input())

			err := h.env.GetWorkflowError()
			require.Error(t, err)
			assert.Contains(t, err.Error(), "onboarding failed at "+s.step)
			assert.Contains(t, err.Error(), s.activity+" refused: grant X", "the activity's actionable message is kept")
			assert.Equal(t, activities.ErrPermissionDenied, appErr(t, err).Type())

			var want []string
			for i := k - 1; i >= 0; i-- {
				for j := len(stepActivity[i].undos) - 1; j >= 0; j-- {
					want = append(want, stepActivity[i].undos[j])
				}
			}
			assert.Equal(t, want, h.undos())

			p := h.progress()
			assert.Equal(t, s.step, p.FailedStep)
			assert.NotContains(t, p.CompletedSteps, s.step)
			assert.Len(t, p.Compensation, len(want))
			if len(want) == 0 {
				assert.Contains(t, p.Error, "nothing had been created")
			}
		})
	}
}

func TestValidationFailureFailsWithChecklist(t *testing.T) {
	h := newHarness(t)
	h.invalid = true
	h.mock()
	h.grantAndSignal(time.Minute)
	h.env.ExecuteWorkflow(Onboarding, input())

	err := h.env.GetWorkflowError()
	require.Error(t, err)
	ae := appErr(t, err)
	assert.Equal(t, activities.ErrValidationFailed, ae.Type())
	assert.Contains(t, err.Error(), activities.CheckRole+": the user holds no roles")
	var report FailureReport
	require.NoError(t, ae.Details(&report))
	assert.Len(t, report.Validation, 2)
	assert.Equal(t, []string{"RestoreMarketoConfig", "RemoveRoleAssociation", "RemoveApplicationUser", "RemoveClientSecret",
		"RemoveServicePrincipal", "RemoveApplication"}, h.undos())
}

func TestFailedUndoIsReportedAndTheRestStillRuns(t *testing.T) {
	h := newHarness(t)
	h.failAt = "CreateApplicationUser"
	h.failUndo = "RemoveClientSecret"
	h.mock()
	h.grantAndSignal(time.Minute)
	h.env.ExecuteWorkflow(Onboarding, input())

	err := h.env.GetWorkflowError()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "compensation FAILED")
	assert.Contains(t, err.Error(), "RemoveClientSecret: RemoveClientSecret refused")
	assert.Equal(t, []string{"RemoveClientSecret", "RemoveServicePrincipal", "RemoveApplication"}, h.undos())
	p := h.progress()
	require.Len(t, p.Compensation, 3)
	assert.False(t, p.Compensation[0].OK)
	assert.True(t, p.Compensation[1].OK)
	assert.Contains(t, p.Error, "compensation FAILED")
}

// compensateAfter runs an onboarding that fails at step after the admin's
// consent, with set applied to the harness first, and returns its error.
func compensateAfter(t *testing.T, step string, set func(*harness)) (*harness, error) {
	h := newHarness(t)
	h.failAt = step
	set(h)
	h.mock()
	h.grantAndSignal(time.Minute)
	h.env.ExecuteWorkflow(Onboarding, input())
	err := h.env.GetWorkflowError()
	require.Error(t, err)
	return h, err
}

// Dataverse may refuse to delete the application user while its Entra app
// exists (issue 13 item 3): RemoveApplicationUser then succeeds with the
// user disabled and stripped of roles, and the saga records that note with
// a successful undo, not "compensation FAILED".
func TestUserDisabledNotDeletedIsACompletedUndo(t *testing.T) {
	note := activities.DisabledNotDeleted + ": Dataverse refused to delete application user u1 while its app exists in Entra (0x80048359)"
	h, err := compensateAfter(t, "ConfigureMarketoSolution", func(h *harness) {
		h.undoNote = map[string]string{"RemoveApplicationUser": note}
	})
	assert.NotContains(t, err.Error(), "compensation FAILED")
	assert.Contains(t, err.Error(), "compensation undid all")
	var report FailureReport
	require.NoError(t, appErr(t, err).Details(&report))
	found := false
	for _, o := range report.Compensation {
		if o.Undo == "RemoveApplicationUser" {
			found = true
			assert.True(t, o.OK, "a user disabled, not deleted is a defined end state")
			assert.Equal(t, note, o.Note)
			assert.Empty(t, o.Error)
		}
	}
	assert.True(t, found, "the user's undo ran: %v", h.undos())
	assert.Contains(t, h.undos(), "RemoveApplication", "the rest of the undo still runs")
	p := h.progress()
	assert.NotContains(t, p.Error, "compensation FAILED")
}

// Once the app's undo has run, the user Dataverse would not delete while
// the app existed is deleted by a second RemoveApplicationUser, and the
// report says so instead of "disabled, not deleted".
func TestUserRefusedWhileItsAppExistedIsDeletedAfterIt(t *testing.T) {
	h, err := compensateAfter(t, "ConfigureMarketoSolution", func(h *harness) { h.refuseUserWhileApp = true })
	assert.Contains(t, err.Error(), "compensation undid all")
	undos := h.undos()
	require.NotEmpty(t, undos)
	assert.Equal(t, "RemoveApplication", undos[len(undos)-2], "the app goes first: %v", undos)
	assert.Equal(t, "RemoveApplicationUser", undos[len(undos)-1], "then the user again: %v", undos)
	var report FailureReport
	require.NoError(t, appErr(t, err).Details(&report))
	var notes []string
	for _, o := range report.Compensation {
		if o.Undo == "RemoveApplicationUser" {
			assert.True(t, o.OK)
			notes = append(notes, o.Note)
		}
	}
	require.Len(t, notes, 1, "one outcome per resource, however many tries")
	assert.True(t, strings.HasPrefix(notes[0], DeletedAfterApp), notes[0])
	p := h.progress()
	require.NotEmpty(t, p.Compensation)
	found := false
	for _, o := range p.Compensation {
		found = found || (o.Undo == "RemoveApplicationUser" && strings.HasPrefix(o.Note, DeletedAfterApp))
	}
	assert.True(t, found, "the progress query shows it too: %+v", p.Compensation)
}

// Without the app's undo (it failed) nothing is retried: the user stays
// disabled without roles, and the failed undo is reported.
func TestUserStaysDisabledWhenTheAppCouldNotBeRemoved(t *testing.T) {
	h, err := compensateAfter(t, "ConfigureMarketoSolution", func(h *harness) {
		h.refuseUserWhileApp, h.failUndo = true, "RemoveApplication"
	})
	assert.Contains(t, err.Error(), "compensation FAILED")
	n := 0
	for _, u := range h.undos() {
		if u == "RemoveApplicationUser" {
			n++
		}
	}
	assert.Equal(t, 1, n, "no second try while the app exists: %v", h.undos())
}

func TestInvalidInputStartsNothing(t *testing.T) {
	h := newHarness(t)
	h.mock()
	h.env.ExecuteWorkflow(Onboarding, OnboardingInput{TenantID: "abc", OrgURL: "http://contoso"})
	err := h.env.GetWorkflowError()
	require.Error(t, err)
	assert.Equal(t, ErrInvalidInput, appErr(t, err).Type())
	assert.Contains(t, err.Error(), `tenantId: "abc" is not a GUID`)
	assert.Empty(t, h.startedActivities())
}

func TestSearchAttributesFollowTheStep(t *testing.T) {
	h := newHarness(t)
	h.mock()
	var mu sync.Mutex
	var steps []string
	var tenant, host string
	h.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		mu.Lock()
		defer mu.Unlock()
		if v, ok := sa.GetKeyword(SearchOnboardingStep); ok {
			steps = append(steps, v)
		}
		if v, ok := sa.GetKeyword(SearchTenantID); ok {
			tenant = v
		}
		if v, ok := sa.GetKeyword(SearchOrgHost); ok {
			host = v
		}
	}).Return(nil)
	h.grantAndSignal(time.Minute)
	h.env.ExecuteWorkflow(Onboarding, input())
	require.NoError(t, h.env.GetWorkflowError())

	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, testTenant, tenant)
	assert.Equal(t, "contoso.crm.localhost:8443", host)
	// OnboardingStep changes only at the states operators filter on, each
	// once (changeLeanHistory): every upsert is a history event, a
	// visibility write and a billable action. The start request sets
	// preflight; this test's start did not, so the identity upsert carries it.
	assert.Equal(t, []string{StepPreflight, StepAwaitingAdminConsent, StepProvisioning, StepCompleted}, steps)
}

func TestIdentityAttributesNotRewrittenWhenSetAtStart(t *testing.T) {
	h := newHarness(t)
	h.mock()
	require.NoError(t, h.env.SetTypedSearchAttributesOnStart(temporal.NewSearchAttributes(
		SearchTenantID.ValueSet(testTenant), SearchOrgHost.ValueSet("contoso.crm.localhost:8443"))))
	var identityUpserts atomic.Int32
	h.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		if sa.ContainsKey(SearchTenantID) || sa.ContainsKey(SearchOrgHost) {
			identityUpserts.Add(1)
		}
	}).Return(nil)
	h.grantAndSignal(time.Minute)
	h.env.ExecuteWorkflow(Onboarding, input())
	require.NoError(t, h.env.GetWorkflowError())
	assert.Zero(t, identityUpserts.Load())
}

// TestStepMessageDoesNotCarryOver: the consent step's "admin consent
// verified" is not shown as the message of the steps after it.
func TestStepMessageDoesNotCarryOver(t *testing.T) {
	h, mid := runQueriedDuringValidation(t)
	assert.NotContains(t, mid.Message, "admin consent verified")
	assert.True(t, mid.ConsentVerified, "the verification itself is still recorded")
	final := h.progress()
	assert.Equal(t, StepCompleted, final.Step)
	assert.Contains(t, final.Message, "validation passed", "completion keeps the last word")
}

// TestDecodeConsentNamesTheProblem: a malformed admin-consent signal is
// reported with what is wrong in it, not as "not a JSON object".
func TestDecodeConsentNamesTheProblem(t *testing.T) {
	tests := []struct {
		name    string
		payload any
		want    *ConsentSignal
		problem string
	}{
		{name: "granted", payload: ConsentSignal{Granted: true, By: "admin"}, want: &ConsentSignal{Granted: true, By: "admin"}},
		{name: "denied with note", payload: map[string]any{"granted": false, "note": "no"}, want: &ConsentSignal{Note: "no"}},
		{name: "not an object", payload: "yes please", problem: "payload is not a JSON object"},
		{name: "granted missing", payload: map[string]string{"by": "admin"}, problem: `"granted" is missing`},
		{name: "granted a string", payload: map[string]string{"granted": "yes"}, problem: `"granted" must be true or false`},
		{name: "granted null", payload: map[string]any{"granted": nil}, problem: `"granted" must be true or false`},
		{name: "by a number", payload: map[string]any{"granted": true, "by": 7}, problem: `"by" must be a string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := converter.GetDefaultDataConverter().ToPayload(tt.payload)
			require.NoError(t, err)
			got, problem := decodeConsent(converter.NewRawValue(p))
			assert.Equal(t, tt.want, got)
			if tt.problem == "" {
				assert.Empty(t, problem)
			} else {
				assert.Contains(t, problem, tt.problem)
			}
		})
	}
}

// The Temporal UI shows the current details; while consent is awaited they
// carry the step and the consent address as text an operator can copy.
func TestCurrentDetailsShowTheConsentAddress(t *testing.T) {
	h := newHarness(t)
	h.mock()
	var details string
	var waiting Progress
	h.env.RegisterDelayedCallback(func() {
		waiting = h.progress()
		v, err := h.env.QueryWorkflow("__temporal_workflow_metadata")
		require.NoError(t, err)
		var md sdkpb.WorkflowMetadata
		require.NoError(t, v.Get(&md))
		details = md.GetCurrentDetails()
	}, time.Minute)
	h.grantAndSignal(2 * time.Minute)
	h.env.ExecuteWorkflow(Onboarding, input())
	require.NoError(t, h.env.GetWorkflowError())

	require.Equal(t, StepAwaitingAdminConsent, waiting.Step)
	require.NotEmpty(t, waiting.ConsentURL)
	assert.Contains(t, details, "**Step:** "+StepAwaitingAdminConsent)
	assert.Contains(t, details, "("+waiting.ConsentURL+")", "the link")
	assert.Contains(t, details, "`"+waiting.ConsentURL+"`", "the address as text")
}

// currentDetails is what the Temporal UI shows as the run's current details.
func (h *harness) currentDetails() string {
	v, err := h.env.QueryWorkflow("__temporal_workflow_metadata")
	require.NoError(h.t, err)
	var md sdkpb.WorkflowMetadata
	require.NoError(h.t, v.Get(&md))
	return md.GetCurrentDetails()
}

func rawOf(t *testing.T, v any) converter.RawValue {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	require.NoError(t, err)
	return converter.NewRawValue(p)
}

// keyVault.url on the starter puts the vault in the input: the validated
// secret is handed over once, after ValidateConnection, and the result says
// which version holds it. A failed hand-off is reported, not undone.
func TestOnboardingDeliversToKeyVault(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("fails=%v", fail), func(t *testing.T) {
			h := newHarness(t)
			h.mock()
			var delivered []activities.DeliverSecretInput
			h.env.OnActivity(a.DeliverSecretToVault, mock.Anything, mock.Anything).Return(
				func(_ context.Context, d activities.DeliverSecretInput) (activities.DeliverSecretResult, error) {
					delivered = append(delivered, d)
					if fail {
						return activities.DeliverSecretResult{}, temporal.NewNonRetryableApplicationError("forbidden", activities.ErrPermissionDenied, nil)
					}
					return activities.DeliverSecretResult{VersionID: "https://v.vault.azure.net/secrets/s/1"}, nil
				})
			h.grantAndSignal(time.Minute)
			in := input()
			in.KeyVault = &activities.VaultTarget{URL: "https://v.vault.azure.net", SecretName: "s"}
			h.env.ExecuteWorkflow(Onboarding, in)
			require.NoError(t, h.env.GetWorkflowError(), "a failed hand-off does not fail the onboarding")
			var res OnboardingResult
			require.NoError(t, h.env.GetWorkflowResult(&res))
			require.Len(t, delivered, 1)
			assert.Equal(t, testSecret, testcodec.Open(delivered[0].Secret))
			assert.Equal(t, "key-1", delivered[0].KeyID)
			started := h.startedActivities()
			assert.Equal(t, []string{"ValidateConnection", "DeliverSecretToVault"}, started[len(started)-2:], "after validation")
			if fail {
				assert.Empty(t, res.VaultSecretID)
				assert.Contains(t, res.VaultError, "forbidden")
			} else {
				assert.Equal(t, "https://v.vault.azure.net/secrets/s/1", res.VaultSecretID)
				assert.Empty(t, res.VaultError)
			}
		})
	}
}
