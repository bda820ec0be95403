package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/activities"
	"github.com/mktos2s/mktos2s/internal/config"
	"github.com/mktos2s/mktos2s/internal/lifecycle"
	"github.com/mktos2s/mktos2s/workflows"
)

type startFlags struct {
	target
	appName            string
	secretMonths       int
	consentTimeout     time.Duration
	federation         string
	syncFilter         []string
	solution           string
	minSolutionVersion string
	wait               bool
	dryRun             bool
	adminSession       bool
	keepAccess         bool
	userWait           time.Duration
}

func (a *app) startCmd() *cobra.Command {
	var (
		f        startFlags
		bf       batchFlags
		linkWait time.Duration
	)
	cmd := &cobra.Command{
		Use:   "start --tenant-id ID --org-url URL",
		Short: "Start the onboarding of one tenant and Dynamics org",
		Long: `start validates the input, then starts the Onboarding workflow for the tenant
and org. Only one onboarding per tenant and org runs at a time: a second start
is refused and shows the running one. --dry-run prints the plan and changes
nothing; --wait follows the steps until the onboarding ends.

--from FILE onboards every tenant of a CSV or YAML file (README "Many
tenants"): every row is checked first and the whole file is refused, naming
each bad row, before anything starts; rows already onboarded or running are
skipped; at most --concurrency onboardings provision at once (one that waits
for admin consent gives its slot back). The other flags set the defaults of
the rows.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if bf.from != "" {
				return a.startBatch(cmd, f, bf)
			}
			in, err := a.input(f)
			if err != nil {
				return coded(ExitBadInput, err)
			}
			if f.dryRun {
				writePlan(out(cmd), in)
				return nil
			}
			c, err := a.dial(cmd.Context(), errOut(cmd))
			if err != nil {
				return err
			}
			defer c.Close()
			w := out(cmd)
			if bf.asJSON {
				w = errOut(cmd) // stdout carries only the JSON
			}
			if _, err := a.start(cmd.Context(), c, w, in); err != nil {
				return err
			}
			if !f.wait {
				return a.printLink(cmd, c, in, linkWait, bf.asJSON)
			}
			s, err := a.follow(cmd.Context(), c, out(cmd), in.WorkflowID())
			if err != nil {
				return err
			}
			return outcome(s)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.tenantID, "tenant-id", "", "customer's Directory (tenant) ID (required)")
	fl.StringVar(&f.orgURL, "org-url", "", "Dynamics 365 org URL, e.g. https://contoso.crm.dynamics.com (required)")
	fl.StringVar(&f.appName, "app-name", workflows.DefaultAppDisplayName, "display name of the Entra app to register")
	fl.IntVar(&f.secretMonths, "secret-months", workflows.DefaultSecretLifetimeMonths, fmt.Sprintf("client secret lifetime in months (1-%d)", workflows.MaxSecretLifetimeMonths))
	fl.DurationVar(&f.consentTimeout, "consent-timeout", workflows.DefaultConsentTimeout, "how long to wait for admin consent before undoing everything")
	fl.StringVar(&f.federation, "federation", string(workflows.FederationAuto), "Home Realm Discovery policy: auto (if a verified domain is Federated), always or never")
	fl.StringSliceVar(&f.syncFilter, "sync-filter", nil, "entities that get the custom sync filter column new_synctomkto, e.g. lead,contact")
	fl.StringVar(&f.solution, "solution", workflows.DefaultSolutionName, "Marketo solution's unique or friendly name")
	fl.StringVar(&f.minSolutionVersion, "min-solution-version", workflows.DefaultMinSolutionVersion, "minimum Marketo solution version")
	fl.BoolVar(&f.wait, "wait", false, "follow the steps live until the onboarding ends")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan and what each step would create; change nothing")
	fl.StringVar(&bf.from, "from", "", "onboard every tenant of this CSV or YAML file (columns: tenantId, orgUrl and the settings above)")
	fl.IntVar(&bf.concurrency, "concurrency", 5, "with --from: at most this many onboardings provisioning at once")
	fl.BoolVar(&bf.asJSON, "json", false, "print the consent link as JSON (see consent-link --json); with --from, the rows (or the dry-run plan)")
	fl.DurationVar(&linkWait, "link-wait", 30*time.Second, "without --wait: how long to wait for the consent link to print it (0: do not wait)")
	fl.BoolVar(&f.adminSession, "admin-session", false, "customer-admin session mode: the provisioner is not consented nor a Dynamics user yet; "+
		"one link has the customer's admin consent and sign in once, and the provisioner adds itself to this org only (README \"One action per customer\")")
	fl.DurationVar(&f.userWait, "provisioner-user-wait", 0, "with --admin-session: how long the provisioner's application user may take to appear after addAppUser (0 = 10m)")
	fl.BoolVar(&f.keepAccess, "keep-provisioner-access", false, "with --admin-session: keep the provisioner's application user enabled after validation (default: disabled)")
	return cmd
}

// input builds and validates the workflow input. Every problem is reported
// at once, each with the field and its fix.
func (a *app) input(f startFlags) (workflows.OnboardingInput, error) {
	in := workflows.OnboardingInput{
		TenantID:               f.tenantID,
		OrgURL:                 f.orgURL,
		AppDisplayName:         f.appName,
		SecretLifetimeMonths:   f.secretMonths,
		ConsentTimeout:         f.consentTimeout,
		ConsentRecheckInterval: a.cfg.Consent.RecheckInterval,
		ConsentReminderBefore:  a.cfg.Consent.ReminderBefore,
		Federation:             workflows.FederationMode(strings.ToLower(f.federation)),
		SyncFilterEntities:     f.syncFilter,
		SolutionName:           f.solution,
		MinSolutionVersion:     f.minSolutionVersion,
		AdminSession:           f.adminSession,
		KeepProvisionerAccess:  f.keepAccess,
		ProvisionerUserWait:    f.userWait,
	}.WithDefaults()
	// The flags carry the defaults already, so a 0 here was typed by the
	// operator (or set in the environment): WithDefaults would silently turn
	// it into 12 months or 7 days, so keep it and let validation refuse it.
	in.SecretLifetimeMonths, in.ConsentTimeout = f.secretMonths, f.consentTimeout
	if kv := a.cfg.KeyVault; kv.URL != "" {
		in.KeyVault = &activities.VaultTarget{URL: kv.URL, SecretName: activities.VaultSecretName(kv.SecretNamePrefix, in.TenantID, in.OrgHost())}
	}
	return in, validateInput(in, a.cfg)
}

// validateInput is the workflow's own validation plus what the worker's
// configuration implies: the org host allow-list, so a typo in the org URL
// is caught before anything starts, and a consent link that outlives the
// consent wait.
func validateInput(in workflows.OnboardingInput, cfg config.Config) error {
	fields := inputProblems(in, cfg)
	if len(fields) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("invalid onboarding input:")
	for _, fe := range fields {
		b.WriteString("\n  - " + fe.Error())
	}
	return errors.New(b.String())
}

// inputProblems is every problem of in, each with its field and fix.
func inputProblems(in workflows.OnboardingInput, cfg config.Config) []workflows.FieldError {
	m := cfg.Microsoft
	var fields []workflows.FieldError
	if err := in.Validate(); err != nil {
		var ve *workflows.ValidationError
		if !errors.As(err, &ve) {
			return []workflows.FieldError{{Field: "input", Fix: err.Error()}}
		}
		fields = ve.Fields
	}
	orgFlagged := slices.ContainsFunc(fields, func(f workflows.FieldError) bool { return f.Field == "orgUrl" })
	if u, err := url.Parse(in.OrgURL); !orgFlagged && err == nil && u.Hostname() != "" && !m.AllowsOrgHost(u.Hostname()) {
		fields = append(fields, workflows.FieldError{
			Field: "orgUrl", Value: in.OrgURL,
			Fix: "is not a Dynamics 365 org host; it must end with " + suffixList(m.AllowedOrgSuffixes) +
				" (microsoft.allowedOrgSuffixes); copy the Environment URL from the Power Platform admin center",
		})
	}
	// The consent link is built once, when the wait begins; a signed one
	// must stay valid for the whole wait or the callback would refuse it.
	if cfg.Consent.CallbackKey != "" && in.ConsentTimeout > cfg.Consent.StateTTL {
		fields = append(fields, workflows.FieldError{
			Field: "consentTimeout", Value: in.ConsentTimeout.String(),
			Fix: fmt.Sprintf("is longer than consent.stateTTL (%s), so the signed consent link would expire while the onboarding still waits; "+
				"use --consent-timeout %s or less, or raise consent.stateTTL (MKTOS2S_CONSENT_STATETTL) for the worker and `starter serve`",
				cfg.Consent.StateTTL, cfg.Consent.StateTTL),
		})
	}
	return fields
}

func suffixList(suffixes []string) string {
	if len(suffixes) <= 4 {
		return "one of " + strings.Join(suffixes, ", ")
	}
	return fmt.Sprintf("one of %s, … (%d suffixes)", strings.Join(suffixes[:3], ", "), len(suffixes))
}

func writePlan(w io.Writer, in workflows.OnboardingInput) {
	fmt.Fprintf(w, "Dry run: nothing is created. Workflow ID %s on task queue %s\n", in.WorkflowID(), workflows.TaskQueue)
	fmt.Fprintf(w, "Tenant %s, org %s, app %q, secret %d months, consent timeout %s, federation %s\n",
		in.TenantID, in.OrgURL, in.AppDisplayName, in.SecretLifetimeMonths, in.ConsentTimeout, in.Federation)
	for i, st := range workflows.Steps(in) {
		mark := fmt.Sprintf("%2d.", i+1)
		if st.Skipped {
			mark = " - "
		}
		fmt.Fprintf(w, "%s %s\n      creates: %s\n", mark, st.Name, st.Effect)
		if st.Undo != "" {
			fmt.Fprintf(w, "      undo:    %s\n", st.Undo)
		}
		if st.Note != "" {
			note := st.Note
			if st.Skipped {
				note = "skipped: " + note
			}
			fmt.Fprintf(w, "      note:    %s\n", note)
		}
	}
}

// start starts the workflow, or explains that one is already running or
// that the org is already onboarded (lifecycle.Start decides).
func (a *app) start(ctx context.Context, c client.Client, w io.Writer, in workflows.OnboardingInput) (client.WorkflowRun, error) {
	id := in.WorkflowID()
	run, err := lifecycle.Start(ctx, c, in)
	var running *lifecycle.AlreadyRunningError
	switch {
	case errors.As(err, &running):
		s, ferr := fetch(ctx, c, id)
		if ferr == nil {
			fmt.Fprintf(w, "Refused: %s.\n", running)
			writeChecklist(w, s, a.workflowLink(id))
		}
		return nil, coded(ExitConflict, fmt.Errorf("%w; see it with `starter status --tenant-id %s --org-url %s` or in the UI: %s",
			running, in.TenantID, in.OrgURL, a.workflowLink(id)))
	case err != nil:
		return nil, err
	}
	fmt.Fprintf(w, "Started onboarding %s (run %s)\n", id, run.GetRunID())
	fmt.Fprintf(w, "Temporal UI: %s\n", a.workflowLink(id))
	return run, nil
}

// follow polls the progress of a run and prints it live until it closes.
func (a *app) follow(ctx context.Context, c client.Client, w io.Writer, workflowID string) (snapshot, error) {
	return a.followWith(ctx, c, w, workflowID, nil)
}

// followWith is follow with a hook called on every progress update. It
// queries the progress only when the run's history says it may have
// changed (runWatch): a terminal left waiting for consent costs a few
// queries an hour, not one every 250 ms.
func (a *app) followWith(ctx context.Context, c client.Client, w io.Writer, workflowID string, hook func(workflows.Progress) error) (snapshot, error) {
	view := newLive(w)
	watch := newRunWatch(c, workflowID, a.pollEvery)
	for {
		s, err := fetch(ctx, c, workflowID)
		if err != nil && !isTransientQueryError(err) {
			return s, err
		}
		if err == nil {
			view.update(s.Progress)
			if !s.running() {
				finish(w, s)
				return s, nil
			}
			if hook != nil {
				if err := hook(s.Progress); err != nil {
					return s, err
				}
			}
		}
		if err := watch.next(ctx, s.RunID); err != nil {
			return s, err
		}
	}
}

// isTransientQueryError is true when a query failed only because no worker
// has picked up the first workflow task yet.
func isTransientQueryError(err error) bool {
	var qf *serviceerror.QueryFailed
	var dl *serviceerror.DeadlineExceeded
	return errors.As(err, &qf) || errors.As(err, &dl) || errors.Is(err, context.DeadlineExceeded)
}

// finish prints how a followed run ended.
func finish(w io.Writer, s snapshot) {
	if s.Result != nil {
		writeValidation(w, s.Result.Validation)
		return
	}
	writeFailure(w, s.Progress)
}

// outcome is the command's error for a closed run that did not complete.
func outcome(s snapshot) error {
	if s.Result != nil {
		return nil
	}
	return coded(ExitFailed, fmt.Errorf("onboarding %s ended %s: %s", s.WorkflowID, strings.ToLower(s.Execution), s.Progress.Error))
}
