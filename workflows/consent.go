package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/mktos2s/mktos2s/activities"
)

// ConsentSignal is the payload of the admin-consent signal. Source and
// RunID are optional (contract C1): payloads without them still decode.
type ConsentSignal struct {
	Granted bool   `json:"granted"`
	By      string `json:"by"`
	Note    string `json:"note"`
	// Source says who sends it: ConsentSourceCallback (the consent page's
	// redirect), ConsentSourceOperator (`starter consent`) or empty.
	Source string `json:"source,omitempty"`
	// RunID is the first run ID the consent link was made for; a signal for
	// another run's link is recorded and ignored.
	RunID string `json:"runId,omitempty"`
}

// Sources of an admin-consent signal. Only an operator's denial ends the
// wait: the consent page reports a denial when the admin pressed Cancel or
// signed in with the wrong account, which another try can still fix.
const (
	ConsentSourceCallback = "callback"
	ConsentSourceOperator = "operator"
)

// changeConsentPoll versions the consent wait. Version 1 moved the
// re-checks from a timer per interval (about 11 history events each) into
// one heartbeating activity (no events per re-check) and brought contract
// C1's handling of denials and of signals for another run; version 2
// replaced that activity, which held a worker slot and a goroutine for the
// whole wait, with CheckConsent under a retry policy: the same history, and
// nothing held in the worker between checks.
const (
	changeConsentPoll    = "consent-wait-poll-activity"
	consentPollHeartbeat = 1
	consentPollRetries   = 2
)

// awaitConsent waits for the admin-consent signal and verifies the grant
// through Graph; re-checks notice a consent given without a signal too.
func (r *run) awaitConsent(ctx workflow.Context, appID, spID string) error {
	r.enter(ctx, StepAwaitingAdminConsent)
	lean := r.leanVersion >= leanConsentWait
	urlIn := activities.BuildConsentURLInput{TenantID: r.in.TenantID, AppID: appID, WorkflowID: r.wfID}
	var (
		u   activities.BuildConsentURLResult
		err error
	)
	if lean {
		// Signing the link is local work of the worker (its key): no task
		// of its own, its marker in the workflow task that starts the wait.
		urlIn.RunID = firstRunID(ctx)
		u, err = callLocal[activities.BuildConsentURLResult](ctx, StepAwaitingAdminConsent, a.BuildConsentURL, urlIn)
	} else {
		u, err = call[activities.BuildConsentURLResult](ctx, StepAwaitingAdminConsent, a.BuildConsentURL, urlIn)
	}
	if err != nil {
		return err
	}
	r.progress.ConsentURL = u.URL
	r.progress.Status = StatusWaitingConsent
	if lean {
		return r.awaitConsentByPoll(ctx, spID, true)
	}
	switch workflow.GetVersion(ctx, changeConsentPoll, workflow.DefaultVersion, consentPollRetries) {
	case workflow.DefaultVersion:
		return r.awaitConsentByTimer(ctx, spID)
	case consentPollHeartbeat:
		return r.awaitConsentByPoll(ctx, spID, false)
	default:
		return r.awaitConsentByPoll(ctx, spID, true)
	}
}

// firstRunID is the run the consent link is bound to.
func firstRunID(ctx workflow.Context) string {
	if id := workflow.GetInfo(ctx).FirstRunID; id != "" {
		return id
	}
	return workflow.GetInfo(ctx).WorkflowExecution.RunID // the SDK's test environment leaves FirstRunID empty
}

// awaitConsentByPoll races the poll against the admin-consent signal: with
// retries, CheckConsent under a retry policy that re-checks every interval
// until the deadline (Temporal's infrequent-polling pattern); without, the
// heartbeating AwaitConsent of version 1. Either way the history holds the
// activity's three events however long the wait, plus about ten per signal.
//
// In a run of leanConsentWait the reminder needs no timer: the first
// CheckConsent polls until the reminder is due, and when its schedule runs
// out the reminder goes and a second one polls until the deadline. Most
// consents come before the reminder, and their runs never pay for it.
func (r *run) awaitConsentByPoll(ctx workflow.Context, spID string, retries bool) error {
	in := r.in
	lean := r.leanVersion >= leanConsentWait
	deadline := workflow.Now(ctx).Add(in.ConsentTimeout)
	r.progress.ConsentWaitingSince, r.progress.ConsentExpiresAt = workflow.Now(ctx), deadline
	pollCtx, stopPoll := workflow.WithCancel(ctx)
	defer stopPoll() // a grant seen through a signal leaves the poll nothing to do
	before := in.ConsentReminderBefore
	if before <= 0 {
		before = 24 * time.Hour
	}
	var remindAt time.Time // lean: when the first poll's schedule ends and the reminder is due
	if lean {
		if at := deadline.Add(-before); at.After(workflow.Now(ctx)) {
			remindAt = at
		}
	}
	checkUntil := func(until time.Time) workflow.Future {
		return workflow.ExecuteActivity(workflow.WithActivityOptions(pollCtx, consentRetryOptions(until.Sub(workflow.Now(ctx)), in.ConsentRecheckInterval)),
			a.CheckConsent, activities.VerifyConsentInput{TenantID: in.TenantID, ServicePrincipalID: spID})
	}
	var poll workflow.Future
	switch {
	case lean && !remindAt.IsZero():
		poll = checkUntil(remindAt)
	case retries:
		poll = checkUntil(deadline)
	default:
		poll = workflow.ExecuteActivity(workflow.WithActivityOptions(pollCtx, consentPollOptions(in.ConsentTimeout, in.ConsentRecheckInterval)),
			a.AwaitConsent, activities.AwaitConsentInput{
				TenantID: in.TenantID, ServicePrincipalID: spID, Interval: in.ConsentRecheckInterval, Until: deadline,
				HeartbeatEvery: consentHeartbeatEvery(in.ConsentRecheckInterval),
			})
	}
	waiting := fmt.Sprintf("waiting for admin consent: open the consent URL as a Global or Privileged Role Administrator; "+
		"the grant is re-checked every %s until %s", in.ConsentRecheckInterval, deadline.UTC().Format(time.RFC3339))
	r.say(ctx, waiting)
	var reminder workflow.Future
	if lean || workflow.GetVersion(ctx, changeConsentNotify, workflow.DefaultVersion, 1) == 1 {
		r.notifyConsent(ctx, activities.NotifyWaiting, deadline)
		if at := deadline.Add(-before); !lean && at.After(workflow.Now(ctx)) {
			reminder = workflow.NewTimer(pollCtx, at.Sub(workflow.Now(ctx)))
		}
	}
	signals := workflow.GetSignalChannel(ctx, SignalAdminConsent)
	firstRun := firstRunID(ctx)
	for {
		var (
			polled  bool
			res     consentPolled
			pollErr error
			sig     *ConsentSignal
			bad     string
		)
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(poll, func(f workflow.Future) { polled, pollErr = true, f.Get(ctx, &res) })
		remind := false
		if reminder != nil {
			sel.AddFuture(reminder, func(workflow.Future) { remind, reminder = true, nil })
		}
		sel.AddReceive(signals, func(c workflow.ReceiveChannel, _ bool) {
			var raw converter.RawValue
			c.Receive(ctx, &raw)
			sig, bad = decodeConsent(raw)
		})
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
		sel.Select(ctx)
		if ctx.Err() != nil {
			return temporal.NewCanceledError("cancelled while waiting for admin consent")
		}
		now := workflow.Now(ctx).UTC().Format(time.RFC3339)
		switch {
		case remind:
			r.notifyConsent(ctx, activities.NotifyReminder, deadline)
		case polled && pollErr == nil && (retries || res.Granted):
			r.consentVerified(ctx, "periodic re-check")
			return nil
		case polled && !remindAt.IsZero() && (pollErr == nil || isTimeout(pollErr)):
			// The first poll's schedule ended without the grant: the reminder
			// is due, and a second poll takes the wait to its deadline.
			remindAt = time.Time{}
			r.notifyConsent(ctx, activities.NotifyReminder, deadline)
			poll = checkUntil(deadline)
		case polled && (pollErr == nil || isTimeout(pollErr)):
			return r.consentTimedOut()
		case polled:
			return pollErr
		case bad != "":
			workflow.GetLogger(ctx).Warn("ignored a malformed admin-consent signal", "problem", bad)
			r.sayOutside(ctx, "ignored a malformed admin-consent signal at "+now+" (%s); send {\"granted\": true|false, \"by\": \"...\", \"note\": \"...\"}. "+waiting, bad)
		case sig.RunID != "" && sig.RunID != firstRun:
			r.sayOutside(ctx, "ignored an admin-consent signal at "+now+" from %s: it is for the link of another run (%s), not this onboarding's. "+waiting,
				orUnknown(sig.By), sig.RunID)
		case !sig.Granted && sig.Source == ConsentSourceOperator:
			return consentDenied(sig)
		case !sig.Granted:
			r.progress.ConsentDenial = fmt.Sprintf("%s by %s: %s", now, orUnknown(sig.By), sig.Note)
			r.sayOutside(ctx, "denial reported by the consent page at "+now+" (%s: %s); the wait goes on: the admin can open the consent URL again, "+
				"or an operator ends it with `starter consent --denied`. "+waiting, orUnknown(sig.By), sig.Note)
		default:
			ok, err := r.verifyConsent(ctx, spID, "signalled by "+orUnknown(sig.By))
			if ok || err != nil {
				return err
			}
			r.sayOutside(ctx, "consent was signalled by %s at "+now+" but the grant is not visible in Entra yet; "+waiting, orUnknown(sig.By))
		}
	}
}

// consentPolled holds what either poll returns: AwaitConsent's granted flag
// (CheckConsent succeeds only when granted).
type consentPolled struct {
	Granted bool `json:"granted"`
}

// verifyConsent checks the grant once, for a signal: in a lean run as a
// local activity (a read, retried for minutes at most), in the workflow
// task the signal wakes.
func (r *run) verifyConsent(ctx workflow.Context, spID, trigger string) (bool, error) {
	callVerify := call[activities.VerifyConsentResult]
	if r.leanVersion >= leanConsentWait {
		callVerify = callLocal[activities.VerifyConsentResult]
	}
	v, err := callVerify(ctx, StepAwaitingAdminConsent, a.VerifyConsent,
		activities.VerifyConsentInput{TenantID: r.in.TenantID, ServicePrincipalID: spID})
	if err != nil || !v.Granted {
		return false, err
	}
	r.consentVerified(ctx, trigger)
	return true, nil
}

func (r *run) consentVerified(ctx workflow.Context, trigger string) {
	r.progress.ConsentVerified = true
	r.progress.Status = StatusRunning
	r.sayOutside(ctx, "admin consent verified (%s)", trigger)
}

func (r *run) consentTimedOut() error {
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("admin consent was not granted within %s; start again and have an admin open the consent URL", r.in.ConsentTimeout),
		activities.ErrConsentNotGranted, nil)
}

func consentDenied(sig *ConsentSignal) error {
	reason := "admin consent was denied"
	if sig.By != "" {
		reason += " by " + sig.By
	}
	if sig.Note != "" {
		reason += ": " + sig.Note
	}
	return temporal.NewNonRetryableApplicationError(reason, activities.ErrConsentNotGranted, nil)
}

// isTimeout: the poll ran out of time, or (CheckConsent) of attempts,
// still without the grant.
func isTimeout(err error) bool {
	var te *temporal.TimeoutError
	var ae *temporal.ApplicationError
	return errors.As(err, &te) || errors.As(err, &ae) && ae.Type() == activities.ErrConsentPending
}

// awaitConsentByTimer is the wait of runs that started before
// changeConsentPoll, kept as it was so that they replay: a timer and a
// VerifyConsent activity per re-check interval.
func (r *run) awaitConsentByTimer(ctx workflow.Context, spID string) error {
	verify := func(trigger string) (bool, error) {
		v, err := call[activities.VerifyConsentResult](ctx, StepAwaitingAdminConsent, a.VerifyConsent,
			activities.VerifyConsentInput{TenantID: r.in.TenantID, ServicePrincipalID: spID})
		if err != nil {
			return false, err
		}
		if v.Granted {
			r.progress.ConsentVerified = true
			r.progress.Status = StatusRunning
			r.sayOutside(ctx, "admin consent verified (%s)", trigger)
			return true, nil
		}
		r.say(ctx, fmt.Sprintf("waiting for admin consent (%s): %s; open the consent URL as a Global or Privileged Role Administrator, re-checking every %s",
			trigger, v.Reason, r.in.ConsentRecheckInterval))
		return false, nil
	}

	// Consent may already exist (a re-run for the same tenant and org).
	if ok, err := verify("initial check"); ok || err != nil {
		return err
	}
	deadline := workflow.Now(ctx).Add(r.in.ConsentTimeout)
	r.progress.ConsentWaitingSince, r.progress.ConsentExpiresAt = workflow.Now(ctx), deadline
	signals := workflow.GetSignalChannel(ctx, SignalAdminConsent)
	for {
		remaining := deadline.Sub(workflow.Now(ctx))
		if remaining <= 0 {
			return temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("admin consent was not granted within %s; start again and have an admin open the consent URL", r.in.ConsentTimeout),
				activities.ErrConsentNotGranted, nil)
		}
		timerCtx, cancelTimer := workflow.WithCancel(ctx)
		timer := workflow.NewTimer(timerCtx, min(r.in.ConsentRecheckInterval, remaining))

		var (
			sig     *ConsentSignal
			bad     string
			recheck bool
		)
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(signals, func(c workflow.ReceiveChannel, _ bool) {
			var raw converter.RawValue
			c.Receive(ctx, &raw)
			sig, bad = decodeConsent(raw)
		})
		sel.AddFuture(timer, func(workflow.Future) { recheck = true })
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
		sel.Select(ctx)
		cancelTimer()

		if err := ctx.Err(); err != nil {
			return temporal.NewCanceledError("cancelled while waiting for admin consent")
		}
		switch {
		case bad != "":
			workflow.GetLogger(ctx).Warn("ignored a malformed admin-consent signal", "problem", bad)
			r.sayOutside(ctx, `ignored a malformed admin-consent signal (%s); send {"granted": true|false, "by": "...", "note": "..."}`, bad)
		case sig != nil && !sig.Granted:
			return consentDenied(sig)
		case sig != nil:
			ok, err := verify("signalled by " + orUnknown(sig.By))
			if ok || err != nil {
				return err
			}
			r.sayOutside(ctx, "consent was signalled by %s but the grant is not visible in Entra yet; still waiting, re-checking every "+
				r.in.ConsentRecheckInterval.String(), orUnknown(sig.By))
		case recheck:
			if ok, err := verify("periodic re-check"); ok || err != nil {
				return err
			}
		}
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "an unnamed sender"
	}
	return s
}

const maxSignalText = 200

// decodeConsent accepts only {"granted": bool, ...}. Anything else is
// reported, never fatal: a typo in a signal must not end an onboarding.
func decodeConsent(raw converter.RawValue) (*ConsentSignal, string) {
	p := raw.Payload()
	if p == nil {
		return nil, "empty payload"
	}
	// Fields are decoded one by one so a wrong type is named: decoding the
	// whole struct at once reports {"granted":"yes"} as "not a JSON object".
	var fields map[string]json.RawMessage
	if err := converter.GetDefaultDataConverter().FromPayload(p, &fields); err != nil || fields == nil {
		return nil, "payload is not a JSON object"
	}
	granted, ok := fields["granted"]
	if !ok {
		return nil, `"granted" is missing`
	}
	var sig ConsentSignal
	if err := json.Unmarshal(granted, &sig.Granted); err != nil || string(granted) == "null" {
		return nil, `"granted" must be true or false, not ` + truncate(string(granted))
	}
	for _, f := range []struct {
		name string
		into *string
	}{{"by", &sig.By}, {"note", &sig.Note}, {"source", &sig.Source}, {"runId", &sig.RunID}} {
		if v, ok := fields[f.name]; ok && string(v) != "null" && json.Unmarshal(v, f.into) != nil {
			return nil, `"` + f.name + `" must be a string`
		}
	}
	sig.By, sig.Note, sig.RunID = truncate(sig.By), truncate(sig.Note), truncate(sig.RunID)
	return &sig, ""
}

func truncate(s string) string {
	if len(s) <= maxSignalText {
		return s
	}
	// Cut at a rune boundary: half a UTF-8 sequence would be invalid text.
	cut := maxSignalText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// changeConsentNotify added the consent hand-off webhook: a message when the
// wait begins and a reminder before it times out.
const changeConsentNotify = "consent-notify"

// notifyConsent sends the hand-off message without waiting for it: a
// webhook that is down must never hold up or fail the onboarding, so the
// activity's retries run on their own and its outcome is not read.
func (r *run) notifyConsent(ctx workflow.Context, kind string, expires time.Time) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumAttempts: 5},
	})
	workflow.ExecuteActivity(actx, a.NotifyConsent, activities.NotifyConsentInput{
		Kind: kind, WorkflowID: r.wfID, TenantID: r.in.TenantID, OrgHost: r.in.OrgHost(), AppName: r.in.AppDisplayName,
		ConsentURL: r.progress.ConsentURL, ExpiresAt: expires,
	})
}
