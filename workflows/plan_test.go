package workflows

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/activities"
)

// TestEveryRecordedIDHasAnUndo: every ID the onboarding records belongs to
// one resource of the table, and every resource says how it is undone and
// found again. A step that records a new ID without a table entry (or an
// entry without an undo) fails here.
func TestEveryRecordedIDHasAnUndo(t *testing.T) {
	owner := map[string]string{}
	planned := map[string]bool{}
	for _, s := range onboardingPlan() {
		planned[s.name] = true
	}
	for _, r := range resourceTable() {
		assert.NotNil(t, r.undo, "%s has no undo activity", r.kind)
		assert.NotNil(t, r.undoInput, "%s: no undo input", r.kind)
		assert.NotNil(t, r.found, "%s: Offboarding cannot find it", r.kind)
		assert.NotEmpty(t, r.undoText, "%s: the plan does not say how it is undone", r.kind)
		assert.NotEmpty(t, r.action, r.kind)
		assert.True(t, planned[r.step], "%s is created by %q, which is not in the plan", r.kind, r.step)
		for _, id := range r.ids {
			assert.Empty(t, owner[id], "%s is owned by %s and %s", id, owner[id], r.kind)
			owner[id] = r.kind
		}
	}
	rt := reflect.TypeOf(Resources{})
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		assert.NotEmpty(t, owner[name], "Resources.%s (%s) belongs to no resource of resourceTable: add one with its undo", rt.Field(i).Name, name)
	}

	// A run failing at its last step records every ID and undoes every
	// resource, newest first, exactly as the table says.
	h := newHarness(t)
	h.federated = true
	h.failAt = "ValidateConnection"
	h.mock()
	h.mockSession()
	h.signalSession(time.Second, goodSession)
	h.grantAndSignal(time.Minute)
	h.env.ExecuteWorkflow(Onboarding, sessionInput()) // every optional step, the admin session too
	require.Error(t, h.env.GetWorkflowError())
	p := h.progress()
	rv := reflect.ValueOf(p.Resources)
	for i := range rv.NumField() {
		assert.NotEmpty(t, rv.Field(i).String(), "the full run records Resources.%s", rt.Field(i).Name)
	}
	var wantUndos []string
	var wantReport []UndoOutcome
	table := resourceTable()
	for i := len(table) - 1; i >= 0; i-- {
		wantUndos = append(wantUndos, activityName(table[i].undo))
		wantReport = append(wantReport, UndoOutcome{Step: table[i].step, Undo: activityName(table[i].undo), OK: true})
	}
	assert.Equal(t, wantUndos, h.undos())
	assert.Equal(t, wantReport, p.Compensation)
}

// TestPlanDerivesFromTheTables: Steps(), the dry run and Offboarding's
// removal plan say what the two tables say.
func TestPlanDerivesFromTheTables(t *testing.T) {
	in := OnboardingInput{AppDisplayName: "Contoso Sync", SecurityRoleName: "Sync Role", SecretLifetimeMonths: 6,
		SyncFilterEntities: []string{"lead"}}.WithDefaults()
	steps := Steps(in)
	plan := onboardingPlan()
	require.Len(t, steps, len(plan))
	for i, s := range steps {
		assert.Equal(t, plan[i].name, s.Name)
		var undos []string
		for _, r := range createdBy(s.Name) {
			undos = append(undos, r.undoText)
			assert.Contains(t, s.Effect, r.effect(in))
		}
		assert.Equal(t, strings.Join(undos, "; "), s.Undo, s.Name)
		assert.NotEmpty(t, s.Effect, s.Name)
	}
	byName := func(n string) StepPlan {
		return steps[slices.IndexFunc(steps, func(s StepPlan) bool { return s.Name == n })]
	}
	assert.Contains(t, byName(StepRegisterApplication).Effect, `"Contoso Sync"`)
	assert.Contains(t, byName(StepAddClientSecret).Effect, "6 months")
	assert.True(t, byName(StepAdminSession).Skipped, "the admin session is opt-in")

	found := activities.FoundResources{AppObjectID: "app-obj", AppID: "app-id", ServicePrincipalID: "sp-1",
		SecretKeyIDs: []string{"key-1", "key-2"}, HRDPolicyIDs: []string{"hrd-1"}, SystemUserID: "user-1",
		RoleIDs: []string{"role-1"}, ConfigID: "cfg-1"}
	var got, want []string
	for _, act := range removalPlan(OffboardingInput{TenantID: testTenant, OrgURL: testOrgURL}, found, true) {
		got = append(got, act.Action+" "+act.Activity)
	}
	table := resourceTable()
	for i := len(table) - 1; i >= 0; i-- {
		for range table[i].found(testTenant, testOrgURL, found) {
			want = append(want, table[i].action+" "+activityName(table[i].undo))
		}
	}
	assert.Equal(t, want, got)
	assert.Len(t, got, 8, "two secrets, one of everything else")
}

// TestStepsPlanMatchesTheWorkflow: the steps the plan does not skip are the
// steps a run completes, in the plan's order.
func TestStepsPlanMatchesTheWorkflow(t *testing.T) {
	cases := []struct {
		name      string
		in        OnboardingInput
		federated bool
	}{
		{"everything", OnboardingInput{Federation: FederationAlways, SyncFilterEntities: []string{"lead"}}, false},
		{"federation never, no filter", OnboardingInput{Federation: FederationNever}, true},
		{"auto on a federated tenant", OnboardingInput{}, true},
		{"auto on a managed tenant", OnboardingInput{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.in
			in.TenantID, in.OrgURL = testTenant, testOrgURL
			var planned []string
			for _, s := range Steps(in.WithDefaults()) {
				conditional := s.Name == StepConfigureHomeRealmDiscovery && in.WithDefaults().Federation == FederationAuto
				if !s.Skipped && (!conditional || c.federated) {
					planned = append(planned, s.Name)
				}
			}
			h := newHarness(t)
			h.federated = c.federated
			h.mock()
			h.grantAndSignal(time.Minute)
			h.env.ExecuteWorkflow(Onboarding, in)
			require.NoError(t, h.env.GetWorkflowError())
			assert.Equal(t, planned, h.progress().CompletedSteps)

			// And each completed step ran its activity from the plan, in order.
			var ran []string
			for _, name := range h.startedActivities() {
				if slices.ContainsFunc(stepActivity, func(s struct {
					step, activity string
					undos          []string
				}) bool {
					return s.activity == name
				}) {
					ran = append(ran, name)
				}
			}
			var want []string
			for _, s := range stepActivity {
				if slices.Contains(planned, s.step) {
					want = append(want, s.activity)
				}
			}
			assert.Equal(t, want, ran)
		})
	}
}

// TestActivityNamesAreTheRegisteredMethods: the names reports and tests
// use are the methods activities.Register registers, derived from the
// method values the workflows schedule.
func TestActivityNamesAreTheRegisteredMethods(t *testing.T) {
	at := reflect.TypeOf(&activities.Activities{})
	var fns []any
	for _, s := range onboardingPlan() {
		fns = append(fns, s.activity)
	}
	for _, r := range resourceTable() {
		fns = append(fns, r.undo)
	}
	for _, fn := range fns {
		name := activityName(fn)
		_, ok := at.MethodByName(name)
		assert.True(t, ok, "%s is not a method of *activities.Activities", name)
	}
	assert.Equal(t, "RemoveApplication", activityName(a.RemoveApplication))
}
