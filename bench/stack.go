package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/types/known/durationpb"
	"gopkg.in/yaml.v3"

	"github.com/mktos2s/mktos2s/internal/codec"
	"github.com/mktos2s/mktos2s/internal/config"
	"github.com/mktos2s/mktos2s/internal/ctxtime"
	"github.com/mktos2s/mktos2s/internal/devserver"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/workerapp"
	"github.com/mktos2s/mktos2s/workflows"
)

// stack is everything one benchmark run measures: the dev server, the
// emulator, the product worker and the bare-chain worker, each its own
// process, plus the clients the benchmark drives them with.
type stack struct {
	out, logDir, runDir string
	self, workerBin     string
	starterBin          string
	codecKey            string
	custodyKey          string
	emuURL, caFile      string
	dev                 *devserver.Server // nil on an external stack
	address, namespace  string            // the Temporal frontend and namespace
	metricsURL          string            // the server's Prometheus endpoint; empty when unknown
	// serverPIDs are the processes measured as "server": the dev server,
	// or every Temporal server and PostgreSQL process of an external stack.
	serverPIDs  []int
	emu         *child
	emuPort     int
	worker      *child
	pprofAddr   string // the product worker's worker.pprofListen
	stickyCache int
	bare        *child

	product client.Client // encrypting client, as the starter builds it
	// dc decodes the product's payloads (the same codec key as product).
	dc    converter.DataConverter
	plain client.Client // no codec: the bare chain, visibility, describe
	// watch holds only the history long polls, on a connection of its own,
	// so that the start and signal calls of neither workload queue behind them.
	watch   client.Client
	consent consentClient
}

type stackOptions struct {
	out     string // bench/out
	modRoot string
	tenants int
	dbFile  string
	// serverConfig are more of the dev server's dynamic config values.
	serverConfig []string
	temporal     string // the Temporal CLI; empty = devserver.Locate
	// stickyCache is the product worker's worker.stickyCacheSize.
	stickyCache int
	// external: an already running Temporal (the production-shaped stack)
	// instead of a dev server; the processes named serverProcs are its server.
	external    bool
	address     string
	namespace   string
	serverProcs []string
	serverMatch string // with external: only processes whose command line (or parent's) contains it
}

func startStack(ctx context.Context, o stackOptions) (st *stack, err error) {
	st = &stack{out: o.out, logDir: filepath.Join(o.out, "logs"), runDir: filepath.Join(o.out, "run"), stickyCache: o.stickyCache}
	defer func() {
		if err != nil {
			st.stop()
		}
	}()
	for _, d := range []string{st.logDir, st.runDir, filepath.Join(o.out, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return st, err
		}
	}
	if st.self, err = os.Executable(); err != nil {
		return st, err
	}
	key, custodyKey := make([]byte, 32), make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return st, err
	}
	st.codecKey = base64.StdEncoding.EncodeToString(key)
	cdc, err := codec.New(map[string][]byte{"bench": key}, "bench")
	if err != nil {
		return st, err
	}
	st.dc = codec.NewDataConverter(cdc)
	// The custody key seals the client secret inside payloads; it must
	// differ from the codec key.
	if _, err := rand.Read(custodyKey); err != nil {
		return st, err
	}
	st.custodyKey = base64.StdEncoding.EncodeToString(custodyKey)

	progress("building ./worker and ./starter")
	st.workerBin = filepath.Join(o.out, "bin", "worker")
	st.starterBin = filepath.Join(o.out, "bin", "starter")
	for bin, pkg := range map[string]string{st.workerBin: "./worker", st.starterBin: "./starter"} {
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
		build.Dir = o.modRoot
		if b, err := build.CombinedOutput(); err != nil {
			return st, fmt.Errorf("bench: go build %s: %w: %s", pkg, err, b)
		}
	}
	if err := st.startEmulator(ctx, "emulator", 0, o.tenants); err != nil {
		return st, err
	}

	if o.external {
		st.address, st.namespace = o.address, o.namespace
		progress("using the Temporal at %s (namespace %s); measuring processes %v as its server", st.address, st.namespace, o.serverProcs)
		// Its own namespace: the stack's workers poll the same task queue in
		// theirs, with other keys and another emulator.
		if err := ensureNamespace(ctx, st.address, st.namespace); err != nil {
			return st, err
		}
		if st.serverPIDs, err = pidsByName(o.serverProcs, o.serverMatch); err != nil {
			return st, err
		}
	} else {
		progress("starting the Temporal dev server (%s)", storage(o.dbFile))
		serverLog, err := os.Create(filepath.Join(st.logDir, "temporal.log"))
		if err != nil {
			return st, err
		}
		metricsPort, err := freePort()
		if err != nil {
			return st, err
		}
		if st.dev, err = devserver.Start(ctx, devserver.Options{Binary: o.temporal, DBFile: o.dbFile, DynamicConfig: o.serverConfig, Output: serverLog, MetricsPort: metricsPort}); err != nil {
			return st, err
		}
		st.address, st.namespace, st.metricsURL = st.dev.Address, st.dev.Namespace, st.dev.MetricsURL
		_, devPort, _ := strings.Cut(st.address, ":")
		pid, err := childWithArgs("start-dev", devPort)
		if err != nil {
			return st, fmt.Errorf("bench: the dev server's process: %w", err)
		}
		st.serverPIDs = []int{pid}
	}

	cfgFile, err := st.writeConfig("client", "")
	if err != nil {
		return st, err
	}
	cfg, err := config.Load(config.Options{File: cfgFile})
	if err != nil {
		return st, err
	}
	cfg.Codec = config.Codec{Keys: map[string]string{"bench": st.codecKey}, ActiveKeyID: "bench"}
	if st.product, err = workerapp.Dial(ctx, cfg, workerapp.WithLogger(slog.New(slog.DiscardHandler))); err != nil {
		return st, err
	}
	for _, c := range []*client.Client{&st.plain, &st.watch} {
		if *c, err = client.DialContext(ctx, client.Options{HostPort: st.address, Namespace: st.namespace, Logger: quietLogger()}); err != nil {
			return st, err
		}
	}

	progress("starting the product worker and the bare-chain worker")
	if err := st.startWorker(ctx, "worker"); err != nil {
		return st, err
	}
	if st.bare, err = startChild(ctx, "bare-worker", st.logDir, st.runDir, st.self,
		[]string{"-role", "baseline-worker", "-address", st.address, "-namespace", st.namespace},
		baseEnv(st.runDir), readyLine); err != nil {
		return st, err
	}
	if err := waitPolling(ctx, st.plain, st.namespace, bareTaskQueue, st.bare); err != nil {
		return st, err
	}
	return st, nil
}

// startEmulator runs an emulator subprocess seeded with bench tenants
// from..from+n-1.
func (st *stack) startEmulator(ctx context.Context, name string, from, n int) error {
	progress("starting %s with %d bench tenants", name, n)
	port, err := freePort()
	if err != nil {
		return err
	}
	dataDir := filepath.Join(st.out, name)
	st.emuPort = port
	st.emuURL = "https://127.0.0.1:" + strconv.Itoa(port)
	st.caFile = filepath.Join(dataDir, "ca.pem")
	if st.emu, err = startChild(ctx, name, st.logDir, st.runDir, st.self,
		[]string{"-role", "emulator", "-addr", "127.0.0.1:" + strconv.Itoa(port), "-data", dataDir,
			"-from", strconv.Itoa(from), "-tenants", strconv.Itoa(n)},
		baseEnv(st.runDir), readyLine); err != nil {
		return err
	}
	st.consent.hc, err = noRedirectClient(st.caFile)
	return err
}

// startWorker runs the product worker against the current emulator and
// waits until it polls.
func (st *stack) startWorker(ctx context.Context, name string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	st.pprofAddr = "127.0.0.1:" + strconv.Itoa(port)
	cfgFile, err := st.writeConfig(name, st.pprofAddr)
	if err != nil {
		return err
	}
	// Secrets go to the worker in its environment only, never in a file.
	env := append(baseEnv(st.runDir),
		config.EnvPrefix+"_CODEC_KEYS=bench="+st.codecKey,
		config.EnvPrefix+"_CUSTODY_KEYS=bench="+st.custodyKey,
		config.EnvPrefix+"_MICROSOFT_PROVISIONER_CLIENTSECRET="+emulator.DefaultSeed().Tenants[0].Provisioner.Secret)
	if st.worker, err = startChild(ctx, name, st.logDir, st.runDir, st.workerBin, []string{"--config", cfgFile}, env, ""); err != nil {
		return err
	}
	return waitPolling(ctx, st.plain, st.namespace, workflows.TaskQueue, st.worker)
}

// switchEmulator replaces the emulator and the product worker with fresh
// ones for tenants from..from+n-1: a fresh emulator keeps the scale phase's
// 10,000 tenants out of the product phase's lookups, and a fresh worker
// starts the scale phase's memory from zero.
func (st *stack) switchEmulator(ctx context.Context, from, n int) error {
	st.worker.stop()
	st.worker = nil
	st.emu.stop()
	st.emu = nil
	if err := st.startEmulator(ctx, "emulator-scale", from, n); err != nil {
		return err
	}
	return st.startWorker(ctx, "worker-scale")
}

// baseEnv is a clean environment: no MKTOS2S_* of the caller and a HOME of
// its own, so no mktos2s.yaml but the benchmark's is found.
func baseEnv(home string) []string {
	return []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
}

// writeConfig writes the non-secret configuration of the product worker
// (and of the benchmark's client) for the current emulator; pprofListen
// empty = no profile endpoint.
func (st *stack) writeConfig(name, pprofListen string) (string, error) {
	p := emulator.DefaultSeed().Tenants[0].Provisioner
	emuURL, caFile := st.emuURL, st.caFile
	doc := map[string]any{
		"temporal": map[string]any{"address": st.address, "namespace": st.namespace},
		"codec":    map[string]any{"activeKeyId": "bench"},
		"microsoft": map[string]any{
			"authorityHost":      emuURL,
			"graphBaseURL":       emuURL + "/v1.0",
			"caFile":             caFile,
			"dialOverrides":      map[string]string{"*.localhost": "127.0.0.1"},
			"allowedOrgSuffixes": []string{".crm.localhost"},
			"provisioner":        map[string]any{"clientId": p.ClientID},
		},
		// Registered on every app and checked in the consent redirect; never visited.
		"consent": map[string]any{"redirectURI": "http://127.0.0.1:9/bench-consent-done", "recheckInterval": "10m"},
		"log":     map[string]any{"level": "warn", "format": "json"},
		"worker":  map[string]any{"stopTimeout": "5s", "stickyCacheSize": st.stickyCache, "pprofListen": pprofListen},
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return "", err
	}
	file := filepath.Join(st.runDir, name+".yaml")
	return file, os.WriteFile(file, b, 0o600)
}

// noRedirectClient trusts the emulator's CA (waiting for the file) and
// returns redirects instead of following them.
func noRedirectClient(caFile string) (*http.Client, error) {
	var pem []byte
	for range 100 {
		var err error
		if pem, err = os.ReadFile(caFile); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("bench: no CA certificate in %s", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{
		Transport:     tr,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// pids are the processes whose usage the report shows.
func (st *stack) sample() (map[string]procSample, error) {
	m := map[string]procSample{}
	var errs []error
	for name, pid := range map[string]int{
		"worker": st.worker.pid(), "bare-worker": st.bare.pid(),
		"emulator": st.emu.pid(), "driver": os.Getpid(),
	} {
		s, err := sampleProc(pid)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		m[name] = s
	}
	// The server may be several processes: their sum.
	var server procSample
	for _, pid := range st.serverPIDs {
		s, err := sampleProc(pid)
		if err != nil {
			errs = append(errs, fmt.Errorf("server pid %d: %w", pid, err))
		}
		server.CPU, server.RSS, server.HWM = server.CPU+s.CPU, server.RSS+s.RSS, server.HWM+s.HWM
	}
	m["server"] = server
	return m, errors.Join(errs...)
}

// resetPeaks starts a new VmHWM window for the measured processes; where the
// kernel refuses, the peak is the one since the process started.
func (st *stack) resetPeaks() {
	for _, pid := range append([]int{st.worker.pid(), st.bare.pid()}, st.serverPIDs...) {
		if err := resetPeak(pid); err != nil {
			progress("note: cannot reset the peak RSS of pid %d (%v); peaks count from process start", pid, err)
		}
	}
}

func (st *stack) stop() {
	for _, c := range []*child{st.worker, st.bare} {
		if c != nil {
			c.stop()
		}
	}
	st.worker, st.bare = nil, nil
	for _, c := range []client.Client{st.product, st.plain, st.watch} {
		if c != nil {
			c.Close()
		}
	}
	if st.dev != nil {
		if err := st.dev.Stop(); err != nil {
			progress("stop dev server: %v", err)
		}
	}
	if st.emu != nil {
		st.emu.stop()
	}
}

func storage(dbFile string) string {
	if dbFile == "" {
		return "in-memory SQLite"
	}
	return "SQLite file " + dbFile + " (WAL)"
}

// quietLogger keeps the SDK's warnings and drops its info chatter.
func quietLogger() tlog.Logger {
	return tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// ensureNamespace registers namespace on the Temporal at address, with the
// product's search attributes, unless it exists with them already, and
// waits until the frontend accepts it.
func ensureNamespace(ctx context.Context, address, namespace string) error {
	c, err := client.DialContext(ctx, client.Options{HostPort: address, Logger: quietLogger()})
	if err != nil {
		return fmt.Errorf("bench: dial %s: %w", address, err)
	}
	defer c.Close()
	svc := c.WorkflowService()
	if _, err := svc.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace}); err != nil {
		var nf *serviceerror.NamespaceNotFound
		if !errors.As(err, &nf) {
			return fmt.Errorf("bench: describe namespace %s: %w", namespace, err)
		}
		progress("registering namespace %s", namespace)
		if _, err := svc.RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace: namespace, WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
		}); err != nil {
			return fmt.Errorf("bench: register namespace %s: %w", namespace, err)
		}
	}
	attrs := map[string]enumspb.IndexedValueType{}
	for _, name := range devserver.SearchAttributes {
		attrs[name] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
	}
	// A new namespace reaches every frontend's cache within seconds.
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: attrs})
		var exists *serviceerror.AlreadyExists
		if errors.As(err, &exists) {
			break
		}
		if err == nil {
			// Each frontend maps the new attributes when it next refreshes
			// its namespace cache (every 10 s by default).
			progress("search attributes added to %s; waiting for the frontends' namespace caches", namespace)
			if err := ctxtime.Sleep(ctx, 15*time.Second); err != nil {
				return err
			}
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: search attributes of namespace %s: %w", namespace, err)
		}
		if err := ctxtime.Sleep(ctx, 2*time.Second); err != nil {
			return err
		}
	}
	for {
		resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
		if err == nil && len(resp.GetCustomAttributes()) >= len(attrs) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: search attributes of namespace %s not listed: %v", namespace, err)
		}
		if err := ctxtime.Sleep(ctx, 2*time.Second); err != nil {
			return err
		}
	}
}
