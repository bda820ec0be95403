package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/mktos2s/mktos2s/workflows"
)

// listQuery is the visibility query for `list`. Values are quoted with ”
// doubled, so a step name cannot change the query.
func listQuery(step, status string) (string, error) {
	q := []string{fmt.Sprintf("WorkflowType = %s", quote(workflows.WorkflowType))}
	switch status {
	case "", "all":
	case "running":
		q = append(q, "ExecutionStatus = 'Running'")
	case "completed":
		q = append(q, "ExecutionStatus = 'Completed'")
	case "failed":
		q = append(q, "ExecutionStatus IN ('Failed', 'Canceled', 'Terminated', 'TimedOut')")
	default:
		return "", coded(ExitBadInput, fmt.Errorf("--status %q: use running, completed, failed or all", status))
	}
	if step != "" {
		q = append(q, "OnboardingStep = "+quote(step))
	}
	return strings.Join(q, " AND "), nil
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// row is one line of `list`.
type row struct {
	WorkflowID string    `json:"workflowId"`
	Status     string    `json:"status"`
	Step       string    `json:"step"`
	TenantID   string    `json:"tenantId"`
	OrgHost    string    `json:"orgHost"`
	Started    time.Time `json:"started"`
}

func (a *app) listCmd() *cobra.Command {
	var (
		step, status string
		limit        int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List onboardings from Temporal visibility, filtered by step or status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			query, err := listQuery(step, status)
			if err != nil {
				return err
			}
			c, err := a.dial(cmd.Context(), errOut(cmd))
			if err != nil {
				return err
			}
			defer c.Close()
			rows, err := listRows(cmd.Context(), c, a.cfg.Temporal.Namespace, query, limit)
			if err != nil {
				return err
			}
			writeRows(out(cmd), rows)
			return nil
		},
	}
	cmd.Flags().StringVar(&step, "step", "", "only onboardings at this step, e.g. "+workflows.StepAwaitingAdminConsent)
	cmd.Flags().StringVar(&status, "status", "all", "running, completed, failed or all")
	cmd.Flags().IntVar(&limit, "limit", 200, "at most this many rows")
	return cmd
}

func listRows(ctx context.Context, c client.Client, namespace, query string, limit int) ([]row, error) {
	var (
		rows  []row
		token []byte
	)
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: namespace, Query: query, NextPageToken: token, PageSize: int32(min(limit, 100)),
		})
		if err != nil {
			return nil, fmt.Errorf("list onboardings (%s): %w", query, err)
		}
		for _, e := range resp.GetExecutions() {
			fields := e.GetSearchAttributes().GetIndexedFields()
			rows = append(rows, row{
				WorkflowID: e.GetExecution().GetWorkflowId(),
				Status:     executionStatus(e.GetStatus()),
				Step:       keyword(fields["OnboardingStep"]),
				TenantID:   keyword(fields["TenantId"]),
				OrgHost:    keyword(fields["OrgHost"]),
				Started:    e.GetStartTime().AsTime(),
			})
			if len(rows) >= limit {
				return rows, nil
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return rows, nil
		}
	}
}

// keyword decodes a Keyword search attribute. Search attributes are stored
// as plain JSON payloads (never through the payload codec), so the default
// converter reads them.
func keyword(p *commonpb.Payload) string {
	if p == nil {
		return ""
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		return ""
	}
	return s
}

func writeRows(w io.Writer, rows []row) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "No onboardings match.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tORG\tSTATUS\tSTEP\tSTARTED\tWORKFLOW ID")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.TenantID, r.OrgHost, r.Status, r.Step,
			r.Started.Local().Format(time.DateTime), r.WorkflowID)
	}
	_ = tw.Flush()
}

// credentials is Marketo's step-3 package.
type credentials struct {
	OrgURL          string    `json:"orgUrl"`
	Username        string    `json:"username"`
	ClientID        string    `json:"clientId"`
	TenantID        string    `json:"tenantId"`
	ClientSecret    string    `json:"clientSecret"`
	SecretExpiresAt time.Time `json:"secretExpiresAt"`
	SecretMasked    bool      `json:"secretMasked"`
}

const maskedSecret = "********"

func packageFrom(res workflows.OnboardingResult, reveal bool) credentials {
	c := credentials{
		OrgURL: res.OrgURL, Username: res.Username, ClientID: res.ClientID, TenantID: res.TenantID,
		ClientSecret: maskedSecret, SecretExpiresAt: res.SecretExpiresAt, SecretMasked: !reveal,
	}
	if reveal {
		c.ClientSecret = res.ClientSecret
	}
	return c
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

const revealWarning = `WARNING: the client secret is shown in plain text. Paste it into Marketo and
store it in your password manager now, then clear this terminal's scrollback
(e.g. "clear && printf '\e[3J'"). It is not written anywhere else in plain text;
Entra will never show it again.`

func (a *app) credentialsCmd() *cobra.Command {
	var (
		t              target
		reveal, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "credentials --tenant-id ID --org-url URL",
		Short: "Show the step-3 package for Marketo (the secret only with --reveal)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
				pkg := a.rotatedPackage(ctx, c, errOut(cmd), t, packageFrom(*s.Result, reveal), reveal)
				if reveal {
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
	cmd.Flags().BoolVar(&reveal, "reveal", false, "show the client secret in plain text")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the package as JSON")
	return cmd
}
