package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/custody"
	"github.com/mktos2s/mktos2s/workflows"
)

// credentials is Marketo's step-3 package.
type credentials struct {
	OrgURL          string    `json:"orgUrl"`
	Username        string    `json:"username"`
	ClientID        string    `json:"clientId"`
	TenantID        string    `json:"tenantId"`
	ClientSecret    string    `json:"clientSecret"`
	SecretExpiresAt time.Time `json:"secretExpiresAt"`
	SecretMasked    bool      `json:"secretMasked"`

	sealed custody.Sealed // opened only for --reveal, after the reveal is recorded
	keyID  string         // Entra key ID of the secret, for the audit record
}

const maskedSecret = "********"

// packageFrom is the package with the secret masked; the sealed secret
// rides along unexported, so no output format can print it.
func packageFrom(res workflows.OnboardingResult) credentials {
	return credentials{
		OrgURL: res.OrgURL, Username: res.Username, ClientID: res.ClientID, TenantID: res.TenantID,
		ClientSecret: maskedSecret, SecretExpiresAt: res.SecretExpiresAt, SecretMasked: true,
		sealed: res.ClientSecret, keyID: res.Resources.SecretKeyID,
	}
}

func writeCredentials(w io.Writer, c credentials) {
	fmt.Fprintln(w, "Marketo step 3 of 3 — Admin > Microsoft Dynamics > Sync User credentials:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	secret := c.ClientSecret
	if c.SecretMasked {
		secret += " (hidden; show it with --reveal)"
	}
	fmt.Fprintf(tw, "  Org URL\t%s\n", c.OrgURL)
	fmt.Fprintf(tw, "  Username\t%s\n", c.Username)
	fmt.Fprintf(tw, "  Client ID\t%s\n", c.ClientID)
	fmt.Fprintf(tw, "  Tenant ID\t%s\n", c.TenantID)
	fmt.Fprintf(tw, "  Client Secret\t%s\n", secret)
	fmt.Fprintf(tw, "  Secret expires\t%s\n", c.SecretExpiresAt.UTC().Format(time.DateOnly))
	_ = tw.Flush()
}

const revealWarning = `WARNING: the client secret is shown in plain text, and this reveal is recorded
(who, when, why) in the rotation's history. Paste it into Marketo and store it
in your password manager now, then clear this terminal's scrollback
(e.g. "clear && printf '\e[3J'"). Everywhere else it is sealed with the custody
key, which the Temporal UI and the codec endpoint do not hold.`

func (a *app) credentialsCmd() *cobra.Command {
	var (
		t              target
		reveal, asJSON bool
		reason         string
	)
	cmd := &cobra.Command{
		Use:   "credentials --tenant-id ID --org-url URL",
		Short: "Show the step-3 package for Marketo (the secret only with --reveal)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ring *custody.Keyring
			if reveal {
				var err error
				if ring, err = a.custodyRing(); err != nil {
					return err
				}
			}
			return a.withOnboarding(cmd, t, func(ctx context.Context, c client.Client, s snapshot) error {
				if s.Result == nil {
					if s.running() {
						return coded(ExitWaiting, fmt.Errorf("onboarding %s is still running (step %s); the credentials exist once it completes", s.WorkflowID, s.Progress.Step))
					}
					return coded(ExitFailed, fmt.Errorf("onboarding %s did not complete (%s): %s; there are no credentials", s.WorkflowID, s.Execution, s.Progress.Error))
				}
				// The result and the stopped rotation still hold secrets
				// that an offboarding removed from Entra.
				if at, gone, err := offboardedAfter(ctx, c, t, s.since()); err != nil {
					return err
				} else if gone {
					return coded(ExitNotFound, errOffboarded(t, at, "there are no credentials"))
				}
				pkg := a.rotatedPackage(ctx, c, errOut(cmd), t, packageFrom(*s.Result), reveal)
				if reveal {
					plain, err := ring.Open(pkg.sealed)
					if err != nil {
						return fmt.Errorf("cannot open the client secret (key %s) with custody.keys: %w; "+
							"if that custody key is lost, run `starter rotate --now` for a new secret", pkg.keyID, err)
					}
					if err := a.recordReveal(ctx, c, errOut(cmd), t, pkg, reason); err != nil {
						return err
					}
					pkg.ClientSecret, pkg.SecretMasked = plain, false
					fmt.Fprintln(errOut(cmd), revealWarning)
				}
				if asJSON {
					return writeJSON(out(cmd), pkg)
				}
				writeCredentials(out(cmd), pkg)
				return nil
			})
		},
	}
	targetFlags(cmd, &t)
	cmd.Flags().BoolVar(&reveal, "reveal", false, "show the client secret in plain text (recorded: who, when, why, in the rotation's history)")
	cmd.Flags().StringVar(&reason, "reason", "", "why the secret is revealed, kept in the audit record (e.g. a ticket number)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the package as JSON")
	return cmd
}
