package activities

import (
	"context"
	"slices"
	"strings"
)

type FindResourcesInput struct {
	TenantID string `json:"tenantId"`
	OrgURL   string `json:"orgUrl"`
	OrgHost  string `json:"orgHost"`
	// SecretTags are the displayNames of the secrets the onboarding and the
	// rotation added (SecretTag of their workflow IDs).
	SecretTags []string `json:"secretTags"`
	RoleName   string   `json:"roleName"`
}

// FoundResources is what exists of one tenant and org's onboarding, found
// from the deterministic names alone, so offboarding works however far the
// onboarding got and whatever its history says.
type FoundResources struct {
	AppObjectID        string   `json:"appObjectId,omitempty"`
	AppID              string   `json:"appId,omitempty"`
	ServicePrincipalID string   `json:"servicePrincipalId,omitempty"`
	SecretKeyIDs       []string `json:"secretKeyIds,omitempty"`
	// HRDPolicyIDs are the policies named for the app or assigned to its
	// service principal.
	HRDPolicyIDs []string `json:"hrdPolicyIds,omitempty"`
	SystemUserID string   `json:"systemUserId,omitempty"`
	// RoleIDs are the user's roles named RoleName.
	RoleIDs []string `json:"roleIds,omitempty"`
	// ConfigID is set only when the Marketo Config points at SystemUserID.
	ConfigID string `json:"configId,omitempty"`
}

// Empty reports whether nothing of the onboarding is left.
func (f FoundResources) Empty() bool {
	return f.AppObjectID == "" && f.ServicePrincipalID == "" && len(f.SecretKeyIDs) == 0 && len(f.HRDPolicyIDs) == 0 &&
		f.SystemUserID == "" && len(f.RoleIDs) == 0 && f.ConfigID == ""
}

// FindOnboardedResources only reads. It looks the app up by its unique
// name, and everything else through the app.
func (a *Activities) FindOnboardedResources(ctx context.Context, in FindResourcesInput) (FoundResources, error) {
	var out FoundResources
	g := a.graphFor(in.TenantID)
	app, err := g.GetApplicationByUniqueName(ctx, UniqueName(in.TenantID, in.OrgHost))
	if isGone(err) {
		return out, nil
	}
	if err != nil {
		return out, mapError(ctx, "find the application", err, asProvisioner, fix{permission: permApps})
	}
	out.AppObjectID, out.AppID = app.ID, app.AppID

	creds, err := g.ListPasswords(ctx, app.ID)
	if err != nil && !isGone(err) {
		return out, mapError(ctx, "list the app's secrets", err, asProvisioner, fix{permission: permApps})
	}
	for _, c := range creds {
		if slices.Contains(in.SecretTags, c.DisplayName) {
			out.SecretKeyIDs = append(out.SecretKeyIDs, c.KeyID)
		}
	}

	policies, err := g.ListHRDPolicies(ctx)
	if err != nil {
		return out, mapError(ctx, "list Home Realm Discovery policies", err, asProvisioner, fix{permission: permPolicy})
	}
	for _, p := range policies {
		if p.DisplayName == HRDPolicyName(app.AppID) {
			out.HRDPolicyIDs = append(out.HRDPolicyIDs, p.ID)
		}
	}
	sp, err := g.GetServicePrincipalByAppID(ctx, app.AppID)
	switch {
	case err == nil:
		out.ServicePrincipalID = sp.ID
		assigned, err := g.ListAssignedHRDPolicies(ctx, sp.ID)
		if err != nil && !isGone(err) {
			return out, mapError(ctx, "list the service principal's HRD policies", err, asProvisioner, fix{permission: permPolicy})
		}
		for _, p := range assigned {
			if !slices.Contains(out.HRDPolicyIDs, p.ID) {
				out.HRDPolicyIDs = append(out.HRDPolicyIDs, p.ID)
			}
		}
	case !isGone(err):
		return out, mapError(ctx, "find the service principal", err, asProvisioner, fix{permission: permApps})
	}
	if in.OrgURL == "" {
		return out, nil
	}

	dv := a.provisioned(in.TenantID, in.OrgURL)
	user, err := dv.FindApplicationUser(ctx, app.AppID)
	if isGone(err) {
		return out, nil
	}
	if err != nil {
		return out, mapError(ctx, "find the application user", err, asProvisioner, fix{permission: permDataverse})
	}
	out.SystemUserID = user.ID
	roles, err := dv.UserRoles(ctx, user.ID)
	if err != nil && !isGone(err) {
		return out, mapError(ctx, "read the application user's roles", err, asProvisioner, fix{permission: permDataverse})
	}
	for _, r := range roles {
		if strings.EqualFold(r.Name, in.RoleName) {
			out.RoleIDs = append(out.RoleIDs, r.ID)
		}
	}
	cfg, err := dv.MarketoConfig(ctx)
	switch {
	case err == nil && cfg.UserID == user.ID:
		out.ConfigID = cfg.ID
	case err != nil && !isGone(err):
		return out, mapError(ctx, "read the Marketo Config", err, asProvisioner, fix{permission: permDataverse})
	}
	return out, nil
}
