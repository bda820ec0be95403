package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/mktos2s/mktos2s/activities"
	"github.com/mktos2s/mktos2s/workflows"
)

// A signal's sender, a consent page's error_description and Microsoft's
// error text reach `starter status` through the progress: no escape
// sequence (screen clear, OSC 52 clipboard write) or bidi override of them
// reaches the terminal.
func TestStatusPrintsOutsideTextInert(t *testing.T) {
	const hostile = "evil\x1b[2J\x1b]52;c;ZXZpbA==\x07 \u202Etxt.exe"
	running := snapshot{WorkflowID: "onboarding/t/h", Execution: "Running", status: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		Progress: workflows.Progress{Step: workflows.StepAwaitingAdminConsent, Message: "consent was signalled by " + hostile,
			ConsentDenial: "2026-12-02T00:00:00Z by Entra admin-consent callback: " + hostile}}
	failed := snapshot{WorkflowID: "onboarding/t/h", Execution: "Failed", status: enumspb.WORKFLOW_EXECUTION_STATUS_FAILED,
		Progress: workflows.Progress{Status: workflows.StatusFailed, FailedStep: workflows.StepCreateApplicationUser, Error: "dataverse: " + hostile,
			Compensation: []workflows.UndoOutcome{{Step: workflows.StepRegisterApplication, Undo: "delete", Error: hostile}}},
		Result: &workflows.OnboardingResult{Validation: []activities.Check{{Name: "role", Reason: hostile}}}}
	var shown bytes.Buffer
	writeChecklist(&shown, running, "")
	assert.Contains(t, shown.String(), "denial reported by the consent page, not acted on", "status shows a reported denial")
	for _, s := range []snapshot{running, failed} {
		var b bytes.Buffer
		writeChecklist(&b, s, "")
		l := newLive(&b)
		l.update(s.Progress)
		out := b.String()
		assert.Contains(t, out, "evil[2J]52;c;ZXZpbA== txt.exe")
		assert.False(t, strings.ContainsAny(out, "\x1b\x07\u202e"), "raw control characters in %q", out)
	}
}

// An undo that ended in a defined state other than "removed" (Dataverse
// kept the application user, disabled and without roles) says so in status
// and in the offboarding's report, as a success and never as FAILED; an
// offboarding's failed removal quotes Microsoft's text inert.
func TestUndoNotesAreShown(t *testing.T) {
	const note = activities.DisabledNotDeleted + ": Dataverse refused to delete application user u1 while its app exists in Entra (0x80048359)"
	const hostile = "evil\x1b[2J \u202Etxt"
	var b bytes.Buffer
	writeFailure(&b, workflows.Progress{Status: workflows.StatusFailed, FailedStep: workflows.StepConfigureMarketoSolution, Error: "refused",
		Compensation: []workflows.UndoOutcome{{Step: workflows.StepCreateApplicationUser, Undo: "RemoveApplicationUser", OK: true, Note: note}}})
	assert.Contains(t, b.String(), "undone "+workflows.StepCreateApplicationUser+" (RemoveApplicationUser): "+note)
	assert.NotContains(t, b.String(), "FAILED")

	b.Reset()
	writeOffboarding(&b, workflows.OffboardingResult{Actions: []workflows.OffboardingAction{
		{Action: "remove application user", Target: "u1", Done: true, Note: note},
		{Action: "remove application", Target: "app", Error: "graph: " + hostile},
	}})
	out := b.String()
	assert.Contains(t, out, "remove application user u1: "+note)
	assert.Contains(t, out, "FAILED: graph: evil[2J txt")
	assert.False(t, strings.ContainsAny(out, "\x1b\u202e"), "raw control characters in %q", out)
}
