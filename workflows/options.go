package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// stepOptions are the retry policies per step. Steps right after creating
// the app retry longer: Entra and Dataverse need a while to see new objects.
func stepOptions(step string) workflow.ActivityOptions {
	// Attempts are bounded by time, not by count: under a throttling storm
	// (429 with Retry-After, 5xx) a step that makes several requests can need
	// dozens of attempts, and a fixed count gave up on onboardings that would
	// have succeeded a minute later. Permanent errors are non-retryable and
	// stop at once whatever the budget.
	o := workflow.ActivityOptions{
		// A step is a handful of HTTP calls (30 s timeout each); a minute is
		// generous, and it is also how long a task held by a crashed worker
		// waits before it is retried elsewhere.
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 30 * time.Minute,
		// On cancellation, wait for the running attempt to end instead of
		// compensating at once: a step that is creating something would
		// otherwise finish after the undo and leave its object behind. If it
		// succeeds, its result is recorded and undone with the rest.
		WaitForCancellation: true,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
		},
	}
	switch step {
	case StepPublishCustomizations, StepCreateSyncFilter:
		o.StartToCloseTimeout = 15 * time.Minute // publishing a large org takes minutes
		// The activity heartbeats while it waits, so a dead worker is noticed
		// in seconds rather than after the quarter of an hour above.
		o.HeartbeatTimeout = 20 * time.Second
		o.ScheduleToCloseTimeout = time.Hour
	case StepPreflight, StepAwaitingAdminConsent:
		// Read-only and cheap to repeat: retry quickly, and give up sooner so
		// that an unreachable tenant is reported while the operator waits.
		o.RetryPolicy.MaximumInterval = 10 * time.Second
		o.ScheduleToCloseTimeout = 15 * time.Minute
	}
	return o
}

// undoOptions retry until done: an undo stops only when it succeeds, the
// thing is gone, or it is refused for good (reported, never swallowed).
func undoOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    2 * time.Minute,
		ScheduleToCloseTimeout: 24 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			// Undo is what stands between a failed onboarding and an orphan;
			// under throttling a 5-minute cap left compensations idle for
			// minutes between attempts (make chaos saw one take 10 attempts).
			MaximumInterval: 30 * time.Second,
		},
	}
}

// findOptions are for Offboarding's look-up: read-only like preflight, but
// bounded in attempts so a tenant that cannot be read fails the offboarding
// with the reason instead of retrying for a quarter of an hour.
func findOptions() workflow.ActivityOptions {
	o := stepOptions(StepPreflight)
	o.RetryPolicy.MaximumAttempts = 10
	return o
}

// consentRetryOptions make the retry policy CheckConsent's poll loop: an
// attempt per re-check interval (no back-off) until the consent timeout.
func consentRetryOptions(wait, interval time.Duration) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    time.Minute, // one check: two Graph reads
		ScheduleToCloseTimeout: wait,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    interval,
			BackoffCoefficient: 1,
			MaximumInterval:    interval,
			// The timeout ends the wait; the count only says so explicitly
			// (0, unlimited, is 10 in the SDK's test environment).
			MaximumAttempts: int32(min(int64(wait/interval)+2, MaxConsentChecks+2)),
		},
	}
}

// consentPollOptions let one AwaitConsent attempt run the whole wait. Its
// heartbeats tell a live worker from a dead one, whose attempt is retried
// within the heartbeat timeout; the retries do not add history events.
func consentPollOptions(wait, interval time.Duration) workflow.ActivityOptions {
	budget := wait + interval + 2*time.Minute // the last check may start at the deadline
	return workflow.ActivityOptions{
		StartToCloseTimeout:    budget,
		ScheduleToCloseTimeout: budget,
		HeartbeatTimeout:       2*consentHeartbeatEvery(interval) + 30*time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
		},
	}
}

// consentHeartbeatEvery spaces the poll's heartbeats: every Temporal Cloud
// heartbeat is a billable action, so at most one a minute (one per re-check
// when re-checks are rarer), and at least one per ten minutes so a dead
// worker's wait resumes within about twenty.
func consentHeartbeatEvery(interval time.Duration) time.Duration {
	return min(max(interval, time.Minute), 10*time.Minute)
}
