package cli

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/config"
	"github.com/mktos2s/mktos2s/workflows"
)

func TestValidateInputConsentTimeoutWithinStateTTL(t *testing.T) {
	base := config.Config{
		Microsoft: config.Microsoft{AllowedOrgSuffixes: []string{".crm.dynamics.com"}},
		Consent:   config.Consent{StateTTL: 168 * time.Hour},
	}
	tests := []struct {
		name    string
		key     string
		timeout time.Duration
		wantErr bool
	}{
		{"unsigned links do not expire", "", 30 * 24 * time.Hour, false},
		{"signed, timeout equal to the lifetime", "configured", 168 * time.Hour, false},
		{"signed, timeout longer than the lifetime", "configured", 169 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			cfg.Consent.CallbackKey = tt.key
			in := workflows.OnboardingInput{
				TenantID: "11111111-1111-1111-1111-111111111111", OrgURL: "https://contoso.crm.dynamics.com",
				ConsentTimeout: tt.timeout,
			}.WithDefaults()
			err := validateInput(in, cfg)
			if !tt.wantErr {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, want := range []string{"consentTimeout", "consent.stateTTL", "--consent-timeout 168h0m0s"} {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}
