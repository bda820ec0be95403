package activities

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEmulatorRotationKeepAndFindResources: a rotation's AddClientSecret
// keeps the live secret it names while replacing its own stale ones, and
// FindOnboardedResources finds exactly the tagged secrets and, once the
// app is gone, nothing.
func TestEmulatorRotationKeepAndFindResources(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator")
	}
	a, srv, _ := emuActivities(t)
	ctx := context.Background()
	onboardingID, rotationID := "onboarding/"+emuTenant+"/"+emuHost, "rotation/"+emuTenant+"/"+emuHost
	tags := []string{SecretTag(onboardingID), SecretTag(rotationID)}

	app, err := a.RegisterApplication(ctx, RegisterApplicationInput{TenantID: emuTenant, OrgHost: emuHost, DisplayName: "Marketo Integration"})
	require.NoError(t, err)
	sp, err := a.CreateServicePrincipal(ctx, CreateServicePrincipalInput{TenantID: emuTenant, AppID: app.AppID})
	require.NoError(t, err)

	first, err := a.AddClientSecret(ctx, AddClientSecretInput{TenantID: emuTenant, AppObjectID: app.AppObjectID, WorkflowID: onboardingID, LifetimeMonths: 12})
	require.NoError(t, err)
	rot1, err := a.AddClientSecret(ctx, AddClientSecretInput{TenantID: emuTenant, AppObjectID: app.AppObjectID, WorkflowID: rotationID,
		Lifetime: time.Hour, Keep: []string{first.KeyID}})
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(time.Hour), rot1.ExpiresAt, time.Minute, "Lifetime overrides the months")
	// The next cycle keeps rot1 (now live), and a retry of that cycle removes only its own lost attempt.
	lost, err := a.AddClientSecret(ctx, AddClientSecretInput{TenantID: emuTenant, AppObjectID: app.AppObjectID, WorkflowID: rotationID,
		LifetimeMonths: 12, Keep: []string{rot1.KeyID}})
	require.NoError(t, err)
	retry, err := a.AddClientSecret(ctx, AddClientSecretInput{TenantID: emuTenant, AppObjectID: app.AppObjectID, WorkflowID: rotationID,
		LifetimeMonths: 12, Keep: []string{rot1.KeyID}})
	require.NoError(t, err)
	assert.Equal(t, []string{lost.KeyID}, retry.RemovedStale)

	in := FindResourcesInput{TenantID: emuTenant, OrgURL: srv.OrgURL(emuHost), OrgHost: emuHost, SecretTags: tags, RoleName: "Marketo Sync User"}
	found, err := a.FindOnboardedResources(ctx, in)
	require.NoError(t, err)
	assert.Equal(t, app.AppObjectID, found.AppObjectID)
	assert.Equal(t, sp.ServicePrincipalID, found.ServicePrincipalID)
	assert.ElementsMatch(t, []string{first.KeyID, rot1.KeyID, retry.KeyID}, found.SecretKeyIDs)
	assert.Empty(t, found.SystemUserID, "no application user yet")
	assert.False(t, found.Empty())

	_, err = a.RemoveServicePrincipal(ctx, RemoveServicePrincipalInput{TenantID: emuTenant, ServicePrincipalID: sp.ServicePrincipalID})
	require.NoError(t, err)
	_, err = a.RemoveApplication(ctx, RemoveApplicationInput{TenantID: emuTenant, AppObjectID: app.AppObjectID})
	require.NoError(t, err)
	found, err = a.FindOnboardedResources(ctx, in)
	require.NoError(t, err)
	assert.True(t, found.Empty(), "%+v", found)
}
