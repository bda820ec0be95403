package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/mktos2s/mktos2s/activities"
	"github.com/mktos2s/mktos2s/internal/custody"
	"github.com/mktos2s/mktos2s/internal/inert"
)

// Fixed names of the Day-2 secret rotation (issue 7).
const (
	RotationWorkflowType = "SecretRotation"
	// SignalMarketoUpdated is the operator's confirmation that the new
	// secret is saved in Marketo.
	SignalMarketoUpdated = "marketo-updated"
	// SignalRotateNow starts the next rotation without waiting for the lead time.
	SignalRotateNow = "rotate-now"
	// QueryCredentials returns Marketo's package with the rotation's newest
	// secret. It is only for `starter credentials`; see RotationCredentials.
	QueryCredentials = "credentials"
)

// Rotation defaults and the bounds production values must respect.
const (
	DefaultRotationLeadTime   = 30 * 24 * time.Hour
	DefaultReminderInterval   = 24 * time.Hour
	MinRotationLeadTime       = 24 * time.Hour
	MinReminderInterval       = time.Hour
	MinTestSecretLifetime     = 10 * time.Second
	MinTestReminderInterval   = time.Second
	maxRemindersPerRun        = 100
	changeStartSecretRotation = "start-secret-rotation"
)

// Rotation phases, as the progress query and the UI show them.
const (
	PhaseSleeping         = "sleeping"
	PhaseAddingSecret     = "adding-secret"
	PhaseAwaitingMarketo  = "awaiting-marketo-update"
	PhaseValidating       = "validating-new-secret"
	PhaseRemovingOld      = "removing-old-secret"
	PhaseStopped          = "stopped"
	PhaseFailed           = "failed"
	rotationExpiredBanner = "OLD CLIENT SECRET EXPIRED"
)

// RotationSettings tune the rotation. Zero values take the defaults.
// SecretLifetime is for tests only: it replaces the lifetime in months so a
// test sees a secret expire in seconds, and only with it may LeadTime and
// ReminderInterval go below their production minimums.
type RotationSettings struct {
	LeadTime         time.Duration `json:"leadTime,omitempty"`
	ReminderInterval time.Duration `json:"reminderInterval,omitempty"`
	SecretLifetime   time.Duration `json:"secretLifetime,omitempty"`
}

// WithDefaults fills the zero values.
func (s RotationSettings) WithDefaults() RotationSettings {
	if s.LeadTime == 0 {
		s.LeadTime = DefaultRotationLeadTime
	}
	if s.ReminderInterval == 0 {
		s.ReminderInterval = DefaultReminderInterval
	}
	return s
}

// problems checks the settings (after WithDefaults) against a secret
// lifetime of lifetimeMonths. Field names are prefixed with prefix.
func (s RotationSettings) problems(prefix string, lifetimeMonths int) []FieldError {
	var errs []FieldError
	bad := func(field, value, fix string) { errs = append(errs, FieldError{prefix + field, value, fix}) }
	if s.SecretLifetime != 0 {
		// Test mode: seconds are fine, but the order must still make sense.
		if s.SecretLifetime < MinTestSecretLifetime {
			bad("secretLifetime", s.SecretLifetime.String(), "is too short; it is for tests only, use at least "+MinTestSecretLifetime.String())
		}
		if s.LeadTime <= 0 || s.LeadTime >= s.SecretLifetime {
			bad("leadTime", s.LeadTime.String(), "must be positive and shorter than secretLifetime "+s.SecretLifetime.String())
		}
		if s.ReminderInterval < MinTestReminderInterval {
			bad("reminderInterval", s.ReminderInterval.String(), "is too short; use at least "+MinTestReminderInterval.String())
		}
		return errs
	}
	lifetime := time.Duration(lifetimeMonths) * 28 * 24 * time.Hour // the shortest month, so the bound is safe
	if s.LeadTime < MinRotationLeadTime || (lifetimeMonths > 0 && s.LeadTime >= lifetime/2) {
		bad("leadTime", s.LeadTime.String(), fmt.Sprintf("must be at least %s and less than half the secret lifetime (%d months); the default is %s (30 days)",
			MinRotationLeadTime, lifetimeMonths, DefaultRotationLeadTime))
	}
	if s.ReminderInterval < MinReminderInterval {
		bad("reminderInterval", s.ReminderInterval.String(), "is too short; use at least "+MinReminderInterval.String()+", e.g. 24h")
	}
	return errs
}

// RotationSecret is one client secret. Value is sealed with the custody key
// (a plain string only in runs recorded before sealing existed).
type RotationSecret struct {
	KeyID     string         `json:"keyId"`
	Value     custody.Sealed `json:"value"`
	ExpiresAt time.Time      `json:"expiresAt"`
}

// RotationInput is the state one rotation run starts from. Each cycle
// continues as new with the new secret as Current.
type RotationInput struct {
	TenantID             string           `json:"tenantId"`
	OrgURL               string           `json:"orgUrl"`
	AppObjectID          string           `json:"appObjectId"`
	AppID                string           `json:"appId"`
	SystemUserID         string           `json:"systemUserId"`
	Username             string           `json:"username"`
	Current              RotationSecret   `json:"current"`
	SecretLifetimeMonths int              `json:"secretLifetimeMonths"`
	Settings             RotationSettings `json:"settings"`
	RoleName             string           `json:"roleName"`
	SolutionName         string           `json:"solutionName"`
	MinSolutionVersion   string           `json:"minSolutionVersion"`
	// Cycle counts the completed rotations.
	Cycle         int       `json:"cycle"`
	LastRotatedAt time.Time `json:"lastRotatedAt,omitempty"`
	// Pending is set when a run continued as new while the new secret
	// waited for confirmation; the next run keeps waiting for it.
	Pending      *RotationSecret `json:"pending,omitempty"`
	PendingSince time.Time       `json:"pendingSince,omitempty"`
	Reminders    int             `json:"reminders,omitempty"`
	// The fields below carry a step that keeps failing across
	// continue-as-new (changeRotationPersists): the failure so far, the
	// operator's confirmation of Pending when proving it failed, and the
	// old secret still to remove when its removal failed.
	Failing     *RotationFailure `json:"failing,omitempty"`
	ConfirmedBy string           `json:"confirmedBy,omitempty"`
	RemoveKeyID string           `json:"removeKeyId,omitempty"`
	// Reveals and LastReveal carry the audit of `credentials --reveal`
	// (secret-revealed signals) across continue-as-new.
	Reveals    int           `json:"reveals,omitempty"`
	LastReveal *RevealRecord `json:"lastReveal,omitempty"`
	// KeyVault receives each new secret (from the onboarding's input).
	KeyVault *activities.VaultTarget `json:"keyVault,omitempty"`
}

// RotationFailure is a step of the rotation that fails and is retried:
// since when, how often, and the last error (Microsoft's words: shown inert).
type RotationFailure struct {
	Step     string    `json:"step"` // adding the new secret, proving the new secret, removing the old secret
	Since    time.Time `json:"since"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error"`
	RetryAt  time.Time `json:"retryAt,omitzero"`
}

// WithDefaults normalises the input.
func (in RotationInput) WithDefaults() RotationInput {
	in.TenantID = strings.ToLower(strings.TrimSpace(in.TenantID))
	in.OrgURL = strings.TrimRight(strings.TrimSpace(in.OrgURL), "/")
	if in.SecretLifetimeMonths == 0 {
		in.SecretLifetimeMonths = DefaultSecretLifetimeMonths
	}
	if in.RoleName == "" {
		in.RoleName = DefaultSecurityRoleName
	}
	if in.SolutionName == "" {
		in.SolutionName = DefaultSolutionName
	}
	if in.MinSolutionVersion == "" {
		in.MinSolutionVersion = DefaultMinSolutionVersion
	}
	in.Settings = in.Settings.WithDefaults()
	return in
}

// OrgHost is the host[:port] of OrgURL, lower case.
func (in RotationInput) OrgHost() string {
	return OnboardingInput{OrgURL: in.OrgURL}.OrgHost()
}

// Validate checks the input after WithDefaults.
func (in RotationInput) Validate() error {
	var errs []FieldError
	bad := func(field, value, fix string) { errs = append(errs, FieldError{field, value, fix}) }
	if !guidRE.MatchString(in.TenantID) {
		bad("tenantId", in.TenantID, "is not a GUID")
	}
	if fix := orgURLProblem(in.OrgURL); fix != "" {
		bad("orgUrl", in.OrgURL, fix)
	}
	// A slice, not a map: this runs in workflow code, and the message must
	// list the fields in the same order on every replay.
	for _, f := range []struct{ field, value string }{
		{"appObjectId", in.AppObjectID}, {"appId", in.AppID}, {"systemUserId", in.SystemUserID}, {"current.keyId", in.Current.KeyID},
	} {
		if strings.TrimSpace(f.value) == "" {
			bad(f.field, "", "is required; it comes from the completed onboarding")
		}
	}
	if in.Current.ExpiresAt.IsZero() {
		bad("current.expiresAt", "", "is required; the expiry of the live secret")
	}
	if in.Settings.SecretLifetime == 0 && (in.SecretLifetimeMonths < 1 || in.SecretLifetimeMonths > MaxSecretLifetimeMonths) {
		bad("secretLifetimeMonths", fmt.Sprint(in.SecretLifetimeMonths), fmt.Sprintf("is out of range; use 1 to %d months", MaxSecretLifetimeMonths))
	}
	errs = append(errs, in.Settings.problems("settings.", in.SecretLifetimeMonths)...)
	if len(errs) == 0 {
		return nil
	}
	return &ValidationError{Fields: errs}
}

// OperatorSignal is the payload of marketo-updated and rotate-now.
type OperatorSignal struct {
	By   string `json:"by"`
	Note string `json:"note,omitempty"`
}

// receiveOperator reads one operator signal. A payload that does not
// decode still counts as the signal: who sent it is only for the record.
func receiveOperator(ctx workflow.Context, c workflow.ReceiveChannel) OperatorSignal {
	var raw converter.RawValue
	c.Receive(ctx, &raw)
	var s OperatorSignal
	if p := raw.Payload(); p != nil {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &s)
	}
	s.By, s.Note = orUnknown(truncate(s.By)), truncate(s.Note)
	return s
}

// RotationProgress is what the progress query of a rotation returns. It
// never holds a secret value.
type RotationProgress struct {
	Phase            string    `json:"phase"`
	TenantID         string    `json:"tenantId"`
	OrgHost          string    `json:"orgHost"`
	Cycle            int       `json:"cycle"`
	NextRotationAt   time.Time `json:"nextRotationAt"`
	OldKeyID         string    `json:"oldKeyId"`
	OldExpiresAt     time.Time `json:"oldExpiresAt"`
	NewKeyID         string    `json:"newKeyId,omitempty"`
	NewExpiresAt     time.Time `json:"newExpiresAt,omitzero"`
	WaitingSince     time.Time `json:"waitingSince,omitzero"`
	Reminders        int       `json:"reminders"`
	OldSecretExpired bool      `json:"oldSecretExpired"`
	LastRotatedAt    time.Time `json:"lastRotatedAt,omitzero"`
	// Failing is set while a step fails and is retried with back-off.
	Failing   *RotationFailure `json:"failing,omitempty"`
	Message   string           `json:"message"`
	Error     string           `json:"error,omitempty"`
	UpdatedAt time.Time        `json:"updatedAt"`
	// VaultSecretID is the Key Vault version this run delivered; VaultError
	// says why a delivery failed.
	VaultSecretID string `json:"vaultSecretId,omitempty"`
	VaultError    string `json:"vaultError,omitempty"`
	// Reveals counts `credentials --reveal` of this tenant's secret, all runs.
	Reveals    int           `json:"reveals"`
	LastReveal *RevealRecord `json:"lastReveal,omitempty"`
}

// RotationCredentials is Marketo's step-3 package with the rotation's
// newest secret: the one awaiting confirmation if there is one, else the
// live one. ClientSecret is filled only when the query asks for it.
//
// Why a query: it adds nothing to the history (an Update would record the
// package in it), and its result is a payload, so the worker's codec
// encrypts it like every other payload. The progress query never carries
// the secret; only `starter credentials --reveal` asks for it.
type RotationCredentials struct {
	OrgURL          string         `json:"orgUrl"`
	Username        string         `json:"username"`
	ClientID        string         `json:"clientId"`
	TenantID        string         `json:"tenantId"`
	ClientSecret    custody.Sealed `json:"clientSecret,omitzero"`
	SecretKeyID     string         `json:"secretKeyId"`
	SecretExpiresAt time.Time      `json:"secretExpiresAt"`
	// AwaitingConfirmation is true while the secret is new and Marketo has
	// not been confirmed to use it: save it there, then send marketo-updated.
	AwaitingConfirmation bool `json:"awaitingConfirmation"`
}

// SecretRotation keeps one tenant and org's client secret from expiring:
// it sleeps until the lead time before expiry, adds a new tagged secret,
// waits for the operator to confirm Marketo uses it (reminding meanwhile),
// proves it by signing in as the app, removes the old one and continues as
// new for the next cycle.
func SecretRotation(ctx workflow.Context, in RotationInput) error {
	in = in.WithDefaults()
	r := &rotation{in: in, wfID: workflow.GetInfo(ctx).WorkflowExecution.ID, pending: in.Pending, failing: in.Failing}
	r.progress = RotationProgress{
		TenantID: in.TenantID, OrgHost: in.OrgHost(), Cycle: in.Cycle,
		OldKeyID: in.Current.KeyID, OldExpiresAt: in.Current.ExpiresAt,
		NextRotationAt: in.Current.ExpiresAt.Add(-in.Settings.LeadTime),
		Reminders:      in.Reminders, LastRotatedAt: in.LastRotatedAt, WaitingSince: in.PendingSince,
		Failing: in.Failing, OldSecretExpired: in.Failing != nil && !in.Current.ExpiresAt.After(workflow.Now(ctx)),
		Reveals: in.Reveals, LastReveal: in.LastReveal,
	}
	r.reveals = reveals{Count: in.Reveals, Last: in.LastReveal}
	r.reveals.listen(ctx, func() {
		r.progress.Reveals, r.progress.LastReveal = r.reveals.Count, r.reveals.Last
		workflow.SetCurrentDetails(ctx, r.details())
	})
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (RotationProgress, error) { return r.progress, nil }); err != nil {
		return err
	}
	if err := workflow.SetQueryHandler(ctx, QueryCredentials, r.credentials); err != nil {
		return err
	}
	if err := in.Validate(); err != nil {
		r.progress.Phase, r.progress.Error = PhaseFailed, err.Error()
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrInvalidInput, nil)
	}
	err := r.cycle(ctx)
	if temporal.IsCanceledError(err) || ctx.Err() != nil {
		r.enter(ctx, PhaseStopped, "rotation stopped (cancelled); secrets are left as they are")
		return temporal.NewCanceledError("rotation stopped")
	}
	return err
}

type rotation struct {
	in       RotationInput
	wfID     string
	progress RotationProgress
	pending  *RotationSecret
	// runReminders counts this run's reminders, to continue as new before
	// the history grows long while nobody confirms.
	runReminders int
	// failing is the step that fails and is retried; runFailures counts
	// this run's failed attempts, to continue as new before the history
	// grows long during a long outage.
	failing     *RotationFailure
	runFailures int
	confirmedBy string // who sent the marketo-updated being proved
	reveals     reveals
}

func (r *rotation) credentials(reveal bool) (RotationCredentials, error) {
	s := r.in.Current
	if r.pending != nil {
		s = *r.pending
	}
	c := RotationCredentials{
		OrgURL: r.in.OrgURL, Username: r.in.Username, ClientID: r.in.AppID, TenantID: r.in.TenantID,
		SecretKeyID: s.KeyID, SecretExpiresAt: s.ExpiresAt, AwaitingConfirmation: r.pending != nil,
	}
	if reveal {
		c.ClientSecret = s.Value
	}
	return c, nil
}

func (r *rotation) enter(ctx workflow.Context, phase, msg string) {
	r.progress.Phase = phase
	r.say(ctx, msg)
}

func (r *rotation) say(ctx workflow.Context, msg string) {
	r.progress.Message = msg
	r.progress.UpdatedAt = workflow.Now(ctx)
	workflow.SetCurrentDetails(ctx, r.details())
}

// details is the UI's current details: the phase, the schedule, and a
// banner nobody can miss when the old secret has expired unconfirmed.
func (r *rotation) details() string {
	p := r.progress
	var b strings.Builder
	if p.OldSecretExpired {
		until := "the new secret is saved in Marketo"
		if p.Failing != nil {
			until = "the renewal succeeds and the new secret is saved in Marketo"
		}
		fmt.Fprintf(&b, "## ⚠️ %s at %s — Marketo's sync is failing until %s\n\n",
			rotationExpiredBanner, p.OldExpiresAt.UTC().Format(time.RFC3339), until)
	}
	if f := p.Failing; f != nil {
		// The error is Microsoft's text: inert in the Markdown.
		fmt.Fprintf(&b, "**⚠️ Renewal failing since %s** (%s, attempt %d): %s\n\nThe old secret expires on %s; next attempt at %s, or now with `starter rotate --now`.\n\n",
			f.Since.UTC().Format(time.RFC3339), f.Step, f.Attempts, inert.Markdown(f.Error),
			p.OldExpiresAt.UTC().Format(time.RFC3339), f.RetryAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "**Secret rotation** tenant `%s`, org `%s`, cycle %d\n\n", p.TenantID, p.OrgHost, p.Cycle)
	fmt.Fprintf(&b, "**Phase:** %s\n\n", p.Phase)
	fmt.Fprintf(&b, "**Live secret:** key `%s`, expires %s\n\n", p.OldKeyID, p.OldExpiresAt.UTC().Format(time.RFC3339))
	if p.NewKeyID != "" {
		fmt.Fprintf(&b, "**New secret:** key `%s`, expires %s; reminders sent: %d\n\n", p.NewKeyID, p.NewExpiresAt.UTC().Format(time.RFC3339), p.Reminders)
	} else {
		fmt.Fprintf(&b, "**Next rotation:** %s\n\n", p.NextRotationAt.UTC().Format(time.RFC3339))
	}
	if p.Message != "" && p.Failing == nil { // while failing, the message is the failure above
		b.WriteString(p.Message + "\n")
	}
	if l := p.LastReveal; l != nil {
		fmt.Fprintf(&b, "\n**Secret revealed:** %d time(s); last by %s at %s", p.Reveals, inert.Markdown(l.By), l.At.UTC().Format(time.RFC3339))
		if l.Reason != "" {
			fmt.Fprintf(&b, " (%s)", inert.Markdown(l.Reason))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (r *rotation) cycle(ctx workflow.Context) error {
	if r.in.RemoveKeyID != "" {
		// The previous run's removal of its old secret kept failing.
		if err := r.removeOld(ctx, r.in.RemoveKeyID); err != nil {
			return err
		}
	}
	if r.pending == nil {
		if err := r.sleep(ctx); err != nil {
			return err
		}
		r.enter(ctx, PhaseAddingSecret, "adding the new client secret")
		var res activities.AddClientSecretResult
		if err := r.persist(ctx, stageAdd, func() (err error) {
			res, err = call[activities.AddClientSecretResult](ctx, StepAddClientSecret, a.AddClientSecret, activities.AddClientSecretInput{
				TenantID: r.in.TenantID, AppObjectID: r.in.AppObjectID, WorkflowID: r.wfID,
				LifetimeMonths: r.in.SecretLifetimeMonths, Lifetime: r.in.Settings.SecretLifetime,
				Keep: []string{r.in.Current.KeyID},
			})
			return err
		}); err != nil {
			return r.failedFor(ctx, "adding the new secret failed", err)
		}
		r.pending = &RotationSecret{KeyID: res.KeyID, Value: res.Secret, ExpiresAt: res.ExpiresAt}
		if r.in.KeyVault != nil {
			r.deliverToVault(ctx, *r.pending)
		}
		r.progress.WaitingSince = workflow.Now(ctx)
		r.progress.Reminders = 0
	}
	r.progress.NewKeyID, r.progress.NewExpiresAt = r.pending.KeyID, r.pending.ExpiresAt
	if err := r.awaitConfirmation(ctx); err != nil {
		return err
	}

	r.enter(ctx, PhaseRemovingOld, "the new secret works; removing the old one")
	if err := r.removeOld(ctx, r.in.Current.KeyID); err != nil {
		return err
	}
	return r.continueAsNew(ctx, r.rotated(workflow.Now(ctx)))
}

// rotated is the next cycle's input: the new secret is the live one.
func (r *rotation) rotated(at time.Time) RotationInput {
	next := r.in
	next.Current = *r.pending
	next.Pending, next.PendingSince, next.Reminders, next.ConfirmedBy = nil, time.Time{}, 0, ""
	next.RemoveKeyID, next.Failing = "", nil
	next.Cycle++
	next.LastRotatedAt = at
	return next
}

func (r *rotation) removeOld(ctx workflow.Context, keyID string) error {
	err := r.persist(ctx, stageRemove, func() error {
		var undo activities.UndoResult
		return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, undoOptions()), a.RemoveClientSecret,
			activities.RemoveClientSecretInput{TenantID: r.in.TenantID, AppObjectID: r.in.AppObjectID, KeyID: keyID}).Get(ctx, &undo)
	})
	if err != nil {
		return r.failedFor(ctx, "removing the old secret failed", err)
	}
	r.in.RemoveKeyID = ""
	return nil
}

// failedFor ends a rotation that began before changeRotationPersists the
// way it always did; other errors (a stop, continue-as-new) pass through.
func (r *rotation) failedFor(ctx workflow.Context, what string, err error) error {
	var old legacyFailure
	if errors.As(err, &old) {
		r.fail(ctx, what, old.error)
		return old.error
	}
	return err
}

// deliverToVault updates the tenant's Key Vault secret with the new one. A
// failure is reported and the rotation goes on: the operator can still
// reveal the secret and save it in Marketo.
func (r *rotation) deliverToVault(ctx workflow.Context, s RotationSecret) {
	res, err := call[activities.DeliverSecretResult](ctx, StepDeliverToVault, a.DeliverSecretToVault, activities.DeliverSecretInput{
		TenantID: r.in.TenantID, OrgURL: r.in.OrgURL, ClientID: r.in.AppID, KeyID: s.KeyID, Secret: s.Value, ExpiresAt: s.ExpiresAt,
		Vault: *r.in.KeyVault,
	})
	if err != nil {
		r.progress.VaultError = "the new secret was not delivered to Key Vault: " + errorMessage(err)
		return
	}
	r.progress.VaultError, r.progress.VaultSecretID = "", res.VersionID
}

func (r *rotation) fail(ctx workflow.Context, what string, err error) {
	r.progress.Error = what + ": " + errorMessage(err)
	r.enter(ctx, PhaseFailed, r.progress.Error)
}

// sleep waits until the lead time before the live secret expires, or a
// rotate-now signal.
func (r *rotation) sleep(ctx workflow.Context) error {
	rotateAt := r.progress.NextRotationAt
	r.enter(ctx, PhaseSleeping, "next rotation at "+rotateAt.UTC().Format(time.RFC3339))
	rotateNow := workflow.GetSignalChannel(ctx, SignalRotateNow)
	updated := workflow.GetSignalChannel(ctx, SignalMarketoUpdated)
	for {
		wait := rotateAt.Sub(workflow.Now(ctx))
		if wait <= 0 {
			return nil
		}
		timerCtx, cancelTimer := workflow.WithCancel(ctx)
		timer := workflow.NewTimer(timerCtx, wait)
		due := false
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(timer, func(workflow.Future) { due = true })
		sel.AddReceive(rotateNow, func(c workflow.ReceiveChannel, _ bool) {
			due = true
			r.say(ctx, "rotation started early by "+receiveOperator(ctx, c).By)
		})
		sel.AddReceive(updated, func(c workflow.ReceiveChannel, _ bool) {
			receiveOperator(ctx, c)
			r.say(ctx, "ignored marketo-updated: no new secret is waiting; next rotation at "+rotateAt.UTC().Format(time.RFC3339))
		})
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
		sel.Select(ctx)
		cancelTimer()
		if err := ctx.Err(); err != nil {
			return temporal.NewCanceledError("rotation stopped")
		}
		if due {
			return nil
		}
	}
}

// awaitConfirmation waits for marketo-updated, reminding every
// ReminderInterval and raising the alarm when the old secret expires
// first. A confirmation is believed only once the new secret signs in.
func (r *rotation) awaitConfirmation(ctx workflow.Context) error {
	updated := workflow.GetSignalChannel(ctx, SignalMarketoUpdated)
	rotateNow := workflow.GetSignalChannel(ctx, SignalRotateNow)
	r.enter(ctx, PhaseAwaitingMarketo, r.reminderText())
	if by := r.in.ConfirmedBy; by != "" {
		// Confirmed in the previous run, whose proof kept failing.
		r.in.ConfirmedBy = ""
		if ok, err := r.validate(ctx, by); ok || err != nil {
			return err
		}
	}
	nextReminder := workflow.Now(ctx).Add(r.in.Settings.ReminderInterval)
	for {
		now := workflow.Now(ctx)
		if !r.progress.OldSecretExpired && !now.Before(r.in.Current.ExpiresAt) {
			r.progress.OldSecretExpired = true
			r.say(ctx, r.reminderText())
			workflow.GetLogger(ctx).Warn("old client secret expired before the new one was confirmed in Marketo",
				"workflowId", r.wfID, "oldKeyId", r.in.Current.KeyID)
		}
		wait := nextReminder.Sub(now)
		if !r.progress.OldSecretExpired {
			wait = min(wait, r.in.Current.ExpiresAt.Sub(now))
		}
		timerCtx, cancelTimer := workflow.WithCancel(ctx)
		timer := workflow.NewTimer(timerCtx, wait)
		var (
			sig      *OperatorSignal
			reminder bool
		)
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(updated, func(c workflow.ReceiveChannel, _ bool) {
			s := receiveOperator(ctx, c)
			sig = &s
		})
		sel.AddReceive(rotateNow, func(c workflow.ReceiveChannel, _ bool) {
			receiveOperator(ctx, c)
			r.say(ctx, "ignored rotate-now: a rotation is already in progress. "+r.reminderText())
		})
		sel.AddFuture(timer, func(workflow.Future) {
			reminder = !workflow.Now(ctx).Before(nextReminder)
		})
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
		sel.Select(ctx)
		cancelTimer()
		if err := ctx.Err(); err != nil {
			return temporal.NewCanceledError("rotation stopped")
		}
		switch {
		case sig != nil:
			ok, err := r.validate(ctx, sig.By)
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
		case reminder:
			nextReminder = workflow.Now(ctx).Add(r.in.Settings.ReminderInterval)
			r.progress.Reminders++
			r.runReminders++
			r.say(ctx, r.reminderText())
			if r.runReminders >= maxRemindersPerRun {
				return r.continueWaiting(ctx)
			}
		}
	}
}

// validate proves the new secret: a token as the app and WhoAmI returning
// the application user. Anything else is reported and the wait goes on, so
// the operator can fix Marketo and confirm again.
func (r *rotation) validate(ctx workflow.Context, by string) (bool, error) {
	r.enter(ctx, PhaseValidating, "marketo-updated from "+by+"; signing in with the new secret")
	r.confirmedBy = by
	var res activities.ValidateConnectionResult
	err := r.persist(ctx, stageProve, func() (err error) {
		res, err = call[activities.ValidateConnectionResult](ctx, StepValidateConnection, a.ValidateConnection, activities.ValidateConnectionInput{
			TenantID: r.in.TenantID, OrgURL: r.in.OrgURL, AppID: r.in.AppID, ClientSecret: r.pending.Value, SystemUserID: r.in.SystemUserID,
			RoleName: r.in.RoleName, SolutionName: r.in.SolutionName, MinSolutionVersion: r.in.MinSolutionVersion,
		})
		return err
	})
	if ctx.Err() != nil {
		return false, temporal.NewCanceledError("rotation stopped")
	}
	var failed []string
	var old legacyFailure
	switch {
	case errors.As(err, &old):
		// Rotations before changeRotationPersists waited for another confirmation.
		failed = append(failed, errorMessage(old.error))
	case err != nil:
		return false, err
	}
	for _, c := range res.Checks {
		if !c.Passed && (c.Name == activities.CheckCredentials || c.Name == activities.CheckSignIn) {
			failed = append(failed, c.Name+": "+c.Reason)
		}
	}
	if err == nil && len(res.Checks) == 0 {
		failed = append(failed, "the validation returned no checks")
	}
	if len(failed) > 0 {
		r.progress.Error = "the new secret did not sign in, the old one is kept: " + strings.Join(failed, "; ")
		r.enter(ctx, PhaseAwaitingMarketo, r.progress.Error+". "+r.reminderText())
		return false, nil
	}
	r.progress.Error = ""
	if f := res.Failed(); len(f) > 0 {
		// The secret works; other findings do not block removing the old one.
		r.say(ctx, "the new secret signs in; other validation findings: "+strings.Join(f, "; "))
	}
	return true, nil
}

func (r *rotation) continueWaiting(ctx workflow.Context) error {
	next := r.in
	next.Pending = r.pending
	next.PendingSince = r.progress.WaitingSince
	next.Reminders = r.progress.Reminders
	return r.continueAsNew(ctx, next)
}

// continueAsNew drains the stale signals, carries the reveal audit over and
// continues as next.
func (r *rotation) continueAsNew(ctx workflow.Context, next RotationInput) error {
	r.drainSignals(ctx)
	r.reveals.drain(ctx)
	next.Reveals, next.LastReveal = r.reveals.Count, r.reveals.Last
	return workflow.NewContinueAsNewError(ctx, RotationWorkflowType, next)
}

// drainSignals reads signals that arrived before continue-as-new; they are
// stale for the next run, and unread signals would fail the completion.
func (r *rotation) drainSignals(ctx workflow.Context) {
	for _, name := range []string{SignalMarketoUpdated, SignalRotateNow} {
		ch := workflow.GetSignalChannel(ctx, name)
		for ch.ReceiveAsync(nil) {
		}
	}
}

func (r *rotation) reminderText() string {
	p := r.progress
	target := fmt.Sprintf("--tenant-id %s --org-url %s", r.in.TenantID, r.in.OrgURL)
	var b strings.Builder
	if p.OldSecretExpired {
		fmt.Fprintf(&b, "%s at %s: Marketo's sync fails until the new secret is saved in Marketo. ", rotationExpiredBanner,
			p.OldExpiresAt.UTC().Format(time.RFC3339))
	}
	if p.Reminders > 0 {
		fmt.Fprintf(&b, "Reminder %d: ", p.Reminders)
	}
	fmt.Fprintf(&b, "a new client secret (key %s, expires %s) is waiting to be saved in Marketo. ",
		p.NewKeyID, p.NewExpiresAt.UTC().Format(time.DateOnly))
	fmt.Fprintf(&b, "Show it with `starter credentials %s --reveal`, paste it in Marketo (Admin > Microsoft Dynamics > Sync User credentials), then run `starter rotate --confirm %s`.",
		target, target)
	if !p.OldSecretExpired {
		fmt.Fprintf(&b, " The old secret expires %s.", p.OldExpiresAt.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// changeRotationPersists made a failed add, proof or removal retry with
// back-off until it succeeds, instead of ending the rotation. The version
// is asked for only when a step fails, so runs without failures carry no
// marker.
const changeRotationPersists = "rotation-retries-failed-steps"

// Steps that persist retries, as progress names them.
const (
	stageAdd    = "adding the new secret"
	stageProve  = "proving the new secret"
	stageRemove = "removing the old secret"
)

// Back-off of a failing step, and how many failures one run records before
// it continues as new (about 12 history events each).
const (
	firstRetryDelay    = time.Minute
	maxRetryDelay      = time.Hour
	maxFailuresPerRun  = 100
	renewalFailingText = "renewal failing since"
)

// legacyFailure is op's error in a rotation that began before
// changeRotationPersists, which the rotation ends with as it always did.
type legacyFailure struct{ error }

// persist runs op until it succeeds: each failure is shown (since when,
// the error, when the old secret expires, loudly once it has expired) and
// op runs again after a back-off that doubles up to maxRetryDelay, or at
// once on rotate-now. A transient failure (Graph down for an hour) or a
// permanent one (a permission removed for a day) alike end when Microsoft
// answers again; only a stop (cancellation: offboard or an operator)
// ends the loop otherwise.
func (r *rotation) persist(ctx workflow.Context, stage string, op func() error) error {
	for {
		began := workflow.Now(ctx)
		err := op()
		if err == nil {
			r.recovered(ctx)
			return nil
		}
		if ctx.Err() != nil || temporal.IsCanceledError(err) {
			return temporal.NewCanceledError("rotation stopped")
		}
		if workflow.GetVersion(ctx, changeRotationPersists, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			return legacyFailure{err}
		}
		r.failed(ctx, stage, began, err)
		if r.runFailures >= maxFailuresPerRun {
			return r.continueFailing(ctx, stage)
		}
		if err := r.waitRetry(ctx); err != nil {
			return err
		}
	}
}

// failed records a failed attempt of stage that began at began.
func (r *rotation) failed(ctx workflow.Context, stage string, began time.Time, err error) {
	now := workflow.Now(ctx)
	if r.failing == nil || r.failing.Step != stage {
		r.failing = &RotationFailure{Step: stage, Since: began}
	}
	f := r.failing
	f.Attempts++
	f.Error = errorMessage(err)
	f.RetryAt = now.Add(min(firstRetryDelay<<min(f.Attempts-1, 10), maxRetryDelay))
	r.runFailures++
	if !r.progress.OldSecretExpired && !now.Before(r.in.Current.ExpiresAt) {
		r.progress.OldSecretExpired = true
		workflow.GetLogger(ctx).Error("the old client secret expired while the rotation's renewal keeps failing; Marketo's sync fails until it succeeds",
			"workflowId", r.wfID, "step", stage, "failingSince", f.Since, "error", f.Error)
	}
	c := *f
	r.progress.Failing = &c
	r.progress.Error = r.failureText()
	r.say(ctx, r.progress.Error)
}

// failureText is the status line of a failing step.
func (r *rotation) failureText() string {
	f := r.failing
	var b strings.Builder
	if r.progress.OldSecretExpired {
		fmt.Fprintf(&b, "%s at %s: Marketo's sync fails until the renewal succeeds and the new secret is saved in Marketo. ",
			rotationExpiredBanner, r.in.Current.ExpiresAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "%s %s: %s: %s; old secret expires on %s; attempt %d, next at %s (or now with `starter rotate --now`)",
		renewalFailingText, f.Since.UTC().Format(time.RFC3339), f.Step, inert.Text(f.Error),
		r.in.Current.ExpiresAt.UTC().Format(time.RFC3339), f.Attempts, f.RetryAt.UTC().Format(time.RFC3339))
	return b.String()
}

func (r *rotation) recovered(ctx workflow.Context) {
	if r.failing == nil {
		return
	}
	f := r.failing
	r.failing, r.progress.Failing, r.progress.Error = nil, nil, ""
	r.say(ctx, fmt.Sprintf("%s works again after %d failed attempts since %s", f.Step, f.Attempts, f.Since.UTC().Format(time.RFC3339)))
}

// waitRetry sleeps until the failing step's next attempt; rotate-now
// retries at once.
func (r *rotation) waitRetry(ctx workflow.Context) error {
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	timer := workflow.NewTimer(timerCtx, r.failing.RetryAt.Sub(workflow.Now(ctx)))
	rotateNow := workflow.GetSignalChannel(ctx, SignalRotateNow)
	for {
		due := false
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(timer, func(workflow.Future) { due = true })
		sel.AddReceive(rotateNow, func(c workflow.ReceiveChannel, _ bool) {
			due = true
			r.say(ctx, "retrying now, asked by "+receiveOperator(ctx, c).By+". "+r.failureText())
		})
		sel.AddReceive(workflow.GetSignalChannel(ctx, SignalMarketoUpdated), func(c workflow.ReceiveChannel, _ bool) {
			receiveOperator(ctx, c)
			r.say(ctx, "ignored marketo-updated while "+r.failing.Step+" fails. "+r.failureText())
		})
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
		sel.Select(ctx)
		if ctx.Err() != nil {
			return temporal.NewCanceledError("rotation stopped")
		}
		if due {
			return nil
		}
	}
}

// continueFailing continues as new while a step keeps failing, carrying
// the failure and what the next run must pick up.
func (r *rotation) continueFailing(ctx workflow.Context, stage string) error {
	next := r.in
	switch stage {
	case stageProve:
		next.Pending, next.PendingSince, next.Reminders = r.pending, r.progress.WaitingSince, r.progress.Reminders
		next.ConfirmedBy = r.confirmedBy
	case stageRemove:
		if next.RemoveKeyID == "" { // the cycle's own old secret, not one carried in
			next = r.rotated(workflow.Now(ctx))
			next.RemoveKeyID = r.in.Current.KeyID
		}
	}
	next.Failing = r.failing
	return r.continueAsNew(ctx, next)
}
