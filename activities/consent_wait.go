package activities

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// AwaitConsentInput asks for the grant to be re-checked every Interval until
// it exists or Until passes.
type AwaitConsentInput struct {
	TenantID           string        `json:"tenantId"`
	ServicePrincipalID string        `json:"servicePrincipalId"`
	Interval           time.Duration `json:"interval"`
	Until              time.Time     `json:"until"`
	// HeartbeatEvery spaces the heartbeats (each is a billable Temporal Cloud
	// action); the activity's HeartbeatTimeout must be longer.
	HeartbeatEvery time.Duration `json:"heartbeatEvery"`
}

// AwaitConsentResult is the outcome: granted, or the last reason it was not
// when Until passed.
type AwaitConsentResult struct {
	Granted   bool      `json:"granted"`
	Checks    int       `json:"checks"`
	Reason    string    `json:"reason,omitempty"`
	CheckedAt time.Time `json:"checkedAt"`
}

// AwaitConsent is the consent wait's poll loop, run inside one activity as
// Temporal advises for frequent polling: the re-checks and heartbeats add
// nothing to the workflow's history, so a wait of weeks costs the same
// handful of events as a wait of minutes. A failed check that a retry can
// fix (throttling, an outage) is reported in the heartbeat and the loop goes
// on; a permanent one (permission removed) ends it. Heartbeat details carry
// the count and the last reason, so the UI's pending activity shows them and
// a retried attempt continues the count.
func (a *Activities) AwaitConsent(ctx context.Context, in AwaitConsentInput) (AwaitConsentResult, error) {
	var res AwaitConsentResult
	if activity.IsActivity(ctx) && activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &res) // only the count; a decode failure starts from zero
	}
	interval := in.Interval
	if interval <= 0 {
		interval = time.Minute
	}
	var lastBeat time.Time
	for {
		v, err := a.VerifyConsent(ctx, VerifyConsentInput{TenantID: in.TenantID, ServicePrincipalID: in.ServicePrincipalID})
		res.Checks++
		res.CheckedAt = time.Now().UTC()
		switch {
		case ctx.Err() != nil:
			return res, ctx.Err()
		case err != nil:
			var ae *temporal.ApplicationError
			if errors.As(err, &ae) && ae.NonRetryable() {
				return res, err
			}
			res.Reason = "the last check failed and is repeated: " + err.Error()
		case v.Granted:
			res.Granted, res.Reason = true, ""
			return res, nil
		default:
			res.Reason = v.Reason
		}
		left := time.Until(in.Until)
		if left <= 0 {
			return res, nil
		}
		if activity.IsActivity(ctx) && time.Since(lastBeat) >= in.HeartbeatEvery {
			activity.RecordHeartbeat(ctx, res)
			lastBeat = time.Now()
		}
		t := time.NewTimer(min(interval, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return res, ctx.Err()
		case <-t.C:
		}
	}
}

// ErrConsentPending is CheckConsent's "not yet": retryable, so the
// activity's retry policy is the consent wait's poll loop.
const ErrConsentPending = "ConsentPending"

// CheckConsent checks the grant once and answers "not yet" with the
// retryable ErrConsentPending. Scheduled with a retry policy whose interval
// is the re-check interval (Temporal's pattern for infrequent polling), it
// re-checks until the grant exists or the schedule-to-close timeout (the
// consent timeout) passes; the retries add no history events and hold no
// worker slot between attempts, so 10,000 waiting onboardings cost the
// worker nothing. A permanent failure (permission removed) stays
// non-retryable and ends the wait.
func (a *Activities) CheckConsent(ctx context.Context, in VerifyConsentInput) (VerifyConsentResult, error) {
	v, err := a.VerifyConsent(ctx, in)
	if err != nil || v.Granted {
		return v, err
	}
	return v, temporal.NewApplicationError("admin consent not granted yet: "+v.Reason, ErrConsentPending)
}
