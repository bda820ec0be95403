package workflows

import (
	"encoding/json"
	"fmt"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/mktos2s/mktos2s/activities"
)

// ConsentSignal is the payload of the admin-consent signal.
type ConsentSignal struct {
	Granted bool   `json:"granted"`
	By      string `json:"by"`
	Note    string `json:"note"`
}

// awaitConsent waits for the admin-consent signal and verifies the grant
// through Graph; a timer re-checks so consent given without a signal is
// noticed too.
func (r *run) awaitConsent(ctx workflow.Context, appID, spID string) error {
	r.enter(ctx, StepAwaitingAdminConsent)
	u, err := call[activities.BuildConsentURLResult](ctx, StepAwaitingAdminConsent, a.BuildConsentURL,
		activities.BuildConsentURLInput{TenantID: r.in.TenantID, AppID: appID, WorkflowID: r.wfID})
	if err != nil {
		return err
	}
	r.progress.ConsentURL = u.URL
	r.progress.Status = StatusWaitingConsent

	verify := func(trigger string) (bool, error) {
		v, err := call[activities.VerifyConsentResult](ctx, StepAwaitingAdminConsent, a.VerifyConsent,
			activities.VerifyConsentInput{TenantID: r.in.TenantID, ServicePrincipalID: spID})
		if err != nil {
			return false, err
		}
		if v.Granted {
			r.progress.ConsentVerified = true
			r.progress.Status = StatusRunning
			r.say(ctx, "admin consent verified ("+trigger+")")
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
			r.say(ctx, "ignored a malformed admin-consent signal ("+bad+`); send {"granted": true|false, "by": "...", "note": "..."}`)
		case sig != nil && !sig.Granted:
			reason := "admin consent was denied"
			if sig.By != "" {
				reason += " by " + sig.By
			}
			if sig.Note != "" {
				reason += ": " + sig.Note
			}
			return temporal.NewNonRetryableApplicationError(reason, activities.ErrConsentNotGranted, nil)
		case sig != nil:
			ok, err := verify("signalled by " + orUnknown(sig.By))
			if ok || err != nil {
				return err
			}
			r.say(ctx, fmt.Sprintf("consent was signalled by %s but the grant is not visible in Entra yet; still waiting, re-checking every %s",
				orUnknown(sig.By), r.in.ConsentRecheckInterval))
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
	}{{"by", &sig.By}, {"note", &sig.Note}} {
		if v, ok := fields[f.name]; ok && string(v) != "null" && json.Unmarshal(v, f.into) != nil {
			return nil, `"` + f.name + `" must be a string`
		}
	}
	sig.By, sig.Note = truncate(sig.By), truncate(sig.Note)
	return &sig, ""
}

func truncate(s string) string {
	if len(s) <= maxSignalText {
		return s
	}
	return s[:maxSignalText] + "…"
}
