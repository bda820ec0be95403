package workflows

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/activities"
)

// Contract C1: a denial the consent page reports is recorded and shown,
// and the admin may still consent; only an operator's denial (or the
// timeout) ends the wait.
func TestConsentPageDenialDoesNotEndTheWait(t *testing.T) {
	for name, source := range map[string]string{"callback": ConsentSourceCallback, "no source": ""} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.mock()
			var afterDenial Progress
			h.signal(time.Hour, ConsentSignal{Granted: false, By: "consent page", Note: "AADSTS65004: the admin [declined](https://evil)",
				Source: source})
			h.queryAt(time.Hour+time.Minute, &afterDenial)
			h.grantAndSignal(3 * time.Hour)
			h.env.ExecuteWorkflow(Onboarding, input())

			require.NoError(t, h.env.GetWorkflowError())
			assert.Equal(t, StepAwaitingAdminConsent, afterDenial.Step)
			assert.Contains(t, afterDenial.Message, "denial reported by the consent page at 2026-03-02T10:00:00Z")
			assert.Contains(t, afterDenial.Message, "AADSTS65004")
			assert.Contains(t, afterDenial.ConsentDenial, "AADSTS65004")
			assert.Empty(t, h.undos())
			assert.Contains(t, h.progress().CompletedSteps, StepValidateConnection)
		})
	}
}

// The Markdown the UI renders carries the page's text inert: no link.
func TestConsentDenialTextIsInertInTheDetails(t *testing.T) {
	h := newHarness(t)
	h.mock()
	var details string
	h.signal(time.Hour, ConsentSignal{Granted: false, Note: "see [here](https://evil.example)", Source: ConsentSourceCallback})
	h.env.RegisterDelayedCallback(func() { details = h.currentDetails() }, 2*time.Hour)
	h.grantAndSignal(3 * time.Hour)
	h.env.ExecuteWorkflow(Onboarding, input())
	require.NoError(t, h.env.GetWorkflowError())
	assert.Contains(t, details, `\[here\]\(https\:`)
	assert.NotContains(t, details, "[here](https://evil.example)")
}

func TestOperatorDenialEndsTheWait(t *testing.T) {
	h := newHarness(t)
	h.mock()
	h.signal(time.Hour, ConsentSignal{Granted: false, By: "ops@msp", Source: ConsentSourceOperator})
	h.env.ExecuteWorkflow(Onboarding, input())
	err := h.env.GetWorkflowError()
	require.Error(t, err)
	assert.Equal(t, activities.ErrConsentNotGranted, appErr(t, err).Type())
	assert.Contains(t, err.Error(), "denied by ops@msp")
	assert.Equal(t, []string{"RemoveServicePrincipal", "RemoveApplication"}, h.undos())
}

// A signal made for the link of another run (an earlier onboarding of the
// same tenant and org) is recorded and changes nothing, even a grant.
func TestSignalForAnotherRunIsIgnored(t *testing.T) {
	h := newHarness(t)
	h.mock()
	var after Progress
	h.signal(time.Hour, ConsentSignal{Granted: true, By: "consent page", Source: ConsentSourceCallback, RunID: "run-of-an-earlier-onboarding"})
	h.signal(2*time.Hour, ConsentSignal{Granted: false, Source: ConsentSourceOperator, RunID: "run-of-an-earlier-onboarding"})
	h.queryAt(2*time.Hour+time.Minute, &after)
	h.grantAndSignal(3 * time.Hour)
	h.env.ExecuteWorkflow(Onboarding, input())

	require.NoError(t, h.env.GetWorkflowError())
	assert.Contains(t, after.Message, "link of another run (run-of-an-earlier-onboarding)")
	verifies := 0
	for _, s := range h.startedActivities() {
		if s == "VerifyConsent" {
			verifies++
		}
	}
	assert.Equal(t, 1, verifies, "only the last, matching signal was verified")
}

// The test environment's first run ID is the run ID: a signal naming it is this run's.
func TestSignalForThisRunCounts(t *testing.T) {
	h := newHarness(t)
	h.mock()
	h.grant(time.Hour)
	h.signal(time.Hour, ConsentSignal{Granted: true, Source: ConsentSourceCallback, RunID: "default-test-run-id"})
	h.env.ExecuteWorkflow(Onboarding, input())
	require.NoError(t, h.env.GetWorkflowError())
	assert.Contains(t, h.startedActivities(), "VerifyConsent")
}

func TestDecodeConsentC1Fields(t *testing.T) {
	got, problem := decodeConsent(rawOf(t, map[string]any{"granted": false, "source": "callback", "runId": "r1"}))
	require.Empty(t, problem)
	assert.Equal(t, &ConsentSignal{Source: ConsentSourceCallback, RunID: "r1"}, got)
	_, problem = decodeConsent(rawOf(t, map[string]any{"granted": true, "source": 3}))
	assert.Contains(t, problem, `"source" must be a string`)
}

func TestTruncateKeepsValidUTF8(t *testing.T) {
	s := strings.Repeat("a", maxSignalText-1) + "é" + "tail"
	got := truncate(s)
	assert.True(t, utf8.ValidString(got), "%q", got)
	assert.Equal(t, strings.Repeat("a", maxSignalText-1)+"…", got)
	assert.Equal(t, "short", truncate("short"))
}
