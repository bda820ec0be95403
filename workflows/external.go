// Package workflows holds the Onboarding, SecretRotation and Offboarding
// workflows: the order of the steps, the admin-consent wait, the saga that
// undoes what was created, and the state an operator can query. It performs
// no I/O itself; every side effect is an activity from package activities.
package workflows

import (
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Fixed external names (DESIGN.md): the CLI, the UI and the tests use them.
const (
	TaskQueue          = "mktos2s-onboarding"
	WorkflowType       = "Onboarding"
	SignalAdminConsent = "admin-consent"
	QueryProgress      = "progress"
)

// Search attributes (Keyword). They are registered on the namespace by the
// dev stack; the starter sets TenantId and OrgHost at start.
var (
	SearchTenantID       = temporal.NewSearchAttributeKeyKeyword("TenantId")
	SearchOrgHost        = temporal.NewSearchAttributeKeyKeyword("OrgHost")
	SearchOnboardingStep = temporal.NewSearchAttributeKeyKeyword("OnboardingStep")
)

// WorkflowID is the one workflow ID per tenant and Dynamics org, so a second
// start for the same pair is refused by Temporal instead of creating a twin.
func WorkflowID(tenantID, orgHost string) string {
	return "onboarding/" + strings.ToLower(tenantID) + "/" + strings.ToLower(orgHost)
}

// RotationWorkflowID is the one rotation per tenant and org.
func RotationWorkflowID(tenantID, orgHost string) string {
	return "rotation/" + strings.ToLower(tenantID) + "/" + strings.ToLower(orgHost)
}

// OffboardingWorkflowID is the one offboarding per tenant and org.
func OffboardingWorkflowID(tenantID, orgHost string) string {
	return "offboarding/" + strings.ToLower(tenantID) + "/" + strings.ToLower(orgHost)
}

// Register registers the three workflows under their fixed type names. A
// worker on TaskQueue must serve all of them: a completed onboarding starts
// its rotation as a child on the same queue.
func Register(r worker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(Onboarding, workflow.RegisterOptions{Name: WorkflowType})
	r.RegisterWorkflowWithOptions(SecretRotation, workflow.RegisterOptions{Name: RotationWorkflowType})
	r.RegisterWorkflowWithOptions(Offboarding, workflow.RegisterOptions{Name: OffboardingWorkflowType})
}
