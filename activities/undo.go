package activities

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/mktos2s/mktos2s/internal/dataverse"
	"github.com/mktos2s/mktos2s/internal/graph"
	"github.com/mktos2s/mktos2s/internal/msapi"
)

// UndoResult reports whether the thing to undo was already gone, which
// counts as success.
type UndoResult struct {
	AlreadyGone bool   `json:"alreadyGone"`
	Note        string `json:"note,omitempty"`
}

type RemoveHRDPolicyInput struct {
	TenantID           string `json:"tenantId"`
	ServicePrincipalID string `json:"servicePrincipalId"`
	PolicyID           string `json:"policyId"`
}

// RemoveHRDPolicy unassigns the policy from the service principal, then
// deletes it. Without a service principal (offboarding found the policy
// but no principal) it only deletes.
func (a *Activities) RemoveHRDPolicy(ctx context.Context, in RemoveHRDPolicyInput) (UndoResult, error) {
	g := a.graphFor(in.TenantID)
	var out UndoResult
	if in.ServicePrincipalID != "" {
		err := g.UnassignHRDPolicy(ctx, in.ServicePrincipalID, in.PolicyID)
		if err != nil && !isGone(err) {
			return out, mapError(ctx, "unassign the HRD policy", err, asProvisioner, fix{permission: permPolicy})
		}
	}
	err := g.DeleteHRDPolicy(ctx, in.PolicyID)
	if isGone(err) {
		out.AlreadyGone = true
		return out, nil
	}
	return out, mapError(ctx, "delete the HRD policy", err, asProvisioner, fix{permission: permPolicy})
}

type RemoveRoleAssociationInput struct {
	TenantID     string `json:"tenantId"`
	OrgURL       string `json:"orgUrl"`
	SystemUserID string `json:"systemUserId"`
	RoleID       string `json:"roleId"`
}

func (a *Activities) RemoveRoleAssociation(ctx context.Context, in RemoveRoleAssociationInput) (UndoResult, error) {
	err := a.provisioned(in.TenantID, in.OrgURL).DisassociateRole(ctx, in.SystemUserID, in.RoleID)
	if isGone(err) {
		return UndoResult{AlreadyGone: true}, nil
	}
	return UndoResult{}, mapError(ctx, "remove the security role", err, asProvisioner, fix{permission: permDataverse})
}

type RestoreMarketoConfigInput struct {
	TenantID       string `json:"tenantId"`
	OrgURL         string `json:"orgUrl"`
	ConfigID       string `json:"configId"`
	SystemUserID   string `json:"systemUserId"`             // the user this onboarding set
	PreviousUserID string `json:"previousUserId,omitempty"` // empty = the lookup was empty
}

// RestoreMarketoConfig puts the previous Marketo user back, unless someone
// has pointed the config elsewhere since: their change wins.
func (a *Activities) RestoreMarketoConfig(ctx context.Context, in RestoreMarketoConfigInput) (UndoResult, error) {
	dv := a.provisioned(in.TenantID, in.OrgURL)
	cfg, err := dv.MarketoConfig(ctx)
	if isGone(err) {
		return UndoResult{AlreadyGone: true}, nil
	}
	if err != nil {
		return UndoResult{}, mapError(ctx, "read the Marketo Config", err, asProvisioner, fix{permission: permDataverse})
	}
	if cfg.UserID != in.SystemUserID {
		return UndoResult{AlreadyGone: true, Note: "the Marketo Config no longer points at the onboarding's user; left as is"}, nil
	}
	nav, err := userNavigation(ctx, dv, "")
	if err != nil {
		return UndoResult{}, err
	}
	if in.PreviousUserID == "" {
		err = dv.ClearMarketoConfigUser(ctx, cfg.ID, nav)
	} else {
		err = dv.SetMarketoConfigUser(ctx, cfg.ID, nav, in.PreviousUserID)
	}
	if msapi.IsKind(err, msapi.Invalid) && in.PreviousUserID != "" {
		// The previous user may have been deleted meanwhile; an empty
		// lookup is the closest to the state before.
		err = dv.ClearMarketoConfigUser(ctx, cfg.ID, nav)
	}
	return UndoResult{}, mapError(ctx, "restore the Marketo Config user", err, asProvisioner, fix{permission: permDataverse})
}

type RemoveApplicationUserInput struct {
	TenantID     string `json:"tenantId"`
	OrgURL       string `json:"orgUrl"`
	SystemUserID string `json:"systemUserId"`
}

// DisabledNotDeleted starts the note of an application user that Dataverse
// would not delete: it is disabled and holds no security role, which is
// the defined end state (it cannot sign in, and could do nothing if it did).
const DisabledNotDeleted = "disabled, not deleted"

// RemoveApplicationUser disables the user first: Dataverse deletes only
// disabled users, and a disabled user is harmless if the delete fails.
// When Dataverse refuses the delete because the user's Entra identity still
// exists (0x80048359), the user's roles are removed too and the undo ends
// there, recorded as "disabled, not deleted", instead of failing for good.
func (a *Activities) RemoveApplicationUser(ctx context.Context, in RemoveApplicationUserInput) (UndoResult, error) {
	dv := a.provisioned(in.TenantID, in.OrgURL)
	err := dv.SetUserDisabled(ctx, in.SystemUserID, true)
	if isGone(err) {
		return UndoResult{AlreadyGone: true}, nil
	}
	if err != nil {
		return UndoResult{}, mapError(ctx, "disable the application user", err, asProvisioner, fix{permission: permDataverse})
	}
	err = dv.DeleteUser(ctx, in.SystemUserID)
	if isGone(err) {
		return UndoResult{AlreadyGone: true}, nil
	}
	if dataverse.DeleteRefused(err) {
		roles, rerr := dv.UserRoles(ctx, in.SystemUserID)
		if rerr != nil && !isGone(rerr) {
			return UndoResult{}, mapError(ctx, "read the disabled application user's roles", rerr, asProvisioner, fix{permission: permDataverse})
		}
		for _, r := range roles {
			if derr := dv.DisassociateRole(ctx, in.SystemUserID, r.ID); derr != nil && !isGone(derr) {
				return UndoResult{}, mapError(ctx, "remove a role of the disabled application user", derr, asProvisioner, fix{permission: permDataverse})
			}
		}
		return UndoResult{Note: fmt.Sprintf("%s: Dataverse refused to delete application user %s while its app exists in Entra (%s); it is disabled and holds no role",
			DisabledNotDeleted, in.SystemUserID, dataverse.CodeUserDeleteRefused)}, nil
	}
	return UndoResult{}, mapError(ctx, "delete the application user", err, asProvisioner, fix{permission: permDataverse})
}

type RemoveClientSecretInput struct {
	TenantID    string `json:"tenantId"`
	AppObjectID string `json:"appObjectId"`
	KeyID       string `json:"keyId"`
}

// RemoveClientSecret checks the list first because removePassword of an
// unknown keyId is a 400, not a 404 (removePassword below).
func (a *Activities) RemoveClientSecret(ctx context.Context, in RemoveClientSecretInput) (UndoResult, error) {
	g := a.graphFor(in.TenantID)
	creds, err := g.ListPasswords(ctx, in.AppObjectID)
	if isGone(err) {
		return UndoResult{AlreadyGone: true}, nil
	}
	if err != nil {
		return UndoResult{}, mapError(ctx, "list the app's secrets", err, asProvisioner, fix{permission: permApps})
	}
	found := false
	for _, c := range creds {
		found = found || c.KeyID == in.KeyID
	}
	if !found {
		return UndoResult{AlreadyGone: true}, nil
	}
	gone, err := removePassword(ctx, g, in.AppObjectID, in.KeyID)
	if gone {
		return UndoResult{AlreadyGone: true}, nil
	}
	return UndoResult{}, mapError(ctx, "remove the client secret", err, asProvisioner, fix{permission: permApps})
}

// removePassword removes one client secret and says whether it was gone
// already. Microsoft documents only removePassword's 204; an unknown keyId
// is refused as a bad request (400), which is also what a malformed call
// gets, so a refusal is settled by reading the list again: a key no longer
// listed was removed by someone else (a concurrent attempt, an admin).
func removePassword(ctx context.Context, g graphAPI, appObjectID, keyID string) (gone bool, err error) {
	err = g.RemovePassword(ctx, appObjectID, keyID)
	switch {
	case err == nil:
		return false, nil
	case isGone(err):
		return true, nil
	case !msapi.IsKind(err, msapi.Invalid):
		return false, err
	}
	creds, lerr := g.ListPasswords(ctx, appObjectID)
	if isGone(lerr) {
		return true, nil
	}
	if lerr != nil || slices.ContainsFunc(creds, func(c graph.PasswordCredential) bool { return strings.EqualFold(c.KeyID, keyID) }) {
		return false, err
	}
	return true, nil
}

type RemoveServicePrincipalInput struct {
	TenantID           string `json:"tenantId"`
	ServicePrincipalID string `json:"servicePrincipalId"`
}

func (a *Activities) RemoveServicePrincipal(ctx context.Context, in RemoveServicePrincipalInput) (UndoResult, error) {
	err := a.graphFor(in.TenantID).DeleteServicePrincipal(ctx, in.ServicePrincipalID)
	if isGone(err) {
		return UndoResult{AlreadyGone: true}, nil
	}
	return UndoResult{}, mapError(ctx, "delete the service principal", err, asProvisioner, fix{permission: permApps})
}

type RemoveApplicationInput struct {
	TenantID    string `json:"tenantId"`
	AppObjectID string `json:"appObjectId"`
}

func (a *Activities) RemoveApplication(ctx context.Context, in RemoveApplicationInput) (UndoResult, error) {
	err := a.graphFor(in.TenantID).DeleteApplication(ctx, in.AppObjectID)
	if isGone(err) {
		return UndoResult{AlreadyGone: true}, nil
	}
	return UndoResult{}, mapError(ctx, "delete the application", err, asProvisioner, fix{permission: permApps})
}
