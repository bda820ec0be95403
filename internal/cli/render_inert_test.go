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
