package workflows

import (
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"strings"

	"github.com/mktos2s/mktos2s/activities"
)

// a names activities; it is never dereferenced in workflow code.
var a *activities.Activities

// resource is one thing an onboarding creates or changes in the customer's
// tenant or org. The onboarding's undo stack and compensation report,
// Offboarding's removal plan, the --dry-run plans and the tests are all
// derived from resourceTable, so a new resource is described once.
type resource struct {
	kind string // what it is, as the failure report and describeFound say it
	step string // the onboarding step that creates it
	// ids are the JSON names of the Resources fields it owns: recorded when
	// the step succeeds, read by undoInput.
	ids    []string
	effect func(OnboardingInput) string // the plan's "creates" text
	// undo is the activity that removes it (a method value on a: its name
	// is derived, never spelled). It must be idempotent.
	undo     any
	undoText string // the plan's "undo" text
	// undoInput builds the undo's input from the IDs the onboarding recorded.
	undoInput func(tenant, orgURL string, ids Resources) any
	// action names it in Offboarding's plan; found lists what of it exists
	// now (Offboarding works from a fresh look-up, not from a record).
	action string
	found  func(tenant, orgURL string, f activities.FoundResources) []target
}

// target is one object Offboarding removes: its ID and the undo's input.
type target struct {
	id string
	in any
}

// resourceTable lists the resources in the order the onboarding creates
// them; undo and removal run it backwards.
func resourceTable() []resource {
	return []resource{
		{
			kind: "provisioner access", step: StepAdminSession, ids: []string{"provisionerUserId"},
			effect: fixed("Dataverse: the provisioner's own application user with System Administrator in this org only (customer-admin session mode)"),
			undo:   a.RevokeProvisionerAccess, undoText: "disable the provisioner's application user",
			undoInput: func(t, org string, _ Resources) any {
				return activities.RevokeProvisionerAccessInput{TenantID: t, OrgURL: org}
			},
			action: "disable-provisioner-user",
			// Offboarding finds no provisioner access to remove: it asks for a
			// new session when it needs Dataverse again.
			found: func(string, string, activities.FoundResources) []target { return nil },
		},
		{
			kind: "application", step: StepRegisterApplication, ids: []string{"appObjectId", "appId"},
			effect: func(in OnboardingInput) string {
				return "Graph: application " + strconv.Quote(in.AppDisplayName) + " (single tenant, Dynamics CRM user_impersonation)"
			},
			undo: a.RemoveApplication, undoText: "delete the application",
			undoInput: func(t, _ string, r Resources) any {
				return activities.RemoveApplicationInput{TenantID: t, AppObjectID: r.AppObjectID}
			},
			action: "remove-application",
			found: func(t, _ string, f activities.FoundResources) []target {
				return one(f.AppObjectID, activities.RemoveApplicationInput{TenantID: t, AppObjectID: f.AppObjectID})
			},
		},
		{
			kind: "service principal", step: StepCreateServicePrincipal, ids: []string{"servicePrincipalId"},
			effect: fixed("Graph: service principal (enterprise app) for the application"),
			undo:   a.RemoveServicePrincipal, undoText: "delete the service principal",
			undoInput: func(t, _ string, r Resources) any {
				return activities.RemoveServicePrincipalInput{TenantID: t, ServicePrincipalID: r.ServicePrincipalID}
			},
			action: "remove-service-principal",
			found: func(t, _ string, f activities.FoundResources) []target {
				return one(f.ServicePrincipalID, activities.RemoveServicePrincipalInput{TenantID: t, ServicePrincipalID: f.ServicePrincipalID})
			},
		},
		{
			kind: "client secret", step: StepAddClientSecret, ids: []string{"secretKeyId"},
			effect: func(in OnboardingInput) string {
				return fmt.Sprintf("Graph: client secret valid %d months", in.SecretLifetimeMonths)
			},
			undo: a.RemoveClientSecret, undoText: "remove the secret",
			undoInput: func(t, _ string, r Resources) any {
				return activities.RemoveClientSecretInput{TenantID: t, AppObjectID: r.AppObjectID, KeyID: r.SecretKeyID}
			},
			action: "remove-client-secret",
			found: func(t, _ string, f activities.FoundResources) []target {
				return each(f.SecretKeyIDs, func(id string) any {
					return activities.RemoveClientSecretInput{TenantID: t, AppObjectID: f.AppObjectID, KeyID: id}
				})
			},
		},
		{
			kind: "application user", step: StepCreateApplicationUser, ids: []string{"systemUserId"},
			effect: fixed("Dataverse: application user in the root business unit (an existing one is adopted)"),
			undo:   a.RemoveApplicationUser, undoText: "disable, then delete the user",
			undoInput: func(t, org string, r Resources) any {
				return activities.RemoveApplicationUserInput{TenantID: t, OrgURL: org, SystemUserID: r.SystemUserID}
			},
			action: "remove-application-user",
			found: func(t, org string, f activities.FoundResources) []target {
				return one(f.SystemUserID, activities.RemoveApplicationUserInput{TenantID: t, OrgURL: org, SystemUserID: f.SystemUserID})
			},
		},
		{
			kind: "HRD policy", step: StepConfigureHomeRealmDiscovery, ids: []string{"hrdPolicyId"},
			effect: fixed("Graph: a homeRealmDiscoveryPolicy (AccelerateToFederatedDomain=false, AllowCloudPasswordValidation=true) assigned to the service principal"),
			undo:   a.RemoveHRDPolicy, undoText: "unassign and delete the policy",
			undoInput: func(t, _ string, r Resources) any {
				return activities.RemoveHRDPolicyInput{TenantID: t, ServicePrincipalID: r.ServicePrincipalID, PolicyID: r.HRDPolicyID}
			},
			action: "remove-hrd-policy",
			found: func(t, _ string, f activities.FoundResources) []target {
				return each(f.HRDPolicyIDs, func(id string) any {
					return activities.RemoveHRDPolicyInput{TenantID: t, ServicePrincipalID: f.ServicePrincipalID, PolicyID: id}
				})
			},
		},
		{
			kind: "role association", step: StepAssignSecurityRole, ids: []string{"roleId"},
			effect: func(in OnboardingInput) string {
				return "Dataverse: role " + strconv.Quote(in.SecurityRoleName) + " on the application user"
			},
			undo: a.RemoveRoleAssociation, undoText: "remove the role from the user",
			undoInput: func(t, org string, r Resources) any {
				return activities.RemoveRoleAssociationInput{TenantID: t, OrgURL: org, SystemUserID: r.SystemUserID, RoleID: r.RoleID}
			},
			action: "remove-role-association",
			found: func(t, org string, f activities.FoundResources) []target {
				return each(f.RoleIDs, func(id string) any {
					return activities.RemoveRoleAssociationInput{TenantID: t, OrgURL: org, SystemUserID: f.SystemUserID, RoleID: id}
				})
			},
		},
		{
			kind: "Marketo Config", step: StepConfigureMarketoSolution, ids: []string{"configId", "configPreviousUserId"},
			effect: fixed("Dataverse: Marketo Config Default -> Marketo User = the application user"),
			undo:   a.RestoreMarketoConfig, undoText: "restore the previous Marketo User",
			undoInput: func(t, org string, r Resources) any {
				return activities.RestoreMarketoConfigInput{TenantID: t, OrgURL: org, ConfigID: r.ConfigID,
					SystemUserID: r.SystemUserID, PreviousUserID: r.ConfigPreviousUserID}
			},
			action: "clear-marketo-config-user",
			found: func(t, org string, f activities.FoundResources) []target {
				// An empty previous user clears the lookup: the sync user is going away.
				return one(f.ConfigID, activities.RestoreMarketoConfigInput{TenantID: t, OrgURL: org, ConfigID: f.ConfigID, SystemUserID: f.SystemUserID})
			},
		},
	}
}

func fixed(s string) func(OnboardingInput) string { return func(OnboardingInput) string { return s } }

func one(id string, in any) []target {
	if id == "" {
		return nil
	}
	return []target{{id, in}}
}

func each(ids []string, in func(string) any) []target {
	out := make([]target, 0, len(ids))
	for _, id := range ids {
		out = append(out, target{id, in(id)})
	}
	return out
}

// createdBy lists the resources step creates, in table order.
func createdBy(step string) []resource {
	var out []resource
	for _, r := range resourceTable() {
		if r.step == step {
			out = append(out, r)
		}
	}
	return out
}

// activityName is the name the SDK registers and schedules fn under (the
// method's name), so a report never spells it separately and cannot drift.
func activityName(fn any) string {
	full := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
	return strings.TrimSuffix(full[strings.LastIndex(full, ".")+1:], "-fm")
}
