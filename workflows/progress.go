package workflows

import (
	"time"

	"github.com/mktos2s/mktos2s/activities"
	"github.com/mktos2s/mktos2s/internal/custody"
)

// Step names are stable: they are shown in the UI, stored in the
// OnboardingStep search attribute and filtered on by `starter list`.
const (
	StepPreflight                   = "preflight"
	StepRegisterApplication         = "register-application"
	StepCreateServicePrincipal      = "create-service-principal"
	StepAwaitingAdminConsent        = "awaiting-admin-consent"
	StepAddClientSecret             = "add-client-secret"
	StepDeliverToVault              = "deliver-to-key-vault" // not a plan step: only with keyVault.url
	StepCreateApplicationUser       = "create-application-user"
	StepConfigureHomeRealmDiscovery = "configure-home-realm-discovery"
	StepAssignSecurityRole          = "assign-security-role"
	StepConfigureMarketoSolution    = "configure-marketo-solution"
	StepPublishCustomizations       = "publish-customizations"
	StepCreateSyncFilter            = "create-sync-filter"
	StepValidateConnection          = "validate-connection"
	StepCompleted                   = "completed"
	StepCompensating                = "compensating"
	StepFailed                      = "failed"
	// StepProvisioning is only a value of the OnboardingStep search
	// attribute: a run past consent, still creating (progress names the step).
	StepProvisioning = "provisioning"
)

// Progress statuses.
const (
	StatusRunning        = "running"
	StatusWaitingConsent = "waiting-for-consent"
	StatusCompensating   = "compensating"
	StatusCompleted      = "completed"
	StatusFailed         = "failed"
	StatusCancelled      = "cancelled"
)

// Resources are the IDs of everything the onboarding created or changed,
// recorded the moment each exists so compensation knows what to undo. They
// never hold a secret value. Every field belongs to one entry of
// resourceTable (TestEveryRecordedIDHasAnUndo).
type Resources struct {
	AppObjectID        string `json:"appObjectId,omitempty"`
	AppID              string `json:"appId,omitempty"` // the client ID
	ServicePrincipalID string `json:"servicePrincipalId,omitempty"`
	SecretKeyID        string `json:"secretKeyId,omitempty"`
	SystemUserID       string `json:"systemUserId,omitempty"`
	RoleID             string `json:"roleId,omitempty"`
	HRDPolicyID        string `json:"hrdPolicyId,omitempty"`
	ConfigID           string `json:"configId,omitempty"`
	// ConfigPreviousUserID is the Marketo User the config named before the
	// onboarding changed it, so that compensation can put it back.
	ConfigPreviousUserID string `json:"configPreviousUserId,omitempty"`
	// ProvisionerUserID is the provisioner's own application user, added in
	// the customer-admin session mode (session.go) and disabled after validation.
	ProvisionerUserID string `json:"provisionerUserId,omitempty"`
}

// UndoOutcome is the result of one compensation step.
type UndoOutcome struct {
	Step  string `json:"step"` // the step whose effect was undone
	Undo  string `json:"undo"` // the undo activity
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Note  string `json:"note,omitempty"` // e.g. the user was disabled, not deleted
}

// Progress is what the progress query returns. It never holds the secret.
type Progress struct {
	Step            string    `json:"step"`
	Status          string    `json:"status"`
	ConsentURL      string    `json:"consentUrl"`
	CompletedSteps  []string  `json:"completedSteps"`
	Resources       Resources `json:"resources"`
	Error           string    `json:"error"`
	UpdatedAt       time.Time `json:"updatedAt"`
	ConsentVerified bool      `json:"consentVerified"`
	Message         string    `json:"message,omitempty"`
	Federated       bool      `json:"federated"`
	FailedStep      string    `json:"failedStep,omitempty"`
	// ConsentWaitingSince and ConsentExpiresAt bound the consent wait: when
	// it began and when it times out (and the onboarding is undone).
	ConsentWaitingSince time.Time `json:"consentWaitingSince,omitzero"`
	ConsentExpiresAt    time.Time `json:"consentExpiresAt,omitzero"`
	// ConsentDenial is the last denial the consent page reported (when, by
	// whom, why: outside text, shown inert); it does not end the wait.
	ConsentDenial string        `json:"consentDenial,omitempty"`
	Compensation  []UndoOutcome `json:"compensation,omitempty"`
	// RotationWorkflowID is the SecretRotation started on completion.
	RotationWorkflowID string `json:"rotationWorkflowId,omitempty"`
	// SessionURL is the one link of the customer-admin session mode.
	SessionURL string `json:"sessionUrl,omitempty"`
	// ProvisionerAccess is what the provisioner holds in the org, where and
	// until when (session mode); nil when the provisioner was pre-consented.
	ProvisionerAccess *ProvisionerAccess `json:"provisionerAccess,omitempty"`
}

// OnboardingResult is Marketo's step-3 package plus the validation checklist.
// The secret is sealed with the custody key (internal/custody): the codec
// endpoint that decodes the result for the UI cannot read it.
type OnboardingResult struct {
	OrgURL       string         `json:"orgUrl"`
	Username     string         `json:"username"` // the application user's e-mail
	ClientID     string         `json:"clientId"`
	TenantID     string         `json:"tenantId"`
	ClientSecret custody.Sealed `json:"clientSecret"`
	// VaultSecretID is the Key Vault secret version the secret was handed
	// to (keyVault.url); VaultError says why the hand-off failed.
	VaultSecretID   string             `json:"vaultSecretId,omitempty"`
	VaultError      string             `json:"vaultError,omitempty"`
	SecretExpiresAt time.Time          `json:"secretExpiresAt"`
	Validation      []activities.Check `json:"validation"`
	Resources       Resources          `json:"resources"`
	CompletedSteps  []string           `json:"completedSteps"`
	// ProvisionerAccess is what the provisioner still holds in the org
	// (customer-admin session mode); nil when it was pre-consented.
	ProvisionerAccess *ProvisionerAccess `json:"provisionerAccess,omitempty"`
}

// FailureReport rides in the details of the workflow's failure: what was
// done, what was undone and what could not be. It has no secret.
type FailureReport struct {
	FailedStep     string        `json:"failedStep"`
	Reason         string        `json:"reason"`
	CompletedSteps []string      `json:"completedSteps"`
	Resources      Resources     `json:"resources"`
	Compensation   []UndoOutcome `json:"compensation"`
	// Validation is set when the sync validation ran and failed.
	Validation []activities.Check `json:"validation,omitempty"`
}
