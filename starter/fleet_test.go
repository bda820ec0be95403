package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/activities"
	"github.com/mktos2s/mktos2s/internal/cli"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/lifecycle"
	"github.com/mktos2s/mktos2s/internal/testenv"
	"github.com/mktos2s/mktos2s/workflows"
)

// The fleet test's tenants: each walks through some lifecycle states.
var (
	fleetLive = testenv.Tenant{From: contosoTenant, ID: "f0000000-0000-4000-8000-000000000001", DisplayName: "Fleetlive", OrgHost: "fleetlive.crm.localhost"}
	fleetWait = testenv.Tenant{From: contosoTenant, ID: "f0000000-0000-4000-8000-000000000002", DisplayName: "Fleetwait", OrgHost: "fleetwait.crm.localhost"}
	fleetFail = testenv.Tenant{From: fabrikamTenant, ID: "f0000000-0000-4000-8000-000000000003", DisplayName: "Fleetfail", OrgHost: "fleetfail.crm.localhost",
		WithoutPermissions: []string{"Policy.ReadWrite.ApplicationConfiguration"}}
	fleetSlow = testenv.Tenant{From: contosoTenant, ID: "f0000000-0000-4000-8000-000000000004", DisplayName: "Fleetslow", OrgHost: "fleetslow.crm.localhost"}
)

func fleetTenants() []testenv.Tenant {
	return []testenv.Tenant{fleetLive, fleetWait, fleetFail, fleetSlow}
}

// fleetRow runs `list --tenant-id --json` until the tenant's row is in
// state want, and returns it.
func fleetRow(ctx context.Context, t *testing.T, st testStack, tn testenv.Tenant, want string) lifecycle.TenantState {
	t.Helper()
	var row lifecycle.TenantState
	eventually(ctx, t, st.cfgFile, func(s string) bool {
		var rows []lifecycle.TenantState
		if json.Unmarshal([]byte(s), &rows) != nil || len(rows) != 1 {
			return false
		}
		row = rows[0]
		return row.State == want
	}, "list", "--json", "--tenant-id", tn.ID)
	return row
}

func targetOf(st testStack, tn testenv.Tenant) []string {
	return []string{"--tenant-id", tn.ID, "--org-url", st.Emulator.OrgURL(tn.OrgHost)}
}

// TestFleetViewAndExitCodes walks tenants through the lifecycle and checks
// the fleet view's row and the exit codes of the commands at each state.
func TestFleetViewAndExitCodes(t *testing.T) {
	st := sharedStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	code := func(args ...string) (int, string) {
		t.Helper()
		return runCode(ctx, t, append([]string{"--config", st.cfgFile}, args...)...)
	}

	t.Run("unknown filters and tenants", func(t *testing.T) {
		for _, args := range [][]string{{"list", "--step", "awaiting-consent"}, {"list", "--state", "done"}, {"list", "--tenant-id", "contoso"}, {"list", "--sort", "age"}} {
			c, out := code(args...)
			assert.Equal(t, cli.ExitBadInput, c, "%v: %s", args, out)
		}
		c, out := code("list", "--step", "awaiting-consent")
		assert.Contains(t, out, workflows.StepAwaitingAdminConsent, "the refusal lists the steps that exist")
		c, out = code(append([]string{"status"}, targetOf(st, fleetLive)...)...)
		assert.Equal(t, cli.ExitNotFound, c, out)
		c, out = code("list", "--tenant-id", fleetLive.ID)
		assert.Equal(t, cli.ExitNotFound, c, out)
		c, out = code("offboard", "--dry-run", "--timeout", "30s", "--tenant-id", "f0000000-0000-4000-8000-0000000000ff", "--org-url", st.Emulator.OrgURL("nobody.crm.localhost"))
		assert.Equal(t, cli.ExitFailed, c, out)
		assert.NotContains(t, out, "nothing to remove", "no claim it looked when it could not")
		assert.Contains(t, out, "offboarding-dry-run/f0000000-0000-4000-8000-0000000000ff/nobody.crm.localhost")
		assert.NotContains(t, out, "workflow execution error")
	})

	t.Run("running at a step", func(t *testing.T) {
		st.Emulator.SetFaults(emulator.Faults{Routes: map[string]emulator.RouteFaults{"graph": {LatencyMs: 1500}}})
		defer st.Emulator.SetFaults(emulator.Faults{})
		c, out := code(append([]string{"start", "--link-wait", "0"}, targetOf(st, fleetSlow)...)...)
		require.Equal(t, cli.ExitOK, c, out)
		row := fleetRow(ctx, t, st, fleetSlow, lifecycle.StateRunning)
		assert.NotEmpty(t, row.Step)
		assert.NotContains(t, []string{workflows.StepAwaitingAdminConsent, workflows.StepCompleted}, row.Step)
		c, out = code(append([]string{"status"}, targetOf(st, fleetSlow)...)...)
		assert.Equal(t, cli.ExitWaiting, c, out)
	})

	t.Run("waiting for consent, then cancelled", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		c := cli.Run(ctx, append([]string{"--config", st.cfgFile, "start", "--json"}, targetOf(st, fleetWait)...), &stdout, &stderr)
		require.Equal(t, cli.ExitOK, c, stdout.String()+stderr.String())
		var link struct {
			ConsentURL string    `json:"consentUrl"`
			ExpiresAt  time.Time `json:"expiresAt"`
			TenantID   string    `json:"tenantId"`
		}
		require.NoError(t, json.Unmarshal(stdout.Bytes(), &link), "start --json prints only the link: %s", stdout.String())
		assert.Contains(t, link.ConsentURL, "/"+fleetWait.ID+"/adminconsent?")
		assert.WithinDuration(t, time.Now().Add(workflows.DefaultConsentTimeout), link.ExpiresAt, time.Minute, "the wait's timeout")
		assert.Equal(t, fleetWait.ID, link.TenantID)

		t.Run("the webhook got the link and its expiry", func(t *testing.T) {
			id := workflows.WorkflowID(fleetWait.ID, strings.TrimPrefix(st.Emulator.OrgURL(fleetWait.OrgHost), "https://"))
			require.Eventually(t, func() bool { return len(hooks.received(id)) > 0 }, 30*time.Second, 50*time.Millisecond)
			m := hooks.received(id)[0]
			assert.Equal(t, activities.NotifyWaiting, m.Kind)
			assert.Equal(t, link.ConsentURL, m.ConsentURL)
			assert.WithinDuration(t, link.ExpiresAt, m.ExpiresAt, time.Second)
			assert.Equal(t, fleetWait.ID, m.TenantID)
			assert.Contains(t, m.Text, link.ConsentURL)
		})

		eml := filepath.Join(t.TempDir(), "admin.eml")
		c, out := code(append([]string{"consent-link", "--eml", eml, "--to", "admin@fleetwait.example", "--contact", "Jane <jane@msp.example>"}, targetOf(st, fleetWait)...)...)
		require.Equal(t, cli.ExitOK, c, out)
		for _, want := range []string{link.ConsentURL, "Global Administrator", fleetWait.ID, workflows.DefaultAppDisplayName, "user_impersonation",
			link.ExpiresAt.UTC().Format(time.RFC1123), "Jane <jane@msp.example>"} {
			assert.Contains(t, out, want)
		}
		f, err := os.Open(eml)
		require.NoError(t, err)
		defer f.Close()
		msg, err := mail.ReadMessage(f)
		require.NoError(t, err)
		assert.Equal(t, "admin@fleetwait.example", msg.Header.Get("To"))
		mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		require.NoError(t, err)
		assert.Equal(t, "multipart/alternative", mt)
		mr := multipart.NewReader(msg.Body, params["boundary"])
		var types []string
		for {
			part, err := mr.NextPart()
			if err != nil {
				break
			}
			body, _ := io.ReadAll(part)
			types = append(types, part.Header.Get("Content-Type"))
			assert.Contains(t, string(body), strings.ReplaceAll(link.ConsentURL, "&", map[bool]string{true: "&amp;", false: "&"}[strings.HasPrefix(part.Header.Get("Content-Type"), "text/html")]))
		}
		assert.Equal(t, []string{"text/plain; charset=utf-8", "text/html; charset=utf-8"}, types)

		row := fleetRow(ctx, t, st, fleetWait, lifecycle.StateWaitingConsent)
		assert.Equal(t, workflows.StepAwaitingAdminConsent, row.Step)
		assert.False(t, row.Since.IsZero())
		assert.True(t, row.Since.After(row.Onboarding.Started), "waiting since the wait began, not since the start")
		c, out = code(append([]string{"start"}, targetOf(st, fleetWait)...)...)
		assert.Equal(t, cli.ExitConflict, c, "a second start is refused: %s", out)
		c, out = code(append([]string{"consent-link"}, targetOf(st, fleetFail)...)...)
		assert.Equal(t, cli.ExitNotFound, c, out)
		c, out = code(append([]string{"consent", "--wait", "1s"}, targetOf(st, fleetWait)...)...)
		assert.Equal(t, cli.ExitWaiting, c, "no grant in Entra yet: %s", out)

		c, out = code(append([]string{"cancel"}, targetOf(st, fleetWait)...)...)
		require.Equal(t, cli.ExitOK, c, out)
		row = fleetRow(ctx, t, st, fleetWait, lifecycle.StateCancelled)
		assert.Equal(t, workflows.StepAwaitingAdminConsent, row.Step)
		c, out = code(append([]string{"status"}, targetOf(st, fleetWait)...)...)
		assert.Equal(t, cli.ExitFailed, c, out)
		c, out = code(append([]string{"consent"}, targetOf(st, fleetWait)...)...)
		assert.Equal(t, cli.ExitConflict, c, out)
		assert.Contains(t, out, "is not waiting for consent")
		c, out = code(append([]string{"consent-link"}, targetOf(st, fleetWait)...)...)
		assert.Equal(t, cli.ExitConflict, c, out)
		assert.NotContains(t, out, "workflow execution already completed")
		c, out = code(append([]string{"cancel"}, targetOf(st, fleetWait)...)...)
		assert.Equal(t, cli.ExitConflict, c, out)
	})

	t.Run("failed at a step with the reason", func(t *testing.T) {
		c, out := code(append([]string{"start", "--wait"}, targetOf(st, fleetFail)...)...)
		assert.Equal(t, cli.ExitFailed, c, out)
		row := fleetRow(ctx, t, st, fleetFail, lifecycle.StateFailed)
		assert.NotEmpty(t, row.Step)
		assert.NotEmpty(t, row.Reason)
		c, out = code(append([]string{"status"}, targetOf(st, fleetFail)...)...)
		assert.Equal(t, cli.ExitFailed, c, out)
		c, out = code(append([]string{"credentials"}, targetOf(st, fleetFail)...)...)
		assert.Equal(t, cli.ExitFailed, c, out)
	})

	t.Run("live, renewal waiting, dry run, offboarded", func(t *testing.T) {
		target := targetOf(st, fleetLive)
		c, out := code(append([]string{"start"}, target...)...)
		require.Equal(t, cli.ExitOK, c, out)
		waiting := progressOf(t, eventually(ctx, t, st.cfgFile, func(s string) bool {
			var p workflows.Progress
			return json.Unmarshal([]byte(s), &p) == nil && p.Status == workflows.StatusWaitingConsent
		}, append([]string{"status", "--json"}, target...)...))
		adminConsents(t, st, waiting.ConsentURL)
		c, out = code(append([]string{"consent"}, target...)...)
		require.Equal(t, cli.ExitOK, c, out)

		row := fleetRow(ctx, t, st, fleetLive, lifecycle.StateLive)
		assert.False(t, row.SecretExpiresAt.IsZero())
		assert.False(t, row.NextRotationAt.IsZero())
		assert.True(t, row.NextRotationAt.Before(row.SecretExpiresAt))
		c, out = code(append([]string{"status"}, target...)...)
		assert.Equal(t, cli.ExitOK, c, out)
		c, out = code(append([]string{"start"}, target...)...)
		assert.Equal(t, cli.ExitConflict, c, "already onboarded: %s", out)

		c, out = code(append([]string{"rotate", "--now"}, target...)...)
		require.Equal(t, cli.ExitOK, c, out)
		row = fleetRow(ctx, t, st, fleetLive, lifecycle.StateRenewalWaiting)
		assert.Contains(t, row.Reason, "rotate --confirm")

		c, out = code(append([]string{"offboard", "--dry-run"}, target...)...)
		require.Equal(t, cli.ExitOK, c, out)
		fleetRow(ctx, t, st, fleetLive, lifecycle.StateRenewalWaiting) // a dry run changes nothing, in the view too

		c, out = code(append([]string{"offboard"}, target...)...)
		require.Equal(t, cli.ExitOK, c, out)
		row = fleetRow(ctx, t, st, fleetLive, lifecycle.StateOffboarded)
		assert.False(t, row.Since.IsZero())
		c, out = code(append([]string{"status"}, target...)...)
		assert.Equal(t, cli.ExitOK, c, out)
		assert.Contains(t, out, "then offboarded at")
		assert.NotContains(t, out, "validation passed")
		assert.NotContains(t, out, "Live secret")
		c, out = code(append([]string{"credentials"}, target...)...)
		assert.Equal(t, cli.ExitNotFound, c, out)
	})

	t.Run("the table and filters", func(t *testing.T) {
		c, out := code("list", "--state", lifecycle.StateOffboarded+","+lifecycle.StateCancelled, "--sort", "state")
		require.Equal(t, cli.ExitOK, c, out)
		assert.Contains(t, out, fleetLive.ID)
		assert.Contains(t, out, fleetWait.ID)
		assert.NotContains(t, out, fleetFail.ID)
		assert.Less(t, indexOf(out, fleetWait.ID), indexOf(out, fleetLive.ID), "cancelled sorts before offboarded")
		c, out = code("list", "--step", workflows.StepAwaitingAdminConsent, "--state", lifecycle.StateCancelled)
		require.Equal(t, cli.ExitOK, c, out)
		assert.Contains(t, out, fleetWait.ID)
	})
	_, _ = code(append([]string{"cancel"}, targetOf(st, fleetSlow)...)...)
}

func indexOf(s, sub string) int { return strings.Index(s, sub) }
