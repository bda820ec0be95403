// Package devserver runs the real Temporal server locally: the Temporal CLI's
// `server start-dev` (SQLite, optional Web UI), built into bin/temporal by
// `make temporal`. Tests and internal/devstack (`devstack dev`, the demo) use it; it never
// downloads anything.
package devserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"gopkg.in/yaml.v3"
)

// EnvBinary overrides where the Temporal CLI binary is found.
const EnvBinary = "MKTOS2S_TEMPORAL_BIN"

// SearchAttributes are the custom Keyword attributes the onboarding workflow
// sets (DESIGN.md, fixed names).
var SearchAttributes = []string{"TenantId", "OrgHost", "OnboardingStep"}

// Options configure a dev server.
type Options struct {
	// Binary is the Temporal CLI; empty = Locate().
	Binary string
	// Namespace is created at start; empty = "default".
	Namespace string
	// Port of the gRPC frontend on 127.0.0.1; 0 = a free port.
	Port int
	// DBFile persists state in SQLite (WAL mode); empty = in memory.
	DBFile string
	// UI enables the Web UI; UIPort 0 = a free port.
	UI     bool
	UIPort int
	// CodecEndpoint is the codec server URL the UI calls to show decoded payloads.
	CodecEndpoint string
	// LogLevel of the server (debug, info, warn, error, never); empty = warn.
	LogLevel string
	// MetricsPort serves the server's Prometheus metrics on 127.0.0.1
	// (MetricsURL); 0 = a free port the caller is not told.
	MetricsPort int
	// DynamicConfig are more of the server's dynamic config values,
	// "key=value" each (e.g. "system.enableActivityEagerExecution=true"),
	// on top of the one this package always sets.
	DynamicConfig []string
	// Output receives the server's stdout and stderr; nil = discarded.
	Output io.Writer
	// Logger logs what this package does; nil = discarded.
	Logger *slog.Logger
}

// Server is a running dev server.
type Server struct {
	// Address is the gRPC frontend, host:port.
	Address string
	// UIURL is the Web UI, empty when the UI is off.
	UIURL     string
	Namespace string
	// MetricsURL is the Prometheus endpoint when Options.MetricsPort was set.
	MetricsURL string

	binary  string
	logger  *slog.Logger
	dev     *testsuite.DevServer
	envFile string // holds the UI's codec endpoint; removed by Stop
}

// Start launches the dev server and returns once its frontend answers and the
// search attributes are registered.
func Start(ctx context.Context, o Options) (*Server, error) {
	bin := o.Binary
	if bin == "" {
		var err error
		if bin, err = Locate(); err != nil {
			return nil, err
		}
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Output == nil {
		o.Output = io.Discard
	}
	if o.LogLevel == "" {
		o.LogLevel = "warn"
	}
	port := o.Port
	if port == 0 {
		var err error
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	s := &Server{Address: addr, Namespace: o.Namespace, binary: bin, logger: o.Logger}
	if o.MetricsPort > 0 {
		s.MetricsURL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(o.MetricsPort)) + "/metrics"
	}
	dopts := testsuite.DevServerOptions{
		ExistingPath: bin,
		ClientOptions: &client.Options{
			HostPort:  addr,
			Namespace: o.Namespace,
			Logger:    tlog.NewStructuredLogger(o.Logger),
		},
		DBFilename: o.DBFile,
		EnableUI:   o.UI,
		LogLevel:   o.LogLevel,
		Stdout:     o.Output,
		Stderr:     o.Output,
	}
	args, envFile, err := extraArgs(o)
	if err != nil {
		return nil, err
	}
	dopts.ExtraArgs, s.envFile = args, envFile
	// Only the keys matter: the SDK turns each into --search-attribute Name=Keyword.
	updates := make([]temporal.SearchAttributeUpdate, 0, len(SearchAttributes))
	for _, name := range SearchAttributes {
		updates = append(updates, temporal.NewSearchAttributeKeyKeyword(name).ValueSet(""))
	}
	dopts.SearchAttributes = temporal.NewSearchAttributes(updates...)
	if o.UI {
		uiPort := o.UIPort
		if uiPort == 0 {
			var err error
			if uiPort, err = freePort(); err != nil {
				return nil, err
			}
		}
		dopts.UIPort = strconv.Itoa(uiPort)
		s.UIURL = "http://" + net.JoinHostPort("127.0.0.1", dopts.UIPort)
	}

	o.Logger.Info("starting Temporal dev server", "binary", bin, "address", addr, "ui", s.UIURL, "db", o.DBFile)
	dev, err := testsuite.StartDevServer(ctx, dopts)
	if err != nil {
		s.removeEnvFile()
		return nil, fmt.Errorf("devserver: start %s: %w", bin, err)
	}
	s.dev = dev
	if err := s.EnsureSearchAttributes(ctx); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// uiEnvName is the Temporal CLI environment whose settings file carries the
// UI's codec endpoint.
const uiEnvName = "mktos2s-ui"

// extraArgs are the CLI's arguments. The UI's codec endpoint carries the
// codec token, so it goes in a 0600 settings file of the CLI (--env-file,
// read for any flag of the command), never in an argument that `ps` and the
// SDK's start log show to every user of the machine.
func extraArgs(o Options) (args []string, envFile string, err error) {
	args = []string{
		// One history shard polls its transfer queue 20 times a second by
		// default, which adds ≈50 ms to every activity dispatch (DESIGN.md).
		"--dynamic-config-value", "history.transferProcessorMaxPollRPS=1000",
	}
	for _, kv := range o.DynamicConfig {
		if k, v, ok := strings.Cut(kv, "="); !ok || k == "" || v == "" {
			return nil, "", fmt.Errorf("devserver: dynamic config value %q: want key=value", kv)
		}
		args = append(args, "--dynamic-config-value", kv)
	}
	if o.DBFile != "" {
		// Without WAL every commit waits for the disk: ≈1.4 instead of ≈11 workflows/s.
		args = append(args, "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal")
	}
	if o.UI && o.CodecEndpoint != "" {
		b, err := yaml.Marshal(map[string]any{"env": map[string]map[string]string{uiEnvName: {"ui-codec-endpoint": o.CodecEndpoint}}})
		if err != nil {
			return nil, "", fmt.Errorf("devserver: codec endpoint settings: %w", err)
		}
		f, err := os.CreateTemp("", "mktos2s-temporal-ui-*.yaml") // 0600
		if err != nil {
			return nil, "", fmt.Errorf("devserver: codec endpoint settings: %w", err)
		}
		_, werr := f.Write(b)
		if err := errors.Join(werr, f.Close()); err != nil {
			_ = os.Remove(f.Name())
			return nil, "", fmt.Errorf("devserver: codec endpoint settings: %w", err)
		}
		envFile = f.Name()
		args = append(args, "--env-file", envFile, "--env", uiEnvName)
	}
	if o.MetricsPort > 0 {
		args = append(args, "--metrics-port", strconv.Itoa(o.MetricsPort))
	}
	return args, envFile, nil
}

func (s *Server) removeEnvFile() {
	if s.envFile != "" {
		_ = os.Remove(s.envFile)
	}
}

// Client is a plain client of the server (no payload codec): enough for
// operator calls and for tests that build their own.
func (s *Server) Client() client.Client { return s.dev.Client() }

// Stop interrupts the server and waits for it to exit.
func (s *Server) Stop() error {
	defer s.removeEnvFile()
	s.dev.Client().Close()
	if err := s.dev.Stop(); err != nil {
		var exit *exec.ExitError
		// The CLI exits non-zero when interrupted; that is the expected end.
		if !errors.As(err, &exit) {
			return fmt.Errorf("devserver: stop: %w", err)
		}
	}
	return nil
}

// EnsureSearchAttributes registers any of SearchAttributes the namespace
// lacks. `--search-attribute` only takes effect when the namespace is created,
// so a server reopening an older database file can miss them.
func (s *Server) EnsureSearchAttributes(ctx context.Context) error {
	missing, err := s.missingSearchAttributes(ctx)
	if err != nil || len(missing) == 0 {
		return err
	}
	s.logger.Info("registering missing search attributes", "names", missing, "namespace", s.Namespace)
	args := []string{"operator", "search-attribute", "create",
		"--address", s.Address, "--namespace", s.Namespace, "--type", "Keyword"}
	for _, name := range missing {
		args = append(args, "--name", name)
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, s.binary, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("devserver: register search attributes %v: %w: %s", missing, err, bytes.TrimSpace(out.Bytes()))
	}
	if missing, err = s.missingSearchAttributes(ctx); err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("devserver: search attributes %v still missing after registration", missing)
	}
	return nil
}

func (s *Server) missingSearchAttributes(ctx context.Context) ([]string, error) {
	resp, err := s.dev.Client().OperatorService().ListSearchAttributes(ctx,
		&operatorservice.ListSearchAttributesRequest{Namespace: s.Namespace})
	if err != nil {
		return nil, fmt.Errorf("devserver: list search attributes: %w", err)
	}
	var missing []string
	for _, name := range SearchAttributes {
		if resp.GetCustomAttributes()[name] != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
			missing = append(missing, name)
		}
	}
	return missing, nil
}

// Locate finds the Temporal CLI: $MKTOS2S_TEMPORAL_BIN, else bin/temporal in
// the module root (the nearest parent directory holding go.mod), which is
// where `make temporal` installs it.
func Locate() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if err := executable(p); err != nil {
			return "", fmt.Errorf("devserver: %s=%s: %w", EnvBinary, p, err)
		}
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("devserver: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "bin", "temporal")
			if err := executable(p); err != nil {
				return "", fmt.Errorf("devserver: Temporal CLI not found at %s (run `make temporal` or set %s): %w", p, EnvBinary, err)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("devserver: no go.mod above the working directory; set %s to the Temporal CLI", EnvBinary)
		}
		dir = parent
	}
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// freePort asks the kernel for an unused loopback port. Another process may
// take it before the server binds it; on these single-user machines that race
// is rare and surfaces as a start error.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("devserver: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
