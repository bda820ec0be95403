package devstack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/mktos2s/mktos2s/internal/cli"
	"github.com/mktos2s/mktos2s/internal/cluster"
	"github.com/mktos2s/mktos2s/internal/config"
	"github.com/mktos2s/mktos2s/internal/emulator"
)

// ClusterStack is the production-shaped stack of `devstack stack` (make
// stack): the Temporal cluster on PostgreSQL, the emulator in this process,
// and the product's processes as a deployment runs them: two workers, the
// codec endpoint (starter codec-server), the consent callback (starter
// serve) and the standalone Temporal UI server.
type ClusterStack struct {
	Cluster  *cluster.Cluster
	Emulator *emulator.Server
	Seed     *emulator.Seed
	// Env is what every product process gets: MKTOS2S_* over ConfigFile.
	Env        []string
	ConfigFile string
	Workers    []*Proc
	Codec      *Proc
	Callback   *Proc
	UI         *Proc
	UIURL      string
	CodecURL   string
	// MetricsURLs are the workers' /metrics.
	MetricsURLs []string
	CallbackURL string

	bin, dir                string
	workerEnv               [][]string
	codecAddr, callbackAddr string
	// ownEmulator is false when the emulator came in ClusterOptions.Emulator:
	// Stop leaves it running.
	ownEmulator bool
}

// ClusterOptions configure StartCluster.
type ClusterOptions struct {
	Dir string // data and logs; reused by the next start
	Bin string // worker, starter, server, sql, temporal, ui/server
	// Repo is the module root (config/, deploy/).
	Repo      string
	SchemaDir string
	// UI starts the standalone UI server when its binary exists.
	UI     bool
	Seed   *emulator.Seed
	Faults *emulator.Faults
	// SecretIssued is told every client secret the emulator issues.
	SecretIssued func(keyID, secret string)
	// Emulator, when set, is the Microsoft the stack talks to instead of one
	// it starts: it lives outside the stack (Microsoft does not restart when
	// a customer's stack does), Stop and Halt leave it running, and Seed,
	// Faults and SecretIssued are ignored (make test-cluster).
	Emulator *emulator.Server
	// FirstPort is where the server nodes' ports start (cluster.Options).
	FirstPort int
	// Env is added to every product process's environment after the
	// stack's own MKTOS2S_* (later entries win), e.g. other codec keys.
	Env []string
	Log io.Writer
}

// StartCluster starts everything of ClusterStack.
func StartCluster(ctx context.Context, o ClusterOptions) (st *ClusterStack, err error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Seed == nil {
		o.Seed = emulator.DefaultSeed()
	}
	st = &ClusterStack{Seed: o.Seed, bin: o.Bin, dir: o.Dir, Emulator: o.Emulator, ownEmulator: o.Emulator == nil}
	defer func() {
		if err != nil {
			st.Stop()
		}
	}()
	st.Cluster, err = cluster.Start(ctx, cluster.Options{
		Dir: o.Dir, Server: filepath.Join(o.Bin, "server"), SQLTool: filepath.Join(o.Bin, "sql"), CLI: filepath.Join(o.Bin, "temporal"),
		SchemaDir:                o.SchemaDir,
		DynamicConfig:            filepath.Join(o.Repo, "deploy", "dynamicconfig", "mktos2s.yaml"),
		RegisterSearchAttributes: filepath.Join(o.Repo, "deploy", "register-search-attributes.sh"),
		FirstPort:                o.FirstPort,
		Log:                      o.Log,
	})
	if err != nil {
		return st, err
	}
	if st.ownEmulator {
		emuLog, err := os.OpenFile(filepath.Join(o.Dir, "logs", "emulator.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return st, err
		}
		if st.Emulator, err = emulator.Start(context.WithoutCancel(ctx), emulator.Options{
			Addr: "127.0.0.1:0", DataDir: filepath.Join(o.Dir, "emulator"), Seed: o.Seed, SecretIssued: o.SecretIssued,
			Logger: slog.New(slog.NewJSONHandler(emuLog, &slog.HandlerOptions{Level: slog.LevelInfo})),
		}); err != nil {
			return st, err
		}
		if o.Faults != nil {
			st.Emulator.SetFaults(*o.Faults)
		}
	}
	ports := make([]int, 6)
	for i := range ports {
		if ports[i], err = cluster.FreePort(); err != nil {
			return st, err
		}
	}
	codecAddr, callbackAddr, uiPort := "127.0.0.1:"+strconv.Itoa(ports[0]), "127.0.0.1:"+strconv.Itoa(ports[1]), ports[2]
	st.CodecURL = "http://" + codecAddr
	st.CallbackURL = "http://" + callbackAddr + "/consent/callback"
	st.UIURL = "http://127.0.0.1:" + strconv.Itoa(uiPort)
	st.ConfigFile = filepath.Join(o.Repo, "config", "mktos2s.emulator.yaml")
	p := o.Seed.Tenants[0].Provisioner
	set := map[string]string{
		"temporal.address":                   st.Cluster.Frontend(),
		"microsoft.authorityHost":            st.Emulator.URL(),
		"microsoft.graphBaseURL":             st.Emulator.URL() + "/v1.0",
		"microsoft.caFile":                   st.Emulator.CAFile(),
		"microsoft.provisioner.clientId":     p.ClientID,
		"microsoft.provisioner.clientSecret": p.Secret,
		"consent.redirectURI":                st.CallbackURL,
		"consent.callbackListen":             callbackAddr,
		"consent.recheckInterval":            "5s",
		"codecServer.listen":                 codecAddr,
		"codecServer.corsOrigin":             st.UIURL,
		"log.format":                         "json",
		"worker.stopTimeout":                 "5s",
	}
	st.Env = append(envOf(set), o.Env...)
	for i := 0; i < 2; i++ {
		addr := "127.0.0.1:" + strconv.Itoa(ports[3+i])
		env := append(envOf(map[string]string{"worker.metricsListen": addr}), st.Env...)
		st.workerEnv = append(st.workerEnv, env)
		st.MetricsURLs = append(st.MetricsURLs, "http://"+addr+"/metrics")
		w := &Proc{Name: fmt.Sprintf("worker-%d", i+1), Bin: filepath.Join(o.Bin, "worker"), Args: []string{"--config", st.ConfigFile},
			Env: env, Log: filepath.Join(o.Dir, "logs", fmt.Sprintf("worker-%d.log", i+1))}
		if err := w.Start(); err != nil {
			return st, err
		}
		st.Workers = append(st.Workers, w)
	}
	starter := filepath.Join(o.Bin, "starter")
	codecConfig, codecEnv, err := forCodecEndpoint(st.ConfigFile, filepath.Join(o.Dir, "codec-server.yaml"), st.Env)
	if err != nil {
		return st, err
	}
	st.Codec = &Proc{Name: "codec-server", Bin: starter, Args: []string{"--config", codecConfig, "codec-server"}, Env: codecEnv, Log: filepath.Join(o.Dir, "logs", "codec-server.log")}
	st.Callback = &Proc{Name: "consent-callback", Bin: starter, Args: []string{"--config", st.ConfigFile, "serve"}, Env: st.Env, Log: filepath.Join(o.Dir, "logs", "consent-callback.log")}
	for _, pr := range []*Proc{st.Codec, st.Callback} {
		if err := pr.Start(); err != nil {
			return st, err
		}
	}
	if ui := filepath.Join(o.Bin, "ui", "server"); o.UI {
		if _, err := os.Stat(ui); err != nil {
			return st, fmt.Errorf("the Temporal UI server is not built (%s): make stack builds it; or run with --no-ui", ui)
		}
		cfg, err := config.Load(config.Options{File: st.ConfigFile})
		if err != nil {
			return st, err
		}
		uiDir := filepath.Join(o.Dir, "ui")
		if err := os.MkdirAll(filepath.Join(uiDir, "config"), 0o700); err != nil {
			return st, err
		}
		// The codec token rides in the endpoint path, as in docker-compose (the UI has no OIDC login here).
		uiCfg := fmt.Sprintf("temporalGrpcAddress: %s\nport: %d\nenableUi: true\ndefaultNamespace: default\ncors:\n  allowOrigins:\n    - %s\ncodec:\n  endpoint: %s/auth/%s\n  passAccessToken: false\n",
			st.Cluster.Frontend(), uiPort, st.UIURL, st.CodecURL, cfg.CodecServer.Token)
		if err := os.WriteFile(filepath.Join(uiDir, "config", "development.yaml"), []byte(uiCfg), 0o600); err != nil {
			return st, err
		}
		st.UI = &Proc{Name: "temporal-ui", Bin: ui, Args: []string{"--root", uiDir, "--config", "config", "--env", "development", "start"},
			Log: filepath.Join(o.Dir, "logs", "temporal-ui.log")}
		if err := st.UI.Start(); err != nil {
			return st, err
		}
	}
	st.codecAddr, st.callbackAddr = codecAddr, callbackAddr
	return st, st.waitServing(ctx)
}

func (st *ClusterStack) waitServing(ctx context.Context) error {
	for _, addr := range []string{st.codecAddr, st.callbackAddr} {
		if err := waitListening(ctx, addr, 30*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// RestartWorker starts worker i again with its environment.
func (st *ClusterStack) RestartWorker(i int) error { return st.Workers[i].Start() }

// processes are the product's processes, the UI first: the order they stop in.
func (st *ClusterStack) processes() []*Proc {
	var out []*Proc
	for _, p := range append([]*Proc{st.UI, st.Callback, st.Codec}, st.Workers...) {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// Halt stops everything of the stack as a host shutdown would (the
// product's processes with SIGTERM, both server nodes, PostgreSQL) but an
// external emulator; Resume starts it all again on the same ports and data.
func (st *ClusterStack) Halt() {
	for _, p := range st.processes() {
		p.Stop(10 * time.Second)
	}
	if st.Cluster != nil {
		st.Cluster.Stop()
	}
}

// Resume starts what Halt stopped, on the same ports, and waits until the
// frontends, the codec endpoint and the consent callback serve.
func (st *ClusterStack) Resume(ctx context.Context) error {
	if err := st.Cluster.Resume(ctx); err != nil {
		return err
	}
	ps := st.processes()
	slices.Reverse(ps) // workers first, as StartCluster
	for _, p := range ps {
		if err := p.Start(); err != nil {
			return err
		}
	}
	return st.waitServing(ctx)
}

// Stop stops the product's processes, the emulator (unless it came from
// outside) and the cluster.
func (st *ClusterStack) Stop() {
	for _, p := range st.processes() {
		p.Stop(10 * time.Second)
	}
	if st.Emulator != nil && st.ownEmulator {
		_ = st.Emulator.Close()
	}
	if st.Cluster != nil {
		st.Cluster.Stop()
	}
}

// forCodecEndpoint writes the config file for the codec endpoint: file
// without any secret but the codec keys and the endpoint's own token. The
// Temporal UI talks to it, so it must not hold the custody keys (`starter
// codec-server` refuses to start with them), and it has no use for the
// consent callback key, the provisioner's credential or the webhook URL;
// env loses the same keys.
func forCodecEndpoint(file, out string, env []string) (string, []string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", nil, err
	}
	doc := map[string]any{}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return "", nil, fmt.Errorf("%s: %w", file, err)
	}
	deletePath(doc, []string{"custody"})
	drop := map[string]bool{}
	for _, k := range config.Keys() {
		if k.Secret && k.Name != "codec.keys" && k.Name != "codecServer.token" {
			deletePath(doc, strings.Split(k.Name, "."))
			drop[k.Env()] = true
		}
	}
	if b, err = yaml.Marshal(doc); err != nil {
		return "", nil, err
	}
	if err := os.WriteFile(out, b, 0o600); err != nil {
		return "", nil, err
	}
	var kept []string
	for _, e := range env {
		name, _, _ := strings.Cut(e, "=")
		if !drop[name] && !strings.HasPrefix(name, "MKTOS2S_CUSTODY_") {
			kept = append(kept, e)
		}
	}
	return out, kept, nil
}

// deletePath removes doc's entry at path (a config key split at its dots),
// matching each name case-insensitively as viper does.
func deletePath(doc map[string]any, path []string) {
	for k, v := range doc {
		if !strings.EqualFold(k, path[0]) {
			continue
		}
		if len(path) == 1 {
			delete(doc, k)
		} else if sub, ok := v.(map[string]any); ok {
			deletePath(sub, path[1:])
		}
	}
}

func envOf(set map[string]string) []string {
	byName := map[string]string{}
	for _, k := range config.Keys() {
		byName[k.Name] = k.Env()
	}
	var env []string
	for k, v := range set {
		env = append(env, byName[k]+"="+v)
	}
	return env
}

func waitListening(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("nothing listens on %s after %s", addr, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Proc is one child process with its log file.
type Proc struct {
	Name, Bin string
	Args, Env []string
	Log       string
	cmd       *exec.Cmd
	done      chan struct{}
}

// Start starts the process (again).
func (p *Proc) Start() error {
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); f.Close(); close(done) }(p.done)
	return nil
}

// Pid is the process ID, 0 when not running.
func (p *Proc) Pid() int {
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill SIGKILLs the process.
func (p *Proc) Kill() error {
	if p.cmd == nil {
		return fmt.Errorf("%s is not running", p.Name)
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd = nil
	return nil
}

// Stop sends SIGTERM and SIGKILL after timeout.
func (p *Proc) Stop(timeout time.Duration) {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
	p.cmd = nil
}

func stackCmd(x cli.App) *cobra.Command {
	var o ClusterOptions
	noUI := false
	cmd := &cobra.Command{
		Annotations: map[string]string{cli.AnnotWritesCA: "true"},
		Use:         "stack",
		Short:       "Run the production-shaped stack: PostgreSQL, a two-node Temporal cluster, two workers, codec endpoint, consent callback, UI, emulator",
		Args:        cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.UI = !noUI
			o.Log = cmd.OutOrStdout()
			for _, p := range []*string{&o.Dir, &o.Bin, &o.Repo} {
				abs, err := filepath.Abs(*p)
				if err != nil {
					return err
				}
				*p = abs
			}
			st, err := StartCluster(cmd.Context(), o)
			if err != nil {
				return err
			}
			defer st.Stop()
			w := cmd.OutOrStdout()
			fmt.Fprintln(w, "mktos2s production-shaped stack:")
			fmt.Fprintf(w, "  Temporal frontends  %s (namespace default, task queue mktos2s-onboarding)\n", strings.Join(st.Cluster.Frontends(), ", "))
			if st.UI != nil {
				fmt.Fprintf(w, "  Temporal UI         %s (standalone UI server 2.42.1)\n", st.UIURL)
			}
			fmt.Fprintf(w, "  codec endpoint      %s (starter codec-server)\n", st.CodecURL)
			fmt.Fprintf(w, "  consent callback    %s (starter serve)\n", st.CallbackURL)
			for i, u := range st.MetricsURLs {
				fmt.Fprintf(w, "  worker %d            pid %d, metrics %s\n", i+1, st.Workers[i].Pid(), u)
			}
			fmt.Fprintf(w, "  emulator            %s (CA %s)\n", st.Emulator.URL(), st.Emulator.CAFile())
			for _, og := range st.Seed.Orgs {
				fmt.Fprintf(w, "  seeded org          tenant %s, org URL %s\n", og.TenantID, st.Emulator.OrgURL(og.Host))
			}
			fmt.Fprintf(w, "  logs                %s\n", filepath.Join(o.Dir, "logs"))
			fmt.Fprintf(w, "Operator commands: %s/starter --config %s with\n", o.Bin, st.ConfigFile)
			for _, e := range st.Env {
				if strings.HasPrefix(e, "MKTOS2S_TEMPORAL_ADDRESS=") || strings.HasPrefix(e, "MKTOS2S_MICROSOFT_") || strings.HasPrefix(e, "MKTOS2S_CODECSERVER_CORSORIGIN") {
					if !strings.Contains(e, "CLIENTSECRET") {
						fmt.Fprintf(w, "  export %s\n", e)
					}
				}
			}
			fmt.Fprintln(w, "Press Ctrl-C to stop everything; `make stack` again resumes on the same data.")
			<-cmd.Context().Done()
			fmt.Fprintln(w, "Stopping...")
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Dir, "dir", ".data/stack", "data directory (PostgreSQL, node configs, logs)")
	fl.StringVar(&o.Bin, "bin", "bin", "directory of worker, starter, server, sql, temporal and ui/server")
	fl.StringVar(&o.Repo, "repo", ".", "the repository root (config/, deploy/)")
	fl.StringVar(&o.SchemaDir, "schema-dir", "", "the Temporal server module's schema/postgresql/v12")
	fl.BoolVar(&noUI, "no-ui", false, "do not start the Temporal UI server")
	_ = x
	return cmd
}
