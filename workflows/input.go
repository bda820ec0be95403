package workflows

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mktos2s/mktos2s/activities"
	"github.com/mktos2s/mktos2s/internal/inert"
	"github.com/mktos2s/mktos2s/internal/orgurl"
)

// FederationMode decides whether the Home Realm Discovery step runs.
type FederationMode string

const (
	FederationAuto   FederationMode = "auto"   // run it when the tenant has a verified Federated domain
	FederationAlways FederationMode = "always" // run it regardless of the domains
	FederationNever  FederationMode = "never"  // skip it
)

// Defaults applied by WithDefaults.
const (
	DefaultAppDisplayName         = "Marketo Integration"
	DefaultSecretLifetimeMonths   = 12
	MaxSecretLifetimeMonths       = 24
	MaxAppDisplayNameLength       = 120
	DefaultConsentTimeout         = 7 * 24 * time.Hour
	DefaultConsentRecheckInterval = 10 * time.Minute
	DefaultSolutionName           = "Marketo Lead Management"
	DefaultMinSolutionVersion     = "4.0.0.14"
	DefaultSecurityRoleName       = "Marketo Sync User"
	// MaxConsentTimeout bounds how long an app and service principal wait
	// in the customer's tenant for an admin.
	MaxConsentTimeout = 30 * 24 * time.Hour
	// MaxConsentChecks bounds the re-checks of one consent wait
	// (consentTimeout / consentRecheckInterval), two Graph reads each: the
	// one cost of a wait that still grows with its length. Every second for
	// a week fits; every second for 30 days (2.6 million) does not.
	MaxConsentChecks = 1_000_000
)

// OnboardingInput is what the operator asks for.
type OnboardingInput struct {
	TenantID               string        `json:"tenantId"`
	OrgURL                 string        `json:"orgUrl"`
	AppDisplayName         string        `json:"appDisplayName,omitempty"`
	SecretLifetimeMonths   int           `json:"secretLifetimeMonths,omitempty"`
	ConsentTimeout         time.Duration `json:"consentTimeout,omitempty"`
	ConsentRecheckInterval time.Duration `json:"consentRecheckInterval,omitempty"`
	// ConsentReminderBefore is when, before the consent wait times out, the
	// hand-off webhook's reminder goes out (consent.reminderBefore); 0 = 24h.
	ConsentReminderBefore time.Duration  `json:"consentReminderBefore,omitempty"`
	Federation            FederationMode `json:"federation,omitempty"`
	// SyncFilterEntities opts in to the custom sync filter: the Boolean
	// column new_synctomkto is added to each of these entities.
	SyncFilterEntities []string `json:"syncFilterEntities,omitempty"`
	SolutionName       string   `json:"solutionName,omitempty"`
	MinSolutionVersion string   `json:"minSolutionVersion,omitempty"`
	SecurityRoleName   string   `json:"securityRoleName,omitempty"`
	// Rotation tunes the SecretRotation started when the onboarding
	// completes; nil takes the defaults. Its SecretLifetime (tests only)
	// also shortens the onboarding's own secret.
	Rotation *RotationSettings `json:"rotation,omitempty"`
	// AdminSession opts in to the customer-admin session mode: the
	// provisioner is not consented in the tenant nor a user of the org; one
	// link has the customer's admin consent and sign in once, and the
	// provisioner adds itself to this org only (README "One action per customer").
	AdminSession bool `json:"adminSession,omitempty"`
	// KeepProvisionerAccess keeps the provisioner's application user enabled
	// after validation (for later work that needs Dataverse); by default it
	// is disabled.
	KeepProvisionerAccess bool `json:"keepProvisionerAccess,omitempty"`
	// ProvisionerUserWait bounds the wait for the application user addAppUser
	// promised (default 10 minutes in session mode).
	ProvisionerUserWait time.Duration `json:"provisionerUserWait,omitempty"`
	// KeyVault, when set (keyVault.url on the starter), hands the validated
	// secret once to this Azure Key Vault secret, and the rotation each
	// successor to the same name. Runs without it schedule nothing new.
	KeyVault *activities.VaultTarget `json:"keyVault,omitempty"`
}

// WithDefaults fills every empty optional field and normalises the rest, so
// the stored input says exactly what the run did.
func (in OnboardingInput) WithDefaults() OnboardingInput {
	in.TenantID = strings.ToLower(strings.TrimSpace(in.TenantID))
	in.OrgURL = strings.TrimRight(strings.TrimSpace(in.OrgURL), "/")
	if in.AppDisplayName == "" {
		in.AppDisplayName = DefaultAppDisplayName
	}
	if in.SecretLifetimeMonths == 0 {
		in.SecretLifetimeMonths = DefaultSecretLifetimeMonths
	}
	if in.ConsentTimeout == 0 {
		in.ConsentTimeout = DefaultConsentTimeout
	}
	if in.ConsentRecheckInterval == 0 {
		in.ConsentRecheckInterval = DefaultConsentRecheckInterval
	}
	if in.Federation == "" {
		in.Federation = FederationAuto
	}
	if in.SolutionName == "" {
		in.SolutionName = DefaultSolutionName
	}
	if in.MinSolutionVersion == "" {
		in.MinSolutionVersion = DefaultMinSolutionVersion
	}
	if in.SecurityRoleName == "" {
		in.SecurityRoleName = DefaultSecurityRoleName
	}
	if in.AdminSession && in.ProvisionerUserWait == 0 {
		in.ProvisionerUserWait = 10 * time.Minute
	}
	return in
}

// OrgHost is the host[:port] of OrgURL, lower case; empty when OrgURL does not parse.
func (in OnboardingInput) OrgHost() string {
	u, err := url.Parse(strings.TrimSpace(in.OrgURL))
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Host)
}

// WorkflowID is WorkflowID(in.TenantID, in.OrgHost()).
func (in OnboardingInput) WorkflowID() string {
	return WorkflowID(strings.TrimSpace(in.TenantID), in.OrgHost())
}

var (
	guidRE        = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	logicalNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// FieldError names one bad input field and how to fix it.
type FieldError struct {
	Field string
	Value string
	Fix   string
}

func (e FieldError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Fix)
	}
	return fmt.Sprintf("%s: %q %s", e.Field, e.Value, e.Fix)
}

// ValidationError lists every bad field at once so the operator fixes them in one go.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		msgs[i] = f.Error()
	}
	return "invalid onboarding input: " + strings.Join(msgs, "; ")
}

// Validate checks the input after WithDefaults. The returned error is a
// *ValidationError naming each bad field and its fix. Clients call it
// before they start a run; the workflow applies the same rules versioned
// (onboardingInputProblems), so a rule added here never fails a run that
// is already going.
func (in OnboardingInput) Validate() error {
	errs := append(in.problems(), in.consentBudgetProblems()...)
	if len(errs) == 0 {
		return nil
	}
	return &ValidationError{Fields: errs}
}

// consentBudgetProblems refuses a consent wait whose re-checks could
// exceed MaxConsentChecks, or that is longer than MaxConsentTimeout.
func (in OnboardingInput) consentBudgetProblems() []FieldError {
	var errs []FieldError
	if in.ConsentTimeout > MaxConsentTimeout {
		errs = append(errs, FieldError{"consentTimeout", in.ConsentTimeout.String(),
			"is too long; use at most 720h (30 days) and start again if the admin needs longer"})
	}
	if in.ConsentRecheckInterval > 0 && in.ConsentTimeout > 0 && int64(in.ConsentTimeout/in.ConsentRecheckInterval) > MaxConsentChecks {
		exact := in.ConsentTimeout / MaxConsentChecks
		minInterval := exact.Truncate(time.Second)
		if minInterval < exact {
			minInterval += time.Second
		}
		errs = append(errs, FieldError{"consentRecheckInterval", in.ConsentRecheckInterval.String(), fmt.Sprintf(
			"re-checks %d times within consentTimeout %s, more than the %d a wait may make; use a consentRecheckInterval of at least %s or a consentTimeout of at most %s",
			in.ConsentTimeout/in.ConsentRecheckInterval, in.ConsentTimeout, MaxConsentChecks, minInterval, in.ConsentRecheckInterval*MaxConsentChecks)})
	}
	return errs
}

// problems are the rules of the first version of the workflow. They are
// never tightened in place: a new rule goes into a function of its own that
// the workflow applies behind workflow.GetVersion.
func (in OnboardingInput) problems() []FieldError {
	var errs []FieldError
	bad := func(field, value, fix string) { errs = append(errs, FieldError{field, value, fix}) }

	switch t := strings.TrimSpace(in.TenantID); {
	case t == "":
		bad("tenantId", "", "is required; use the Directory (tenant) ID from Entra ID > Overview")
	case !guidRE.MatchString(t):
		bad("tenantId", t, "is not a GUID; use the Directory (tenant) ID from Entra ID > Overview")
	}

	if fix := orgURLProblem(in.OrgURL); fix != "" {
		bad("orgUrl", in.OrgURL, fix)
	}
	switch n := utf8.RuneCountInString(in.AppDisplayName); {
	case strings.TrimSpace(in.AppDisplayName) == "":
		bad("appDisplayName", "", `is required; e.g. "Marketo Integration"`)
	case strings.ContainsFunc(in.AppDisplayName, isControlOrBidi):
		// Shown in Entra, in the admin-consent page and in every terminal
		// that lists apps: no escape sequence or reordering belongs in it.
		bad("appDisplayName", inert.Text(in.AppDisplayName),
			`contains control or bidirectional-formatting characters (e.g. ESC, NUL, U+202E); use plain text, e.g. "Marketo Integration"`)
	case n > MaxAppDisplayNameLength:
		// Entra ID refuses longer application display names.
		bad("appDisplayName", string([]rune(in.AppDisplayName)[:40])+"…",
			fmt.Sprintf("is %d characters long; use at most %d, e.g. \"Marketo Integration\"", n, MaxAppDisplayNameLength))
	}
	if in.SecretLifetimeMonths < 1 || in.SecretLifetimeMonths > MaxSecretLifetimeMonths {
		bad("secretLifetimeMonths", strconv.Itoa(in.SecretLifetimeMonths),
			fmt.Sprintf("is out of range; use 1 to %d months (Microsoft recommends less than 12)", MaxSecretLifetimeMonths))
	}
	if in.ConsentTimeout < time.Minute {
		bad("consentTimeout", in.ConsentTimeout.String(), "is too short; give the admin at least a minute, e.g. 168h (7 days)")
	}
	if in.ConsentRecheckInterval < time.Second {
		bad("consentRecheckInterval", in.ConsentRecheckInterval.String(), "is too short; use at least 1s, e.g. 10m")
	}
	switch in.Federation {
	case FederationAuto, FederationAlways, FederationNever:
	default:
		bad("federation", string(in.Federation), `is not a federation mode; use "auto", "always" or "never"`)
	}
	for i, e := range in.SyncFilterEntities {
		if !logicalNameRE.MatchString(e) {
			bad(fmt.Sprintf("syncFilterEntities[%d]", i), e, `is not an entity logical name; use lower-case names such as "lead", "contact", "account"`)
		}
	}
	if strings.TrimSpace(in.SolutionName) == "" {
		bad("solutionName", "", `is required; the Marketo solution's unique or friendly name, e.g. "Marketo Lead Management"`)
	}
	if !isDottedVersion(in.MinSolutionVersion) {
		bad("minSolutionVersion", in.MinSolutionVersion, `is not a dotted version; use e.g. "4.0.0.14"`)
	}
	if strings.TrimSpace(in.SecurityRoleName) == "" {
		bad("securityRoleName", "", `is required; e.g. "Marketo Sync User"`)
	}
	if in.Rotation != nil {
		errs = append(errs, in.Rotation.WithDefaults().problems("rotation.", in.SecretLifetimeMonths)...)
	}
	return errs
}

func isControlOrBidi(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029'
}

// orgURLProblem is the product's one org URL check (internal/orgurl): the
// workflow may be started by any Temporal client, not only `starter start`.
func orgURLProblem(raw string) string { return orgurl.Problem(raw) }

func isDottedVersion(v string) bool {
	parts := strings.Split(v, ".")
	if v == "" || len(parts) > 4 {
		return false
	}
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 10, 32); err != nil {
			return false
		}
	}
	return true
}

// testSecretLifetime is the test-only lifetime override, zero in production.
func (in OnboardingInput) testSecretLifetime() time.Duration {
	if in.Rotation == nil {
		return 0
	}
	return in.Rotation.SecretLifetime
}
