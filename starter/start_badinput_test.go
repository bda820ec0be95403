package main

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/cli"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/testenv"
	"github.com/mktos2s/mktos2s/workflows"
)

// Tenants of the bad-input seed: orgs that fail the preflight.
const (
	noSolutionTenant  = "b0000000-0000-4000-8000-000000000001"
	oldSolutionTenant = "b0000000-0000-4000-8000-000000000002"
	noRoleTenant      = "b0000000-0000-4000-8000-000000000003"
	unknownTenant     = "99999999-9999-4999-8999-999999999999"
)

// badInputSeed is the default seed plus an org without the Marketo
// solution, one with a solution older than 4.0.0.14 and one without the
// "Marketo Sync User" role.
func badInputSeed(t *testing.T) *emulator.Seed {
	t.Helper()
	seed := emulator.DefaultSeed()
	for _, x := range []struct {
		id, name string
		change   func(*emulator.SeedOrg)
	}{
		{noSolutionTenant, "NoSolution", func(o *emulator.SeedOrg) { o.Solutions = nil }},
		{oldSolutionTenant, "OldSolution", func(o *emulator.SeedOrg) { o.Solutions[0].Version = "4.0.0.9" }},
		{noRoleTenant, "NoRole", func(o *emulator.SeedOrg) {
			o.Roles = slices.DeleteFunc(o.Roles, func(r emulator.SeedRole) bool { return r.Name == workflows.DefaultSecurityRoleName })
		}},
	} {
		require.NoError(t, testenv.AddTenant(seed, testenv.Tenant{From: contosoTenant, ID: x.id, DisplayName: x.name,
			OrgHost: strings.ToLower(x.name) + ".crm.localhost"}))
		x.change(&seed.Orgs[len(seed.Orgs)-1])
	}
	return seed
}

// createdObjects names the objects in the emulator that onboardings create
// (applications, service principals, grants, HRD policies, secrets ever
// added, users, Marketo Config user links); newObjects diffs two snapshots.
func createdObjects(st emulator.State) map[string]bool {
	out := map[string]bool{}
	for _, t := range st.Tenants {
		for _, a := range t.Applications {
			if !a.Seeded {
				out["app "+a.ID] = true
			}
		}
		for _, sp := range t.ServicePrincipals {
			if sp.Owner != "" {
				out["service principal "+sp.ID] = true
			}
		}
		for _, g := range t.PermissionGrants {
			out["grant "+g.ID] = true
		}
		for _, p := range t.HRDPolicies {
			out["HRD policy "+p.ID] = true
		}
		for _, ev := range t.PasswordEvents {
			out["secret "+ev.KeyID] = true
		}
	}
	for _, o := range st.Orgs {
		for _, u := range o.Users {
			out["user "+u.ID] = true
		}
		for _, c := range o.MarketoConfigs {
			if c.UserID != "" {
				out["config "+c.ID+" -> "+c.UserID] = true
			}
		}
	}
	return out
}

func newObjects(before, after emulator.State) []string {
	b := createdObjects(before)
	var out []string
	for k := range createdObjects(after) {
		if !b[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// TestStartRejectsBadInput runs `starter start` in process against the dev
// server, the emulator and a worker. Every bad input is refused with an
// error that names the field and the fix, and nothing is created in the
// emulator. Inputs only the org can judge (unknown tenant or org, solution
// missing or too old, role missing) start the workflow, whose preflight
// refuses them before anything is created.
func TestStartRejectsBadInput(t *testing.T) {
	env, c := testenv.StartForTest(t, testenv.Options{Seed: badInputSeed(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// The starter reads the environment's settings as MKTOS2S_* variables;
	// the allow-list admits the emulator's *.crm.localhost org hosts.
	t.Setenv("HOME", t.TempDir())
	for _, kv := range env.Environ("default") {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	org := func(host string) string { return env.Emu.OrgURL(host) }
	contosoOrg := org("contoso.crm.localhost")

	tests := []struct {
		name       string
		tenant     string
		orgURL     string
		flags      []string
		serverSide bool     // refused by the workflow's preflight, not by the starter
		want       []string // the field and the fix, in the error
	}{
		{name: "malformed tenant ID", tenant: "contoso", orgURL: contosoOrg, want: []string{"tenantId", "not a GUID", "Directory (tenant) ID"}},
		{name: "unknown tenant", tenant: unknownTenant, orgURL: contosoOrg, serverSide: true, want: []string{"preflight", "not found", "check tenantId"}},
		{name: "http org URL", tenant: contosoTenant, orgURL: strings.Replace(contosoOrg, "https://", "http://", 1), want: []string{"orgUrl", "must use https"}},
		{name: "org host outside the allowed suffixes", tenant: contosoTenant, orgURL: "https://contoso.example.com", want: []string{"orgUrl", "microsoft.allowedOrgSuffixes"}},
		{name: "unknown org", tenant: contosoTenant, orgURL: org("nowhere.crm.localhost"), serverSide: true, want: []string{"preflight", "nowhere.crm.localhost", "check orgUrl"}},
		{name: "app display name over 120 characters", tenant: contosoTenant, orgURL: contosoOrg, flags: []string{"--app-name", strings.Repeat("x", 121)}, want: []string{"appDisplayName", "120"}},
		{name: "secret lifetime 0", tenant: contosoTenant, orgURL: contosoOrg, flags: []string{"--secret-months", "0"}, want: []string{"secretLifetimeMonths", "1 to 24"}},
		{name: "secret lifetime negative", tenant: contosoTenant, orgURL: contosoOrg, flags: []string{"--secret-months", "-3"}, want: []string{"secretLifetimeMonths", "1 to 24"}},
		{name: "secret lifetime over 24 months", tenant: contosoTenant, orgURL: contosoOrg, flags: []string{"--secret-months", "25"}, want: []string{"secretLifetimeMonths", "1 to 24"}},
		{name: "consent timeout 0", tenant: contosoTenant, orgURL: contosoOrg, flags: []string{"--consent-timeout", "0s"}, want: []string{"consentTimeout", "at least a minute"}},
		{name: "Marketo solution missing", tenant: noSolutionTenant, orgURL: org("nosolution.crm.localhost"), serverSide: true, want: []string{"not installed", "solutionName", "install it first"}},
		{name: "solution older than 4.0.0.14", tenant: oldSolutionTenant, orgURL: org("oldsolution.crm.localhost"), serverSide: true, want: []string{"4.0.0.9", "older than 4.0.0.14", "upgrade"}},
		{name: "role Marketo Sync User missing", tenant: noRoleTenant, orgURL: org("norole.crm.localhost"), serverSide: true, want: []string{`"Marketo Sync User"`, "does not exist", "reinstall or upgrade"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := workflows.OnboardingInput{TenantID: tt.tenant, OrgURL: tt.orgURL}.WorkflowID()
			before, runBefore := env.Emu.State(), latestRun(ctx, t, c, id)
			args := append([]string{"start", "--tenant-id", tt.tenant, "--org-url", tt.orgURL}, tt.flags...)
			if tt.serverSide {
				args = append(args, "--wait")
			}
			stdout, err := runStarterInProcess(ctx, args...)
			started := latestRun(ctx, t, c, id) != runBefore
			if started && !tt.serverSide {
				// Undo what the run would otherwise go on creating, so the next case starts clean.
				defer func() {
					_ = c.CancelWorkflow(ctx, id, "")
					_ = c.GetWorkflow(ctx, id, "").Get(ctx, nil)
				}()
			}
			t.Logf("starter said: %v\n%s", err, stdout)
			require.Error(t, err, "the starter accepted it:\n%s", stdout)
			msg := err.Error() + "\n" + stdout
			for _, w := range tt.want {
				assert.Contains(t, msg, w)
			}
			if !tt.serverSide {
				assert.False(t, started, "a workflow was started for input the starter must refuse")
			}
			assert.Empty(t, newObjects(before, env.Emu.State()), "created in the emulator")
		})
	}
}

func runStarterInProcess(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	root := cli.NewRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

// latestRun is the run ID of the newest run of id, "" when there is none.
func latestRun(ctx context.Context, t *testing.T, c client.Client, id string) string {
	t.Helper()
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return ""
	}
	require.NoError(t, err, "describe %s", id)
	return d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
}
