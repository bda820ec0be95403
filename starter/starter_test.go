package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/cli"
	"github.com/mktos2s/mktos2s/internal/config"
	"github.com/mktos2s/mktos2s/internal/custody"
	"github.com/mktos2s/mktos2s/internal/devstack"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/internal/testenv"
	"github.com/mktos2s/mktos2s/workflows"
)

const (
	contosoTenant  = "11111111-1111-1111-1111-111111111111"
	fabrikamTenant = "22222222-2222-2222-2222-222222222222"
	testToken      = "test-codec-token"
	testUIOrigin   = "http://localhost:8233"
)

var testKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{42}, 32))

// testCustodyKey seals the secrets the stack's worker creates; the
// operator's starter config has it too, for credentials --reveal.
var testCustodyKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{43}, 32))

const testCustodyKeyID = "c1"

// openSecret opens a sealed secret with the test custody key; "" if it does not open.
func openSecret(s custody.Sealed) string {
	k, err := custody.New(map[string][]byte{testCustodyKeyID: bytes.Repeat([]byte{43}, 32)}, testCustodyKeyID)
	if err != nil {
		panic(err)
	}
	plain, err := k.Open(s)
	if err != nil {
		return ""
	}
	return plain
}

// withoutCustody is a config body with the custody key removed, as a codec
// endpoint's config must be.
func withoutCustody(body string) string {
	return strings.Replace(body, "custody:\n  keys:\n    "+testCustodyKeyID+": "+testCustodyKey+"\n", "", 1)
}

// needTemporal fails when the Temporal CLI is not built (`make test` always
// builds it), or skips with -short.
func needTemporal(t *testing.T) {
	t.Helper()
	testenv.RequireTemporalCLI(t)
}

// writeConfig writes a starter config file with the test's codec key.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mktos2s.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func baseYAML(extra string) string {
	return fmt.Sprintf(`codec:
  keys:
    test: %s
custody:
  keys:
    %s: %s
codecServer:
  token: %s
  corsOrigin: %s
consent:
  recheckInterval: 1s
log:
  level: warn
  format: text
%s`, testKey, testCustodyKeyID, testCustodyKey, testToken, testUIOrigin, extra)
}

// run executes the starter in process and returns stdout, stderr and the error.
func run(ctx context.Context, t *testing.T, cfgFile string, args ...string) (string, string, error) {
	t.Helper()
	return runRoot(ctx, cli.NewRoot(), cfgFile, args...)
}

// runRoot is run with another command tree (devstack's for the demo).
func runRoot(ctx context.Context, root *cobra.Command, cfgFile string, args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	root.SetArgs(append([]string{"--config", cfgFile}, args...))
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	err := root.ExecuteContext(ctx)
	return stdout.String(), stderr.String(), err
}

// eventually runs the command until check accepts its stdout, for up to a
// minute. A command that says "still running" or "failed" (exit codes 5 and
// 4, e.g. status of a waiting or cancelled onboarding) counts as having
// answered.
func eventually(ctx context.Context, t *testing.T, cfgFile string, check func(string) bool, args ...string) string {
	t.Helper()
	var last string
	deadline := time.Now().Add(60 * time.Second)
	for {
		stdout, stderr, err := run(ctx, t, cfgFile, args...)
		code := cli.ExitCode(err)
		if (code == cli.ExitOK || code == cli.ExitWaiting || code == cli.ExitFailed) && check(stdout) {
			return stdout + stderr
		}
		last = stdout + stderr
		if err != nil {
			last += err.Error()
		}
		// The failure shows the last output: the message of require.Eventually
		// would be evaluated before the first try.
		if time.Now().After(deadline) || ctx.Err() != nil {
			require.FailNow(t, "condition never satisfied", "last output of %v:\n%s", args, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type testStack struct {
	*devstack.Stack
	cfgFile string
}

// newStack starts the dev server, the emulator (seed nil = the default
// seed) and the worker, with their files and the starter's config in dir.
// The emulator stops when ctx ends.
func newStack(ctx context.Context, dir string, seed *emulator.Seed) (testStack, error) {
	cfg := func(name, body string) (string, error) {
		p := filepath.Join(dir, name)
		return p, os.WriteFile(p, []byte(body), 0o600)
	}
	baseFile, err := cfg("base.yaml", baseYAML(""))
	if err != nil {
		return testStack{}, err
	}
	base, err := config.Load(config.Options{File: baseFile})
	if err != nil {
		return testStack{}, err
	}
	// The worker sends the consent hand-off messages to the tests' receiver.
	base.Consent.WebhookURL = hooks.url()
	st, err := devstack.StartStack(ctx, base, devstack.StackOptions{
		EmulatorAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "emulator"), CodecListen: "127.0.0.1:0", Seed: seed,
	})
	if err != nil {
		return testStack{}, err
	}
	cfgFile, err := cfg("mktos2s.yaml", baseYAML(fmt.Sprintf(`temporal:
  address: %s
microsoft:
  allowedOrgSuffixes: [.crm.localhost]
`, st.Config.Temporal.Address)))
	if err != nil {
		st.Stop()
		return testStack{}, err
	}
	return testStack{Stack: st, cfgFile: cfgFile}, nil
}

func progressOf(t *testing.T, stdout string) workflows.Progress {
	t.Helper()
	var p workflows.Progress
	require.NoError(t, json.Unmarshal([]byte(stdout), &p), stdout)
	return p
}

// adminConsents grants consent on the emulator's consent page without
// following the redirect, so no signal is sent: the `consent` command must
// be what tells the workflow.
func adminConsents(t *testing.T, st testStack, consentURL string) {
	t.Helper()
	require.NoError(t, testenv.GrantConsent(t.Context(), st.Emulator, consentURL))
}

func TestOperatorCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st := sharedStack(t)
	contoso := []string{"--tenant-id", contosoTenant, "--org-url", st.Emulator.OrgURL("contoso.crm.localhost")}
	fabrikam := []string{"--tenant-id", fabrikamTenant, "--org-url", st.Emulator.OrgURL("fabrikam.crm.localhost")}
	id := workflows.WorkflowID(contosoTenant, strings.TrimPrefix(st.Emulator.OrgURL("contoso.crm.localhost"), "https://"))

	t.Run("invalid input is refused before anything starts", func(t *testing.T) {
		_, _, err := run(ctx, t, st.cfgFile, "start", "--tenant-id", "not-a-guid", "--org-url", "https://contoso.example.com", "--secret-months", "30")
		require.Error(t, err)
		for _, field := range []string{"tenantId", "orgUrl", "secretLifetimeMonths", "allowedOrgSuffixes"} {
			assert.Contains(t, err.Error(), field)
		}
	})

	stdout, _, err := run(ctx, t, st.cfgFile, append([]string{"start"}, contoso...)...)
	require.NoError(t, err)
	assert.Contains(t, stdout, "Started onboarding "+id)

	t.Run("a second start is refused with the running one's status and UI link", func(t *testing.T) {
		stdout, _, err := run(ctx, t, st.cfgFile, append([]string{"start"}, contoso...)...)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "already running")
		assert.Contains(t, err.Error(), testUIOrigin+"/namespaces/default/workflows/"+url.PathEscape(id))
		assert.Contains(t, stdout, "Refused")
		assert.Contains(t, stdout, "Onboarding "+id+" (Running)")
	})

	var waiting workflows.Progress
	t.Run("status --json shows the consent URL while waiting", func(t *testing.T) {
		out := eventually(ctx, t, st.cfgFile, func(s string) bool {
			var p workflows.Progress
			return json.Unmarshal([]byte(s), &p) == nil && p.Status == workflows.StatusWaitingConsent
		}, append([]string{"status", "--json"}, contoso...)...)
		waiting = progressOf(t, out)
		assert.Equal(t, workflows.StepAwaitingAdminConsent, waiting.Step)
		assert.Contains(t, waiting.ConsentURL, "/"+contosoTenant+"/adminconsent?")
		assert.Contains(t, waiting.CompletedSteps, workflows.StepCreateServicePrincipal)
		assert.NotEmpty(t, waiting.Resources.AppID)
		assert.NotEmpty(t, waiting.Resources.ServicePrincipalID)

		text, _, err := run(ctx, t, st.cfgFile, append([]string{"status"}, contoso...)...)
		assert.Equal(t, cli.ExitWaiting, cli.ExitCode(err), "%v", err)
		assert.Contains(t, text, "… "+workflows.StepAwaitingAdminConsent)
		assert.Contains(t, text, waiting.ConsentURL)
		assert.Contains(t, text, "· "+workflows.StepAddClientSecret)
	})

	t.Run("list filters by step from visibility", func(t *testing.T) {
		eventually(ctx, t, st.cfgFile, func(s string) bool { return strings.Contains(s, id) },
			"list", "--step", workflows.StepAwaitingAdminConsent)
		stdout, _, err := run(ctx, t, st.cfgFile, "list", "--step", workflows.StepValidateConnection)
		require.NoError(t, err)
		assert.NotContains(t, stdout, id)
	})

	t.Run("consent before the grant exists is not verified", func(t *testing.T) {
		stdout, _, err := run(ctx, t, st.cfgFile, append([]string{"consent", "--wait", "2s", "--by", "tester"}, contoso...)...)
		assert.Equal(t, cli.ExitWaiting, cli.ExitCode(err), "%v", err)
		assert.Contains(t, stdout, "not verified yet")
	})

	t.Run("consent after the admin granted it is verified", func(t *testing.T) {
		adminConsents(t, st, waiting.ConsentURL)
		stdout, _, err := run(ctx, t, st.cfgFile, append([]string{"consent", "--by", "tester"}, contoso...)...)
		require.NoError(t, err)
		assert.Contains(t, stdout, "Admin consent verified")
	})

	t.Run("status of the completed run ends in validation passed", func(t *testing.T) {
		out := eventually(ctx, t, st.cfgFile, func(s string) bool { return strings.Contains(s, "(Completed)") },
			append([]string{"status"}, contoso...)...)
		assert.Contains(t, out, "✓ validation passed")
		assert.Contains(t, out, "✓ "+workflows.StepValidateConnection)
		p := progressOf(t, eventually(ctx, t, st.cfgFile, func(string) bool { return true }, append([]string{"status", "--json"}, contoso...)...))
		assert.Equal(t, workflows.StatusCompleted, p.Status)
		assert.NotEmpty(t, p.Resources.SystemUserID)
	})

	t.Run("credentials are masked unless revealed, and the revealed secret is the real one", func(t *testing.T) {
		masked, stderr, err := run(ctx, t, st.cfgFile, append([]string{"credentials"}, contoso...)...)
		require.NoError(t, err)
		assert.Contains(t, masked, "********")
		assert.Empty(t, stderr)

		revealed, stderr, err := run(ctx, t, st.cfgFile, append([]string{"credentials", "--reveal", "--json"}, contoso...)...)
		require.NoError(t, err)
		assert.Contains(t, stderr, "password manager")
		var pkg struct {
			OrgURL, Username, ClientID, TenantID, ClientSecret string
			SecretMasked                                       bool
		}
		require.NoError(t, json.Unmarshal([]byte(revealed), &pkg))
		assert.False(t, pkg.SecretMasked)
		assert.Equal(t, contosoTenant, pkg.TenantID)
		assert.Equal(t, waiting.Resources.AppID, pkg.ClientID)
		require.NotEqual(t, "********", pkg.ClientSecret)
		assert.NotContains(t, masked, pkg.ClientSecret)
		// The emulator issues a token only for a secret really added to the app.
		assert.Equal(t, http.StatusOK, tokenStatus(t, st, contosoTenant, pkg.ClientID, pkg.ClientSecret))
		assert.Equal(t, http.StatusUnauthorized, tokenStatus(t, st, contosoTenant, pkg.ClientID, pkg.ClientSecret+"x"))
	})

	t.Run("list by status", func(t *testing.T) {
		eventually(ctx, t, st.cfgFile, func(s string) bool { return strings.Contains(s, id) }, "list", "--status", "completed")
		stdout, _, err := run(ctx, t, st.cfgFile, "list", "--status", "running")
		require.NoError(t, err)
		assert.NotContains(t, stdout, id)
	})

	t.Run("cancel undoes everything the onboarding created", func(t *testing.T) {
		_, _, err := run(ctx, t, st.cfgFile, append([]string{"start"}, fabrikam...)...)
		require.NoError(t, err)
		eventually(ctx, t, st.cfgFile, func(s string) bool {
			var p workflows.Progress
			return json.Unmarshal([]byte(s), &p) == nil && p.Status == workflows.StatusWaitingConsent
		}, append([]string{"status", "--json"}, fabrikam...)...)
		require.NotEmpty(t, created(st.Emulator.State(), fabrikamTenant), "the app exists before the cancel")

		stdout, _, err := run(ctx, t, st.cfgFile, append([]string{"cancel"}, fabrikam...)...)
		require.NoError(t, err)
		assert.Contains(t, stdout, "↩ undone "+workflows.StepRegisterApplication)
		assert.Contains(t, stdout, "↩ undone "+workflows.StepCreateServicePrincipal)
		assert.Empty(t, created(st.Emulator.State(), fabrikamTenant), "nothing left behind in the emulator")

		p := progressOf(t, eventually(ctx, t, st.cfgFile, func(string) bool { return true }, append([]string{"status", "--json"}, fabrikam...)...))
		assert.Equal(t, workflows.StatusCancelled, p.Status)
	})
}

// created lists what onboardings created in a tenant (not seeded objects).
func created(s emulator.State, tenantID string) []string {
	var out []string
	for _, t := range s.Tenants {
		if t.ID != tenantID {
			continue
		}
		for _, a := range t.Applications {
			if !a.Seeded {
				out = append(out, "app "+a.AppID)
			}
		}
		for _, sp := range t.ServicePrincipals {
			if sp.Owner != "" {
				out = append(out, "sp "+sp.AppID)
			}
		}
		out = append(out, policies(t.HRDPolicies)...)
	}
	return out
}

func policies(ps []emulator.HRDPolicyState) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, "policy "+p.ID)
	}
	return out
}

// tokenStatus asks the emulator's token endpoint for a Graph token as the app:
// 200 when Entra accepts the secret, 401 for any refusal.
func tokenStatus(t *testing.T, st testStack, tenantID, clientID, secret string) int {
	t.Helper()
	hc, err := msapi.NewHTTPClient(msapi.HTTPOptions{CAFile: st.Emulator.CAFile()})
	require.NoError(t, err)
	form := url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret},
		"scope": {"https://graph.microsoft.com/.default"},
	}
	resp, err := hc.PostForm(st.Emulator.URL()+"/"+tenantID+"/oauth2/v2.0/token", form)
	require.NoError(t, err)
	resp.Body.Close()
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		return http.StatusUnauthorized
	}
	return resp.StatusCode
}

func TestDemoExitRunsEndToEnd(t *testing.T) {
	needTemporal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfgFile := writeConfig(t, baseYAML(""))
	stdout, stderr, err := runRoot(ctx, devstack.NewRoot(), cfgFile, "demo", "--exit",
		"--temporal-port", "0", "--ui-port", "0", "--emulator-addr", "127.0.0.1:0", "--codec-listen", "127.0.0.1:0",
		"--callback-listen", "127.0.0.1:0",
		"--data-dir", t.TempDir())
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	for _, want := range []string{
		"Temporal UI        http://127.0.0.1:",
		"worker metrics     http://127.0.0.1:",
		"→ Entra redirected to http://127.0.0.1:",
		"/consent/callback, which signalled " + workflows.SignalAdminConsent,
		"consent.callbackKey configured; consent links are signed with a key that lives only as long as this process",
		"✓ " + workflows.StepAwaitingAdminConsent,
		"✓ validation passed",
		"Client Secret   ******** (hidden",
		"Reveal the secret with: starter --config ",
	} {
		assert.Contains(t, stdout, want)
	}
	assert.Less(t, strings.Index(stdout, "✓ validation passed"), strings.Index(stdout, "Client Secret"))
}

// serving runs a starter command that serves until ctx ends (codec-server,
// serve) in the background. It returns the address the command prints
// after marker, and the channel that receives the command's result.
func serving(ctx context.Context, t *testing.T, marker string, args ...string) (string, <-chan error) {
	t.Helper()
	var out testenv.Buffer
	root := cli.NewRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	var endpoint string
	require.Eventually(t, func() bool {
		_, rest, ok := strings.Cut(out.String(), marker)
		endpoint, _, _ = strings.Cut(rest, " ")
		return ok && endpoint != ""
	}, 10*time.Second, 20*time.Millisecond, "the command never printed %q", marker)
	return endpoint, done
}

func TestCodecServerCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The codec endpoint serves the UI: it refuses to start holding the custody key.
	_, _, err := run(ctx, t, writeConfig(t, baseYAML("")), "codec-server", "--listen", "127.0.0.1:0")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "refuses to start with custody.keys set")

	cfgFile := writeConfig(t, withoutCustody(baseYAML("")))
	require.NotContains(t, withoutCustody(baseYAML("")), testCustodyKey)
	endpoint, done := serving(ctx, t, "codec endpoint listening on ", "--config", cfgFile, "codec-server", "--listen", "127.0.0.1:0")

	body := `{"payloads":[{"metadata":{"encoding":"` + base64.StdEncoding.EncodeToString([]byte("json/plain")) + `"},"data":"` + base64.StdEncoding.EncodeToString([]byte(`"hello"`)) + `"}]}`
	post := func(path, token, origin string) *http.Response {
		req, err := http.NewRequest(http.MethodPost, endpoint+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	tests := []struct {
		name, token, origin string
		status              int
		allowOrigin         string
	}{
		{name: "no token", status: http.StatusUnauthorized},
		{name: "wrong token", token: "nope", status: http.StatusUnauthorized},
		{name: "token, no browser", token: testToken, status: http.StatusOK},
		{name: "token, the UI's origin", token: testToken, origin: testUIOrigin, status: http.StatusOK, allowOrigin: testUIOrigin},
		{name: "token, another origin", token: testToken, origin: "http://evil.localhost:8233", status: http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := post("/encode", tc.token, tc.origin)
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.Equal(t, tc.allowOrigin, resp.Header.Get("Access-Control-Allow-Origin"))
		})
	}

	t.Run("encode then decode round-trips through the configured key", func(t *testing.T) {
		enc := post("/encode", testToken, "")
		require.Equal(t, http.StatusOK, enc.StatusCode)
		var sealed bytes.Buffer
		_, err := sealed.ReadFrom(enc.Body)
		require.NoError(t, err)
		assert.NotContains(t, sealed.String(), base64.StdEncoding.EncodeToString([]byte(`"hello"`)))

		req, err := http.NewRequest(http.MethodPost, endpoint+"/decode", &sealed)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		dec, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer dec.Body.Close()
		var plain bytes.Buffer
		_, err = plain.ReadFrom(dec.Body)
		require.NoError(t, err)
		assert.Contains(t, plain.String(), base64.StdEncoding.EncodeToString([]byte(`"hello"`)))
	})

	cancel()
	require.NoError(t, <-done)
}
