package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/mktos2s/mktos2s/activities"
)

// OffboardingWorkflowType is the fixed type name of the offboarding.
const (
	OffboardingWorkflowType = "Offboarding"
	ErrOffboardingFailed    = "OffboardingFailed"
	// DefaultVerifyDelay is how long offboarding waits before looking again
	// when something reappeared (a cancelled onboarding's last activity).
	DefaultVerifyDelay = 30 * time.Second
	maxOffboardRounds  = 3
	// changeRemovalFromTable: the removal order became resourceTable's
	// reverse (role associations before HRD policies).
	changeRemovalFromTable = "offboarding-removal-from-table"
)

// Offboarding phases.
const (
	PhaseStopping  = "stopping-workflows"
	PhaseFinding   = "finding-resources"
	PhaseRemoving  = "removing"
	PhaseVerifying = "verifying"
	PhaseDone      = "completed"
	PhasePlanned   = "planned" // dry run
)

// OffboardingInput names the tenant and org to remove.
type OffboardingInput struct {
	TenantID string `json:"tenantId"`
	OrgURL   string `json:"orgUrl"`
	// DryRun lists what would be removed and changes nothing.
	DryRun           bool          `json:"dryRun,omitempty"`
	SecurityRoleName string        `json:"securityRoleName,omitempty"`
	VerifyDelay      time.Duration `json:"verifyDelay,omitempty"`
}

// WithDefaults normalises the input.
func (in OffboardingInput) WithDefaults() OffboardingInput {
	in.TenantID = strings.ToLower(strings.TrimSpace(in.TenantID))
	in.OrgURL = strings.TrimRight(strings.TrimSpace(in.OrgURL), "/")
	if in.SecurityRoleName == "" {
		in.SecurityRoleName = DefaultSecurityRoleName
	}
	if in.VerifyDelay == 0 {
		in.VerifyDelay = DefaultVerifyDelay
	}
	return in
}

// OrgHost is the host[:port] of OrgURL, lower case.
func (in OffboardingInput) OrgHost() string { return OnboardingInput{OrgURL: in.OrgURL}.OrgHost() }

// WorkflowID is OffboardingWorkflowID(in.TenantID, in.OrgHost()).
func (in OffboardingInput) WorkflowID() string {
	return OffboardingWorkflowID(strings.TrimSpace(in.TenantID), in.OrgHost())
}

// Validate checks the input after WithDefaults.
func (in OffboardingInput) Validate() error {
	var errs []FieldError
	if !guidRE.MatchString(in.TenantID) {
		errs = append(errs, FieldError{"tenantId", in.TenantID, "is not a GUID; use the Directory (tenant) ID"})
	}
	if fix := orgURLProblem(in.OrgURL); fix != "" {
		errs = append(errs, FieldError{"orgUrl", in.OrgURL, fix})
	}
	if in.VerifyDelay < time.Second {
		errs = append(errs, FieldError{"verifyDelay", in.VerifyDelay.String(), "is too short; use at least 1s"})
	}
	if len(errs) == 0 {
		return nil
	}
	return &ValidationError{Fields: errs}
}

// OffboardingAction is one thing offboarding removes (or would remove).
type OffboardingAction struct {
	Action      string `json:"action"`   // e.g. remove-application-user
	Target      string `json:"target"`   // the object's ID
	Activity    string `json:"activity"` // the undo activity that does it
	Done        bool   `json:"done"`
	AlreadyGone bool   `json:"alreadyGone,omitempty"`
	Error       string `json:"error,omitempty"`
	Note        string `json:"note,omitempty"` // e.g. the user was disabled, not deleted

	fn any
	in any
}

// OffboardingProgress is what the progress query of an offboarding returns.
type OffboardingProgress struct {
	Phase     string              `json:"phase"`
	TenantID  string              `json:"tenantId"`
	OrgHost   string              `json:"orgHost"`
	DryRun    bool                `json:"dryRun"`
	Round     int                 `json:"round"`
	Actions   []OffboardingAction `json:"actions"`
	Stopped   []string            `json:"stopped,omitempty"` // workflow IDs asked to cancel
	Message   string              `json:"message"`
	Error     string              `json:"error,omitempty"`
	UpdatedAt time.Time           `json:"updatedAt"`
}

// OffboardingResult lists what was (or, in a dry run, would be) removed.
type OffboardingResult struct {
	DryRun  bool                      `json:"dryRun"`
	Actions []OffboardingAction       `json:"actions"`
	Found   activities.FoundResources `json:"found"`
	Rounds  int                       `json:"rounds"`
}

// Offboarding stops the tenant's rotation and onboarding, then removes
// everything found under the onboarding's deterministic names with the
// onboarding's undo activities, newest first, and looks again until
// nothing is left. Every step is idempotent, so it can simply be re-run.
func Offboarding(ctx workflow.Context, in OffboardingInput) (OffboardingResult, error) {
	in = in.WithDefaults()
	p := &OffboardingProgress{TenantID: in.TenantID, OrgHost: in.OrgHost(), DryRun: in.DryRun, Actions: []OffboardingAction{}}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (OffboardingProgress, error) {
		c := *p
		c.Actions = append([]OffboardingAction(nil), p.Actions...)
		return c, nil
	}); err != nil {
		return OffboardingResult{}, err
	}
	say := func(phase, msg string) {
		p.Phase, p.Message, p.UpdatedAt = phase, msg, workflow.Now(ctx)
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("**Offboarding** tenant `%s`, org `%s`%s\n\n**Phase:** %s\n\n%s\n",
			p.TenantID, p.OrgHost, map[bool]string{true: " (dry run)"}[in.DryRun], phase, msg))
	}
	if err := in.Validate(); err != nil {
		p.Phase, p.Error = PhaseFailed, err.Error()
		return OffboardingResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrInvalidInput, nil)
	}
	host := in.OrgHost()
	onboardingID, rotationID := WorkflowID(in.TenantID, host), RotationWorkflowID(in.TenantID, host)

	if !in.DryRun {
		say(PhaseStopping, "stopping the secret rotation and any running onboarding")
		for _, id := range []string{rotationID, onboardingID} {
			// A workflow that is not running is fine: there is nothing to stop.
			if err := workflow.RequestCancelExternalWorkflow(ctx, id, "").Get(ctx, nil); err == nil {
				p.Stopped = append(p.Stopped, id)
			}
		}
	}

	res := OffboardingResult{DryRun: in.DryRun}
	tableOrder := workflow.GetVersion(ctx, changeRemovalFromTable, workflow.DefaultVersion, 1) == 1
	var failed []string
	for round := 1; ; round++ {
		p.Round, res.Rounds = round, round
		say(PhaseFinding, "looking up what exists for this tenant and org")
		var found activities.FoundResources
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, findOptions()), a.FindOnboardedResources, activities.FindResourcesInput{
			TenantID: in.TenantID, OrgURL: in.OrgURL, OrgHost: host, RoleName: in.SecurityRoleName,
			SecretTags: []string{activities.SecretTag(onboardingID), activities.SecretTag(rotationID)},
		}).Get(ctx, &found)
		if err != nil {
			p.Phase, p.Error = PhaseFailed, "finding the resources failed: "+errorMessage(err)
			return res, err
		}
		if round == 1 {
			res.Found = found
		}
		actions := removalPlan(in, found, tableOrder)
		if in.DryRun {
			p.Actions = actions
			res.Actions = actions
			say(PhasePlanned, fmt.Sprintf("dry run: %d removals planned, nothing changed", len(actions)))
			return res, nil
		}
		if found.Empty() {
			say(PhaseDone, fmt.Sprintf("nothing is left for this tenant and org (%d removals in %d rounds)", len(res.Actions), round))
			return res, nil
		}
		if round > maxOffboardRounds || len(failed) > 0 {
			p.Phase = PhaseFailed
			p.Error = "offboarding left resources behind; clean up by hand: " + describeFound(found)
			if len(failed) > 0 {
				p.Error += "; failed: " + strings.Join(failed, "; ")
			}
			return res, temporal.NewApplicationErrorWithOptions(p.Error, ErrOffboardingFailed,
				temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{res}})
		}
		if round > 1 {
			say(PhaseVerifying, "something reappeared; removing it again in "+in.VerifyDelay.String())
			if err := workflow.Sleep(ctx, in.VerifyDelay); err != nil {
				return res, err
			}
		}
		say(PhaseRemoving, fmt.Sprintf("removing %d resources, newest first", len(actions)))
		refusedUser, appRemoved := -1, false
		for _, act := range actions {
			var u activities.UndoResult
			err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, undoOptions()), act.fn, act.in).Get(ctx, &u)
			act.Done, act.AlreadyGone, act.Note = err == nil, u.AlreadyGone, u.Note
			if err != nil {
				act.Error = errorMessage(err)
				failed = append(failed, act.Activity+" "+act.Target+": "+act.Error)
			}
			switch {
			case act.Done && refusedUserDelete(act.Activity, act.Note):
				refusedUser = len(res.Actions)
			case act.Done && act.Activity == activityName(a.RemoveApplication):
				appRemoved = true
			}
			p.Actions = append(p.Actions, act)
			res.Actions = append(res.Actions, act)
			p.UpdatedAt = workflow.Now(ctx)
		}
		// The next look-up finds users through the app, so a user left
		// disabled while the app existed would never be seen again.
		if refusedUser >= 0 && appRemoved {
			if note := deleteUserAfterApp(ctx, res.Actions[refusedUser].in); note != "" {
				res.Actions[refusedUser].Note = note
				p.Actions[refusedUser].Note = note // p.Actions and res.Actions grow together
			}
		}
	}
}

// removalPlan is the onboarding's saga backwards (resourceTable), built
// from what exists now rather than from what an onboarding recorded.
// Offboardings started before the table kept their own order, which removed
// the HRD policies before the role associations; they replay with it.
func removalPlan(in OffboardingInput, f activities.FoundResources, tableOrder bool) []OffboardingAction {
	table := resourceTable()
	if !tableOrder {
		kinds := map[string]resource{}
		for _, r := range table {
			kinds[r.kind] = r
		}
		table = nil
		for _, k := range []string{"application", "service principal", "client secret", "application user", "role association", "HRD policy", "Marketo Config"} {
			table = append(table, kinds[k])
		}
	}
	var out []OffboardingAction
	for i := len(table) - 1; i >= 0; i-- {
		r := table[i]
		for _, t := range r.found(in.TenantID, in.OrgURL, f) {
			out = append(out, OffboardingAction{Action: r.action, Target: t.id, Activity: activityName(r.undo), fn: r.undo, in: t.in})
		}
	}
	return out
}

func describeFound(f activities.FoundResources) string {
	var parts []string
	add := func(what string, ids ...string) {
		for _, id := range ids {
			if id != "" {
				parts = append(parts, what+" "+id)
			}
		}
	}
	add("application", f.AppObjectID)
	add("service principal", f.ServicePrincipalID)
	add("client secret", f.SecretKeyIDs...)
	add("HRD policy", f.HRDPolicyIDs...)
	add("application user", f.SystemUserID)
	add("role association", f.RoleIDs...)
	add("Marketo Config", f.ConfigID)
	return strings.Join(parts, ", ")
}
