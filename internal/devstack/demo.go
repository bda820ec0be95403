package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/cli"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/workflows"
)

// demoOrgHost is the org of the emulator's default seed the demo onboards.
const demoOrgHost = "contoso.crm.localhost"

func demoCmd(x cli.App) *cobra.Command {
	var (
		f       stackFlags
		exit    bool
		session bool
	)
	cmd := &cobra.Command{
		Annotations: map[string]string{cli.AnnotWritesCA: "true"},
		Use:         "demo",
		Short:       "Start the local stack and onboard the emulator's demo tenant end to end",
		Long: `demo does what dev does, then onboards Contoso (contoso.crm.localhost) of the
emulator's seed: it starts the onboarding, gives admin consent through the
emulator's consent page as an admin would (following its redirect to the
consent callback), follows the steps to "validation passed" and prints the
step-3 package with the secret masked. Without --exit the stack keeps running
for the Temporal UI until Ctrl-C; with --exit it stops and exits 0 only if the
onboarding completed and validated.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStack(x, cmd, f, func(st *Stack) (bool, error) {
				run := runDemo
				if session {
					run = runSessionDemo
				}
				err := run(cmd.Context(), x, cmd.OutOrStdout(), st)
				if st.Temporal.UIURL != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "Temporal UI: %s\n", st.Temporal.UIURL)
				}
				return !exit, err
			})
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&exit, "exit", false, "stop when the onboarding ends; exit 0 only if it completed and validated (CI)")
	cmd.Flags().BoolVar(&session, "admin-session", false, "onboard Northwind (northwind.crm.localhost) in the customer-admin session mode: "+
		"the provisioner has no consent and no application user there; the admin's one browser session does everything")
	return cmd
}

// runDemo onboards the demo org and prints the checklist and the package.
func runDemo(ctx context.Context, x cli.App, w io.Writer, st *Stack) error {
	og, err := demoOrg(st.Seed)
	if err != nil {
		return err
	}
	admin, err := msapi.NewHTTPClient(msapi.HTTPOptions{CAFile: st.Emulator.CAFile(), DialOverrides: map[string]string{"*.localhost": "127.0.0.1"}})
	if err != nil {
		return err
	}
	admin.CheckRedirect = nil // the admin's browser follows the consent page's redirect; it carries no credential
	return x.RunOnboarding(ctx, w, og.TenantID, st.Emulator.OrgURL(og.Host),
		func(ctx context.Context, c client.Client, workflowID, consentURL string) error {
			return consentAsAdmin(ctx, admin, c, w, workflowID, consentURL)
		})
}

func demoOrg(seed *emulator.Seed) (emulator.SeedOrg, error) {
	for _, og := range seed.Orgs {
		if strings.EqualFold(og.Host, demoOrgHost) {
			return og, nil
		}
	}
	if len(seed.Orgs) > 0 {
		return seed.Orgs[0], nil
	}
	return emulator.SeedOrg{}, errors.New("demo: the emulator seed has no org")
}

// consentAsAdmin opens the consent URL the way an admin's browser would:
// HTTPS to the emulator's consent page (trusting its CA), its Accept, then the redirect
// to the consent callback, which signals the workflow. If the redirect
// cannot be followed the demo sends the signal itself.
func consentAsAdmin(ctx context.Context, hc *http.Client, c client.Client, w io.Writer, workflowID, consentURL string) error {
	fmt.Fprintf(w, "  → admin opens the consent URL and clicks Accept (emulator consent page)\n")
	resp, err := emulator.AnswerConsent(ctx, hc, consentURL, true)
	if err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK && resp.Request.URL.Path == "/consent/callback" {
			fmt.Fprintf(w, "  → Entra redirected to %s, which signalled %s\n", redirectTarget(resp.Request.URL), workflows.SignalAdminConsent)
			return nil
		}
		err = fmt.Errorf("consent page ended at %s with HTTP %d", redirectTarget(resp.Request.URL), resp.StatusCode)
	}
	fmt.Fprintf(w, "  → the consent redirect did not reach the callback (%v); signalling %s directly\n", err, workflows.SignalAdminConsent)
	return c.SignalWorkflow(ctx, workflowID, "", workflows.SignalAdminConsent,
		workflows.ConsentSignal{Granted: true, By: "demo admin", Note: "consent given on the emulator's consent page"})
}

// redirectTarget is a URL without its query, for printing.
func redirectTarget(u *url.URL) string {
	v := *u
	v.RawQuery = ""
	return v.String()
}

func hostPortOf(raw string) (string, string) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", ""
	}
	return u.Hostname(), u.Port()
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
