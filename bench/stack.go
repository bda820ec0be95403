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

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"gopkg.in/yaml.v3"

	"github.com/mktos2s/mktos2s/internal/config"
	"github.com/mktos2s/mktos2s/internal/devserver"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/workerapp"
	"github.com/mktos2s/mktos2s/workflows"
)

// stack is everything one benchmark run measures: the dev server, the
// emulator, the product worker and the bare-chain worker, each its own
// process, plus the clients the benchmark drives them with.
type stack struct {
	dev       *devserver.Server
	serverPID int
	emu       *child
	emuPort   int
	worker    *child
	bare      *child

	product client.Client // encrypting client, as the starter builds it
	plain   client.Client // no codec: the bare chain, visibility, describe
	// watch holds only the history long polls, on a connection of its own,
	// so that the start and signal calls of neither workload queue behind them.
	watch   client.Client
	consent consentClient
}

type stackOptions struct {
	out      string // bench/out
	modRoot  string
	tenants  int
	dbFile   string
	temporal string // the Temporal CLI; empty = devserver.Locate
}

func startStack(ctx context.Context, o stackOptions) (st *stack, err error) {
	st = &stack{}
	defer func() {
		if err != nil {
			st.stop()
		}
	}()
	logDir := filepath.Join(o.out, "logs")
	dataDir := filepath.Join(o.out, "emulator")
	runDir := filepath.Join(o.out, "run")
	for _, d := range []string{logDir, dataDir, runDir, filepath.Join(o.out, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return st, err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return st, err
	}

	progress("building ./worker")
	workerBin := filepath.Join(o.out, "bin", "worker")
	build := exec.CommandContext(ctx, "go", "build", "-o", workerBin, "./worker")
	build.Dir = o.modRoot
	if b, err := build.CombinedOutput(); err != nil {
		return st, fmt.Errorf("bench: go build ./worker: %w: %s", err, b)
	}

	progress("starting the emulator with %d bench tenants", o.tenants)
	port, err := freePort()
	if err != nil {
		return st, err
	}
	st.emuPort = port
	emuAddr := "127.0.0.1:" + strconv.Itoa(port)
	if st.emu, err = startChild(ctx, "emulator", logDir, runDir, self,
		[]string{"-role", "emulator", "-addr", emuAddr, "-data", dataDir, "-tenants", strconv.Itoa(o.tenants)},
		baseEnv(runDir), readyLine); err != nil {
		return st, err
	}
	emuURL := "https://" + emuAddr
	caFile := filepath.Join(dataDir, "ca.pem")
	if st.consent.hc, err = noRedirectClient(caFile); err != nil {
		return st, err
	}

	progress("starting the Temporal dev server (%s)", storage(o.dbFile))
	serverLog, err := os.Create(filepath.Join(logDir, "temporal.log"))
	if err != nil {
		return st, err
	}
	if st.dev, err = devserver.Start(ctx, devserver.Options{Binary: o.temporal, DBFile: o.dbFile, Output: serverLog}); err != nil {
		return st, err
	}
	_, devPort, _ := strings.Cut(st.dev.Address, ":")
	if st.serverPID, err = childWithArgs("start-dev", devPort); err != nil {
		return st, fmt.Errorf("bench: the dev server's process: %w", err)
	}

	cfgFile, codecKey, err := writeConfig(runDir, st.dev.Address, emuURL, caFile)
	if err != nil {
		return st, err
	}
	provisioner := emulator.DefaultSeed().Tenants[0].Provisioner
	cfg, err := config.Load(config.Options{File: cfgFile})
	if err != nil {
		return st, err
	}
	cfg.Codec = config.Codec{Keys: map[string]string{"bench": codecKey}, ActiveKeyID: "bench"}
	if st.product, err = workerapp.Dial(ctx, cfg, workerapp.WithLogger(slog.New(slog.DiscardHandler))); err != nil {
		return st, err
	}
	for _, c := range []*client.Client{&st.plain, &st.watch} {
		if *c, err = client.DialContext(ctx, client.Options{HostPort: st.dev.Address, Namespace: st.dev.Namespace, Logger: quietLogger()}); err != nil {
			return st, err
		}
	}

	progress("starting the product worker and the bare-chain worker")
	// Secrets go to the worker in its environment only, never in a file.
	workerEnv := append(baseEnv(runDir),
		config.EnvPrefix+"_CODEC_KEYS=bench="+codecKey,
		config.EnvPrefix+"_MICROSOFT_PROVISIONER_CLIENTSECRET="+provisioner.Secret)
	if st.worker, err = startChild(ctx, "worker", logDir, runDir, workerBin, []string{"--config", cfgFile}, workerEnv, ""); err != nil {
		return st, err
	}
	if err := waitPolling(ctx, st.plain, st.dev.Namespace, workflows.TaskQueue, st.worker); err != nil {
		return st, err
	}
	if st.bare, err = startChild(ctx, "bare-worker", logDir, runDir, self,
		[]string{"-role", "baseline-worker", "-address", st.dev.Address, "-namespace", st.dev.Namespace},
		baseEnv(runDir), readyLine); err != nil {
		return st, err
	}
	if err := waitPolling(ctx, st.plain, st.dev.Namespace, bareTaskQueue, st.bare); err != nil {
		return st, err
	}
	return st, nil
}

// baseEnv is a clean environment: no MKTOS2S_* of the caller and a HOME of
// its own, so no mktos2s.yaml but the benchmark's is found.
func baseEnv(home string) []string {
	return []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
}

// writeConfig writes the non-secret configuration shared by the product
// worker and the benchmark's client, and returns a fresh codec key.
func writeConfig(dir, temporalAddr, emuURL, caFile string) (file, codecKey string, err error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", "", err
	}
	p := emulator.DefaultSeed().Tenants[0].Provisioner
	doc := map[string]any{
		"temporal": map[string]any{"address": temporalAddr, "namespace": "default"},
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
		"worker":  map[string]any{"stopTimeout": "5s"},
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return "", "", err
	}
	file = filepath.Join(dir, "mktos2s.yaml")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return "", "", err
	}
	return file, base64.StdEncoding.EncodeToString(key), nil
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
		"worker": st.worker.pid(), "bare-worker": st.bare.pid(), "server": st.serverPID,
		"emulator": st.emu.pid(), "driver": os.Getpid(),
	} {
		s, err := sampleProc(pid)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		m[name] = s
	}
	return m, errors.Join(errs...)
}

// resetPeaks starts a new VmHWM window for the measured processes; where the
// kernel refuses, the peak is the one since the process started.
func (st *stack) resetPeaks() {
	for _, pid := range []int{st.worker.pid(), st.bare.pid(), st.serverPID} {
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
