package workflows

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/mktos2s/mktos2s/activities"
	"github.com/mktos2s/mktos2s/internal/testenv/testcodec"
)

// The counter's bound holds on every history recorded from a real run:
// never below the real count, and close enough to mean something.
func TestEventCounterBoundsRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	opts, err := testcodec.ClientOptions(client.Options{})
	require.NoError(t, err)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			h, err := client.HistoryFromJSON(bytes.NewReader(b), client.HistoryJSONOptions{})
			require.NoError(t, err)
			c := &eventCounter{}
			r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
				DataConverter: opts.DataConverter, FailureConverter: opts.FailureConverter,
				Interceptors: []interceptor.WorkerInterceptor{c},
			})
			require.NoError(t, err)
			Register(r)
			require.NoError(t, r.ReplayWorkflowHistory(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)), h))
			real := len(h.GetEvents())
			t.Logf("%s: %d events, counted at most %d", filepath.Base(f), real, c.count())
			assert.GreaterOrEqual(t, c.count(), real, "the counter must bound the history from above")
			// An open run's count includes what its pending timer and its
			// close will add (up to 5 events).
			assert.LessOrEqual(t, c.count(), real+real/4+5, "a bound this loose would prove little")
		})
	}
}

// consentWait runs an onboarding whose admin consents (and signals) after
// wait, re-checked every minute, and returns the bound on its history and
// the activities it started.
func consentWait(t *testing.T, wait time.Duration) (int, []string) {
	h := newHarness(t)
	c := &eventCounter{}
	h.env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{c}})
	h.mock()
	in := input()
	in.ConsentTimeout = 8 * 24 * time.Hour
	in.ConsentRecheckInterval = time.Minute
	// The webhook reminder (an hour before the timeout) fires in neither wait.
	in.ConsentReminderBefore = time.Hour
	require.NoError(t, in.WithDefaults().Validate())
	h.grantAndSignal(wait)
	h.env.ExecuteWorkflow(Onboarding, in)
	require.NoError(t, h.env.GetWorkflowError())
	p := h.progress()
	require.Equal(t, StepCompleted, p.Step)
	require.Contains(t, p.CompletedSteps, StepValidateConnection)
	require.GreaterOrEqual(t, len(h.checks), int(wait/time.Minute), "re-checked every minute")
	last := h.checks[len(h.checks)-1]
	assert.WithinDuration(t, harnessStart.Add(wait), last, time.Minute, "the re-check after the grant noticed it")
	// The steps run; CheckConsent's attempts (one per re-check) are not steps.
	return c.count(), firstStarts(h.startedActivities())
}

// firstStarts keeps each activity's first start. A retry of CheckConsent due
// at the same moment as the consent signal may start before or after the
// signal's VerifyConsent, as the test environment schedules them: an attempt,
// not a step, and not a difference between two waits.
func firstStarts(started []string) []string {
	seen := map[string]bool{}
	var steps []string
	for _, s := range started {
		if !seen[s] {
			seen[s] = true
			steps = append(steps, s)
		}
	}
	return steps
}

// A week of waiting for consent, re-checked every minute, ends in a
// completed onboarding whose one run's history stays far below Temporal's
// limits and is no longer than after a day's wait.
func TestWeekLongConsentWaitKeepsTheHistoryBounded(t *testing.T) {
	day, dayActs := consentWait(t, 24*time.Hour)
	week, weekActs := consentWait(t, 7*24*time.Hour)
	t.Logf("history bound: %d events after a 1-day wait, %d after a 7-day wait", day, week)
	assert.Less(t, week, 1000)
	assert.Equal(t, day, week, "the history does not grow with the wait")
	assert.Equal(t, dayActs, weekActs)
}

// A timeout after a long wait still undoes everything the onboarding made.
func TestConsentTimeoutAfterALongWaitCompensates(t *testing.T) {
	h := newHarness(t)
	c := &eventCounter{}
	h.env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{c}})
	h.mock()
	in := input()
	in.ConsentTimeout = 30 * 24 * time.Hour
	in.ConsentRecheckInterval = 10 * time.Minute // 4,320 checks: enough for a month, quick in the test environment
	var mid Progress
	h.queryAt(20*24*time.Hour, &mid)
	h.env.ExecuteWorkflow(Onboarding, in)

	err := h.env.GetWorkflowError()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not granted within 720h0m0s")
	assert.Contains(t, err.Error(), "compensation undid all 2 steps")
	assert.Equal(t, []string{"RemoveServicePrincipal", "RemoveApplication"}, h.undos())
	assert.Equal(t, StatusWaitingConsent, mid.Status, "still waiting after 20 days")
	assert.Equal(t, harnessStart.Add(30*24*time.Hour), h.env.Now().UTC().Truncate(time.Minute), "it waited the whole 30 days")
	assert.Less(t, c.count(), 200)
	p := h.progress()
	assert.Equal(t, StatusFailed, p.Status)
	assert.Len(t, p.Compensation, 2)
}

// Validation refuses a wait whose re-checks would exceed the budget, and
// says which fields to change and to what.
func TestConsentBudgetIsValidated(t *testing.T) {
	in := input().WithDefaults()
	in.ConsentTimeout, in.ConsentRecheckInterval = 30*24*time.Hour, time.Second
	err := in.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "consentRecheckInterval")
	assert.Contains(t, err.Error(), "2592000 times")
	assert.Contains(t, err.Error(), "at least 3s")
	assert.Contains(t, err.Error(), "consentTimeout of at most 277h46m40s")

	in.ConsentTimeout = 7 * 24 * time.Hour
	assert.NoError(t, in.Validate(), "every second for a week fits")

	in.ConsentTimeout, in.ConsentRecheckInterval = 31*24*time.Hour, time.Hour
	assert.ErrorContains(t, in.Validate(), "consentTimeout: \"744h0m0s\" is too long")

	in.ConsentTimeout, in.ConsentRecheckInterval = 30*24*time.Hour, time.Minute
	assert.NoError(t, in.Validate(), "a minute's re-check for 30 days fits")

	// The workflow applies the rule to new runs too.
	h := newHarness(t)
	h.mock()
	bad := input()
	bad.ConsentTimeout, bad.ConsentRecheckInterval = 30*24*time.Hour, time.Second
	h.env.ExecuteWorkflow(Onboarding, bad)
	require.Error(t, h.env.GetWorkflowError())
	assert.Equal(t, ErrInvalidInput, appErr(t, h.env.GetWorkflowError()).Type())
	assert.Empty(t, h.startedActivities())
}

// reminderWait runs a lean onboarding with a 48-hour consent wait,
// re-checked every 10 minutes, whose reminder is due 24 hours before the
// timeout; grantAfter < 0 never grants. It returns the hand-off messages
// (kind and workflow time) and the CheckConsent activities scheduled.
func reminderWait(t *testing.T, grantAfter time.Duration) (*harness, []string, []time.Time, int) {
	h := newHarness(t)
	h.mock()
	var (
		mu    sync.Mutex
		kinds []string
		at    []time.Time
	)
	var a *activities.Activities
	h.env.OnActivity(a.NotifyConsent, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.NotifyConsentInput) (activities.NotifyConsentResult, error) {
			mu.Lock()
			defer mu.Unlock()
			kinds, at = append(kinds, in.Kind), append(at, h.env.Now().UTC())
			return activities.NotifyConsentResult{Sent: true}, nil
		})
	scheduled := 0
	h.env.SetOnActivityStartedListener(func(info *activity.Info, ctx context.Context, args converter.EncodedValues) {
		if info.ActivityType.Name == "CheckConsent" && info.Attempt == 1 {
			scheduled++
		}
		h.started1(info, ctx, args)
	})
	in := input()
	in.ConsentTimeout, in.ConsentRecheckInterval, in.ConsentReminderBefore = 48*time.Hour, 10*time.Minute, 24*time.Hour
	if grantAfter >= 0 {
		h.grantAndSignal(grantAfter)
	}
	h.env.ExecuteWorkflow(Onboarding, in)
	mu.Lock()
	defer mu.Unlock()
	return h, kinds, at, scheduled
}

// A lean wait sends its reminder without a timer: the first CheckConsent
// polls until the reminder is due, the second until the deadline.
func TestLeanConsentWaitRemindsWithoutATimer(t *testing.T) {
	t.Run("consent after the reminder", func(t *testing.T) {
		h, kinds, at, scheduled := reminderWait(t, 30*time.Hour)
		require.NoError(t, h.env.GetWorkflowError())
		assert.Equal(t, []string{activities.NotifyWaiting, activities.NotifyReminder}, kinds)
		require.Len(t, at, 2)
		assert.Equal(t, harnessStart, at[0])
		// Due 24 hours before the timeout, sent at the last re-check before it.
		assert.WithinDuration(t, harnessStart.Add(24*time.Hour), at[1], 10*time.Minute)
		assert.False(t, at[1].After(harnessStart.Add(24*time.Hour)))
		assert.Equal(t, 2, scheduled, "one CheckConsent until the reminder, one until the deadline")
		assert.Equal(t, StepCompleted, h.progress().Step)
	})
	t.Run("consent before the reminder", func(t *testing.T) {
		h, kinds, _, scheduled := reminderWait(t, 3*time.Hour)
		require.NoError(t, h.env.GetWorkflowError())
		assert.Equal(t, []string{activities.NotifyWaiting}, kinds, "no reminder")
		assert.Equal(t, 1, scheduled)
	})
	t.Run("no consent", func(t *testing.T) {
		h, kinds, _, scheduled := reminderWait(t, -1)
		err := h.env.GetWorkflowError()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "not granted within 48h0m0s")
		assert.Equal(t, []string{activities.NotifyWaiting, activities.NotifyReminder}, kinds, "one reminder")
		assert.Equal(t, 2, scheduled)
		assert.WithinDuration(t, harnessStart.Add(48*time.Hour), h.env.Now(), 11*time.Minute, "it waited to the deadline")
	})
}
