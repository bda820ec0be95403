package workflows

import (
	"fmt"
	"slices"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/mktos2s/mktos2s/activities"
	"github.com/mktos2s/mktos2s/internal/inert"
)

// Error types of the workflow's own failures (activity failures keep theirs).
const (
	ErrInvalidInput     = "InvalidInput"
	ErrOnboardingFailed = "OnboardingFailed"
)

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
	if err := onboardingInputProblems(ctx, in); err != nil {
		r.progress.Step, r.progress.Status, r.progress.Error = StepFailed, StatusFailed, err.Error()
		r.progress.UpdatedAt = workflow.Now(ctx)
		return OnboardingResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrInvalidInput, nil)
	}
	// One version for the lean history of issue 16; recorded histories
	// without its marker replay as before.
	r.leanVersion = workflow.GetVersion(ctx, changeLeanHistory, workflow.DefaultVersion, leanConsentWait)
	r.lean = r.leanVersion >= leanSteps
	r.setIdentityAttributes(ctx)

	res, err := r.execute(ctx)
	if err == nil {
		r.revokeProvisionerAccess(ctx)
		res.ProvisionerAccess = r.progress.ProvisionerAccess
		r.startRotation(ctx, res)
		r.progress.Status = StatusCompleted
		r.enter(ctx, StepCompleted)
		return res, nil
	}
	return OnboardingResult{}, r.compensate(ctx, err)
}

// changeConsentBudget added consentBudgetProblems to the rules the
// workflow applies; the version is only asked for when an input breaks
// them, so runs that keep within the budget carry no marker.
const changeConsentBudget = "input-consent-budget"

// onboardingInputProblems applies Validate's rules with the version of each
// rule: a run replays with the rules it started under.
func onboardingInputProblems(ctx workflow.Context, in OnboardingInput) error {
	errs := in.problems()
	if budget := in.consentBudgetProblems(); len(budget) > 0 &&
		workflow.GetVersion(ctx, changeConsentBudget, workflow.DefaultVersion, 1) >= 1 {
		errs = append(errs, budget...)
	}
	if len(errs) == 0 {
		return nil
	}
	return &ValidationError{Fields: errs}
}

// run is the state of one onboarding. Everything in it is replayed
// deterministically from history.
type run struct {
	in       OnboardingInput
	wfID     string
	progress Progress
	undo     []resource // created so far, oldest first
	saStep   string     // last OnboardingStep value upserted
	// lean (changeLeanHistory): OnboardingStep only at the states operators
	// filter on, Preflight as a local activity, the rotation started
	// without a version marker of its own. leanVersion says which lean
	// changes the run has (leanSteps, leanConsentWait).
	lean        bool
	leanVersion workflow.Version
	failed      string // step that failed
	checks      []activities.Check
	// detailsMessage is progress.Message for the UI's Markdown details:
	// the same words, with outside text escaped (sayOutside).
	detailsMessage string
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
	if r.lean {
		// The start request sets OnboardingStep=preflight (no event); a
		// client that did not gets it with the identity attributes.
		if v, _ := sa.GetKeyword(SearchOnboardingStep); v == "" {
			updates = append(updates, SearchOnboardingStep.ValueSet(StepPreflight))
		}
		r.saStep = StepPreflight
	}
	if len(updates) > 0 {
		r.upsert(ctx, updates...)
	}
}

// changeLeanHistory: each search-attribute upsert is a history event, a
// visibility write and a Temporal Cloud action, and the 12 of a run (one
// per step) were most of its cost beyond a bare chain of its steps. The
// fine-grained step lives in the progress query and the UI's current
// details; OnboardingStep changes only where operators filter (stepAttribute).
//
// Version leanSteps is the above. Version leanConsentWait also makes the
// consent wait lean: BuildConsentURL and the VerifyConsent of a signal run
// as local activities in the workflow task that needs them, the wait's own
// changes (consent-wait-poll-activity 2, consent-notify 1) are implied
// instead of each recording a marker and a TemporalChangeVersion upsert,
// and the reminder needs no timer (awaitConsentByPoll).
const changeLeanHistory = "onboarding-lean-history"

const (
	leanSteps       workflow.Version = 1
	leanConsentWait workflow.Version = 2
)

// stepAttribute is the OnboardingStep value a step shows in a lean run:
// preflight until the consent wait, awaiting-admin-consent, provisioning
// after consent, and the end states.
func (r *run) stepAttribute(step string) string {
	if !r.lean {
		return step
	}
	switch step {
	case StepAwaitingAdminConsent, StepCompensating, StepFailed, StepCompleted:
		return step
	}
	if slices.Contains(r.progress.CompletedSteps, StepAwaitingAdminConsent) {
		return StepProvisioning
	}
	return StepPreflight
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
		r.progress.Message, r.detailsMessage = "", ""
	}
	r.progress.Step = step
	r.progress.UpdatedAt = workflow.Now(ctx)
	if v := r.stepAttribute(step); v != r.saStep {
		r.upsert(ctx, SearchOnboardingStep.ValueSet(v))
		r.saStep = v
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
	if r.progress.SessionURL != "" && r.progress.ProvisionerAccess == nil {
		fmt.Fprintf(&b, "**Customer admin's one link:** [consent and sign in](%s)\n\n`%s`\n\n", r.progress.SessionURL, r.progress.SessionURL)
	}
	if pa := r.progress.ProvisionerAccess; pa != nil {
		fmt.Fprintf(&b, "**Provisioner access:** %s in `%s` (environment `%s`), until %s\n\n", pa.Holds, pa.OrgURL, pa.Environment, pa.Until)
	}
	if r.detailsMessage != "" {
		b.WriteString(r.detailsMessage + "\n")
	}
	workflow.SetCurrentDetails(ctx, b.String())
}

// say sets the progress message, escaped whole in the details; sayOutside
// keeps the product's own Markdown and escapes only what came from outside.
func (r *run) say(ctx workflow.Context, msg string) {
	// The message may quote outside text (a signal's sender, Microsoft's
	// reasons): as Markdown it could render as a link or an image.
	r.progress.Message, r.detailsMessage = msg, inert.Markdown(msg)
	r.progress.UpdatedAt = workflow.Now(ctx)
	r.details(ctx)
}

// sayOutside is say for a message with text from outside (a signal's
// sender and note, Microsoft's words) in place of each %s of format: one
// line without control characters in progress, escaped in the Markdown.
func (r *run) sayOutside(ctx workflow.Context, format string, outside ...string) {
	plain, md := make([]any, len(outside)), make([]any, len(outside))
	for i, s := range outside {
		plain[i], md[i] = inert.Text(s), inert.Markdown(s)
	}
	r.progress.Message, r.detailsMessage = fmt.Sprintf(format, plain...), fmt.Sprintf(format, md...)
	r.progress.UpdatedAt = workflow.Now(ctx)
	r.details(ctx)
}

func (r *run) complete(ctx workflow.Context, step string) {
	r.progress.CompletedSteps = append(r.progress.CompletedSteps, step)
	r.progress.UpdatedAt = workflow.Now(ctx)
}

// call runs the activity of a step with that step's options.
func call[Out any](ctx workflow.Context, step string, fn any, in any) (Out, error) {
	var out Out
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, stepOptions(step)), fn, in).Get(ctx, &out)
	return out, err
}

// callLocal runs the activity of a step as a local activity, with that
// step's timeouts and retries: no task of its own, no events but one
// marker, and in Temporal Cloud one action with every other marker of the
// same workflow task. Only for reads that need no server-side retry
// schedule longer than a few minutes.
func callLocal[Out any](ctx workflow.Context, step string, fn any, in any) (Out, error) {
	var out Out
	o := stepOptions(step)
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: o.StartToCloseTimeout, ScheduleToCloseTimeout: o.ScheduleToCloseTimeout, RetryPolicy: o.RetryPolicy,
	})
	err := workflow.ExecuteLocalActivity(lctx, fn, in).Get(ctx, &out)
	return out, err
}

// step runs one step of the plan: it enters the step, calls the step's
// activity from onboardingPlan, lets record keep what the step returned (an
// error from record fails the step), pushes the undos of the resources the
// step creates (resourceTable) and marks it complete.
func step[Out any](ctx workflow.Context, r *run, name string, in any, record func(Out) error) (Out, error) {
	r.enter(ctx, name)
	var (
		out Out
		err error
	)
	if r.lean && name == StepPreflight {
		// Read-only: it creates nothing, so a repeat after a lost worker costs nothing either.
		out, err = callLocal[Out](ctx, name, planStep(name).activity, in)
	} else {
		out, err = call[Out](ctx, name, planStep(name).activity, in)
	}
	if err == nil && record != nil {
		err = record(out)
	}
	if err != nil {
		r.failed = name
		return out, err
	}
	r.undo = append(r.undo, createdBy(name)...)
	r.complete(ctx, name)
	return out, nil
}

// execute is the plan of onboardingPlan, one block per step; the IDs each
// step returns are recorded in progress.Resources, where compensation finds them.
func (r *run) execute(ctx workflow.Context) (OnboardingResult, error) {
	in, ids := r.in, &r.progress.Resources
	tenant, orgURL := in.TenantID, in.OrgURL

	if in.AdminSession {
		if err := r.adminSession(ctx); err != nil {
			return OnboardingResult{}, err
		}
	}

	pre, err := step(ctx, r, StepPreflight, activities.PreflightInput{
		TenantID: tenant, OrgURL: orgURL, SolutionName: in.SolutionName, MinSolutionVersion: in.MinSolutionVersion,
		RoleName: in.SecurityRoleName, DetectFederation: in.Federation == FederationAuto, AlwaysFederated: in.Federation == FederationAlways,
	}, func(p activities.PreflightResult) error {
		r.progress.Federated = in.Federation == FederationAlways || (in.Federation == FederationAuto && len(p.FederatedDomains) > 0)
		ids.RoleID, ids.ConfigID = p.RoleID, p.ConfigID
		return nil
	})
	if err != nil {
		return OnboardingResult{}, err
	}

	if _, err := step(ctx, r, StepRegisterApplication, activities.RegisterApplicationInput{
		TenantID: tenant, OrgHost: in.OrgHost(), DisplayName: in.AppDisplayName,
	}, func(app activities.RegisterApplicationResult) error {
		ids.AppObjectID, ids.AppID = app.AppObjectID, app.AppID
		return nil
	}); err != nil {
		return OnboardingResult{}, err
	}

	if _, err := step(ctx, r, StepCreateServicePrincipal, activities.CreateServicePrincipalInput{
		TenantID: tenant, AppID: ids.AppID,
	}, func(sp activities.CreateServicePrincipalResult) error {
		ids.ServicePrincipalID = sp.ServicePrincipalID
		return nil
	}); err != nil {
		return OnboardingResult{}, err
	}

	if err := r.awaitConsent(ctx, ids.AppID, ids.ServicePrincipalID); err != nil {
		r.failed = StepAwaitingAdminConsent
		return OnboardingResult{}, err
	}
	r.complete(ctx, StepAwaitingAdminConsent)

	secret, err := step(ctx, r, StepAddClientSecret, activities.AddClientSecretInput{
		TenantID: tenant, AppObjectID: ids.AppObjectID, WorkflowID: r.wfID, LifetimeMonths: in.SecretLifetimeMonths,
		Lifetime: in.testSecretLifetime(),
	}, func(s activities.AddClientSecretResult) error {
		ids.SecretKeyID = s.KeyID
		return nil
	})
	if err != nil {
		return OnboardingResult{}, err
	}

	user, err := step(ctx, r, StepCreateApplicationUser, activities.CreateApplicationUserInput{
		TenantID: tenant, OrgURL: orgURL, AppID: ids.AppID, BusinessUnitID: pre.BusinessUnitID,
	}, func(u activities.CreateApplicationUserResult) error {
		ids.SystemUserID = u.SystemUserID
		return nil
	})
	if err != nil {
		return OnboardingResult{}, err
	}

	if r.progress.Federated {
		if _, err := step(ctx, r, StepConfigureHomeRealmDiscovery, activities.ConfigureHomeRealmDiscoveryInput{
			TenantID: tenant, ServicePrincipalID: ids.ServicePrincipalID, AppID: ids.AppID,
		}, func(h activities.ConfigureHomeRealmDiscoveryResult) error {
			ids.HRDPolicyID = h.PolicyID
			return nil
		}); err != nil {
			return OnboardingResult{}, err
		}
	}

	if _, err := step[activities.AssignSecurityRoleResult](ctx, r, StepAssignSecurityRole, activities.AssignSecurityRoleInput{
		TenantID: tenant, OrgURL: orgURL, SystemUserID: ids.SystemUserID, RoleID: ids.RoleID,
	}, nil); err != nil {
		return OnboardingResult{}, err
	}

	if _, err := step(ctx, r, StepConfigureMarketoSolution, activities.ConfigureMarketoSolutionInput{
		TenantID: tenant, OrgURL: orgURL, SystemUserID: ids.SystemUserID, PreviousUserID: pre.ConfigUserID,
		UserLookupNavigation: pre.UserLookupNavigation,
	}, func(c activities.ConfigureMarketoSolutionResult) error {
		ids.ConfigID, ids.ConfigPreviousUserID = c.ConfigID, c.PreviousUserID
		return nil
	}); err != nil {
		return OnboardingResult{}, err
	}

	if _, err := step[activities.PublishCustomizationsResult](ctx, r, StepPublishCustomizations, activities.PublishCustomizationsInput{
		TenantID: tenant, OrgURL: orgURL,
	}, nil); err != nil {
		return OnboardingResult{}, err
	}

	if len(in.SyncFilterEntities) > 0 {
		if _, err := step[activities.CreateSyncFilterResult](ctx, r, StepCreateSyncFilter, activities.CreateSyncFilterInput{
			TenantID: tenant, OrgURL: orgURL, Entities: in.SyncFilterEntities,
		}, nil); err != nil {
			return OnboardingResult{}, err
		}
	}

	val, err := step(ctx, r, StepValidateConnection, activities.ValidateConnectionInput{
		TenantID: tenant, OrgURL: orgURL, AppID: ids.AppID, ClientSecret: secret.Secret, SystemUserID: ids.SystemUserID,
		RoleName: in.SecurityRoleName, SolutionName: in.SolutionName, MinSolutionVersion: in.MinSolutionVersion,
	}, func(v activities.ValidateConnectionResult) error {
		r.checks = v.Checks
		if !v.Passed {
			return temporal.NewNonRetryableApplicationError(
				"sync validation failed: "+strings.Join(v.Failed(), "; "), activities.ErrValidationFailed, nil)
		}
		return nil
	})
	if err != nil {
		return OnboardingResult{}, err
	}
	r.say(ctx, "validation passed")

	vaultID, vaultErr := "", ""
	if in.KeyVault != nil {
		// Once, after validation: only a secret that signs in is handed over.
		// A failure does not undo a working onboarding; it is reported.
		res, err := call[activities.DeliverSecretResult](ctx, StepDeliverToVault, a.DeliverSecretToVault, activities.DeliverSecretInput{
			TenantID: tenant, OrgURL: orgURL, ClientID: ids.AppID, KeyID: secret.KeyID, Secret: secret.Secret, ExpiresAt: secret.ExpiresAt,
			Vault: *in.KeyVault,
		})
		if err != nil {
			vaultErr = "the secret was not delivered to Key Vault: " + errorMessage(err)
			r.say(ctx, "validation passed; "+vaultErr)
		} else {
			vaultID = res.VersionID
			r.say(ctx, "validation passed; the secret is in Key Vault as "+in.KeyVault.SecretName)
		}
	}

	return OnboardingResult{
		VaultSecretID:   vaultID,
		VaultError:      vaultErr,
		OrgURL:          orgURL,
		Username:        user.Username,
		ClientID:        ids.AppID,
		TenantID:        tenant,
		ClientSecret:    secret.Secret,
		SecretExpiresAt: secret.ExpiresAt,
		Validation:      val.Checks,
		Resources:       r.progress.Resources,
		CompletedSteps:  append([]string{}, r.progress.CompletedSteps...),
	}, nil
}

// startRotation starts the tenant's SecretRotation as an abandoned child:
// it outlives the onboarding, and waiting only for its start costs the
// onboarding's history 7 events (version marker and its search attribute,
// child initiated and started, one workflow task). A failure to start it does not
// fail the onboarding, whose work is done; it is reported instead.
func (r *run) startRotation(ctx workflow.Context, res OnboardingResult) {
	// A lean run is newer than the rotation's own version: it needs no
	// marker (and no TemporalChangeVersion upsert) for it.
	if !r.lean && workflow.GetVersion(ctx, changeStartSecretRotation, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	in := r.in
	id := RotationWorkflowID(in.TenantID, in.OrgHost())
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            id,
		TaskQueue:             TaskQueue,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(SearchTenantID.ValueSet(in.TenantID), SearchOrgHost.ValueSet(in.OrgHost())),
	})
	// The same input a client builds for `rotate --now` (RotationInputFor).
	child := workflow.ExecuteChildWorkflow(cctx, RotationWorkflowType, RotationInputFor(in, res))
	var exec workflow.Execution
	err := child.GetChildWorkflowExecution().Get(ctx, &exec)
	switch {
	case err == nil:
		r.progress.RotationWorkflowID = id
		r.say(ctx, "validation passed; secret rotation scheduled ("+id+")")
	case temporal.IsWorkflowExecutionAlreadyStartedError(err):
		r.progress.RotationWorkflowID = id
		r.say(ctx, "validation passed; a secret rotation is already running ("+id+"); it keeps its own schedule")
	default:
		workflow.GetLogger(ctx).Warn("secret rotation not started", "error", err)
		r.say(ctx, "validation passed, but the secret rotation did not start ("+errorMessage(err)+"); run `starter rotate --now` to start it")
	}
}
