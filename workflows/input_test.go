package workflows

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWorkflowID(t *testing.T) {
	assert.Equal(t, "onboarding/"+testTenant+"/contoso.crm.dynamics.com", WorkflowID(testTenant, "contoso.crm.dynamics.com"))
	in := OnboardingInput{TenantID: " 11111111-1111-1111-1111-11111111111A ", OrgURL: "https://Contoso.CRM.dynamics.com/"}
	assert.Equal(t, "onboarding/11111111-1111-1111-1111-11111111111a/contoso.crm.dynamics.com", in.WorkflowID())
}

func TestWithDefaults(t *testing.T) {
	in := OnboardingInput{TenantID: " 11111111-1111-1111-1111-11111111111A", OrgURL: "https://contoso.crm.dynamics.com/"}.WithDefaults()
	assert.Equal(t, OnboardingInput{
		TenantID: "11111111-1111-1111-1111-11111111111a", OrgURL: "https://contoso.crm.dynamics.com",
		AppDisplayName: "Marketo Integration", SecretLifetimeMonths: 12, ConsentTimeout: 7 * 24 * time.Hour,
		ConsentRecheckInterval: 10 * time.Minute, Federation: FederationAuto, SolutionName: "Marketo Lead Management",
		MinSolutionVersion: "4.0.0.14", SecurityRoleName: "Marketo Sync User",
	}, in)
	require.NoError(t, in.Validate())

	kept := OnboardingInput{AppDisplayName: "X", SecretLifetimeMonths: 3, Federation: FederationNever}.WithDefaults()
	assert.Equal(t, "X", kept.AppDisplayName)
	assert.Equal(t, 3, kept.SecretLifetimeMonths)
	assert.Equal(t, FederationNever, kept.Federation)
}

func TestValidateNamesEachBadFieldAndItsFix(t *testing.T) {
	valid := OnboardingInput{TenantID: testTenant, OrgURL: "https://contoso.crm.dynamics.com"}.WithDefaults()
	cases := []struct {
		name   string
		mutate func(*OnboardingInput)
		field  string
		fix    string
	}{
		{"tenant not a GUID", func(in *OnboardingInput) { in.TenantID = "abc" }, "tenantId",
			`tenantId: "abc" is not a GUID; use the Directory (tenant) ID from Entra ID > Overview`},
		{"tenant missing", func(in *OnboardingInput) { in.TenantID = "" }, "tenantId", "is required"},
		{"org over http", func(in *OnboardingInput) { in.OrgURL = "http://contoso.crm.dynamics.com" }, "orgUrl", "must use https"},
		{"org with path", func(in *OnboardingInput) { in.OrgURL = "https://contoso.crm.dynamics.com/main.aspx" }, "orgUrl", "without path"},
		{"org relative", func(in *OnboardingInput) { in.OrgURL = "contoso" }, "orgUrl", "not an absolute URL"},
		{"secret too long", func(in *OnboardingInput) { in.SecretLifetimeMonths = 25 }, "secretLifetimeMonths", "use 1 to 24 months"},
		{"secret negative", func(in *OnboardingInput) { in.SecretLifetimeMonths = -1 }, "secretLifetimeMonths", "use 1 to 24 months"},
		{"consent timeout tiny", func(in *OnboardingInput) { in.ConsentTimeout = time.Second }, "consentTimeout", "at least a minute"},
		{"federation mode", func(in *OnboardingInput) { in.Federation = "sometimes" }, "federation", `"auto", "always" or "never"`},
		{"entity name", func(in *OnboardingInput) { in.SyncFilterEntities = []string{"lead", "Contact Person"} }, "syncFilterEntities[1]", "logical name"},
		{"version", func(in *OnboardingInput) { in.MinSolutionVersion = "4.0.x" }, "minSolutionVersion", "dotted version"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := valid
			c.mutate(&in)
			err := in.Validate()
			var ve *ValidationError
			require.True(t, errors.As(err, &ve), "want *ValidationError, got %v", err)
			require.Len(t, ve.Fields, 1)
			assert.Equal(t, c.field, ve.Fields[0].Field)
			assert.Contains(t, err.Error(), c.fix)
		})
	}

	t.Run("all bad fields at once", func(t *testing.T) {
		err := OnboardingInput{TenantID: "x", OrgURL: "ftp://y", Federation: "z"}.Validate()
		var ve *ValidationError
		require.True(t, errors.As(err, &ve))
		var fields []string
		for _, f := range ve.Fields {
			fields = append(fields, f.Field)
		}
		assert.Equal(t, []string{"tenantId", "orgUrl", "appDisplayName", "secretLifetimeMonths", "consentTimeout",
			"consentRecheckInterval", "federation", "solutionName", "minSolutionVersion", "securityRoleName"}, fields)
	})
}
