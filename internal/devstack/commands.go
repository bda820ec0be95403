package devstack

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/mktos2s/mktos2s/internal/cli"
	"github.com/mktos2s/mktos2s/internal/config"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/workerapp"
)

func emulatorCmd(x cli.App) *cobra.Command {
	var addr, dataDir, seedFile string
	cmd := &cobra.Command{
		Annotations: map[string]string{cli.AnnotWritesCA: "true"},
		Use:         "emulator",
		Short:       "Run the local emulator of Entra ID, Microsoft Graph and Dataverse",
		Args:        cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			seed, err := loadSeed(seedFile)
			if err != nil {
				return err
			}
			if dataDir == "" {
				dataDir = dataDirFor(x.Config())
			}
			log, err := workerapp.NewLogger(x.Config().Log, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return emulator.Run(cmd.Context(), emulator.Options{Addr: addr, DataDir: dataDir, Seed: seed, Logger: log, Out: cmd.OutOrStdout()})
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8443", "loopback host:port to listen on")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "where the CA is written (default: the directory of microsoft.caFile, else .data/emulator)")
	cmd.Flags().StringVar(&seedFile, "seed", "", "seed YAML (default: the embedded seed, same as config/emulator-seed.yaml)")
	return cmd
}

func loadSeed(path string) (*emulator.Seed, error) {
	if path == "" {
		return emulator.DefaultSeed(), nil
	}
	return emulator.LoadSeed(path)
}

// stackFlags are the flags `dev` and `demo` share.
type stackFlags struct {
	dbFile       string
	dataDir      string
	seedFile     string
	temporalPort int
	uiPort       int
	noUI         bool
	emulatorAddr string
	codecListen  string
	metrics      string
	verbose      bool
}

func (f *stackFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.dbFile, "db-file", "", "keep Temporal's state in this SQLite file (WAL mode); default in memory")
	fl.StringVar(&f.dataDir, "data-dir", "", "emulator data directory (default: the directory of microsoft.caFile, else .data/emulator)")
	fl.StringVar(&f.seedFile, "seed", "", "emulator seed YAML (default: the embedded seed)")
	fl.IntVar(&f.temporalPort, "temporal-port", -1, "dev server frontend port; 0 = any free port (default: the port of temporal.address)")
	fl.IntVar(&f.uiPort, "ui-port", -1, "Temporal UI port; 0 = any free port (default: the port of codecServer.corsOrigin)")
	fl.BoolVar(&f.noUI, "no-ui", false, "do not start the Temporal UI")
	fl.StringVar(&f.emulatorAddr, "emulator-addr", "", "emulator host:port (default: the host of microsoft.authorityHost if it is loopback, else 127.0.0.1:8443)")
	fl.StringVar(&f.codecListen, "codec-listen", "", "codec endpoint host:port (default: codecServer.listen)")
	fl.StringVar(&f.metrics, "metrics-listen", "", "the worker's Prometheus metrics and /readyz (default: worker.metricsListen, else any free loopback port); off = none")
	fl.String("callback-listen", "", "consent callback host:port (consent.callbackListen); 127.0.0.1:0 = any free port")
	fl.BoolVar(&f.verbose, "verbose", false, "show the worker's, emulator's and Temporal server's logs")
}

func stackOptions(cfg config.Config, f stackFlags, logTo io.Writer) (StackOptions, error) {
	seed, err := loadSeed(f.seedFile)
	if err != nil {
		return StackOptions{}, err
	}
	level := slog.LevelWarn
	var serverOut io.Writer
	if f.verbose {
		level, serverOut = slog.LevelInfo, logTo
	}
	o := StackOptions{
		TemporalPort: f.temporalPort, UI: !f.noUI, UIPort: f.uiPort, DBFile: f.dbFile,
		EmulatorAddr: f.emulatorAddr, DataDir: f.dataDir, Seed: seed, CodecListen: f.codecListen, MetricsListen: f.metrics,
		ServerOutput: serverOut,
		Logger:       slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: level})),
	}
	if o.TemporalPort < 0 {
		o.TemporalPort = portOf(cfg.Temporal.Address)
	}
	if o.UIPort < 0 {
		o.UIPort = uiPortOf(cfg.CodecServer.CORSOrigin)
	}
	if o.EmulatorAddr == "" {
		o.EmulatorAddr = "127.0.0.1:8443"
		if host, port := hostPortOf(cfg.Microsoft.AuthorityHost); port != "" && isLoopback(host) {
			o.EmulatorAddr = net.JoinHostPort(host, port)
		}
	}
	if o.DataDir == "" {
		o.DataDir = dataDirFor(cfg)
	}
	if o.CodecListen == "" {
		o.CodecListen = cfg.CodecServer.Listen
	}
	o.CallbackListen = cfg.Consent.CallbackListen
	switch {
	case o.MetricsListen == "off":
		o.MetricsListen = ""
	case o.MetricsListen == "" && cfg.Worker.MetricsListen != "":
		o.MetricsListen = cfg.Worker.MetricsListen
	case o.MetricsListen == "":
		o.MetricsListen = "127.0.0.1:0"
	}
	return o, nil
}

func devCmd(x cli.App) *cobra.Command {
	var f stackFlags
	cmd := &cobra.Command{
		Annotations: map[string]string{cli.AnnotWritesCA: "true"},
		Use:         "dev",
		Short:       "Run the whole stack locally: Temporal dev server + UI, emulator, codec endpoint, worker",
		Long: `dev starts the Temporal dev server (search attributes registered, UI wired to
the codec endpoint), the Microsoft emulator, the codec endpoint, a consent
callback (consent.callbackListen, signed links only) and a worker, prints
their addresses and stops them all on Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStack(x, cmd, f, func(*Stack) (bool, error) { return true, nil })
		},
	}
	f.register(cmd)
	return cmd
}

// withStack starts the stack, prints it, runs fn against it and, if fn
// asks to keep running, waits for Ctrl-C before stopping everything.
func withStack(x cli.App, cmd *cobra.Command, f stackFlags, fn func(*Stack) (keep bool, err error)) error {
	o, err := stackOptions(x.Config(), f, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	st, err := StartStack(cmd.Context(), x.Config(), o)
	if err != nil {
		return err
	}
	defer st.Stop()
	// Only now that every port is taken: a stack that did not start
	// leaves no file pointing at it.
	clientFile, err := writeClientConfig(o.DataDir, st.Config)
	if err != nil {
		return err
	}
	defer os.Remove(clientFile)
	writeStack(cmd.OutOrStdout(), st)
	fmt.Fprintf(cmd.OutOrStdout(), "  other terminals    starter --config %s list   (this file reaches this stack)\n", clientFile)
	// Commands run inside fn talk to the stack, whatever the config said.
	x.UseConfig(st.Config)
	x.UseConfigFile(clientFile)
	keep, err := fn(st)
	if !keep || err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), "Press Ctrl-C to stop everything.")
	<-cmd.Context().Done()
	fmt.Fprintln(cmd.OutOrStdout(), "Stopping...")
	return nil
}

func writeStack(w io.Writer, st *Stack) {
	cfg := st.Config
	fmt.Fprintln(w, "mktos2s local stack:")
	fmt.Fprintf(w, "  Temporal frontend  %s (namespace %s, task queue mktos2s-onboarding)\n", cfg.Temporal.Address, cfg.Temporal.Namespace)
	if st.Temporal.UIURL != "" {
		fmt.Fprintf(w, "  Temporal UI        %s\n", st.Temporal.UIURL)
	}
	fmt.Fprintf(w, "  codec endpoint     %s (bearer token: codecServer.token)\n", st.CodecURL)
	fmt.Fprintf(w, "  emulator           %s (CA %s, state %s/_emulator/state)\n", st.Emulator.URL(), st.Emulator.CAFile(), st.Emulator.URL())
	fmt.Fprintf(w, "  consent callback   %s (accepts only consent links signed with consent.callbackKey)\n", st.CallbackURL)
	fmt.Fprintf(w, "  worker             in this process\n")
	if u := st.MetricsURL(); u != "" {
		fmt.Fprintf(w, "  worker metrics     %s (readiness: /readyz)\n", u)
	}
	for _, og := range st.Seed.Orgs {
		fmt.Fprintf(w, "  demo org           tenant %s, org URL %s\n", og.TenantID, st.Emulator.OrgURL(og.Host))
	}
	if st.GeneratedCustodyKey {
		fmt.Fprintln(w, "  note: no custody.keys configured; secrets are sealed with a key that lives only as long as this process (credentials --reveal cannot open them)")
	}
	if st.GeneratedCodecKey {
		fmt.Fprintln(w, "  note: no codec.keys configured; payloads use a key that lives only as long as this process")
	}
	if st.GeneratedCallbackKey {
		fmt.Fprintln(w, "  note: no consent.callbackKey configured; consent links are signed with a key that lives only as long as this process")
	}
}

func portOf(hostport string) int {
	_, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0
	}
	var p int
	_, _ = fmt.Sscanf(port, "%d", &p)
	return p
}
