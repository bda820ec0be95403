package workflows_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/testenv"
	"github.com/mktos2s/mktos2s/workflows"
)

const contoso = "11111111-1111-1111-1111-111111111111"

func validInput() workflows.OnboardingInput {
	return workflows.OnboardingInput{TenantID: contoso, OrgURL: "https://contoso.crm.dynamics.com"}
}

// TestValidateBadInputTable: every bad field is named, with its fix.
func TestValidateBadInputTable(t *testing.T) {
	require.NoError(t, validInput().WithDefaults().Validate(), "the baseline is valid")
	tests := []struct {
		name   string
		change func(*workflows.OnboardingInput)
		field  string
		fix    string
	}{
		{"malformed tenant ID", func(in *workflows.OnboardingInput) { in.TenantID = "contoso.onmicrosoft.com" }, "tenantId", "Directory (tenant) ID"},
		{"http org URL", func(in *workflows.OnboardingInput) { in.OrgURL = "http://contoso.crm.dynamics.com" }, "orgUrl", "must use https"},
		{"app display name over 120 characters", func(in *workflows.OnboardingInput) { in.AppDisplayName = strings.Repeat("M", 121) }, "appDisplayName", "120"},
		{"secret lifetime negative", func(in *workflows.OnboardingInput) { in.SecretLifetimeMonths = -1 }, "secretLifetimeMonths", "1 to 24"},
		{"secret lifetime over 24 months", func(in *workflows.OnboardingInput) { in.SecretLifetimeMonths = 25 }, "secretLifetimeMonths", "1 to 24"},
		// 0 means "the default" in the workflow input (omitempty JSON); the
		// starter must refuse an explicit 0 (starter/start_badinput_test.go).
		{"consent timeout too short", func(in *workflows.OnboardingInput) { in.ConsentTimeout = time.Second }, "consentTimeout", "at least a minute"},
		{"minimum solution version not a version", func(in *workflows.OnboardingInput) { in.MinSolutionVersion = "4.0.x" }, "minSolutionVersion", "4.0.0.14"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := validInput()
			tt.change(&in)
			err := in.WithDefaults().Validate()
			require.Error(t, err)
			var ve *workflows.ValidationError
			require.True(t, errors.As(err, &ve), "want a *ValidationError, got %T", err)
			require.Len(t, ve.Fields, 1, "only the bad field is reported: %v", err)
			assert.Equal(t, tt.field, ve.Fields[0].Field)
			assert.Contains(t, ve.Fields[0].Fix, tt.fix)
			assert.Contains(t, err.Error(), tt.field)
		})
	}
}

func secretsAdded(st emulator.State) int {
	n := 0
	for _, t := range st.Tenants {
		n += len(t.PasswordEvents)
	}
	return n
}

func createdApps(st emulator.State) int {
	n := 0
	for _, t := range st.Tenants {
		for _, a := range t.Applications {
			if !a.Seeded {
				n++
			}
		}
	}
	return n
}

// TestWorkflowRefusesBadInputStartedDirectly: input that skips the starter
// (another client, a script) is refused by the workflow itself, with the
// field named, before any activity runs.
func TestWorkflowRefusesBadInputStartedDirectly(t *testing.T) {
	env, c := testenv.StartForTest(t, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	orgURL := env.Emu.OrgURL("contoso.crm.localhost")
	tests := []struct {
		name  string
		in    workflows.OnboardingInput
		field string
	}{
		{"malformed tenant ID", workflows.OnboardingInput{TenantID: "not-a-guid", OrgURL: orgURL}, "tenantId"},
		{"http org URL", workflows.OnboardingInput{TenantID: contoso, OrgURL: strings.Replace(orgURL, "https:", "http:", 1)}, "orgUrl"},
		{"secret lifetime over 24 months", workflows.OnboardingInput{TenantID: contoso, OrgURL: orgURL, SecretLifetimeMonths: 30}, "secretLifetimeMonths"},
		{"app display name over 120 characters", workflows.OnboardingInput{TenantID: contoso, OrgURL: orgURL, AppDisplayName: strings.Repeat("M", 121)}, "appDisplayName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := env.Emu.State()
			run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "badinput/" + strings.ReplaceAll(tt.name, " ", "-"),
				TaskQueue: workflows.TaskQueue}, workflows.WorkflowType, tt.in)
			require.NoError(t, err)
			wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
			defer wcancel()
			err = run.Get(wctx, nil)
			if wctx.Err() != nil {
				_ = c.CancelWorkflow(ctx, run.GetID(), run.GetRunID())
				_ = run.Get(ctx, nil)
				t.Fatalf("the workflow accepted the input and ran on")
			}
			var ae *temporal.ApplicationError
			require.True(t, errors.As(err, &ae), "want an application error, got %v", err)
			assert.Equal(t, workflows.ErrInvalidInput, ae.Type())
			assert.Contains(t, ae.Error(), tt.field)
			after := env.Emu.State()
			assert.Equal(t, createdApps(before), createdApps(after), "no application created")
			assert.Equal(t, secretsAdded(before), secretsAdded(after), "no secret added")
		})
	}
}

// TestMalformedConsentSignal: a malformed admin-consent signal is reported
// with the expected shape and changes nothing: the onboarding keeps waiting,
// adds no secret and creates no user, and a cancel still undoes it all.
func TestMalformedConsentSignal(t *testing.T) {
	env, c := testenv.StartForTest(t, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	in := workflows.OnboardingInput{TenantID: contoso, OrgURL: env.Emu.OrgURL("contoso.crm.localhost"), ConsentRecheckInterval: time.Hour}
	run, err := testenv.StartOnboarding(ctx, c, in)
	require.NoError(t, err)
	id := in.WithDefaults().WorkflowID()
	_, err = testenv.WaitProgress(ctx, c, id, time.Minute, func(p workflows.Progress) bool {
		return p.Step == workflows.StepAwaitingAdminConsent && p.ConsentURL != ""
	})
	require.NoError(t, err)
	before := env.Emu.State()

	for _, tt := range []struct {
		name    string
		payload any
		problem string
	}{
		{"no granted field", map[string]any{"grant": true, "by": "admin"}, `"granted" is missing`},
		{"granted not a boolean", map[string]any{"granted": "yes"}, `"granted" must be true or false`},
		{"a bare string", "granted", "not a JSON object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, c.SignalWorkflow(ctx, id, "", workflows.SignalAdminConsent, tt.payload))
			p, err := testenv.WaitProgress(ctx, c, id, 30*time.Second, func(p workflows.Progress) bool {
				return strings.Contains(p.Message, tt.problem)
			})
			require.NoError(t, err, "the progress names the problem")
			assert.Contains(t, p.Message, "malformed admin-consent signal")
			assert.Contains(t, p.Message, `{"granted": true|false`, "and the fix")
			assert.Equal(t, workflows.StepAwaitingAdminConsent, p.Step, "still waiting")
		})
	}
	after := env.Emu.State()
	assert.Equal(t, secretsAdded(before), secretsAdded(after), "no secret added")
	assert.Equal(t, createdApps(before), createdApps(after), "no further application")

	require.NoError(t, c.CancelWorkflow(ctx, id, run.GetRunID()))
	_ = run.Get(ctx, nil)
	assert.Zero(t, createdApps(env.Emu.State()), "cancel undid the app")
}
