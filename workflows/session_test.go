package workflows

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/activities"
)

// mockSession adds the activities of the customer-admin session mode.
func (h *harness) mockSession() {
	var a *activities.Activities
	fail := func(name string) error {
		if h.failAt == name {
			return permanent(name + " refused: grant X")
		}
		return nil
	}
	h.env.OnActivity(a.BuildSessionURL, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BuildSessionURLInput) (activities.BuildSessionURLResult, error) {
			return activities.BuildSessionURLResult{URL: "https://login.example/" + in.TenantID + "/v2.0/adminconsent?client_id=prov"}, nil
		})
	h.env.OnActivity(a.AddProvisionerAppUser, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.AddProvisionerAppUserInput) (activities.AddProvisionerAppUserResult, error) {
			if in.SealedCode != "sealed-code" || in.Nonce != "nonce-1" {
				return activities.AddProvisionerAppUserResult{}, permanent("wrong session payload")
			}
			return activities.AddProvisionerAppUserResult{EnvironmentID: "env-1", AdminUsername: "admin@contoso"}, fail("AddProvisionerAppUser")
		})
	h.env.OnActivity(a.AwaitProvisionerAppUser, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.AwaitProvisionerAppUserInput) (activities.AwaitProvisionerAppUserResult, error) {
			return activities.AwaitProvisionerAppUserResult{SystemUserID: "prov-user-1"}, fail("AwaitProvisionerAppUser")
		})
	h.env.OnActivity(a.RevokeProvisionerAccess, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.RevokeProvisionerAccessInput) (activities.RevokeProvisionerAccessResult, error) {
			_, err := h.undoResult("RevokeProvisionerAccess")
			return activities.RevokeProvisionerAccessResult{Disabled: err == nil}, err
		})
}

func (h *harness) signalSession(after time.Duration, s AdminSessionSignal) {
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(SignalAdminSession, s) }, after)
}

func sessionInput() OnboardingInput {
	in := input()
	in.AdminSession = true
	return in
}

var goodSession = AdminSessionSignal{SealedCode: "sealed-code", Nonce: "nonce-1"}

func TestSessionModeAddsTheProvisionerFirstAndDisablesItAfterValidation(t *testing.T) {
	for _, keep := range []bool{false, true} {
		h := newHarness(t)
		h.mock()
		h.mockSession()
		var waiting Progress
		h.queryAt(30*time.Second, &waiting)
		h.signalSession(time.Minute, goodSession)
		h.grantAndSignal(2 * time.Minute)
		in := sessionInput()
		in.KeepProvisionerAccess = keep
		h.env.ExecuteWorkflow(Onboarding, in)
		require.NoError(t, h.env.GetWorkflowError())

		assert.Equal(t, StepAdminSession, waiting.Step)
		assert.Equal(t, StatusWaitingConsent, waiting.Status)
		assert.Contains(t, waiting.SessionURL, "/v2.0/adminconsent")
		assert.Nil(t, waiting.ProvisionerAccess, "nothing held while waiting")

		started := h.startedActivities()
		require.GreaterOrEqual(t, len(started), 4)
		assert.Equal(t, []string{"BuildSessionURL", "AddProvisionerAppUser", "AwaitProvisionerAppUser", "Preflight"}, started[:4],
			"the provisioner needs its access before its first call")
		p := h.progress()
		require.NotNil(t, p.ProvisionerAccess)
		assert.Equal(t, "env-1", p.ProvisionerAccess.Environment)
		assert.Equal(t, "admin@contoso", p.ProvisionerAccess.LentBy)
		assert.Equal(t, "prov-user-1", p.Resources.ProvisionerUserID)
		assert.Contains(t, p.CompletedSteps, StepAdminSession)
		if keep {
			assert.NotContains(t, started, "RevokeProvisionerAccess")
			assert.Contains(t, p.ProvisionerAccess.Until, "kept")
		} else {
			assert.Equal(t, "RevokeProvisionerAccess", started[len(started)-1], "disabled right after validation")
			assert.Equal(t, "disabled", p.ProvisionerAccess.Until)
			assert.False(t, p.ProvisionerAccess.DisabledAt.IsZero())
		}
	}
}

func TestSessionCancelledSignInIsRecordedAndTheTimeoutSaysWhatToDo(t *testing.T) {
	h := newHarness(t)
	h.mock()
	h.mockSession()
	var after Progress
	h.signalSession(time.Minute, AdminSessionSignal{Error: "access_denied", ErrorSubcode: "cancel", ErrorDescription: "AADSTS50059: The user canceled the sign-in.\x1b[31m"})
	h.queryAt(2*time.Minute, &after)
	in := sessionInput()
	in.ConsentTimeout = time.Hour
	h.env.ExecuteWorkflow(Onboarding, in)

	err := h.env.GetWorkflowError()
	require.Error(t, err)
	assert.Contains(t, after.Message, "the admin cancelled the sign-in")
	assert.Contains(t, after.Message, "the link still works")
	assert.NotContains(t, after.Message, "\x1b", "text from outside is inert")
	assert.Contains(t, err.Error(), "did not complete the session within 1h0m0s")
	assert.Contains(t, err.Error(), "the admin cancelled the sign-in")
	assert.Contains(t, err.Error(), "have a Power Platform administrator of the tenant open the new link")
	assert.Equal(t, activities.ErrConsentNotGranted, appErr(t, err).Type())
	assert.Equal(t, []string{"BuildSessionURL"}, h.startedActivities(), "nothing else ran")
	p := h.progress()
	assert.Contains(t, p.Error, "nothing had been created")
	assert.Equal(t, StepAdminSession, p.FailedStep)
}

func TestSessionIgnoresALinkOfAnotherRun(t *testing.T) {
	h := newHarness(t)
	h.mock()
	h.mockSession()
	other := goodSession
	other.RunID = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
	h.signalSession(time.Minute, other)
	in := sessionInput()
	in.ConsentTimeout = 10 * time.Minute
	h.env.ExecuteWorkflow(Onboarding, in)
	require.Error(t, h.env.GetWorkflowError())
	assert.NotContains(t, h.startedActivities(), "AddProvisionerAppUser")
}

func TestSessionFailureAfterAddAppUserDisablesTheProvisioner(t *testing.T) {
	h := newHarness(t)
	h.failAt = "AwaitProvisionerAppUser"
	h.mock()
	h.mockSession()
	h.signalSession(time.Minute, goodSession)
	h.env.ExecuteWorkflow(Onboarding, sessionInput())
	err := h.env.GetWorkflowError()
	require.Error(t, err)
	assert.Equal(t, []string{"RevokeProvisionerAccess"}, h.undos(), "a user that appears late is disabled too")
	assert.True(t, strings.Contains(err.Error(), "AwaitProvisionerAppUser refused"), err.Error())
	assert.NotContains(t, h.startedActivities(), "Preflight")
}
