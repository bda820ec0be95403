package activities

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/mktos2s/mktos2s/internal/custody"
	"github.com/mktos2s/mktos2s/internal/dataverse"
	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/internal/msauth"
)

// Names of the validation checks. They follow the checklist Marketo's
// "Validate Microsoft Dynamics Sync" produces for an S2S setup (seven
// checks), reproduced from the Dynamics side so the onboarding can tell
// before the operator runs it in Marketo.
const (
	CheckCredentials = "Client ID and client secret are valid"
	CheckSignIn      = "Sync user can sign in to the org"
	CheckUserEnabled = "Sync user is an enabled application user"
	CheckSolution    = "Marketo solution is installed"
	CheckRole        = "Sync user has the Marketo Sync User role"
	CheckConfig      = "Marketo Config points at the sync user"
	CheckUsername    = "Sync user has a username (e-mail) for Marketo"
)

type ValidateConnectionInput struct {
	TenantID           string         `json:"tenantId"`
	OrgURL             string         `json:"orgUrl"`
	AppID              string         `json:"appId"`
	ClientSecret       custody.Sealed `json:"clientSecret"` // sealed; opened only here, to sign in as the new app
	SystemUserID       string         `json:"systemUserId"`
	RoleName           string         `json:"roleName"`
	SolutionName       string         `json:"solutionName"`
	MinSolutionVersion string         `json:"minSolutionVersion"`
}

type ValidateConnectionResult struct {
	Checks []Check `json:"checks"`
	Passed bool    `json:"passed"`
}

// Failed lists the failed checks as "name: reason".
func (r ValidateConnectionResult) Failed() []string {
	var out []string
	for _, c := range r.Checks {
		if !c.Passed {
			out = append(out, c.Name+": "+c.Reason)
		}
	}
	return out
}

// ValidateConnection signs in as the new app with the new secret, the way
// Marketo will, and checks what Marketo's validation checks. A refused
// sign-in right after setup is replication lag and is retried, not failed.
func (a *Activities) ValidateConnection(ctx context.Context, in ValidateConnectionInput) (ValidateConnectionResult, error) {
	secret, err := a.deps.Custody.Open(in.ClientSecret)
	if err != nil {
		return ValidateConnectionResult{}, temporal.NewNonRetryableApplicationError(
			"cannot open the new client secret with this worker's custody keys ("+err.Error()+
				"); configure the custody key it was sealed with (custody.keys) or rotate the secret", ErrInvalidRequest, nil)
	}
	asApp := a.dataverseFor(in.TenantID, in.OrgURL, msauth.Credential{ClientID: in.AppID, Secret: secret})
	who, err := reread(ctx, asApp.WhoAmI)
	if err != nil {
		if msapi.IsKind(err, msapi.Unauthorized) || msapi.IsKind(err, msapi.PermissionDenied) {
			return ValidateConnectionResult{}, mapError(ctx, "sign in as the new app", lagged(err), asNewApp, fix{})
		}
		return ValidateConnectionResult{}, mapError(ctx, "sign in as the new app", err, asNewApp, fix{permission: permNewAppUser})
	}

	checks := []Check{
		{Name: CheckCredentials, Passed: true},
		pass(CheckSignIn, who.UserID == in.SystemUserID,
			fmt.Sprintf("WhoAmI returned user %s, expected the application user %s", who.UserID, in.SystemUserID)),
	}

	// The remaining checks read as the provisioner: the sync role need
	// not grant read access to users, roles or solutions.
	dv := a.provisioned(in.TenantID, in.OrgURL)
	user, err := reread(ctx, func(ctx context.Context) (dataverse.SystemUser, error) { return dv.FindApplicationUser(ctx, in.AppID) })
	switch {
	case err == nil:
		checks = append(checks, pass(CheckUserEnabled, !user.IsDisabled && user.AccessMode == 4,
			fmt.Sprintf("user %s is disabled=%t with access mode %d (want enabled, 4 = non-interactive)", user.ID, user.IsDisabled, user.AccessMode)))
	case msapi.IsKind(err, msapi.NotFound):
		checks = append(checks, Check{Name: CheckUserEnabled, Reason: "no application user with applicationid " + in.AppID})
	default:
		return ValidateConnectionResult{}, mapError(ctx, "read the application user", err, asProvisioner, fix{permission: permDataverse})
	}

	sol, err := reread(ctx, func(ctx context.Context) (dataverse.Solution, error) { return dv.FindSolution(ctx, in.SolutionName) })
	switch {
	case err == nil:
		cmp, cerr := dataverse.CompareVersions(sol.Version, in.MinSolutionVersion)
		checks = append(checks, pass(CheckSolution, cerr == nil && cmp >= 0,
			fmt.Sprintf("version %s, need at least %s", sol.Version, in.MinSolutionVersion)))
	case msapi.IsKind(err, msapi.NotFound):
		checks = append(checks, Check{Name: CheckSolution, Reason: "solution " + in.SolutionName + " not found"})
	default:
		return ValidateConnectionResult{}, mapError(ctx, "read the Marketo solution", err, asProvisioner, fix{permission: permDataverse})
	}

	roles, err := reread(ctx, func(ctx context.Context) ([]dataverse.Role, error) { return dv.UserRoles(ctx, in.SystemUserID) })
	if err != nil {
		return ValidateConnectionResult{}, mapError(ctx, "read the sync user's roles", err, asProvisioner, fix{permission: permDataverse})
	}
	checks = append(checks, pass(CheckRole,
		slices.ContainsFunc(roles, func(r dataverse.Role) bool { return strings.EqualFold(r.Name, in.RoleName) }),
		fmt.Sprintf("the user holds %s, not %q", roleNames(roles), in.RoleName)))

	cfg, err := reread(ctx, dv.MarketoConfig)
	switch {
	case err == nil:
		checks = append(checks, pass(CheckConfig, cfg.UserID == in.SystemUserID,
			fmt.Sprintf("Marketo Config %q points at user %q", cfg.Name, cfg.UserID)))
	case msapi.IsKind(err, msapi.NotFound):
		checks = append(checks, Check{Name: CheckConfig, Reason: "Marketo Config record not found"})
	default:
		return ValidateConnectionResult{}, mapError(ctx, "read the Marketo Config", err, asProvisioner, fix{permission: permDataverse})
	}

	checks = append(checks, pass(CheckUsername, user.InternalEmail != "", "the application user has no internalemailaddress"))

	out := ValidateConnectionResult{Checks: checks, Passed: true}
	for _, c := range checks {
		out.Passed = out.Passed && c.Passed
	}
	return out, nil
}

func pass(name string, ok bool, reasonIfNot string) Check {
	if ok {
		return Check{Name: name, Passed: true}
	}
	return Check{Name: name, Reason: reasonIfNot}
}

func roleNames(roles []dataverse.Role) string {
	if len(roles) == 0 {
		return "no roles"
	}
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = fmt.Sprintf("%q", r.Name)
	}
	return strings.Join(names, ", ")
}

// lagged reclassifies a refusal of the brand-new app as Unauthorized, so
// mapError treats it as replication lag: Dataverse answers 403 until it
// has seen the app and its application user.
func lagged(err error) error {
	me, ok := msapi.AsError(err)
	if !ok {
		return err
	}
	c := *me
	c.Kind = msapi.Unauthorized
	return &c
}
