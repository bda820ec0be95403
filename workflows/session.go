package workflows

import (
	"encoding/json"
	"fmt"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/mktos2s/mktos2s/activities"
	"github.com/mktos2s/mktos2s/internal/inert"
)

// The customer-admin session mode (OnboardingInput.AdminSession, README
// "One action per customer"). Before any call as the provisioner, the
// onboarding waits for the customer's admin to open one link: the v2 admin
// consent for the provisioner, then one sign-in whose code lends the
// provisioner the admin's delegated token for addAppUser in this org's
// environment. After validation the provisioner's own application user is
// disabled again.

// StepAdminSession is the step that waits for the session and adds the
// provisioner to the org.
const StepAdminSession = "admin-session"

// SignalAdminSession carries what the session callback received.
const SignalAdminSession = "admin-session"

// changeAdminSession marks histories that took the session branch; the
// branch runs only for inputs with AdminSession set, which no recorded
// history has.
const changeAdminSession = "admin-session-mode"

// AdminSessionSignal is the payload of the admin-session signal. It never
// holds a plain code or token: SealedCode is sealed by the callback with a
// key only it and the worker hold.
type AdminSessionSignal struct {
	SealedCode string    `json:"sealedCode,omitempty"`
	Nonce      string    `json:"nonce,omitempty"` // of the sign-in's state; derives the PKCE verifier
	RunID      string    `json:"runId,omitempty"` // first run the link was made for (C1)
	SignedInAt time.Time `json:"signedInAt,omitempty"`
	// Error is what Entra sent back instead of a code (access_denied, with
	// error_subcode cancel when the admin cancelled the sign-in).
	Error            string `json:"error,omitempty"`
	ErrorSubcode     string `json:"errorSubcode,omitempty"`
	ErrorDescription string `json:"errorDescription,omitempty"`
}

// ProvisionerAccess is what the provisioner holds in the customer's org,
// shown by the progress query, `starter status` and the UI.
type ProvisionerAccess struct {
	Environment string    `json:"environment"` // Power Platform environment ID
	OrgURL      string    `json:"orgUrl"`
	Holds       string    `json:"holds"`            // e.g. "System Administrator (application user)"
	Until       string    `json:"until"`            // "validation", "kept (keepProvisionerAccess)" or "disabled"
	LentBy      string    `json:"lentBy,omitempty"` // the admin whose sign-in added it
	Since       time.Time `json:"since"`
	DisabledAt  time.Time `json:"disabledAt,omitempty"`
}

// adminSession runs before preflight in session mode.
func (r *run) adminSession(ctx workflow.Context) error {
	if workflow.GetVersion(ctx, changeAdminSession, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil // unreachable for new runs; keeps the marker's meaning explicit
	}
	r.enter(ctx, StepAdminSession)
	info := workflow.GetInfo(ctx)
	link, err := call[activities.BuildSessionURLResult](ctx, StepAdminSession, a.BuildSessionURL,
		activities.BuildSessionURLInput{TenantID: r.in.TenantID, WorkflowID: r.wfID, RunID: info.FirstRunID})
	if err != nil {
		r.failed = StepAdminSession
		return err
	}
	r.progress.SessionURL = link.URL
	r.progress.Status = StatusWaitingConsent
	r.say(ctx, "waiting for the customer's admin to open the link, consent to the provisioner and sign in (one browser session)")

	sig, err := r.awaitSession(ctx, info.FirstRunID)
	if err != nil {
		r.failed = StepAdminSession
		return err
	}
	r.progress.Status = StatusRunning
	added, err := call[activities.AddProvisionerAppUserResult](ctx, StepAdminSession, a.AddProvisionerAppUser, activities.AddProvisionerAppUserInput{
		TenantID: r.in.TenantID, OrgURL: r.in.OrgURL, WorkflowID: r.wfID, SealedCode: sig.SealedCode, Nonce: sig.Nonce, SignedInAt: sig.SignedInAt,
	})
	if err != nil {
		r.failed = StepAdminSession
		return err
	}
	until := "validation"
	if r.in.KeepProvisionerAccess {
		until = "kept (keepProvisionerAccess): disable it in the Power Platform admin center when no longer needed"
	}
	r.progress.ProvisionerAccess = &ProvisionerAccess{Environment: added.EnvironmentID, OrgURL: r.in.OrgURL,
		Holds: "System Administrator (application user)", Until: until, LentBy: added.AdminUsername, Since: workflow.Now(ctx)}
	// From here on the provisioner may be a member: undo disables it.
	r.undo = append(r.undo, createdBy(StepAdminSession)...)
	r.say(ctx, "the Power Platform admin API accepted the provisioner; waiting for its application user to appear in Dataverse")
	user, err := call[activities.AwaitProvisionerAppUserResult](ctx, StepAdminSession, a.AwaitProvisionerAppUser,
		activities.AwaitProvisionerAppUserInput{TenantID: r.in.TenantID, OrgURL: r.in.OrgURL, MaxWait: r.in.ProvisionerUserWait})
	if err != nil {
		r.failed = StepAdminSession
		return err
	}
	r.progress.Resources.ProvisionerUserID = user.SystemUserID
	r.complete(ctx, StepAdminSession)
	return nil
}

// awaitSession waits for a session signal with a code, up to the consent
// timeout. A cancelled sign-in is recorded, not final (anyone holding the
// link could cancel, C1): the admin can open the link again.
func (r *run) awaitSession(ctx workflow.Context, firstRunID string) (AdminSessionSignal, error) {
	ch := workflow.GetSignalChannel(ctx, SignalAdminSession)
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	timer := workflow.NewTimer(timerCtx, r.in.ConsentTimeout)
	var last string
	for {
		var (
			sig      AdminSessionSignal
			got, out bool
		)
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
			var raw converter.RawValue
			c.Receive(ctx, &raw)
			got = decodeSession(raw, &sig)
		})
		sel.AddFuture(timer, func(workflow.Future) { out = true })
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
		sel.Select(ctx)
		if ctx.Err() != nil {
			return sig, temporal.NewCanceledError("cancelled while waiting for the customer's admin session")
		}
		switch {
		case out:
			msg := fmt.Sprintf("the customer's admin did not complete the session within %s", r.in.ConsentTimeout)
			if last != "" {
				msg += " (" + last + ")"
			}
			return sig, temporal.NewNonRetryableApplicationError(msg+"; start again (--admin-session) and have a Power Platform "+
				"administrator of the tenant open the new link, consent and sign in", activities.ErrConsentNotGranted, nil)
		case !got:
			r.say(ctx, "ignored a malformed admin-session signal")
		case sig.RunID != "" && sig.RunID != firstRunID:
			r.say(ctx, "ignored an admin session from a link of another run of this onboarding")
		case sig.Error != "":
			what := "the sign-in failed"
			if sig.ErrorSubcode == "cancel" {
				what = "the admin cancelled the sign-in"
			}
			at, outside := workflow.Now(ctx).UTC().Format(time.RFC3339), truncate(sig.Error+": "+sig.ErrorDescription)
			last = fmt.Sprintf("%s at %s: %s", what, at, inert.Text(outside))
			// The message is also the UI's Markdown: Entra's text stays inert there.
			r.say(ctx, fmt.Sprintf("%s at %s: %s; the link still works: the customer's admin opens it again, consents and signs in as a Power Platform administrator",
				what, at, inert.Markdown(outside)))
		case sig.SealedCode == "" || sig.Nonce == "":
			r.say(ctx, "ignored an admin-session signal without a sign-in code")
		default:
			return sig, nil
		}
	}
}

func decodeSession(raw converter.RawValue, into *AdminSessionSignal) bool {
	p := raw.Payload()
	if p == nil {
		return false
	}
	var m json.RawMessage
	if err := converter.GetDefaultDataConverter().FromPayload(p, &m); err != nil {
		return false
	}
	return json.Unmarshal(m, into) == nil
}

// revokeProvisionerAccess ends the just-in-time access after validation.
// A failure is reported, not fatal: the onboarding's work is done.
func (r *run) revokeProvisionerAccess(ctx workflow.Context) {
	pa := r.progress.ProvisionerAccess
	if pa == nil || r.in.KeepProvisionerAccess {
		return
	}
	_, err := call[activities.RevokeProvisionerAccessResult](ctx, StepAdminSession, a.RevokeProvisionerAccess,
		activities.RevokeProvisionerAccessInput{TenantID: r.in.TenantID, OrgURL: r.in.OrgURL})
	if err != nil {
		pa.Until = "validation, but disabling it failed (" + errorMessage(err) + "): disable the provisioner's application user in the Power Platform admin center"
		return
	}
	pa.Until, pa.DisabledAt = "disabled", workflow.Now(ctx)
}
