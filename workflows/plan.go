package workflows

import (
	"strings"
)

// StepPlan describes one step for --dry-run and for the docs.
type StepPlan struct {
	Name    string `json:"name"`
	Effect  string `json:"effect"` // what it creates or changes
	Undo    string `json:"undo,omitempty"`
	Skipped bool   `json:"skipped,omitempty"`
	Note    string `json:"note,omitempty"` // why it is skipped or conditional
}

// stepSpec is one step of the onboarding. Steps that create something say
// so in resourceTable; the rest describe their effect here.
type stepSpec struct {
	name     string
	activity any                          // the activity that performs it
	effect   func(OnboardingInput) string // nil: the effects of the resources it creates
	// when says whether the step runs for in: skipped for sure, or a note
	// on the condition. Nil: always.
	when func(in OnboardingInput) (skipped bool, note string)
}

// onboardingPlan is the order Onboarding runs its steps in.
func onboardingPlan() []stepSpec {
	return []stepSpec{
		{name: StepAdminSession, activity: a.AddProvisionerAppUser,
			effect: fixed("waits for the customer's admin to open one link (consent to the provisioner, sign in once); with the admin's token, used once, the Power Platform admin API adds the provisioner to this org's environment"),
			when: func(in OnboardingInput) (bool, string) {
				if !in.AdminSession {
					return true, "the provisioner is pre-consented (no --admin-session)"
				}
				if in.KeepProvisionerAccess {
					return false, "the provisioner's application user stays enabled after validation (keepProvisionerAccess)"
				}
				return false, "the provisioner's application user is disabled after validation"
			}},
		{name: StepPreflight, activity: a.Preflight, effect: func(in OnboardingInput) string {
			return "reads only: tenant, org, solution " + in.SolutionName + " >= " + in.MinSolutionVersion +
				", root business unit, role " + in.SecurityRoleName + ", Marketo Config Default, domains"
		}},
		{name: StepRegisterApplication, activity: a.RegisterApplication},
		{name: StepCreateServicePrincipal, activity: a.CreateServicePrincipal},
		{name: StepAwaitingAdminConsent, activity: a.CheckConsent,
			effect: fixed("nothing; waits for an admin to grant consent at the consent URL, then verifies the grant")},
		{name: StepAddClientSecret, activity: a.AddClientSecret},
		{name: StepCreateApplicationUser, activity: a.CreateApplicationUser},
		{name: StepConfigureHomeRealmDiscovery, activity: a.ConfigureHomeRealmDiscovery, when: func(in OnboardingInput) (bool, string) {
			switch in.Federation {
			case FederationNever:
				return true, "federation=never"
			case FederationAlways:
				return false, "federation=always"
			default:
				return false, "only if the tenant has a verified Federated (AD FS) domain"
			}
		}},
		{name: StepAssignSecurityRole, activity: a.AssignSecurityRole},
		{name: StepConfigureMarketoSolution, activity: a.ConfigureMarketoSolution},
		{name: StepPublishCustomizations, activity: a.PublishCustomizations, effect: fixed("Dataverse: Publish All Customizations")},
		{name: StepCreateSyncFilter, activity: a.CreateSyncFilter,
			effect: func(in OnboardingInput) string {
				if len(in.SyncFilterEntities) == 0 {
					return "Dataverse: Boolean column new_synctomkto on the chosen entities"
				}
				return "Dataverse: Boolean column new_synctomkto on " + strings.Join(in.SyncFilterEntities, ", ")
			},
			// The columns are not a resource: they may hold the customer's data by the time anything is undone.
			when: func(in OnboardingInput) (bool, string) {
				if len(in.SyncFilterEntities) == 0 {
					return true, "no syncFilterEntities given"
				}
				return false, "opt-in; the column is kept on undo (it may hold data)"
			}},
		{name: StepValidateConnection, activity: a.ValidateConnection,
			effect: fixed("reads only: signs in as the new app with the new secret and runs Marketo's sync validation checks")},
	}
}

// Steps returns the plan the workflow follows for in (after WithDefaults).
func Steps(in OnboardingInput) []StepPlan {
	var out []StepPlan
	for _, s := range onboardingPlan() {
		p := StepPlan{Name: s.name}
		var effects, undos []string
		for _, r := range createdBy(s.name) {
			effects, undos = append(effects, r.effect(in)), append(undos, r.undoText)
		}
		if s.effect != nil {
			effects = append(effects, s.effect(in))
		}
		p.Effect, p.Undo = strings.Join(effects, "; "), strings.Join(undos, "; ")
		if s.when != nil {
			p.Skipped, p.Note = s.when(in)
		}
		out = append(out, p)
	}
	return out
}

// planStep is the spec of the named step; it panics on a name that is not
// in the plan, which is a programming error every test run would hit.
func planStep(name string) stepSpec {
	for _, s := range onboardingPlan() {
		if s.name == name {
			return s
		}
	}
	panic("workflows: no step " + name + " in onboardingPlan")
}
