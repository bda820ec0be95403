package workflows

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"

	"github.com/mktos2s/mktos2s/activities"
)

// offboardEnv runs Offboarding over a world of found resources that the
// mocked undo activities shrink.
type offboardEnv struct {
	testsuite.WorkflowTestSuite
	env       *testsuite.TestWorkflowEnvironment
	mu        sync.Mutex
	world     activities.FoundResources
	started   []string
	cancelled []string
	finds     []activities.FindResourcesInput
	sticky    *activities.FoundResources // found whatever was removed
	// refuseUserWhileApp: Dataverse refuses to delete the user while the
	// app exists, and the look-up, like the real one, finds the user only
	// through the app.
	refuseUserWhileApp bool
	userLeft           bool // the user is still in Dataverse, app or not
}

func newOffboardEnv(t *testing.T, world activities.FoundResources) *offboardEnv {
	o := &offboardEnv{world: world}
	o.env = o.NewTestWorkflowEnvironment()
	Register(o.env)
	o.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.started = append(o.started, info.ActivityType.Name)
	})
	o.env.OnRequestCancelExternalWorkflow(mock.Anything, mock.Anything, mock.Anything).Return(
		func(_, id, _ string) error {
			o.mu.Lock()
			defer o.mu.Unlock()
			o.cancelled = append(o.cancelled, id)
			return nil
		})
	var a *activities.Activities
	o.env.OnActivity(a.FindOnboardedResources, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FindResourcesInput) (activities.FoundResources, error) {
			o.mu.Lock()
			defer o.mu.Unlock()
			o.finds = append(o.finds, in)
			if o.sticky != nil {
				return *o.sticky, nil
			}
			if o.refuseUserWhileApp && o.world.AppID == "" {
				f := o.world
				f.SystemUserID, f.RoleIDs, f.ConfigID = "", nil, ""
				return f, nil
			}
			return o.world, nil
		})
	gone := func(f func()) (activities.UndoResult, error) {
		o.mu.Lock()
		defer o.mu.Unlock()
		f()
		return activities.UndoResult{}, nil
	}
	w := &o.world
	o.env.OnActivity(a.RestoreMarketoConfig, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RestoreMarketoConfigInput) (activities.UndoResult, error) {
		require.Empty(t, in.PreviousUserID, "offboarding clears the Marketo user")
		return gone(func() { w.ConfigID = "" })
	})
	o.env.OnActivity(a.RemoveHRDPolicy, mock.Anything, mock.Anything).Return(func(context.Context, activities.RemoveHRDPolicyInput) (activities.UndoResult, error) {
		return gone(func() { w.HRDPolicyIDs = nil })
	})
	o.env.OnActivity(a.RemoveRoleAssociation, mock.Anything, mock.Anything).Return(func(context.Context, activities.RemoveRoleAssociationInput) (activities.UndoResult, error) {
		return gone(func() { w.RoleIDs = nil })
	})
	o.env.OnActivity(a.RemoveApplicationUser, mock.Anything, mock.Anything).Return(func(context.Context, activities.RemoveApplicationUserInput) (activities.UndoResult, error) {
		o.mu.Lock()
		refused := o.refuseUserWhileApp && w.AppID != ""
		o.mu.Unlock()
		if refused {
			return activities.UndoResult{Note: activities.DisabledNotDeleted + ": Dataverse refused (0x80048359)"}, nil
		}
		return gone(func() { w.SystemUserID, o.userLeft = "", false })
	})
	o.env.OnActivity(a.RemoveClientSecret, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RemoveClientSecretInput) (activities.UndoResult, error) {
		return gone(func() {
			var keep []string
			for _, k := range w.SecretKeyIDs {
				if k != in.KeyID {
					keep = append(keep, k)
				}
			}
			w.SecretKeyIDs = keep
		})
	})
	o.env.OnActivity(a.RemoveServicePrincipal, mock.Anything, mock.Anything).Return(func(context.Context, activities.RemoveServicePrincipalInput) (activities.UndoResult, error) {
		return gone(func() { w.ServicePrincipalID = "" })
	})
	o.env.OnActivity(a.RemoveApplication, mock.Anything, mock.Anything).Return(func(context.Context, activities.RemoveApplicationInput) (activities.UndoResult, error) {
		return gone(func() { w.AppObjectID, w.AppID = "", "" })
	})
	return o
}

func fullyOnboarded() activities.FoundResources {
	return activities.FoundResources{
		AppObjectID: "app-obj", AppID: "app-id", ServicePrincipalID: "sp-1", SecretKeyIDs: []string{"key-1", "key-2"},
		HRDPolicyIDs: []string{"hrd-1"}, SystemUserID: "user-1", RoleIDs: []string{"role-1"}, ConfigID: "cfg-1",
	}
}

func offboardInput(dry bool) OffboardingInput {
	return OffboardingInput{TenantID: testTenant, OrgURL: testOrgURL, DryRun: dry}
}

func TestOffboardingFullyOnboardedRemovesNewestFirst(t *testing.T) {
	o := newOffboardEnv(t, fullyOnboarded())
	o.env.ExecuteWorkflow(Offboarding, offboardInput(false))
	require.NoError(t, o.env.GetWorkflowError())
	var res OffboardingResult
	require.NoError(t, o.env.GetWorkflowResult(&res))

	host := "contoso.crm.localhost:8443"
	assert.Equal(t, []string{RotationWorkflowID(testTenant, host), WorkflowID(testTenant, host)}, o.cancelled, "rotation stopped first")
	assert.Equal(t, []string{"FindOnboardedResources", "RestoreMarketoConfig", "RemoveRoleAssociation", "RemoveHRDPolicy",
		"RemoveApplicationUser", "RemoveClientSecret", "RemoveClientSecret", "RemoveServicePrincipal", "RemoveApplication",
		"FindOnboardedResources"}, o.started)
	assert.True(t, o.world.Empty())
	assert.Len(t, res.Actions, 8)
	assert.Equal(t, 2, res.Rounds)
	for _, act := range res.Actions {
		assert.True(t, act.Done, act.Action)
	}
	require.NotEmpty(t, o.finds)
	assert.ElementsMatch(t, []string{activities.SecretTag(WorkflowID(testTenant, host)), activities.SecretTag(RotationWorkflowID(testTenant, host))},
		o.finds[0].SecretTags, "both the onboarding's and the rotation's secrets are found")
}

// A user Dataverse would not delete while its app existed is deleted once
// the app is gone: the next look-up, which finds users through the app,
// would never see it again.
func TestOffboardingDeletesTheRefusedUserOnceTheAppIsGone(t *testing.T) {
	o := newOffboardEnv(t, fullyOnboarded())
	o.refuseUserWhileApp, o.userLeft = true, true
	o.env.ExecuteWorkflow(Offboarding, offboardInput(false))
	require.NoError(t, o.env.GetWorkflowError())
	var res OffboardingResult
	require.NoError(t, o.env.GetWorkflowResult(&res))

	assert.Equal(t, []string{"FindOnboardedResources", "RestoreMarketoConfig", "RemoveRoleAssociation", "RemoveHRDPolicy",
		"RemoveApplicationUser", "RemoveClientSecret", "RemoveClientSecret", "RemoveServicePrincipal", "RemoveApplication",
		"RemoveApplicationUser", "FindOnboardedResources"}, o.started)
	assert.False(t, o.userLeft, "the user is deleted")
	assert.Empty(t, o.world.SystemUserID)
	var notes []string
	for _, act := range res.Actions {
		if act.Activity == "RemoveApplicationUser" {
			notes = append(notes, act.Note)
		}
	}
	require.Len(t, notes, 1, "one action per object")
	assert.True(t, strings.HasPrefix(notes[0], DeletedAfterApp), notes[0])
	v, err := o.env.QueryWorkflow(QueryProgress)
	require.NoError(t, err)
	var p OffboardingProgress
	require.NoError(t, v.Get(&p))
	require.Len(t, p.Actions, len(res.Actions))
	for _, act := range p.Actions {
		if act.Activity == "RemoveApplicationUser" {
			assert.True(t, strings.HasPrefix(act.Note, DeletedAfterApp), act.Note)
		}
	}
}

func TestOffboardingHalfOnboardedRemovesOnlyWhatExists(t *testing.T) {
	// Consent never came: only the app, its service principal and nothing in Dataverse.
	o := newOffboardEnv(t, activities.FoundResources{AppObjectID: "app-obj", AppID: "app-id", ServicePrincipalID: "sp-1"})
	o.env.ExecuteWorkflow(Offboarding, offboardInput(false))
	require.NoError(t, o.env.GetWorkflowError())
	assert.Equal(t, []string{"FindOnboardedResources", "RemoveServicePrincipal", "RemoveApplication", "FindOnboardedResources"}, o.started)
	assert.True(t, o.world.Empty())
}

func TestOffboardingDryRunChangesNothing(t *testing.T) {
	o := newOffboardEnv(t, fullyOnboarded())
	o.env.ExecuteWorkflow(Offboarding, offboardInput(true))
	require.NoError(t, o.env.GetWorkflowError())
	var res OffboardingResult
	require.NoError(t, o.env.GetWorkflowResult(&res))
	assert.Equal(t, []string{"FindOnboardedResources"}, o.started)
	assert.Empty(t, o.cancelled, "a dry run does not stop the rotation")
	assert.Equal(t, fullyOnboarded(), o.world)
	var actions []string
	for _, a := range res.Actions {
		actions = append(actions, a.Action+" "+a.Target)
		assert.False(t, a.Done)
	}
	assert.Equal(t, []string{"clear-marketo-config-user cfg-1", "remove-role-association role-1", "remove-hrd-policy hrd-1",
		"remove-application-user user-1", "remove-client-secret key-1", "remove-client-secret key-2",
		"remove-service-principal sp-1", "remove-application app-obj"}, actions)
}

// Offboardings that began before the removal plan came from resourceTable
// (no version marker) replay with the order they scheduled: HRD policies
// before role associations.
func TestOffboardingBeforeTheTableKeepsItsOrder(t *testing.T) {
	var actions []string
	for _, a := range removalPlan(offboardInput(false).WithDefaults(), fullyOnboarded(), false) {
		actions = append(actions, a.Activity)
	}
	assert.Equal(t, []string{"RestoreMarketoConfig", "RemoveHRDPolicy", "RemoveRoleAssociation", "RemoveApplicationUser",
		"RemoveClientSecret", "RemoveClientSecret", "RemoveServicePrincipal", "RemoveApplication"}, actions)
}

func TestOffboardingNothingThereIsIdempotent(t *testing.T) {
	o := newOffboardEnv(t, activities.FoundResources{})
	o.env.ExecuteWorkflow(Offboarding, offboardInput(false))
	require.NoError(t, o.env.GetWorkflowError())
	assert.Equal(t, []string{"FindOnboardedResources"}, o.started)
}

// TestOffboardingGivesUpWhenThingsKeepComingBack: a resource that keeps
// reappearing fails the offboarding with what is left, after a bounded
// number of rounds.
func TestOffboardingGivesUpWhenThingsKeepComingBack(t *testing.T) {
	o := newOffboardEnv(t, activities.FoundResources{})
	o.sticky = &activities.FoundResources{AppObjectID: "zombie"}
	o.env.ExecuteWorkflow(Offboarding, OffboardingInput{TenantID: testTenant, OrgURL: testOrgURL, VerifyDelay: time.Minute})
	err := o.env.GetWorkflowError()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "application zombie")
	assert.Len(t, o.finds, maxOffboardRounds+1)
}
