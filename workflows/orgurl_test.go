package workflows

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
