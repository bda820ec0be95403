package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/mktos2s/mktos2s/internal/msapi"
)

// Temporal application error types. Workflows and the CLI match on them;
// the values are stable.
const (
	ErrThrottled              = "Throttled"              // retryable, after Retry-After
	ErrTransient              = "Transient"              // retryable
	ErrConflict               = "Conflict"               // retryable: a concurrent change, read again
	ErrNotFound               = "NotFound"               // retryable: often replication lag right after a create
	ErrReplicationLag         = "ReplicationLag"         // retryable: the new app, secret or user is not visible everywhere yet
	ErrPermissionDenied       = "PermissionDenied"       // non-retryable: grant the named permission
	ErrInvalidRequest         = "InvalidRequest"         // non-retryable: fix the named input or setting
	ErrProvisionerCredentials = "ProvisionerCredentials" // non-retryable: microsoft.provisioner.* is wrong
	ErrPreflight              = "PreflightFailed"        // non-retryable: a prerequisite is missing; nothing was created
	ErrConsentNotGranted      = "ConsentNotGranted"      // used by the workflow: denied or timed out
	ErrValidationFailed       = "ValidationFailed"       // non-retryable: a sync validation check failed
	ErrAlreadyOnboarded       = "AlreadyOnboarded"       // non-retryable: the app is live (a completed onboarding); rotate or offboard instead
)

// principal says whose credentials made a call, because a 401 means
// different things for each.
type principal int

const (
	asProvisioner principal = iota // a 401 is a configuration error
	asNewApp                       // a 401 is replication lag of the new app or secret
)

// fix tells the operator what to do when a call is refused, e.g. the Graph
// permission or Dataverse role it needs.
type fix struct {
	permission string // shown on PermissionDenied
	invalid    string // shown on Invalid
}

// mapError turns an error from internal/msapi into the Temporal error that
// encodes its retry semantics. It is the only place that decides
// retryability. Messages carry msapi's message, which never holds a secret.
func mapError(ctx context.Context, what string, err error, who principal, f fix) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return err // the attempt was cancelled or timed out; Temporal knows what to do
	}
	var me *msapi.Error
	if !errors.As(err, &me) {
		// Network and other untyped failures: retry.
		return temporal.NewApplicationErrorWithOptions(what+": "+err.Error(), ErrTransient, temporal.ApplicationErrorOptions{})
	}
	// msapi.Error.Error() already names service, op, status, code, message,
	// the network cause and the request ID (for Microsoft support).
	detail := me.Error()
	switch me.Kind {
	case msapi.Throttled:
		return temporal.NewApplicationErrorWithOptions(what+": throttled: "+detail, ErrThrottled,
			temporal.ApplicationErrorOptions{NextRetryDelay: me.RetryAfter})
	case msapi.PermissionDenied:
		msg := what + ": permission denied: " + detail
		if f.permission != "" {
			msg += "; grant " + f.permission
		}
		return temporal.NewApplicationErrorWithOptions(msg, ErrPermissionDenied, temporal.ApplicationErrorOptions{NonRetryable: true})
	case msapi.Invalid:
		msg := what + ": request rejected: " + detail
		if f.invalid != "" {
			msg += "; " + f.invalid
		}
		return temporal.NewApplicationErrorWithOptions(msg, ErrInvalidRequest, temporal.ApplicationErrorOptions{NonRetryable: true})
	case msapi.Unauthorized:
		if who == asNewApp {
			return temporal.NewApplicationErrorWithOptions(what+": the new app's credentials are not accepted yet (replication lag): "+detail,
				ErrReplicationLag, temporal.ApplicationErrorOptions{})
		}
		return temporal.NewApplicationErrorWithOptions(what+": the provisioner could not sign in: "+detail+
			"; check microsoft.provisioner.* (client ID, secret or certificate) and that the provisioner app exists in this tenant",
			ErrProvisionerCredentials, temporal.ApplicationErrorOptions{NonRetryable: true})
	case msapi.NotFound:
		return temporal.NewApplicationErrorWithOptions(what+": not found: "+detail, ErrNotFound, temporal.ApplicationErrorOptions{})
	case msapi.Conflict:
		return temporal.NewApplicationErrorWithOptions(what+": conflict: "+detail, ErrConflict, temporal.ApplicationErrorOptions{})
	default:
		return temporal.NewApplicationErrorWithOptions(what+": "+detail, ErrTransient, temporal.ApplicationErrorOptions{})
	}
}

// preflightError is a failed prerequisite: final, and nothing was created.
func preflightError(format string, args ...any) error {
	return temporal.NewApplicationErrorWithOptions("preflight: "+fmt.Sprintf(format, args...), ErrPreflight,
		temporal.ApplicationErrorOptions{NonRetryable: true})
}

func lagError(format string, args ...any) error {
	return temporal.NewApplicationErrorWithOptions(fmt.Sprintf(format, args...), ErrReplicationLag, temporal.ApplicationErrorOptions{})
}

// isGone reports whether err means the object no longer exists, which is
// success for an undo.
func isGone(err error) bool {
	return msapi.IsKind(err, msapi.NotFound)
}

// Permissions named in messages. Least privilege first.
const (
	permApps       = "Microsoft Graph application permission Application.ReadWrite.OwnedBy to the provisioner app (and make the provisioner an owner of apps it did not create)"
	permPolicy     = "Microsoft Graph application permission Policy.ReadWrite.ApplicationConfiguration to the provisioner app"
	permDomains    = "Microsoft Graph application permission Domain.Read.All to the provisioner app (or use federation=always|never)"
	permGrants     = "Microsoft Graph application permission Directory.Read.All to the provisioner app (least privileged for reading oauth2PermissionGrants)"
	permOrg        = "Microsoft Graph application permission Organization.Read.All to the provisioner app"
	permDataverse  = "the Dataverse security role System Administrator to the provisioner's application user in this org"
	permNewAppUser = "the Dataverse security role Marketo Sync User to the new application user"
)
