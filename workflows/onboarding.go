package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/mktos2s/mktos2s/activities"
)

// Error types of the workflow's own failures (activity failures keep theirs).
const (
	ErrInvalidInput     = "InvalidInput"
	ErrOnboardingFailed = "OnboardingFailed"
)

// Register registers the Onboarding workflow under WorkflowType.
func Register(r worker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(Onboarding, workflow.RegisterOptions{Name: WorkflowType})
}

// a names activities; it is never dereferenced in workflow code.
var a *activities.Activities

// Onboarding runs the steps of DESIGN.md in order, waits for admin consent,
// and on failure or cancellation undoes what it created, newest first.
func Onboarding(ctx workflow.Context, in OnboardingInput) (OnboardingResult, error) {
	in = in.WithDefaults()
	r := &run{
		in:   in,
		wfID: workflow.GetInfo(ctx).WorkflowExecution.ID,
		progress: Progress{
			Status:         StatusRunning,
			CompletedSteps: []string{},
		},
	}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (Progress, error) { return r.snapshot(), nil }); err != nil {
		return OnboardingResult{}, err
	}
	if err := in.Validate(); err != nil {
		r.progress.Step, r.progress.Status, r.progress.Error = StepFailed, StatusFailed, err.Error()
		r.progress.UpdatedAt = workflow.Now(ctx)
		return OnboardingResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrInvalidInput, nil)
	}
	r.setIdentityAttributes(ctx)

	res, err := r.execute(ctx)
	if err == nil {
		r.startRotation(ctx, res)
		r.progress.Status = StatusCompleted
		r.enter(ctx, StepCompleted)
		return res, nil
	}
	return OnboardingResult{}, r.compensate(ctx, err)
}

// run is the state of one onboarding. Everything in it is replayed
// deterministically from history.
type run struct {
	in       OnboardingInput
	wfID     string
	progress Progress
	undo     []undoStep
	saStep   string // last OnboardingStep value upserted
	failed   string // step that failed
	checks   []activities.Check
}

type undoStep struct {
	step     string // the step whose effect it undoes
	activity string // for the report
	fn       any
	in       any
}

func (r *run) snapshot() Progress {
	p := r.progress
	p.CompletedSteps = append([]string{}, r.progress.CompletedSteps...)
	p.Compensation = append([]UndoOutcome(nil), r.progress.Compensation...)
	return p
}

func (r *run) setIdentityAttributes(ctx workflow.Context) {
	sa := workflow.GetTypedSearchAttributes(ctx)
	var updates []temporal.SearchAttributeUpdate
	if v, _ := sa.GetKeyword(SearchTenantID); v != r.in.TenantID {
		updates = append(updates, SearchTenantID.ValueSet(r.in.TenantID))
	}
	if v, _ := sa.GetKeyword(SearchOrgHost); v != r.in.OrgHost() {
		updates = append(updates, SearchOrgHost.ValueSet(r.in.OrgHost()))
	}
	if len(updates) > 0 {
		r.upsert(ctx, updates...)
	}
}

func (r *run) upsert(ctx workflow.Context, u ...temporal.SearchAttributeUpdate) {
	if err := workflow.UpsertTypedSearchAttributes(ctx, u...); err != nil {
		// Visibility is for operators; a missing attribute must not fail the onboarding.
		workflow.GetLogger(ctx).Warn("search attribute upsert failed", "error", err)
	}
}

// enter records a step change in progress, the search attribute and the
// UI's current details.
func (r *run) enter(ctx workflow.Context, step string) {
	// A message belongs to its step ("admin consent verified" is stale once
	// the secret is being added). Completion keeps the last word, which
	// says whether the secret rotation was scheduled.
	if step != r.progress.Step && step != StepCompleted {
		r.progress.Message = ""
	}
	r.progress.Step = step
	r.progress.UpdatedAt = workflow.Now(ctx)
	if step != r.saStep {
		r.upsert(ctx, SearchOnboardingStep.ValueSet(step))
		r.saStep = step
	}
	r.details(ctx)
}

func (r *run) details(ctx workflow.Context) {
	var b strings.Builder
	fmt.Fprintf(&b, "**Onboarding** tenant `%s`, org `%s`\n\n", r.in.TenantID, r.in.OrgHost())
	fmt.Fprintf(&b, "**Step:** %s (%s)\n\n", r.progress.Step, r.progress.Status)
	if r.progress.ConsentURL != "" && !r.progress.ConsentVerified {
		// The address is also shown as text: operators copy it into an e-mail
		// to the customer's admin rather than open it themselves.
		fmt.Fprintf(&b, "**Admin consent:** [grant it here](%s)\n\n`%s`\n\n", r.progress.ConsentURL, r.progress.ConsentURL)
	}
	if r.progress.Message != "" {
		b.WriteString(r.progress.Message + "\n")
	}
	workflow.SetCurrentDetails(ctx, b.String())
}

func (r *run) say(ctx workflow.Context, msg string) {
	r.progress.Message = msg
	r.progress.UpdatedAt = workflow.Now(ctx)
	r.details(ctx)
}

func (r *run) complete(ctx workflow.Context, step string) {
	r.progress.CompletedSteps = append(r.progress.CompletedSteps, step)
	r.progress.UpdatedAt = workflow.Now(ctx)
}

func (r *run) pushUndo(step string, fn any, in any, name string) {
	r.undo = append(r.undo, undoStep{step: step, activity: name, fn: fn, in: in})
}

// call runs the activity of a step with that step's options.
func call[Out any](ctx workflow.Context, step string, fn any, in any) (Out, error) {
	var out Out
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, stepOptions(step)), fn, in).Get(ctx, &out)
	return out, err
}

func (r *run) execute(ctx workflow.Context) (OnboardingResult, error) {
	in := r.in
	tenant, orgURL := in.TenantID, in.OrgURL

	// preflight
	r.enter(ctx, StepPreflight)
	pre, err := call[activities.PreflightResult](ctx, StepPreflight, a.Preflight, activities.PreflightInput{
		TenantID: tenant, OrgURL: orgURL, SolutionName: in.SolutionName, MinSolutionVersion: in.MinSolutionVersion,
		RoleName: in.SecurityRoleName, DetectFederation: in.Federation == FederationAuto,
	})
	if err != nil {
		return r.fail(StepPreflight, err)
	}
	federated := in.Federation == FederationAlways || (in.Federation == FederationAuto && len(pre.FederatedDomains) > 0)
	r.progress.Federated = federated
	r.progress.Resources.RoleID = pre.RoleID
	r.progress.Resources.ConfigID = pre.ConfigID
	r.complete(ctx, StepPreflight)

	// register-application
	r.enter(ctx, StepRegisterApplication)
	app, err := call[activities.RegisterApplicationResult](ctx, StepRegisterApplication, a.RegisterApplication,
		activities.RegisterApplicationInput{TenantID: tenant, OrgHost: in.OrgHost(), DisplayName: in.AppDisplayName})
	if err != nil {
		return r.fail(StepRegisterApplication, err)
	}
	r.progress.Resources.AppObjectID, r.progress.Resources.AppID = app.AppObjectID, app.AppID
	r.pushUndo(StepRegisterApplication, a.RemoveApplication,
		activities.RemoveApplicationInput{TenantID: tenant, AppObjectID: app.AppObjectID}, "RemoveApplication")
	r.complete(ctx, StepRegisterApplication)

	// create-service-principal
	r.enter(ctx, StepCreateServicePrincipal)
	sp, err := call[activities.CreateServicePrincipalResult](ctx, StepCreateServicePrincipal, a.CreateServicePrincipal,
		activities.CreateServicePrincipalInput{TenantID: tenant, AppID: app.AppID})
	if err != nil {
		return r.fail(StepCreateServicePrincipal, err)
	}
	r.progress.Resources.ServicePrincipalID = sp.ServicePrincipalID
	r.pushUndo(StepCreateServicePrincipal, a.RemoveServicePrincipal,
		activities.RemoveServicePrincipalInput{TenantID: tenant, ServicePrincipalID: sp.ServicePrincipalID}, "RemoveServicePrincipal")
	r.complete(ctx, StepCreateServicePrincipal)

	// awaiting-admin-consent
	if err := r.awaitConsent(ctx, app.AppID, sp.ServicePrincipalID); err != nil {
		return r.fail(StepAwaitingAdminConsent, err)
	}
	r.complete(ctx, StepAwaitingAdminConsent)

	// add-client-secret
	r.enter(ctx, StepAddClientSecret)
	secret, err := call[activities.AddClientSecretResult](ctx, StepAddClientSecret, a.AddClientSecret, activities.AddClientSecretInput{
		TenantID: tenant, AppObjectID: app.AppObjectID, WorkflowID: r.wfID, LifetimeMonths: in.SecretLifetimeMonths,
		Lifetime: in.testSecretLifetime(),
	})
	if err != nil {
		return r.fail(StepAddClientSecret, err)
	}
	r.progress.Resources.SecretKeyID = secret.KeyID
	r.pushUndo(StepAddClientSecret, a.RemoveClientSecret,
		activities.RemoveClientSecretInput{TenantID: tenant, AppObjectID: app.AppObjectID, KeyID: secret.KeyID}, "RemoveClientSecret")
	r.complete(ctx, StepAddClientSecret)

	// create-application-user
	r.enter(ctx, StepCreateApplicationUser)
	user, err := call[activities.CreateApplicationUserResult](ctx, StepCreateApplicationUser, a.CreateApplicationUser,
		activities.CreateApplicationUserInput{TenantID: tenant, OrgURL: orgURL, AppID: app.AppID, BusinessUnitID: pre.BusinessUnitID})
	if err != nil {
		return r.fail(StepCreateApplicationUser, err)
	}
	r.progress.Resources.SystemUserID = user.SystemUserID
	r.pushUndo(StepCreateApplicationUser, a.RemoveApplicationUser,
		activities.RemoveApplicationUserInput{TenantID: tenant, OrgURL: orgURL, SystemUserID: user.SystemUserID}, "RemoveApplicationUser")
	r.complete(ctx, StepCreateApplicationUser)

	// configure-home-realm-discovery (federated tenants only)
	if federated {
		r.enter(ctx, StepConfigureHomeRealmDiscovery)
		hrd, err := call[activities.ConfigureHomeRealmDiscoveryResult](ctx, StepConfigureHomeRealmDiscovery, a.ConfigureHomeRealmDiscovery,
			activities.ConfigureHomeRealmDiscoveryInput{TenantID: tenant, ServicePrincipalID: sp.ServicePrincipalID, AppID: app.AppID})
		if err != nil {
			return r.fail(StepConfigureHomeRealmDiscovery, err)
		}
		r.progress.Resources.HRDPolicyID = hrd.PolicyID
		r.pushUndo(StepConfigureHomeRealmDiscovery, a.RemoveHRDPolicy, activities.RemoveHRDPolicyInput{
			TenantID: tenant, ServicePrincipalID: sp.ServicePrincipalID, PolicyID: hrd.PolicyID}, "RemoveHRDPolicy")
		r.complete(ctx, StepConfigureHomeRealmDiscovery)
	}

	// assign-security-role
	r.enter(ctx, StepAssignSecurityRole)
	if _, err := call[activities.AssignSecurityRoleResult](ctx, StepAssignSecurityRole, a.AssignSecurityRole,
		activities.AssignSecurityRoleInput{TenantID: tenant, OrgURL: orgURL, SystemUserID: user.SystemUserID, RoleID: pre.RoleID}); err != nil {
		return r.fail(StepAssignSecurityRole, err)
	}
	r.pushUndo(StepAssignSecurityRole, a.RemoveRoleAssociation, activities.RemoveRoleAssociationInput{
		TenantID: tenant, OrgURL: orgURL, SystemUserID: user.SystemUserID, RoleID: pre.RoleID}, "RemoveRoleAssociation")
	r.complete(ctx, StepAssignSecurityRole)

	// configure-marketo-solution
	r.enter(ctx, StepConfigureMarketoSolution)
	cfg, err := call[activities.ConfigureMarketoSolutionResult](ctx, StepConfigureMarketoSolution, a.ConfigureMarketoSolution,
		activities.ConfigureMarketoSolutionInput{TenantID: tenant, OrgURL: orgURL, SystemUserID: user.SystemUserID, PreviousUserID: pre.ConfigUserID})
	if err != nil {
		return r.fail(StepConfigureMarketoSolution, err)
	}
	r.progress.Resources.ConfigID = cfg.ConfigID
	r.pushUndo(StepConfigureMarketoSolution, a.RestoreMarketoConfig, activities.RestoreMarketoConfigInput{
		TenantID: tenant, OrgURL: orgURL, ConfigID: cfg.ConfigID, SystemUserID: user.SystemUserID, PreviousUserID: cfg.PreviousUserID,
	}, "RestoreMarketoConfig")
	r.complete(ctx, StepConfigureMarketoSolution)

	// publish-customizations
	r.enter(ctx, StepPublishCustomizations)
	if _, err := call[activities.PublishCustomizationsResult](ctx, StepPublishCustomizations, a.PublishCustomizations,
		activities.PublishCustomizationsInput{TenantID: tenant, OrgURL: orgURL}); err != nil {
		return r.fail(StepPublishCustomizations, err)
	}
	r.complete(ctx, StepPublishCustomizations)

	// create-sync-filter (opt-in)
	if len(in.SyncFilterEntities) > 0 {
		r.enter(ctx, StepCreateSyncFilter)
		if _, err := call[activities.CreateSyncFilterResult](ctx, StepCreateSyncFilter, a.CreateSyncFilter,
			activities.CreateSyncFilterInput{TenantID: tenant, OrgURL: orgURL, Entities: in.SyncFilterEntities}); err != nil {
			return r.fail(StepCreateSyncFilter, err)
		}
		r.complete(ctx, StepCreateSyncFilter)
	}

	// validate-connection
	r.enter(ctx, StepValidateConnection)
	val, err := call[activities.ValidateConnectionResult](ctx, StepValidateConnection, a.ValidateConnection, activities.ValidateConnectionInput{
		TenantID: tenant, OrgURL: orgURL, AppID: app.AppID, ClientSecret: secret.Secret, SystemUserID: user.SystemUserID,
		RoleName: in.SecurityRoleName, SolutionName: in.SolutionName, MinSolutionVersion: in.MinSolutionVersion,
	})
	if err != nil {
		return r.fail(StepValidateConnection, err)
	}
	r.checks = val.Checks
	if !val.Passed {
		return r.fail(StepValidateConnection, temporal.NewNonRetryableApplicationError(
			"sync validation failed: "+strings.Join(val.Failed(), "; "), activities.ErrValidationFailed, nil))
	}
	r.complete(ctx, StepValidateConnection)
	r.say(ctx, "validation passed")

	return OnboardingResult{
		OrgURL:          orgURL,
		Username:        user.Username,
		ClientID:        app.AppID,
		TenantID:        tenant,
		ClientSecret:    secret.Secret,
		SecretExpiresAt: secret.ExpiresAt,
		Validation:      val.Checks,
		Resources:       r.progress.Resources,
		CompletedSteps:  append([]string{}, r.progress.CompletedSteps...),
	}, nil
}

func (r *run) fail(step string, err error) (OnboardingResult, error) {
	r.failed = step
	return OnboardingResult{}, err
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

// compensate undoes the recorded steps newest first in a disconnected
// context (so it also runs after cancellation), then returns the error
// that ends the workflow, with the report in its details.
func (r *run) compensate(ctx workflow.Context, cause error) error {
	cancelled := temporal.IsCanceledError(cause) || ctx.Err() != nil
	reason := errorMessage(cause)
	r.progress.Error = reason
	if r.failed != "" {
		r.progress.FailedStep = r.failed
	}

	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	if len(r.undo) > 0 {
		r.progress.Status = StatusCompensating
		r.enter(dctx, StepCompensating)
	}
	var failedUndos []string
	for i := len(r.undo) - 1; i >= 0; i-- {
		u := r.undo[i]
		var res activities.UndoResult
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(dctx, undoOptions()), u.fn, u.in).Get(dctx, &res)
		o := UndoOutcome{Step: u.step, Undo: u.activity, OK: err == nil}
		if err != nil {
			o.Error = errorMessage(err)
			failedUndos = append(failedUndos, u.activity+": "+o.Error)
		}
		r.progress.Compensation = append(r.progress.Compensation, o)
	}

	report := FailureReport{
		FailedStep:     r.failed,
		Reason:         reason,
		CompletedSteps: append([]string{}, r.progress.CompletedSteps...),
		Resources:      r.progress.Resources,
		Compensation:   append([]UndoOutcome{}, r.progress.Compensation...),
		Validation:     r.checks,
	}
	msg := reason
	switch {
	case len(failedUndos) > 0:
		msg += "; compensation FAILED, clean up by hand: " + strings.Join(failedUndos, "; ")
	case len(r.undo) > 0:
		msg += fmt.Sprintf("; compensation undid all %d steps", len(r.undo))
	default:
		msg += "; nothing had been created"
	}
	r.progress.Error = msg
	if cancelled {
		r.progress.Status = StatusCancelled
		r.enter(dctx, StepFailed)
		return temporal.NewCanceledError(report)
	}
	r.progress.Status = StatusFailed
	r.enter(dctx, StepFailed)
	errType := ErrOnboardingFailed
	var ae *temporal.ApplicationError
	if errors.As(cause, &ae) && ae.Type() != "" {
		errType = ae.Type()
	}
	step := r.failed
	if step == "" {
		step = "an unknown step"
	}
	return temporal.NewApplicationErrorWithOptions("onboarding failed at "+step+": "+msg, errType,
		temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{report}})
}

// errorMessage is the innermost application message: what the operator
// needs, without the activity wrapper's bookkeeping.
func errorMessage(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Message()
	}
	var ce *temporal.CanceledError
	if errors.As(err, &ce) {
		return "cancelled"
	}
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return "timed out: " + te.Error()
	}
	return err.Error()
}

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
