// Package devstack is the local stack for development, demos and tests:
// the Temporal dev server, the Microsoft emulator, the codec endpoint, the
// consent callback and a worker in one process, and the commands that run it
// (dev, demo, emulator). Its binary is ./devstack; the production starter
// never links this package (starter/deps_test.go).
package devstack

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/cli"
	"github.com/mktos2s/mktos2s/internal/codec"
	"github.com/mktos2s/mktos2s/internal/config"
	"github.com/mktos2s/mktos2s/internal/devserver"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/metrics"
	"github.com/mktos2s/mktos2s/internal/workerapp"
)

// StackOptions configure the local stack of `dev`, `demo` and the tests.
type StackOptions struct {
	// TemporalPort of the dev server frontend; 0 = a free port.
	TemporalPort int
	// UI turns the Temporal Web UI on; UIPort 0 = a free port.
	UI     bool
	UIPort int
	// DBFile keeps Temporal's state in SQLite (WAL mode); empty = in memory.
	DBFile string
	// EmulatorAddr is where the emulator listens, e.g. 127.0.0.1:8443 or 127.0.0.1:0.
	EmulatorAddr string
	// DataDir holds the emulator's CA.
	DataDir string
	// Seed of the emulator; nil = emulator.DefaultSeed().
	Seed *emulator.Seed
	// CodecListen is the codec endpoint's host:port, e.g. 127.0.0.1:0.
	CodecListen string
	// CallbackListen is the consent callback's host:port; empty = a free
	// loopback port.
	CallbackListen string
	// MetricsListen is the worker's worker.metricsListen; empty = off.
	MetricsListen string
	// ServerOutput receives the Temporal server's own output; nil = discarded.
	ServerOutput io.Writer
	// Logger is used by the worker, the emulator and the stack.
	Logger *slog.Logger
	// WrapCodec, when set, wraps the codec endpoint's handler (the browser
	// test takes the endpoint down and swaps in a codec that holds the
	// custody key, to prove its checks fail then). cfg is the stack's.
	WrapCodec func(cfg config.Config, h http.Handler) http.Handler
}

// Stack is a running dev server, emulator, codec endpoint, consent callback
// and worker, with the configuration that reaches all of them.
type Stack struct {
	Config      config.Config
	Temporal    *devserver.Server
	Emulator    *emulator.Server
	Seed        *emulator.Seed
	CodecURL    string
	CallbackURL string
	// GeneratedCodecKey is true when base had no codec key and the stack
	// made an ephemeral one (payloads are unreadable after it stops).
	GeneratedCodecKey bool
	// GeneratedCustodyKey is true when base had no custody key: secrets are
	// then sealed with a key only this process holds, and cannot be revealed
	// from another one.
	GeneratedCustodyKey bool
	// GeneratedCallbackKey is true when base had no consent.callbackKey and
	// the stack made one for this process (its consent links die with it).
	GeneratedCallbackKey bool

	client  client.Client
	worker  *workerapp.App
	metrics *metrics.Metrics
	servers []*http.Server
}

// StartStack starts everything `devstack dev` runs. base supplies the codec
// keys, codec token, logging and consent settings; everything Microsoft is
// pointed at the emulator and everything Temporal at the dev server.
func StartStack(ctx context.Context, base config.Config, o StackOptions) (st *Stack, err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Seed == nil {
		o.Seed = emulator.DefaultSeed()
	}
	if len(o.Seed.Tenants) == 0 {
		return nil, errors.New("stack: the emulator seed has no tenant")
	}
	if err := checkPorts(o); err != nil {
		return nil, err
	}
	st = &Stack{Seed: o.Seed}
	defer func() {
		if err != nil {
			st.Stop()
		}
	}()

	if st.Emulator, err = emulator.Start(ctx, emulator.Options{
		Addr: o.EmulatorAddr, DataDir: o.DataDir, Seed: o.Seed, Logger: o.Logger.With("component", "emulator"),
	}); err != nil {
		return st, err
	}

	codecLn, err := net.Listen("tcp", o.CodecListen)
	if err != nil {
		return st, fmt.Errorf("stack: codec endpoint: %w", err)
	}
	st.CodecURL = "http://" + codecLn.Addr().String()
	if o.CallbackListen == "" {
		o.CallbackListen = "127.0.0.1:0"
	}
	callbackLn, err := net.Listen("tcp", o.CallbackListen)
	if err != nil {
		_ = codecLn.Close()
		return st, fmt.Errorf("stack: consent callback: %w", err)
	}
	st.CallbackURL = "http://" + callbackLn.Addr().String() + "/consent/callback"

	if base.CodecServer.Token == "" {
		base.CodecServer.Token = randomToken(24)
	}
	// The UI sends no Authorization header without its own OIDC login, so
	// its endpoint carries the token in the path (codec.PathTokenPrefix).
	uiCodecEndpoint := st.CodecURL + codec.PathTokenPrefix + url.PathEscape(base.CodecServer.Token)
	if st.Temporal, err = devserver.Start(ctx, devserver.Options{
		Port: o.TemporalPort, DBFile: o.DBFile, UI: o.UI, UIPort: o.UIPort, CodecEndpoint: uiCodecEndpoint,
		Output: o.ServerOutput, Logger: o.Logger.With("component", "devserver"),
	}); err != nil {
		_, _ = codecLn.Close(), callbackLn.Close()
		return st, err
	}

	cfg, err := stackConfig(base, st)
	if err != nil {
		_, _ = codecLn.Close(), callbackLn.Close()
		return st, err
	}
	st.Config = cfg

	codecHandler, err := cli.CodecHandler(cfg)
	if err != nil {
		_, _ = codecLn.Close(), callbackLn.Close()
		return st, err
	}
	if o.WrapCodec != nil {
		codecHandler = o.WrapCodec(cfg, codecHandler)
	}
	st.serve(codecLn, codecHandler)

	if o.MetricsListen != "" {
		cfg.Worker.MetricsListen = o.MetricsListen
		if st.metrics, err = metrics.New(); err != nil {
			_ = callbackLn.Close()
			return st, err
		}
	}
	if st.client, err = workerapp.Dial(ctx, cfg, workerapp.WithLogger(o.Logger), workerapp.WithMetrics(st.metrics)); err != nil {
		_ = callbackLn.Close()
		return st, err
	}
	// The worker below signs consent links with the same cfg.Consent.
	callback, err := cli.CallbackHandler(cfg.Consent, st.client, o.Logger.With("component", "consent-callback"))
	if err == nil {
		callback, err = cli.WithSessionCallback(cfg, st.client, o.Logger.With("component", "admin-session-callback"), callback)
	}
	if err != nil {
		_ = callbackLn.Close()
		return st, err
	}
	st.serve(callbackLn, callback)

	if st.worker, err = workerapp.New(ctx, cfg, workerapp.WithLogger(o.Logger.With("component", "worker")),
		workerapp.WithClient(st.client), workerapp.WithMetrics(st.metrics)); err != nil {
		return st, err
	}
	if err = st.worker.Start(); err != nil {
		st.worker = nil
		return st, err
	}
	return st, nil
}

// stackConfig is base pointed at the stack's servers. Keys base lacks are
// generated for this process (st records which).
func stackConfig(base config.Config, st *Stack) (config.Config, error) {
	cfg := base
	cfg.Temporal = config.Temporal{Address: st.Temporal.Address, Namespace: st.Temporal.Namespace}
	m := &cfg.Microsoft
	m.AuthorityHost = st.Emulator.URL()
	m.GraphBaseURL = st.Emulator.URL() + "/v1.0"
	m.PowerPlatformBaseURL = st.Emulator.URL()
	m.CAFile = st.Emulator.CAFile()
	m.DialOverrides = map[string]string{"*.localhost": "127.0.0.1"}
	m.AllowedOrgSuffixes = []string{".crm.localhost"}
	// Every seeded tenant trusts the same multi-tenant provisioner app, as
	// in production; the first one's credential is the worker's.
	p := st.Seed.Tenants[0].Provisioner
	m.Provisioner = config.Provisioner{ClientID: p.ClientID, ClientSecret: p.Secret}
	if p.Secret == "" {
		return cfg, errors.New("stack: the seed's provisioner has no secret; the dev stack signs in with a secret")
	}
	cfg.Consent.RedirectURI = st.CallbackURL
	if u, err := url.Parse(st.CallbackURL); err == nil {
		cfg.Consent.CallbackListen = u.Host
	}
	cfg.CodecServer.Listen = strings.TrimPrefix(st.CodecURL, "http://")
	if st.Temporal.UIURL != "" {
		cfg.CodecServer.CORSOrigin = st.Temporal.UIURL
	}
	if len(cfg.Codec.Keys) == 0 {
		cfg.Codec = config.Codec{Keys: map[string]string{"ephemeral": randomToken(32)}, ActiveKeyID: "ephemeral"}
		st.GeneratedCodecKey = true
	}
	if len(cfg.Custody.Keys) == 0 {
		cfg.Custody = config.Custody{Keys: map[string]string{"ephemeral": randomToken(32)}, ActiveKeyID: "ephemeral"}
		st.GeneratedCustodyKey = true
	}
	if cfg.Consent.CallbackKey == "" {
		cfg.Consent.CallbackKey = randomToken(config.MinCallbackKeyBytes)
		st.GeneratedCallbackKey = true
	}
	return cfg, cfg.ValidateWorker()
}

// randomToken is n random bytes in URL-safe base64, so it can sit in a path.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// MetricsURL is the worker's /metrics, empty when off.
func (st *Stack) MetricsURL() string {
	if st.worker == nil || st.worker.MetricsAddr() == "" {
		return ""
	}
	return "http://" + st.worker.MetricsAddr() + "/metrics"
}

func (st *Stack) serve(ln net.Listener, h http.Handler) {
	srv := cli.NewServer(h, cli.DefaultServerTimeouts())
	st.servers = append(st.servers, srv)
	go func() { _ = srv.Serve(ln) }()
}

// Stop stops the worker, the servers, the dev server and the emulator, in
// that order, so nothing is cut off mid-activity by its dependencies.
func (st *Stack) Stop() {
	if st.worker != nil {
		st.worker.Stop()
	}
	if st.client != nil {
		st.client.Close()
	}
	for _, s := range st.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.Shutdown(ctx)
		cancel()
	}
	if st.Temporal != nil {
		_ = st.Temporal.Stop()
	}
	if st.Emulator != nil {
		_ = st.Emulator.Close()
	}
}

// uiPortOf is the port of the configured UI origin (codecServer.corsOrigin),
// so the dev UI is served exactly where the codec endpoint allows it.
func uiPortOf(origin string) int {
	u, err := url.Parse(origin)
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(u.Port())
	return p
}

// dataDirFor is the directory of microsoft.caFile, where the emulator writes
// its CA, so a second terminal using the same config trusts it.
func dataDirFor(cfg config.Config) string {
	if cfg.Microsoft.CAFile != "" {
		return filepath.Dir(cfg.Microsoft.CAFile)
	}
	return filepath.Join(".data", "emulator")
}
