package workflows

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/mktos2s/mktos2s/activities"
	"github.com/mktos2s/mktos2s/internal/testenv/testcodec"
)

var rotationStart = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeEntra is the app's secret list as the mocked activities change it.
type fakeEntra struct {
	mu      sync.Mutex
	secrets map[string]string // keyID -> value
	tags    map[string]string // keyID -> displayName
	next    int
	removed []string
	// validations counts ValidateConnection calls; badSecret makes them fail sign-in.
	validations int
	badSecret   bool
	// addErr is what AddClientSecret answers until addFailUntil.
	addErr       error
	addFailUntil time.Time
	addCalls     int
	// validateErr is what the first validateFails validations answer.
	validateErr   error
	validateFails int
}

func newFakeEntra() *fakeEntra {
	return &fakeEntra{secrets: map[string]string{"key-0": "value-0"}, tags: map[string]string{"key-0": "mktos2s onboarding/x"}}
}

func (f *fakeEntra) live() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.secrets {
		out = append(out, k)
	}
	return out
}

// rotationEnv runs one rotation run against fake activities.
type rotationEnv struct {
	testsuite.WorkflowTestSuite
	env   *testsuite.TestWorkflowEnvironment
	entra *fakeEntra
	adds  []activities.AddClientSecretInput
}

func newRotationEnv(t *testing.T, entra *fakeEntra, start time.Time) *rotationEnv {
	r := &rotationEnv{entra: entra}
	r.env = r.NewTestWorkflowEnvironment()
	r.env.SetStartTime(start)
	r.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: RotationWorkflowID(testTenant, "contoso.crm.localhost:8443")})
	Register(r.env)
	var a *activities.Activities
	r.env.OnActivity(a.AddClientSecret, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.AddClientSecretInput) (activities.AddClientSecretResult, error) {
			entra.mu.Lock()
			defer entra.mu.Unlock()
			entra.addCalls++
			if r.env.Now().Before(entra.addFailUntil) {
				return activities.AddClientSecretResult{}, entra.addErr
			}
			r.adds = append(r.adds, in)
			for k, tag := range entra.tags { // the real activity's stale-secret rule
				if tag == activities.SecretTag(in.WorkflowID) && !contains(in.Keep, k) {
					delete(entra.secrets, k)
				}
			}
			entra.next++
			k := fmt.Sprintf("key-%d", entra.next)
			entra.secrets[k], entra.tags[k] = fmt.Sprintf("value-%d", entra.next), activities.SecretTag(in.WorkflowID)
			now := r.env.Now()
			exp := now.AddDate(0, in.LifetimeMonths, 0)
			if in.Lifetime > 0 {
				exp = now.Add(in.Lifetime)
			}
			return activities.AddClientSecretResult{KeyID: k, Secret: testcodec.Seal(entra.secrets[k]), ExpiresAt: exp}, nil
		})
	r.env.OnActivity(a.ValidateConnection, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ValidateConnectionInput) (activities.ValidateConnectionResult, error) {
			entra.mu.Lock()
			defer entra.mu.Unlock()
			entra.validations++
			if entra.validateFails > 0 {
				entra.validateFails--
				return activities.ValidateConnectionResult{}, entra.validateErr
			}
			ok := !entra.badSecret
			if ok {
				ok = false
				for _, v := range entra.secrets {
					ok = ok || v == testcodec.Open(in.ClientSecret)
				}
			}
			return activities.ValidateConnectionResult{Passed: ok, Checks: []activities.Check{
				{Name: activities.CheckCredentials, Passed: ok, Reason: map[bool]string{false: "invalid_client"}[ok]},
				{Name: activities.CheckSignIn, Passed: ok},
			}}, nil
		})
	r.env.OnActivity(a.RemoveClientSecret, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RemoveClientSecretInput) (activities.UndoResult, error) {
			entra.mu.Lock()
			defer entra.mu.Unlock()
			entra.removed = append(entra.removed, in.KeyID)
			_, ok := entra.secrets[in.KeyID]
			delete(entra.secrets, in.KeyID)
			return activities.UndoResult{AlreadyGone: !ok}, nil
		})
	return r
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (r *rotationEnv) progress(t *testing.T) RotationProgress {
	v, err := r.env.QueryWorkflow(QueryProgress)
	require.NoError(t, err)
	var p RotationProgress
	require.NoError(t, v.Get(&p))
	return p
}

func (r *rotationEnv) confirm(after time.Duration) {
	r.env.RegisterDelayedCallback(func() {
		r.env.SignalWorkflow(SignalMarketoUpdated, OperatorSignal{By: "marketo-admin"})
	}, after)
}

// continued returns the next run's input from a continue-as-new.
func continued(t *testing.T, err error) RotationInput {
	t.Helper()
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(err, &can), "want continue-as-new, got %v", err)
	assert.Equal(t, RotationWorkflowType, can.WorkflowType.Name)
	var next RotationInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	return next
}

func rotationInput() RotationInput {
	return RotationInput{
		TenantID: testTenant, OrgURL: testOrgURL, AppObjectID: "app-obj", AppID: "app-id", SystemUserID: "user-1",
		Username: "app@contoso.example", SecretLifetimeMonths: 12,
		Current: RotationSecret{KeyID: "key-0", Value: testcodec.Seal("value-0"), ExpiresAt: rotationStart.AddDate(1, 0, 0)},
	}
}

// TestRotationOverSeveralCycles runs three yearly cycles in time-skipped
// workflow time: each sleeps to expiry minus 30 days, adds a new secret
// tagged for the rotation while keeping the live one, waits for the
// confirmation, proves and only then removes the old secret, and continues
// as new with exactly one live secret.
func TestRotationOverSeveralCycles(t *testing.T) {
	entra := newFakeEntra()
	in := rotationInput()
	start := rotationStart
	for cycle := 0; cycle < 3; cycle++ {
		r := newRotationEnv(t, entra, start)
		entra.validations = 0
		rotateAt := in.Current.ExpiresAt.Add(-DefaultRotationLeadTime)
		var sleeping, waiting RotationProgress
		r.env.RegisterDelayedCallback(func() { sleeping = r.progress(t) }, time.Hour)
		r.env.RegisterDelayedCallback(func() {
			waiting = r.progress(t)
			// Only the confirmation, and nothing before it, removes the old secret.
			assert.Len(t, entra.live(), 2, "old and new secret live while waiting")
			assert.Zero(t, entra.validations, "no validation before marketo-updated")
		}, rotateAt.Sub(start)+2*24*time.Hour+time.Hour)
		r.confirm(rotateAt.Sub(start) + 3*24*time.Hour)
		r.env.ExecuteWorkflow(SecretRotation, in)
		require.True(t, r.env.IsWorkflowCompleted())
		next := continued(t, r.env.GetWorkflowError())

		assert.Equal(t, PhaseSleeping, sleeping.Phase)
		assert.Equal(t, rotateAt, sleeping.NextRotationAt.UTC())
		assert.Equal(t, PhaseAwaitingMarketo, waiting.Phase)
		assert.Equal(t, in.Current.KeyID, waiting.OldKeyID)
		assert.NotEmpty(t, waiting.NewKeyID)
		assert.Equal(t, 2, waiting.Reminders, "one reminder per day of waiting")
		assert.False(t, waiting.OldSecretExpired)

		require.Len(t, r.adds, 1)
		assert.Equal(t, []string{in.Current.KeyID}, r.adds[0].Keep)
		assert.Equal(t, RotationWorkflowID(testTenant, "contoso.crm.localhost:8443"), r.adds[0].WorkflowID, "secrets are tagged for the rotation")
		assert.Equal(t, cycle+1, next.Cycle)
		assert.Nil(t, next.Pending)
		assert.Equal(t, []string{next.Current.KeyID}, entra.live(), "exactly one live secret: the new one")
		assert.Equal(t, entra.secrets[next.Current.KeyID], testcodec.Open(next.Current.Value))
		assert.True(t, next.Current.ExpiresAt.After(in.Current.ExpiresAt))
		in, start = next, next.LastRotatedAt
	}
	assert.Equal(t, []string{"key-0", "key-1", "key-2"}, entra.removed)
}

// TestRotationConfirmedAfterTheOldSecretExpired: the alarm is raised in
// progress and the UI's details, and the rotation still completes.
func TestRotationConfirmedAfterTheOldSecretExpired(t *testing.T) {
	entra := newFakeEntra()
	in := rotationInput()
	r := newRotationEnv(t, entra, rotationStart)
	expiresIn := in.Current.ExpiresAt.Sub(rotationStart)
	var late RotationProgress
	var details string
	r.env.RegisterDelayedCallback(func() {
		late = r.progress(t)
		v, err := r.env.QueryWorkflow("__temporal_workflow_metadata")
		require.NoError(t, err)
		var md sdkpb.WorkflowMetadata
		require.NoError(t, v.Get(&md))
		details = md.GetCurrentDetails()
	}, expiresIn+time.Hour)
	r.confirm(expiresIn + 5*24*time.Hour)
	r.env.ExecuteWorkflow(SecretRotation, in)
	next := continued(t, r.env.GetWorkflowError())

	assert.True(t, late.OldSecretExpired)
	assert.Equal(t, PhaseAwaitingMarketo, late.Phase)
	assert.Contains(t, late.Message, rotationExpiredBanner)
	assert.Contains(t, details, rotationExpiredBanner)
	assert.Equal(t, 30, late.Reminders, "daily reminders over the 30-day lead time")
	assert.Equal(t, []string{next.Current.KeyID}, entra.live())
}

// TestRotationNeverConfirmed keeps both secrets, keeps reminding, and
// continues as new with the pending secret once the run has reminded
// maxRemindersPerRun times; the next run picks the wait up.
func TestRotationNeverConfirmed(t *testing.T) {
	entra := newFakeEntra()
	in := rotationInput()
	r := newRotationEnv(t, entra, rotationStart)
	r.env.ExecuteWorkflow(SecretRotation, in)
	next := continued(t, r.env.GetWorkflowError())
	require.NotNil(t, next.Pending)
	assert.Equal(t, maxRemindersPerRun, next.Reminders)
	assert.Equal(t, 0, next.Cycle, "no rotation completed")
	assert.Equal(t, in.Current, next.Current, "the old secret is still the live one")
	assert.Len(t, entra.live(), 2)
	assert.Empty(t, entra.removed)
	assert.Zero(t, entra.validations)

	// The next run keeps waiting for the same secret and shows the alarm.
	r2 := newRotationEnv(t, entra, rotationStart.Add(in.Current.ExpiresAt.Sub(rotationStart)+80*24*time.Hour))
	var p RotationProgress
	var creds RotationCredentials
	r2.env.RegisterDelayedCallback(func() {
		p = r2.progress(t)
		v, err := r2.env.QueryWorkflow(QueryCredentials, true)
		require.NoError(t, err)
		require.NoError(t, v.Get(&creds))
	}, time.Minute)
	r2.confirm(time.Hour)
	r2.env.ExecuteWorkflow(SecretRotation, next)
	final := continued(t, r2.env.GetWorkflowError())
	assert.True(t, p.OldSecretExpired)
	assert.Equal(t, next.Pending.KeyID, p.NewKeyID)
	assert.Equal(t, maxRemindersPerRun, p.Reminders)
	assert.True(t, creds.AwaitingConfirmation)
	assert.Equal(t, next.Pending.Value, creds.ClientSecret)
	assert.Empty(t, r2.adds, "no second secret is added for the same cycle")
	assert.Equal(t, *next.Pending, final.Current)
	assert.Equal(t, []string{final.Current.KeyID}, entra.live())
}

// TestRotationBadConfirmationKeepsTheOldSecret: a confirmation whose
// secret does not sign in is reported and the wait goes on.
func TestRotationBadConfirmationKeepsTheOldSecret(t *testing.T) {
	entra := newFakeEntra()
	entra.badSecret = true
	in := rotationInput()
	r := newRotationEnv(t, entra, rotationStart)
	rotateAt := in.Current.ExpiresAt.Add(-DefaultRotationLeadTime).Sub(rotationStart)
	var p RotationProgress
	r.confirm(rotateAt + time.Hour)
	r.env.RegisterDelayedCallback(func() { p = r.progress(t); entra.badSecret = false }, rotateAt+2*time.Hour)
	r.confirm(rotateAt + 3*time.Hour)
	r.env.ExecuteWorkflow(SecretRotation, in)
	continued(t, r.env.GetWorkflowError())
	assert.Equal(t, PhaseAwaitingMarketo, p.Phase)
	assert.Contains(t, p.Error, "the old one is kept")
	assert.Equal(t, 2, entra.validations)
	assert.Equal(t, []string{"key-0"}, entra.removed, "removed only after the second, good confirmation")
}

func TestRotateNowAndCredentialsQuery(t *testing.T) {
	entra := newFakeEntra()
	in := rotationInput()
	r := newRotationEnv(t, entra, rotationStart)
	var masked, revealed RotationCredentials
	var p RotationProgress
	r.env.RegisterDelayedCallback(func() { r.env.SignalWorkflow(SignalRotateNow, OperatorSignal{By: "ops"}) }, time.Hour)
	r.env.RegisterDelayedCallback(func() {
		p = r.progress(t)
		for reveal, into := range map[bool]*RotationCredentials{false: &masked, true: &revealed} {
			v, err := r.env.QueryWorkflow(QueryCredentials, reveal)
			require.NoError(t, err)
			require.NoError(t, v.Get(into))
		}
	}, 2*time.Hour)
	r.confirm(3 * time.Hour)
	r.env.ExecuteWorkflow(SecretRotation, in)
	next := continued(t, r.env.GetWorkflowError())

	assert.Equal(t, PhaseAwaitingMarketo, p.Phase, "rotate-now skipped the 11-month sleep")
	assert.True(t, masked.ClientSecret.IsZero())
	assert.Equal(t, next.Current.Value, revealed.ClientSecret)
	assert.Equal(t, next.Current.KeyID, revealed.SecretKeyID)
	assert.True(t, revealed.AwaitingConfirmation)
	assert.Equal(t, "app-id", revealed.ClientID)
	assert.Equal(t, rotationStart.Add(3*time.Hour), next.LastRotatedAt.UTC())
}

// TestRotationProgressHasNoSecret checks every progress field for either
// secret value while both exist.
func TestRotationProgressHasNoSecret(t *testing.T) {
	entra := newFakeEntra()
	in := rotationInput()
	r := newRotationEnv(t, entra, rotationStart)
	var raw string
	r.env.RegisterDelayedCallback(func() { r.env.SignalWorkflow(SignalRotateNow, nil) }, time.Minute)
	r.env.RegisterDelayedCallback(func() {
		v, err := r.env.QueryWorkflow(QueryProgress)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, v.Get(&m))
		raw = fmt.Sprint(m)
	}, time.Hour)
	r.confirm(2 * time.Hour)
	r.env.ExecuteWorkflow(SecretRotation, in)
	continued(t, r.env.GetWorkflowError())
	require.Contains(t, raw, "key-1")
	assert.NotContains(t, raw, "value-0")
	assert.NotContains(t, raw, "value-1")
}

func TestRotationSettingsValidation(t *testing.T) {
	tests := []struct {
		name   string
		s      RotationSettings
		fields []string
	}{
		{"defaults", RotationSettings{}, nil},
		{"production lead time of minutes", RotationSettings{LeadTime: time.Minute}, []string{"settings.leadTime"}},
		{"production lead time over half the lifetime", RotationSettings{LeadTime: 200 * 24 * time.Hour}, []string{"settings.leadTime"}},
		{"production reminders every second", RotationSettings{ReminderInterval: time.Second}, []string{"settings.reminderInterval"}},
		{"test timings", RotationSettings{SecretLifetime: time.Minute, LeadTime: 40 * time.Second, ReminderInterval: time.Second}, nil},
		{"test lead time not shorter than the lifetime", RotationSettings{SecretLifetime: time.Minute, LeadTime: time.Minute, ReminderInterval: time.Second}, []string{"settings.leadTime"}},
		{"test lifetime too short", RotationSettings{SecretLifetime: time.Second, LeadTime: time.Millisecond, ReminderInterval: time.Second}, []string{"settings.secretLifetime"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := rotationInput()
			in.Settings = tt.s
			err := in.WithDefaults().Validate()
			if tt.fields == nil {
				assert.NoError(t, err)
				return
			}
			var ve *ValidationError
			require.True(t, errors.As(err, &ve), "got %v", err)
			var got []string
			for _, f := range ve.Fields {
				got = append(got, f.Field)
			}
			assert.Equal(t, tt.fields, got)
		})
	}
	// The onboarding validates the settings it passes on, under its own field name.
	on := input()
	on.Rotation = &RotationSettings{LeadTime: time.Minute}
	err := on.WithDefaults().Validate()
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "rotation.leadTime"), err.Error())
}

// TestOnboardingStartsTheRotation: a completed onboarding hands the live
// secret, its key and expiry to the SecretRotation it starts.
func TestOnboardingStartsTheRotation(t *testing.T) {
	h := newHarness(t)
	h.mock()
	h.grantAndSignal(time.Minute)
	in := input()
	in.Rotation = &RotationSettings{LeadTime: 10 * 24 * time.Hour}
	h.env.ExecuteWorkflow(Onboarding, in)
	require.NoError(t, h.env.GetWorkflowError())
	p := h.progress()
	assert.Equal(t, RotationWorkflowID(testTenant, "contoso.crm.localhost:8443"), p.RotationWorkflowID)
	require.Len(t, h.rotations, 1)
	rin := h.rotations[0]
	assert.Equal(t, RotationSecret{KeyID: "key-1", Value: testSealed, ExpiresAt: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}, rin.Current)
	assert.Equal(t, "app-obj", rin.AppObjectID)
	assert.Equal(t, "user-1", rin.SystemUserID)
	assert.Equal(t, 10*24*time.Hour, rin.Settings.LeadTime)
	assert.NoError(t, rin.WithDefaults().Validate())
}

// TestRotationValidationListsMissingFieldsInOrder: Validate runs in
// workflow code, so the same input must give the same message on every
// replay (a map iteration gave them in random order).
func TestRotationValidationListsMissingFieldsInOrder(t *testing.T) {
	in := RotationInput{TenantID: testTenant, OrgURL: testOrgURL, Current: RotationSecret{ExpiresAt: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}}.WithDefaults()
	want := []string{"appObjectId", "appId", "systemUserId", "current.keyId"}
	for range 50 {
		err := in.Validate()
		var ve *ValidationError
		require.ErrorAs(t, err, &ve)
		var got []string
		for _, f := range ve.Fields {
			got = append(got, f.Field)
		}
		require.Equal(t, want, got)
	}
}

// Issue 11: every `credentials --reveal` is a secret-revealed signal. The
// rotation counts them whatever it waits on, shows the last one in progress
// and the UI's details, and carries the count into the next run.
func TestRotationCountsReveals(t *testing.T) {
	entra := newFakeEntra()
	in := rotationInput()
	in.Reveals = 2 // from earlier runs
	r := newRotationEnv(t, entra, rotationStart)
	rotateAt := in.Current.ExpiresAt.Add(-DefaultRotationLeadTime)
	reveal := func(by, reason string, after time.Duration) {
		r.env.RegisterDelayedCallback(func() {
			r.env.SignalWorkflow(SignalSecretRevealed, RevealSignal{By: by, Reason: reason, TenantID: testTenant, KeyID: "key-0"})
		}, after)
	}
	var sleeping, waiting RotationProgress
	reveal("alice@ops", "ticket 7", time.Hour) // while it sleeps
	r.env.RegisterDelayedCallback(func() { sleeping = r.progress(t) }, 2*time.Hour)
	reveal("bob@ops", "", rotateAt.Sub(rotationStart)+time.Hour) // while it waits for Marketo
	r.env.RegisterDelayedCallback(func() { waiting = r.progress(t) }, rotateAt.Sub(rotationStart)+2*time.Hour)
	r.env.RegisterDelayedCallback(func() {
		// The last one arrives together with the confirmation, just before continue-as-new.
		r.env.SignalWorkflow(SignalSecretRevealed, RevealSignal{By: "carol@ops"})
		r.env.SignalWorkflow(SignalMarketoUpdated, OperatorSignal{By: "marketo-admin"})
	}, rotateAt.Sub(rotationStart)+3*time.Hour)
	r.env.ExecuteWorkflow(SecretRotation, in)
	require.True(t, r.env.IsWorkflowCompleted())
	next := continued(t, r.env.GetWorkflowError())

	assert.Equal(t, 3, sleeping.Reveals)
	require.NotNil(t, sleeping.LastReveal)
	assert.Equal(t, "alice@ops", sleeping.LastReveal.By)
	assert.Equal(t, "ticket 7", sleeping.LastReveal.Reason)
	assert.Equal(t, rotationStart.Add(time.Hour), sleeping.LastReveal.At.UTC(), "the workflow's clock, not the operator's")
	assert.Equal(t, PhaseSleeping, sleeping.Phase, "a reveal changes nothing else")
	assert.Equal(t, 4, waiting.Reveals)
	assert.Equal(t, "bob@ops", waiting.LastReveal.By)
	assert.Equal(t, PhaseAwaitingMarketo, waiting.Phase)

	assert.Equal(t, 5, next.Reveals, "every reveal is carried into the next run")
	require.NotNil(t, next.LastReveal)
	assert.Equal(t, "carol@ops", next.LastReveal.By)
}

// With keyVault.url, each new secret is handed to the same vault secret as
// soon as it exists, so the operator can read it there and save it in
// Marketo; without it nothing new is scheduled (the other tests).
func TestRotationDeliversTheNewSecretToKeyVault(t *testing.T) {
	entra := newFakeEntra()
	in := rotationInput()
	in.KeyVault = &activities.VaultTarget{URL: "https://mktos2s.vault.azure.net", SecretName: "mktos2s-contoso"}
	r := newRotationEnv(t, entra, rotationStart)
	var delivered []activities.DeliverSecretInput
	r.env.OnActivity(a.DeliverSecretToVault, mock.Anything, mock.Anything).Return(
		func(_ context.Context, d activities.DeliverSecretInput) (activities.DeliverSecretResult, error) {
			delivered = append(delivered, d)
			return activities.DeliverSecretResult{VersionID: "https://mktos2s.vault.azure.net/secrets/mktos2s-contoso/v1"}, nil
		})
	rotateAt := in.Current.ExpiresAt.Add(-DefaultRotationLeadTime)
	var waiting RotationProgress
	r.env.RegisterDelayedCallback(func() { waiting = r.progress(t) }, rotateAt.Sub(rotationStart)+time.Hour)
	r.confirm(rotateAt.Sub(rotationStart) + 2*time.Hour)
	r.env.ExecuteWorkflow(SecretRotation, in)
	next := continued(t, r.env.GetWorkflowError())

	require.Len(t, delivered, 1, "once per new secret")
	assert.Equal(t, *in.KeyVault, delivered[0].Vault, "the same vault secret every cycle")
	assert.Equal(t, next.Current.KeyID, delivered[0].KeyID, "the new secret, not the old one")
	assert.Equal(t, entra.secrets[next.Current.KeyID], testcodec.Open(delivered[0].Secret), "sealed, opened only by the activity")
	assert.Equal(t, "https://mktos2s.vault.azure.net/secrets/mktos2s-contoso/v1", waiting.VaultSecretID)
	assert.Equal(t, in.KeyVault, next.KeyVault, "carried into the next cycle")
}
