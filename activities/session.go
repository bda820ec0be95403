package activities

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/mktos2s/mktos2s/internal/consent"
	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/internal/msauth"
	"github.com/mktos2s/mktos2s/internal/powerplatform"
)

// The customer-admin session mode (README "One action per customer"): the
// customer's admin consents to the provisioner and signs in once; the
// provisioner borrows the admin's delegated token for one call, addAppUser,
// which makes the provisioner an application user of this one environment;
// after validation the provisioner disables that user again (just-in-time
// access). The activities here never log, return or store the code or the
// token: the code arrives sealed, is opened, redeemed once and dropped.

// Error types of the session mode.
const (
	ErrAdminSession = "AdminSession" // non-retryable: the admin must open the link again (the message says what else)
)

// sessionError is final and names what the customer's admin must do.
func sessionError(format string, args ...any) error {
	return temporal.NewApplicationErrorWithOptions(fmt.Sprintf(format, args...), ErrAdminSession,
		temporal.ApplicationErrorOptions{NonRetryable: true})
}

type BuildSessionURLInput struct {
	TenantID   string `json:"tenantId"`
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId"` // first run ID: the link belongs to this onboarding (C1)
}

type BuildSessionURLResult struct {
	URL string `json:"url"`
}

// BuildSessionURL is the one link the operator sends the customer's admin:
// the v2 admin consent for the provisioner, back to the session callback,
// which continues the same browser to the sign-in.
func (a *Activities) BuildSessionURL(_ context.Context, in BuildSessionURLInput) (BuildSessionURLResult, error) {
	if a.deps.ConsentSigner == nil {
		return BuildSessionURLResult{}, temporal.NewNonRetryableApplicationError(
			"the customer-admin session mode needs consent.callbackKey (and `starter serve` reachable at consent.redirectURI): "+
				"set both, or start without --admin-session", ErrInvalidRequest, nil)
	}
	redirect, err := consent.SessionRedirectURI(a.deps.ConsentRedirectURI)
	if err == nil {
		var u string
		u, err = a.deps.ConsentSigner.SessionConsentURL(a.deps.AuthorityHost, in.TenantID, a.deps.Provisioner.ClientID, redirect, in.WorkflowID, in.RunID)
		if err == nil {
			return BuildSessionURLResult{URL: u}, nil
		}
	}
	return BuildSessionURLResult{}, temporal.NewNonRetryableApplicationError("build the admin-session link: "+err.Error(), ErrInvalidRequest, nil)
}

type AddProvisionerAppUserInput struct {
	TenantID   string `json:"tenantId"`
	OrgURL     string `json:"orgUrl"`
	WorkflowID string `json:"workflowId"`
	// SealedCode is the authorization code as the session callback sealed it
	// (consent.Signer.SealCode): never plain text in a payload.
	SealedCode string `json:"sealedCode"`
	// Nonce is of the sign-in's state; with the callback key it derives the PKCE verifier.
	Nonce string `json:"nonce"`
	// SignedInAt is when the callback received the code; a code lives about 10 minutes.
	SignedInAt time.Time `json:"signedInAt"`
}

type AddProvisionerAppUserResult struct {
	EnvironmentID string `json:"environmentId"`
	AdminUsername string `json:"adminUsername,omitempty"` // who lent the token (audit)
	AlreadyMember bool   `json:"alreadyMember"`           // nothing to add: the provisioner could sign in to Dataverse already
}

// AddProvisionerAppUser redeems the admin's code and asks the Power Platform
// admin API to add the provisioner as an application user of the org's
// environment. It is idempotent: a provisioner that can already sign in to
// the org needs nothing, and a code already redeemed by an attempt whose
// answer was lost is only an error if the user did not appear since.
func (a *Activities) AddProvisionerAppUser(ctx context.Context, in AddProvisionerAppUserInput) (AddProvisionerAppUserResult, error) {
	var out AddProvisionerAppUserResult
	if _, err := a.provisioned(in.TenantID, in.OrgURL).WhoAmI(ctx); err == nil {
		out.AlreadyMember = true
		return out, nil
	}
	if a.deps.ConsentSigner == nil {
		return out, temporal.NewNonRetryableApplicationError("the admin session needs consent.callbackKey on the worker", ErrInvalidRequest, nil)
	}
	code, err := a.deps.ConsentSigner.OpenCode(in.SealedCode, in.WorkflowID)
	if err != nil {
		return out, sessionError("open the admin's sign-in code: %v; the worker and `starter serve` must share consent.callbackKey; "+
			"then the customer's admin opens the link again", err)
	}
	redirect, err := consent.SessionRedirectURI(a.deps.ConsentRedirectURI)
	if err != nil {
		return out, temporal.NewNonRetryableApplicationError(err.Error(), ErrInvalidRequest, nil)
	}
	tok, err := a.deps.Auth.RedeemCode(ctx, in.TenantID, a.deps.Provisioner, code, redirect,
		a.deps.ConsentSigner.Verifier(in.WorkflowID, in.Nonce), powerplatform.DelegatedScope)
	code = ""
	if err != nil {
		return out, redeemError(ctx, err, in)
	}
	out.AdminUsername = tok.Username
	pp := powerplatform.New(a.deps.PowerPlatformBaseURL, a.deps.HTTP, staticToken(tok.AccessToken))
	tok = msauth.DelegatedToken{} // used for the two calls below, then gone with pp
	env, err := pp.EnvironmentFor(ctx, in.OrgURL)
	if err == nil {
		out.EnvironmentID = env.Name
		err = pp.AddAppUser(ctx, env.Name, a.deps.Provisioner.ClientID)
	}
	switch {
	case err == nil:
		return out, nil
	case msapi.IsKind(err, msapi.PermissionDenied), msapi.IsKind(err, msapi.Unauthorized):
		return out, sessionError("add the provisioner to the Dynamics environment: %v; the account %s that signed in is not a Power Platform administrator: "+
			"a Power Platform administrator (or Global administrator) of the tenant must open the link again and sign in", err, orUnknown(out.AdminUsername))
	case msapi.IsKind(err, msapi.NotFound):
		return out, sessionError("add the provisioner to the Dynamics environment: %v; check the org URL %s, or have a Power Platform administrator who can see that environment open the link again", err, in.OrgURL)
	}
	// Throttled or transient: the token lives an hour, but the code is spent;
	// a retry of this activity cannot redeem it again, so it must not be
	// retried by Temporal. The workflow asks for a new sign-in.
	return out, sessionError("add the provisioner to the Dynamics environment: %v; the customer's admin opens the link again", err)
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

func redeemError(ctx context.Context, err error, in AddProvisionerAppUserInput) error {
	me, _ := msapi.AsError(err)
	msg := err.Error()
	switch {
	case me != nil && strings.Contains(me.Message, "AADSTS54005"):
		return sessionError("redeem the admin's sign-in code: it was used already (%s) and the provisioner is not an application user of %s; "+
			"the customer's admin opens the link again", msg, in.OrgURL)
	case me != nil && strings.Contains(me.Message, "AADSTS70008"):
		return sessionError("redeem the admin's sign-in code: it expired (signed in at %s; codes live about 10 minutes); the customer's admin opens the link again",
			in.SignedInAt.UTC().Format(time.RFC3339))
	case me != nil && me.Kind == msapi.Unauthorized:
		return mapError(ctx, "redeem the admin's sign-in code", err, asProvisioner, fix{})
	case me != nil && (me.Kind == msapi.Throttled || me.Kind == msapi.Transient):
		return mapError(ctx, "redeem the admin's sign-in code", err, asProvisioner, fix{}) // not redeemed: retrying can work
	}
	return sessionError("redeem the admin's sign-in code: %s; the customer's admin opens the link again", msg)
}

type staticToken string

func (s staticToken) Token(context.Context) (string, error) { return string(s), nil }

type AwaitProvisionerAppUserInput struct {
	TenantID string        `json:"tenantId"`
	OrgURL   string        `json:"orgUrl"`
	MaxWait  time.Duration `json:"maxWait"` // how long addAppUser's user may take to appear; 0 = 10 minutes
	Poll     time.Duration `json:"poll"`    // 0 = 5 seconds
}

type AwaitProvisionerAppUserResult struct {
	SystemUserID string `json:"systemUserId"`
}

// AwaitProvisionerAppUser waits for the application user addAppUser
// promised: the API answers 200 even when nothing happens, so the only proof
// is the provisioner signing in to the org. It polls with heartbeats, so a
// worker that dies mid-wait hands over quickly.
func (a *Activities) AwaitProvisionerAppUser(ctx context.Context, in AwaitProvisionerAppUserInput) (AwaitProvisionerAppUserResult, error) {
	maxWait, poll := in.MaxWait, in.Poll
	if maxWait <= 0 {
		maxWait = 10 * time.Minute
	}
	if poll <= 0 {
		poll = 5 * time.Second
	}
	start := time.Now()
	if activity.IsActivity(ctx) {
		start = activity.GetInfo(ctx).ScheduledTime // the deadline holds across attempts
	}
	dv := a.provisioned(in.TenantID, in.OrgURL)
	for {
		me, err := dv.WhoAmI(ctx)
		if err == nil {
			return AwaitProvisionerAppUserResult{SystemUserID: me.UserID}, nil
		}
		if !msapi.IsKind(err, msapi.PermissionDenied) && !msapi.IsKind(err, msapi.Unauthorized) {
			return AwaitProvisionerAppUserResult{}, mapError(ctx, "sign in to the org as the provisioner", err, asProvisioner, fix{})
		}
		if time.Since(start) >= maxWait {
			return AwaitProvisionerAppUserResult{}, sessionError("the Power Platform admin API accepted adding the provisioner (HTTP 200) but its application user "+
				"did not appear in %s within %s (last answer: %v); the admin who signed in may not administer this environment (a security group "+
				"restricts it) or the environment has no Dataverse: a Power Platform administrator of this environment must open the link again, or add "+
				"the provisioner's application user in the Power Platform admin center", in.OrgURL, maxWait, err)
		}
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, time.Since(start).Round(time.Second).String())
		}
		select {
		case <-ctx.Done():
			return AwaitProvisionerAppUserResult{}, ctx.Err()
		case <-time.After(poll):
		}
	}
}

type RevokeProvisionerAccessInput struct {
	TenantID string `json:"tenantId"`
	OrgURL   string `json:"orgUrl"`
}

type RevokeProvisionerAccessResult struct {
	SystemUserID string `json:"systemUserId,omitempty"`
	Disabled     bool   `json:"disabled"`
	// Deleted is always false: Dataverse deletes only disabled users, and a
	// disabled provisioner can no longer sign in to delete itself. The admin
	// may delete it in the Power Platform admin center; the next session
	// mode onboarding adds it again.
	Deleted bool   `json:"deleted"`
	Note    string `json:"note,omitempty"`
}

// RevokeProvisionerAccess disables the provisioner's own application user in
// the org, the end of its just-in-time access (after validation, and in
// compensation). Already disabled or not a member is success.
func (a *Activities) RevokeProvisionerAccess(ctx context.Context, in RevokeProvisionerAccessInput) (RevokeProvisionerAccessResult, error) {
	dv := a.provisioned(in.TenantID, in.OrgURL)
	me, err := dv.WhoAmI(ctx)
	if msapi.IsKind(err, msapi.PermissionDenied) {
		return RevokeProvisionerAccessResult{Disabled: true, Note: "the provisioner cannot sign in to the org (disabled or not a member): nothing to revoke"}, nil
	}
	if err != nil {
		return RevokeProvisionerAccessResult{}, mapError(ctx, "sign in to the org as the provisioner", err, asProvisioner, fix{})
	}
	if err := dv.SetUserDisabled(ctx, me.UserID, true); err != nil {
		if msapi.IsKind(err, msapi.PermissionDenied) {
			return RevokeProvisionerAccessResult{}, sessionError("disable the provisioner's application user %s in %s: %v; a System Administrator of the org "+
				"disables it in the Power Platform admin center (Settings > Users + permissions > Application users)", me.UserID, in.OrgURL, err)
		}
		return RevokeProvisionerAccessResult{}, mapError(ctx, "disable the provisioner's application user", err, asProvisioner, fix{permission: permDataverse})
	}
	return RevokeProvisionerAccessResult{SystemUserID: me.UserID, Disabled: true,
		Note: "disabled; Dataverse deletes only disabled users and the provisioner cannot sign in to delete itself"}, nil
}
