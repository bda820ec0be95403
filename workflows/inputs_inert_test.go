package workflows

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkpb "go.temporal.io/api/sdk/v1"
)

// A workflow started by any Temporal client, not only `starter start`,
// refuses an org URL that is an IP literal or a disguised host (the product's
// one check, internal/orgurl).
func TestInputsRefuseDisguisedOrgURLs(t *testing.T) {
	for _, org := range []string{"https://10.0.0.7", "https://[::1]:8443", "https://contoso%2ecrm.dynamics.com",
		"https://contoso.crm.dynamics.com.", "https://a\\@contoso.crm.dynamics.com", "https://contoso\uff0ecrm.dynamics.com"} {
		t.Run(org, func(t *testing.T) {
			for name, err := range map[string]error{
				"onboarding":  OnboardingInput{TenantID: "11111111-1111-1111-1111-111111111111", OrgURL: org}.WithDefaults().Validate(),
				"offboarding": OffboardingInput{TenantID: "11111111-1111-1111-1111-111111111111", OrgURL: org}.WithDefaults().Validate(),
			} {
				var ve *ValidationError
				require.True(t, errors.As(err, &ve), "%s accepted %s: %v", name, org, err)
				assert.Equal(t, "orgUrl", ve.Fields[0].Field, name)
			}
		})
	}
}

// The app's display name is shown in Entra, on the consent page and in
// terminals: control and bidi characters are refused, naming the field.
func TestInputRefusesControlCharactersInTheAppName(t *testing.T) {
	for _, name := range []string{"Marketo\x00Integration", "Marketo \u202Enoitargetni", "Marketo\x1b[2J", "Marketo\nIntegration", "\u2066Marketo"} {
		err := OnboardingInput{TenantID: "11111111-1111-1111-1111-111111111111", OrgURL: "https://contoso.crm.dynamics.com", AppDisplayName: name}.WithDefaults().Validate()
		var ve *ValidationError
		require.True(t, errors.As(err, &ve), "accepted %q", name)
		require.Len(t, ve.Fields, 1)
		assert.Equal(t, "appDisplayName", ve.Fields[0].Field)
		assert.NotContains(t, ve.Error(), "\x1b", "the refusal does not print what it refuses")
	}
	require.NoError(t, OnboardingInput{TenantID: "11111111-1111-1111-1111-111111111111", OrgURL: "https://contoso.crm.dynamics.com",
		AppDisplayName: "Marketo Integration – Müller"}.WithDefaults().Validate())
}

// A signal's sender is outside text: in the UI's current details (Markdown)
// it shows as literal characters, never as a link, an image or formatting.
func TestCurrentDetailsShowOutsideTextInert(t *testing.T) {
	h := newHarness(t)
	h.mock()
	var details string
	h.signal(time.Minute, ConsentSignal{Granted: true, By: "[click here](https://evil.example) ![x](https://evil.example/x.png) \x1b[2J"})
	h.env.RegisterDelayedCallback(func() {
		v, err := h.env.QueryWorkflow("__temporal_workflow_metadata")
		require.NoError(t, err)
		var md sdkpb.WorkflowMetadata
		require.NoError(t, v.Get(&md))
		details = md.GetCurrentDetails()
	}, 2*time.Minute)
	h.grantAndSignal(3 * time.Minute)
	h.env.ExecuteWorkflow(Onboarding, input())
	require.NoError(t, h.env.GetWorkflowError())

	assert.Contains(t, details, `\[click here\]\(https\:\/\/evil\.example\)`, "the sender is shown escaped: %s", details)
	assert.NotContains(t, details, "[click here](")
	assert.NotContains(t, details, "![x](")
	assert.NotContains(t, details, "\x1b")
}
