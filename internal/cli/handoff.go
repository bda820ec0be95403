package cli

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/activities"
	"github.com/mktos2s/mktos2s/internal/ctxtime"
	"github.com/mktos2s/mktos2s/workflows"
)

// consentLink is what the customer's Global Administrator needs: the link,
// what it grants, and until when it works. `consent-link --json` and
// `start --json` print it; the shape is stable (README "Many tenants").
type consentLink struct {
	WorkflowID   string    `json:"workflowId"`
	RunID        string    `json:"runId"`
	TenantID     string    `json:"tenantId"`
	OrgHost      string    `json:"orgHost"`
	App          string    `json:"app"`
	Permission   string    `json:"permission"`
	ConsentURL   string    `json:"consentUrl"`
	WaitingSince time.Time `json:"waitingSince,omitzero"`
	ExpiresAt    time.Time `json:"expiresAt,omitzero"`
	UI           string    `json:"ui"`
}

// linkOf builds the hand-off of a run that waits for consent: the wait began
// when the step before it ended, and times out consentTimeout later.
func (a *app) linkOf(ctx context.Context, c client.Client, s snapshot) consentLink {
	l := consentLink{WorkflowID: s.WorkflowID, RunID: s.RunID, ConsentURL: s.Progress.ConsentURL, UI: a.workflowLink(s.WorkflowID),
		Permission: activities.ConsentPermission, App: workflows.DefaultAppDisplayName}
	in, err := a.startInput(ctx, c, s.WorkflowID, s.RunID)
	if err == nil {
		l.TenantID, l.OrgHost, l.App = in.TenantID, in.OrgHost(), in.AppDisplayName
	}
	if timings, terr := stepTimings(ctx, c, s.WorkflowID, s.RunID, time.Now()); terr == nil {
		for _, st := range timings {
			if st.Step == workflows.StepAwaitingAdminConsent {
				l.WaitingSince = st.StartedAt
				if err == nil {
					l.ExpiresAt = st.StartedAt.Add(in.ConsentTimeout)
				}
			}
		}
	}
	return l
}

// handoffText is the message for the customer's Global Administrator.
func handoffText(l consentLink, contact string) (subject, body string) {
	subject = fmt.Sprintf("Action needed: admin consent for the Marketo sync of %s", l.OrgHost)
	var b strings.Builder
	fmt.Fprintf(&b, "Hello,\n\nto connect your Dynamics 365 org %s to Adobe Marketo's server-to-server sync, a Global Administrator\n", l.OrgHost)
	fmt.Fprintf(&b, "(or Privileged Role Administrator) of your Microsoft Entra tenant %s needs to grant admin consent once.\n\n", l.TenantID)
	fmt.Fprintf(&b, "What you consent to: the app %q, registered in your tenant for this sync, gets the permission\n%s.\n", l.App, l.Permission)
	b.WriteString("It does not get access to anything else; the Marketo Sync User role in Dynamics limits what the sync can do.\n\n")
	fmt.Fprintf(&b, "Open this link, sign in and accept:\n%s\n\n", l.ConsentURL)
	if !l.ExpiresAt.IsZero() {
		fmt.Fprintf(&b, "The link works until %s. ", l.ExpiresAt.UTC().Format(time.RFC1123))
	}
	b.WriteString("If it has expired or was already used, do not retry it: reply to this message")
	if contact != "" {
		fmt.Fprintf(&b, " or contact %s", contact)
	}
	b.WriteString(" and you will get a new one.\n")
	return subject, b.String()
}

var handoffHTML = template.Must(template.New("handoff").Parse(`<!DOCTYPE html>
<html><body style="font-family: sans-serif">
<p>Hello,</p>
<p>to connect your Dynamics 365 org <b>{{.L.OrgHost}}</b> to Adobe Marketo's server-to-server sync, a Global Administrator
(or Privileged Role Administrator) of your Microsoft Entra tenant <code>{{.L.TenantID}}</code> needs to grant admin consent once.</p>
<p>What you consent to: the app <b>{{.L.App}}</b>, registered in your tenant for this sync, gets the permission <i>{{.L.Permission}}</i>.
It does not get access to anything else.</p>
<p><a href="{{.L.ConsentURL}}">Grant admin consent</a></p>
{{if not .L.ExpiresAt.IsZero}}<p>The link works until {{.Expires}}.</p>{{end}}
<p>If it has expired or was already used, do not retry it: reply to this message{{if .Contact}} or contact {{.Contact}}{{end}} and you will get a new one.</p>
</body></html>
`))

// writeEML writes the message as an RFC 5322 e-mail with a text and an
// HTML part, ready to open in a mail client and send.
func writeEML(w io.Writer, l consentLink, to, contact string) error {
	subject, text := handoffText(l, contact)
	var html bytes.Buffer
	if err := handoffHTML.Execute(&html, map[string]any{"L": l, "Contact": contact, "Expires": l.ExpiresAt.UTC().Format(time.RFC1123)}); err != nil {
		return err
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, part := range []struct{ ctype, content string }{{"text/plain; charset=utf-8", text}, {"text/html; charset=utf-8", html.String()}} {
		pw, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {part.ctype}, "Content-Transfer-Encoding": {"8bit"}})
		if err != nil {
			return err
		}
		if _, err := io.WriteString(pw, strings.ReplaceAll(part.content, "\n", "\r\n")); err != nil {
			return err
		}
	}
	if err := mw.Close(); err != nil {
		return err
	}
	if to != "" {
		fmt.Fprintf(w, "To: %s\r\n", mime.QEncoding.Encode("utf-8", to))
	}
	fmt.Fprintf(w, "Subject: %s\r\nMIME-Version: 1.0\r\nX-Unsent: 1\r\nContent-Type: multipart/alternative; boundary=%s\r\n\r\n",
		mime.QEncoding.Encode("utf-8", subject), mw.Boundary())
	_, err := w.Write(body.Bytes())
	return err
}

func (a *app) consentLinkCmd() *cobra.Command {
	var (
		t                    target
		emlFile, to, contact string
		asJSON               bool
	)
	cmd := &cobra.Command{
		Use:   "consent-link --tenant-id ID --org-url URL [--eml FILE]",
		Short: "Print a ready-to-send message with the consent link for the customer's Global Administrator",
		Long: `consent-link prints the message to send to the customer's Global Administrator:
what they consent to (the app, the permission, the tenant), the link and its
expiry. --eml writes it as an e-mail (text and HTML) that a mail client opens
ready to send. Exit code 5 while the onboarding has no link yet, 6 when it no
longer waits for consent.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withOnboarding(cmd, t, func(ctx context.Context, c client.Client, s snapshot) error {
				if err := notWaiting(s); err != nil {
					return err
				}
				if s.Progress.ConsentURL == "" || s.Progress.ConsentVerified {
					return coded(ExitWaiting, fmt.Errorf("onboarding %s has no consent link yet (step %s); try again in a moment", s.WorkflowID, s.Progress.Step))
				}
				l := a.linkOf(ctx, c, s)
				if emlFile != "" {
					f, err := os.OpenFile(emlFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
					if err != nil {
						return coded(ExitBadInput, fmt.Errorf("--eml: %w", err))
					}
					werr := writeEML(f, l, to, contact)
					if cerr := f.Close(); werr == nil {
						werr = cerr
					}
					if werr != nil {
						return fmt.Errorf("write %s: %w", emlFile, werr)
					}
					fmt.Fprintf(errOut(cmd), "Wrote %s (open it in your mail client and send it)\n", emlFile)
				}
				if asJSON {
					return writeJSON(out(cmd), l)
				}
				subject, body := handoffText(l, contact)
				fmt.Fprintf(out(cmd), "Subject: %s\n\n%s", subject, body)
				return nil
			})
		},
	}
	targetFlags(cmd, &t)
	cmd.Flags().StringVar(&emlFile, "eml", "", "also write the message as an .eml file (text and HTML)")
	cmd.Flags().StringVar(&to, "to", "", "the administrator's e-mail address, for the .eml's To: line")
	cmd.Flags().StringVar(&contact, "contact", "", "whom the administrator contacts when the link has expired, e.g. \"Jane Doe <jane@msp.example>\"")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"workflowId","runId","tenantId","orgHost","app","permission","consentUrl","waitingSince","expiresAt","ui"}`)
	return cmd
}

// printLink waits up to wait for the consent link of a started onboarding
// and prints it with its expiry, so the operator can hand it over at once.
func (a *app) printLink(cmd *cobra.Command, c client.Client, in workflows.OnboardingInput, wait time.Duration, asJSON bool) error {
	ctx := cmd.Context()
	follow := fmt.Sprintf("--tenant-id %s --org-url %s", in.TenantID, in.OrgURL)
	deadline := time.Now().Add(wait)
	for wait > 0 {
		s, err := fetch(ctx, c, in.WorkflowID())
		switch {
		case err != nil && !isTransientQueryError(err):
			return err
		case err == nil && !s.running():
			writeFailure(out(cmd), s.Progress)
			return outcome(s)
		case err == nil && s.Progress.ConsentURL != "":
			l := a.linkOf(ctx, c, s)
			if asJSON {
				return writeJSON(out(cmd), l)
			}
			fmt.Fprintf(out(cmd), "Consent URL for a Global Administrator of tenant %s", in.TenantID)
			if !l.ExpiresAt.IsZero() {
				fmt.Fprintf(out(cmd), " (valid until %s)", l.ExpiresAt.UTC().Format(time.RFC3339))
			}
			fmt.Fprintf(out(cmd), ":\n  %s\n", l.ConsentURL)
			fmt.Fprintf(out(cmd), "A message to send them: starter %sconsent-link %s [--eml admin.eml]\n", a.configHint(), follow)
			fmt.Fprintf(out(cmd), "Follow it with: starter %sstatus %s\n", a.configHint(), follow)
			return nil
		}
		if time.Now().After(deadline) {
			break
		}
		if err := ctxtime.Sleep(ctx, max(a.pollEvery, 500*time.Millisecond)); err != nil {
			return err
		}
	}
	if asJSON {
		return writeJSON(out(cmd), consentLink{WorkflowID: in.WorkflowID(), TenantID: in.TenantID, OrgHost: in.OrgHost(), UI: a.workflowLink(in.WorkflowID())})
	}
	fmt.Fprintf(out(cmd), "The consent link is not ready yet; get it with: starter %[1]sconsent-link %[2]s\nFollow it with: starter %[1]sstatus %[2]s\n", a.configHint(), follow)
	return nil
}
