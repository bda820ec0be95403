package activities

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/mktos2s/mktos2s/internal/dataverse"
	"github.com/mktos2s/mktos2s/internal/msapi"
)

// graphNeed is one Microsoft Graph application permission that steps of
// the onboarding need. Any permission of accepted will do; the first is
// the least privileged one Microsoft's API page lists, the one to grant.
type graphNeed struct {
	accepted []string
	why      string
	doc      string // the API page whose permissions table says so
}

// The Graph permissions, as Microsoft's API reference lists them for
// application permissions (least privileged first, then the higher ones
// that also work). The emulator enforces the same sets.
var (
	needOrganization = graphNeed{
		accepted: []string{"Organization.Read.All", "Directory.Read.All", "Organization.ReadWrite.All", "Directory.ReadWrite.All"},
		why:      "read the tenant (preflight)",
		doc:      "https://learn.microsoft.com/graph/api/organization-list",
	}
	needApplications = graphNeed{
		accepted: []string{"Application.ReadWrite.OwnedBy", "Application.ReadWrite.All"},
		why:      "register the app, create its service principal and client secret, and remove them on undo or offboarding",
		doc:      "https://learn.microsoft.com/graph/api/application-upsert",
	}
	needGrants = graphNeed{
		accepted: []string{"Directory.Read.All", "DelegatedPermissionGrant.ReadWrite.All", "Directory.ReadWrite.All"},
		why:      "verify the admin's consent (read the app's oauth2PermissionGrants)",
		doc:      "https://learn.microsoft.com/graph/api/oauth2permissiongrant-list",
	}
	needDomains = graphNeed{
		accepted: []string{"Domain.Read.All", "Directory.Read.All", "Domain.ReadWrite.All", "Directory.ReadWrite.All"},
		why:      "find out whether the tenant is AD FS federated (federation=auto; or set federation=always|never)",
		doc:      "https://learn.microsoft.com/graph/api/domain-list",
	}
	// Creating the policy needs Policy.ReadWrite.ApplicationConfiguration
	// (nothing less); assigning it needs Policy.Read.All, which that
	// permission includes, with Application.ReadWrite.OwnedBy above.
	needHRDPolicy = graphNeed{
		accepted: []string{"Policy.ReadWrite.ApplicationConfiguration"},
		why:      "create the Home Realm Discovery policy a federated tenant needs and assign it to the app's service principal",
		doc:      "https://learn.microsoft.com/graph/api/policyroot-post-homerealmdiscoverypolicies",
	}
)

// dataverseAdminRole is the security role the provisioner's application
// user needs: creating application users and assigning security roles
// take System Administrator ("Manage application users in the Power
// Platform admin center").
const dataverseAdminRole = "System Administrator"

func (n graphNeed) metBy(roles []string) bool {
	return slices.ContainsFunc(n.accepted, func(p string) bool { return slices.Contains(roles, p) })
}

// missingPermission is one line of the preflight's permission report.
type missingPermission struct{ what, why, where string }

func (a *Activities) missingGraph(n graphNeed, why string) missingPermission {
	if why == "" {
		why = n.why
	}
	also := ""
	if len(n.accepted) > 1 {
		also = " (or one of " + strings.Join(n.accepted[1:], ", ") + ")"
	}
	return missingPermission{
		what: "Microsoft Graph application permission " + n.accepted[0] + also,
		why:  why + "; " + n.doc,
		where: fmt.Sprintf("Microsoft Entra admin center > App registrations > the provisioner app (client ID %s) > API permissions > "+
			"Add a permission > Microsoft Graph > Application permissions > %s, then Grant admin consent for the tenant; "+
			"a running worker sees it when its cached token is renewed (within the hour) or when it restarts", a.deps.Provisioner.ClientID, n.accepted[0]),
	}
}

func missingDataverseRole(host string) missingPermission {
	return missingPermission{
		what: "Dataverse security role " + dataverseAdminRole + " for the provisioner's application user",
		why: "create the Marketo sync application user, give it the Marketo Sync User role, point Marketo Config at it and publish " +
			"customizations (and add the sync filter columns when asked); https://learn.microsoft.com/power-platform/admin/manage-application-users",
		where: "Power Platform admin center > Environments > " + host + " > Settings > Users + permissions > Application users > " +
			"the provisioner app > Edit security roles > " + dataverseAdminRole,
	}
}

// permissionReport is the one message naming every missing permission.
func permissionReport(missing []missingPermission) error {
	var b strings.Builder
	fmt.Fprintf(&b, "preflight: the provisioner lacks %d permission(s) the steps about to run need; nothing was created:", len(missing))
	for _, m := range missing {
		fmt.Fprintf(&b, "\n  - %s: needed to %s. Grant it in %s.", m.what, m.why, m.where)
	}
	return temporal.NewApplicationErrorWithOptions(b.String(), ErrPermissionDenied, temporal.ApplicationErrorOptions{NonRetryable: true})
}

// hasAdminRole reads the provisioner's own security roles in the org. A
// user Dataverse does not even let read its roles has none that would do.
func hasAdminRole(ctx context.Context, dv dataverseAPI, userID string) (bool, error) {
	roles, err := reread(ctx, func(ctx context.Context) ([]dataverse.Role, error) { return dv.UserRoles(ctx, userID) })
	if msapi.IsKind(err, msapi.PermissionDenied) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(roles, func(r dataverse.Role) bool { return strings.EqualFold(r.Name, dataverseAdminRole) }), nil
}
