package workflows

import (
	"testing"
	"time"

	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/testsuite"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/mktos2s/mktos2s/activities"
)

// Microsoft's answers while it fails, as the activities map them.
var (
	graphDown = temporal.NewApplicationError("add a password to the application: graph 503 ServiceUnavailable", activities.ErrTransient)
	forbidden = temporal.NewNonRetryableApplicationError("add a password to the application: permission denied: graph 403 Authorization_RequestDenied; grant Application.ReadWrite.OwnedBy",
		activities.ErrPermissionDenied, nil)
)

// A renewal whose add-secret fails for three hours retries with back-off,
// shows the failure and the old secret's expiry, and ends the cycle with
// exactly one live secret once Microsoft answers again.
func TestRotationAddFailingForThreeHoursRecovers(t *testing.T) {
	for name, failure := range map[string]error{"503": graphDown, "403": forbidden} {
		t.Run(name, func(t *testing.T) {
			entra := newFakeEntra()
			in := rotationInput()
			rotateAt := in.Current.ExpiresAt.Add(-DefaultRotationLeadTime)
			entra.addErr, entra.addFailUntil = failure, rotateAt.Add(3*time.Hour)
			r := newRotationEnv(t, entra, rotationStart)
			var failing RotationProgress
			var details string
			r.env.RegisterDelayedCallback(func() {
				failing = r.progress(t)
				details = currentDetails(t, r.env)
			}, rotateAt.Sub(rotationStart)+2*time.Hour)
			r.confirm(rotateAt.Sub(rotationStart) + 24*time.Hour)
			r.env.ExecuteWorkflow(SecretRotation, in)
			next := continued(t, r.env.GetWorkflowError())

			require.NotNil(t, failing.Failing, "the failure is shown while it lasts")
			assert.Equal(t, stageAdd, failing.Failing.Step)
			assert.Equal(t, rotateAt, failing.Failing.Since.UTC())
			assert.Contains(t, failing.Error, renewalFailingText+" "+rotateAt.Format(time.RFC3339)+": adding the new secret: add a password")
			assert.Contains(t, failing.Error, "old secret expires on "+in.Current.ExpiresAt.Format(time.RFC3339))
			assert.False(t, failing.OldSecretExpired)
			assert.Contains(t, details, "Renewal failing since "+rotateAt.Format(time.RFC3339))
			assert.Contains(t, details, "attempt", "the details say which attempt")

			assert.Equal(t, 1, next.Cycle, "the cycle completed")
			assert.Nil(t, next.Failing)
			assert.Equal(t, []string{next.Current.KeyID}, entra.live(), "exactly one live secret: the new one")
			assert.Equal(t, []string{"key-0"}, entra.removed)
			assert.Greater(t, entra.addCalls, 3, "it was retried")
		})
	}
}

// Failures that outlast the old secret are reported loudly (banner,
// progress, details) across continue-as-new runs, and the rotation still
// completes when Microsoft answers again.
func TestRotationFailingBeyondExpiryReportsLoudlyAndRecovers(t *testing.T) {
	entra := newFakeEntra()
	in := rotationInput()
	rotateAt := in.Current.ExpiresAt.Add(-DefaultRotationLeadTime)
	entra.addErr, entra.addFailUntil = forbidden, in.Current.ExpiresAt.Add(2*24*time.Hour)
	start := rotationStart
	var seen []RotationProgress
	var expiredDetails string
	var next RotationInput
	for run := 0; ; run++ {
		require.Less(t, run, 30, "the rotation never recovered")
		r := newRotationEnv(t, entra, start)
		for at := time.Minute; at < 5*24*time.Hour; at += 6 * time.Hour {
			r.env.RegisterDelayedCallback(func() {
				p := r.progress(t)
				seen = append(seen, p)
				if p.OldSecretExpired && expiredDetails == "" {
					expiredDetails = currentDetails(t, r.env)
				}
			}, at)
		}
		r.confirm(5 * 24 * time.Hour) // ignored while failing; confirms once the new secret waits
		r.env.ExecuteWorkflow(SecretRotation, in)
		next = continued(t, r.env.GetWorkflowError())
		if next.Cycle == 1 {
			break
		}
		require.NotNil(t, next.Failing, "run %d continued as new while failing", run)
		assert.Equal(t, rotateAt, next.Failing.Since.UTC(), "the failure's start is carried on")
		in, start = next, r.env.Now()
	}
	var loud *RotationProgress
	for i := range seen {
		if seen[i].OldSecretExpired && seen[i].Failing != nil {
			loud = &seen[i]
			break
		}
	}
	require.NotNil(t, loud, "a run after the expiry shows it")
	assert.Contains(t, loud.Error, rotationExpiredBanner)
	assert.Contains(t, loud.Error, renewalFailingText+" "+rotateAt.Format(time.RFC3339))
	assert.Contains(t, expiredDetails, "## ⚠️ "+rotationExpiredBanner)
	assert.Contains(t, expiredDetails, "until the renewal succeeds")
	assert.Greater(t, len(seen), 2, "the outage spanned several runs")

	assert.Equal(t, []string{next.Current.KeyID}, entra.live(), "exactly one live secret: the new one")
	assert.True(t, next.Current.ExpiresAt.After(entra.addFailUntil))
}

// Proving the confirmed secret fails for hours: it is retried, not
// forgotten, and the old secret goes once the proof succeeds.
func TestRotationProofFailingIsRetried(t *testing.T) {
	entra := newFakeEntra()
	in := rotationInput()
	r := newRotationEnv(t, entra, rotationStart)
	rotateAt := in.Current.ExpiresAt.Add(-DefaultRotationLeadTime).Sub(rotationStart)
	entra.validateErr, entra.validateFails = forbidden, 4
	var proving RotationProgress
	r.confirm(rotateAt + time.Hour)
	r.env.RegisterDelayedCallback(func() { proving = r.progress(t) }, rotateAt+time.Hour+5*time.Minute)
	r.env.ExecuteWorkflow(SecretRotation, in)
	next := continued(t, r.env.GetWorkflowError())
	require.NotNil(t, proving.Failing)
	assert.Equal(t, stageProve, proving.Failing.Step)
	assert.Equal(t, 1, next.Cycle, "proved without a second confirmation")
	assert.Equal(t, 5, entra.validations)
	assert.Equal(t, []string{next.Current.KeyID}, entra.live())
}

// A rotation started again for an onboarding whose rotation stopped (its
// secret close to or past expiry) adds the new secret at once.
func TestRotationStartedAgainRenewsAtOnce(t *testing.T) {
	entra := newFakeEntra()
	in := rotationInput()
	in.Current.ExpiresAt = rotationStart.Add(24 * time.Hour)
	r := newRotationEnv(t, entra, rotationStart)
	var p RotationProgress
	r.env.RegisterDelayedCallback(func() { p = r.progress(t) }, time.Minute)
	r.confirm(time.Hour)
	r.env.ExecuteWorkflow(SecretRotation, in)
	next := continued(t, r.env.GetWorkflowError())
	assert.Equal(t, PhaseAwaitingMarketo, p.Phase, "no sleep: the lead time has passed")
	assert.Equal(t, []string{next.Current.KeyID}, entra.live())
}

func currentDetails(t *testing.T, env *testsuite.TestWorkflowEnvironment) string {
	t.Helper()
	v, err := env.QueryWorkflow("__temporal_workflow_metadata")
	require.NoError(t, err)
	var md sdkpb.WorkflowMetadata
	require.NoError(t, v.Get(&md))
	return md.GetCurrentDetails()
}
