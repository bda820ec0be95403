// Package cli is the operator's command line (the starter binary): it starts
// onboardings, signals consent, shows progress and the step-3 package, and
// serves the codec endpoint and the consent callback. Every command reads
// the same configuration as the worker. The local stack (dev server,
// emulator) is internal/devstack's, which adds its commands to this tree in
// its own binary, so the starter links no test double.
package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mktos2s/mktos2s/internal/config"
)

// app is the state one invocation shares between its commands.
type app struct {
	configFile string
	uiURL      string
	cfg        config.Config
	getenv     func(string) string
	// pollEvery paces progress polling (--wait, consent, cancel, demo).
	pollEvery time.Duration
	// started is set once the configuration loaded and a command runs:
	// errors before that are bad input (exit code 2).
	started bool
	// hintFile is the config file printed hints name (App.UseConfigFile).
	hintFile string
}

// NewRoot returns the starter command tree, with extra commands of another
// entry point (internal/devstack) added. Tests run it in process with
// SetArgs, SetOut and SetErr.
func NewRoot(extra ...Extra) *cobra.Command {
	root, _ := newRoot(extra...)
	return root
}

func newRoot(extra ...Extra) (*cobra.Command, *app) {
	a := &app{getenv: os.Getenv, pollEvery: 250 * time.Millisecond}
	root := &cobra.Command{
		Use:   "starter",
		Short: "Onboard Microsoft Dynamics 365 orgs for Marketo's server-to-server sync",
		Long: `starter drives mktos2s onboardings: one durable Temporal workflow per customer
tenant and Dynamics org that registers the Entra app, waits for admin consent,
creates the Dataverse application user with the "Marketo Sync User" role,
points the Marketo Config at it and validates the connection.

Configuration comes from mktos2s.yaml (., ./config, ~/.config/mktos2s or
--config), MKTOS2S_* environment variables and flags, in that order of
precedence. Command flags can also be set in the environment:
--tenant-id is MKTOS2S_TENANT_ID, --org-url is MKTOS2S_ORG_URL, and so on.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.load(cmd)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.configFile, "config", "", "config file (default: mktos2s.yaml in ., ./config or ~/.config/mktos2s)")
	pf.String("temporal-address", "", "Temporal frontend host:port (temporal.address)")
	pf.String("namespace", "", "Temporal namespace (temporal.namespace)")
	pf.StringVar(&a.uiURL, "ui-url", "", "Temporal UI base URL for links (default: codecServer.corsOrigin, the UI's origin)")

	root.AddCommand(
		a.startCmd(), a.consentCmd(), a.statusCmd(), a.cancelCmd(), a.listCmd(), a.credentialsCmd(),
		a.codecServerCmd(), a.serveCmd(), a.rotateCmd(), a.offboardCmd(), a.consentLinkCmd(), a.versionCmd(), a.exitCodesCmd(),
	)
	for _, e := range extra {
		root.AddCommand(e(App{a}))
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return coded(ExitBadInput, err) })
	return root, a
}

// annotWritesCA marks commands that start the emulator, which creates the CA file.
const annotWritesCA = "mktos2s/writes-ca"

// flagKeys maps flag names to the configuration keys they override.
func flagKeys() map[string]string {
	return map[string]string{
		"temporal-address": "temporal.address",
		"namespace":        "temporal.namespace",
		"listen":           "codecServer.listen",
		"callback-listen":  "consent.callbackListen",
	}
}

func (a *app) load(cmd *cobra.Command) error {
	if err := applyEnv(cmd.Flags(), a.getenv); err != nil {
		return coded(ExitBadInput, err)
	}
	cfg, err := config.Load(config.Options{File: a.configFile, Flags: cmd.Flags(), FlagKeys: flagKeys(), EnvFlags: flagEnv(cmd.Root())})
	if err != nil {
		return coded(ExitBadInput, err)
	}
	check := cfg
	if cmd.Annotations[annotWritesCA] != "" {
		// The emulator writes microsoft.caFile when it starts; it need not exist yet.
		check.Microsoft.CAFile = ""
	}
	if err := check.Validate(); err != nil {
		return coded(ExitBadInput, err)
	}
	a.cfg = cfg
	a.started = true
	return nil
}

// flagEnv lists the MKTOS2S_* variables of every flag of every command
// (applyEnv reads them), so config.Validate knows them from typos.
func flagEnv(root *cobra.Command) []string {
	var out []string
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			out = append(out, config.EnvPrefix+"_"+strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_")))
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return out
}

// applyEnv sets every flag the user did not give from MKTOS2S_<FLAG_NAME>,
// so scripts can pass --tenant-id as MKTOS2S_TENANT_ID. Flags that map to a
// config key are left to config.Load, which knows their environment names.
func applyEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	var err error
	keyed := flagKeys()
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil || f.Name == "help" || keyed[f.Name] != "" {
			return
		}
		name := config.EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	})
	return err
}

// uiBase is the Temporal UI's base URL: the flag, else the codec server's
// CORS origin, which is by definition where the UI runs.
func (a *app) uiBase() string {
	if a.uiURL != "" {
		return strings.TrimRight(a.uiURL, "/")
	}
	return strings.TrimRight(a.cfg.CodecServer.CORSOrigin, "/")
}

// workflowLink is the UI page of a workflow.
func (a *app) workflowLink(workflowID string) string {
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s", a.uiBase(),
		url.PathEscape(a.cfg.Temporal.Namespace), url.PathEscape(workflowID))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func out(cmd *cobra.Command) io.Writer { return cmd.OutOrStdout() }

func errOut(cmd *cobra.Command) io.Writer { return cmd.ErrOrStderr() }
