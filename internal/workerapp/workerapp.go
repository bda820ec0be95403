// Package workerapp assembles the mktos2s worker from a config.Config: the
// logger, the Microsoft clients, the activities, a Temporal client whose
// payloads are encrypted, and the worker on the onboarding task queue.
// The starter uses Dial so that every client of the product shares the same
// converters.
package workerapp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/mktos2s/mktos2s/activities"
	"github.com/mktos2s/mktos2s/internal/codec"
	"github.com/mktos2s/mktos2s/internal/config"
	"github.com/mktos2s/mktos2s/internal/consent"
	"github.com/mktos2s/mktos2s/internal/custody"
	"github.com/mktos2s/mktos2s/internal/dataverse"
	"github.com/mktos2s/mktos2s/internal/inert"
	"github.com/mktos2s/mktos2s/internal/metrics"
	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/internal/msauth"
	"github.com/mktos2s/mktos2s/workflows"
)

// Option adjusts how New, Run and Dial build things.
type Option func(*settings)

type settings struct {
	logger  *slog.Logger
	client  client.Client
	metrics *metrics.Metrics
}

// WithMetrics records the client's SDK metrics (Dial) and the worker's
// (New) in m, instead of a registry New builds when worker.metricsListen
// is set. A client passed WithClient must have been dialled with the same m.
func WithMetrics(m *metrics.Metrics) Option { return func(s *settings) { s.metrics = m } }

// WithLogger replaces the logger built from log.level and log.format.
func WithLogger(l *slog.Logger) Option { return func(s *settings) { s.logger = l } }

// WithClient makes New use an existing Temporal client (which must have been
// built by Dial) instead of dialling; the App then does not close it.
func WithClient(c client.Client) Option { return func(s *settings) { s.client = c } }

func apply(cfg config.Config, opts []Option) (settings, error) {
	var s settings
	for _, o := range opts {
		o(&s)
	}
	if s.logger == nil {
		l, err := NewLogger(cfg.Log, os.Stderr)
		if err != nil {
			return s, err
		}
		s.logger = l
	}
	return s, nil
}

// NewLogger builds the product's slog logger from log.level and log.format.
func NewLogger(l config.Log, w io.Writer) (*slog.Logger, error) {
	level, err := l.SlogLevel()
	if err != nil {
		return nil, err
	}
	ho := &slog.HandlerOptions{Level: level, ReplaceAttr: inertAttr}
	switch l.Format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	default:
		return nil, fmt.Errorf("log.format %q: want json or text", l.Format)
	}
}

// inertAttr strips control and bidi characters from every logged text (the
// message, string values, errors): log lines quote Microsoft's messages and
// signal texts, and encoding/json leaves a bidi override or a C1 control in a
// JSON line raw for whoever reads it in a terminal.
func inertAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(inert.Text(a.Value.String()))
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			a.Value = slog.StringValue(inert.Text(err.Error()))
		}
	}
	return a
}

// NewCodec builds the payload codec from codec.keys and codec.activeKeyId.
// It refuses to work without a key rather than let payloads go out in plain text.
func NewCodec(c config.Codec) (*codec.Codec, error) {
	if len(c.Keys) == 0 {
		return nil, config.ErrNoCodecKey
	}
	raw, err := c.RawKeys()
	if err != nil {
		return nil, err
	}
	return codec.New(raw, c.ActiveKeyID)
}

// NewCustody builds the key ring that seals client secrets from custody.keys
// and custody.activeKeyId. Only the worker and the operator's reveal build
// it; the codec endpoint never does.
func NewCustody(c config.Custody) (*custody.Keyring, error) {
	if len(c.Keys) == 0 {
		return nil, config.ErrNoCustodyKey
	}
	raw, err := c.RawKeys()
	if err != nil {
		return nil, err
	}
	return custody.New(raw, c.ActiveKeyID)
}

// ClientOptions are the Temporal client options for cfg: address, namespace,
// TLS or API key, the SDK logger, and the encrypting data and failure converters.
func ClientOptions(cfg config.Config, logger *slog.Logger) (client.Options, error) {
	cdc, err := NewCodec(cfg.Codec)
	if err != nil {
		return client.Options{}, err
	}
	o := client.Options{
		HostPort:  cfg.Temporal.Address,
		Namespace: cfg.Temporal.Namespace,
		Logger:    tlog.NewStructuredLogger(logger),
		// Every payload is AES-GCM ciphertext, which gzip cannot shrink: the SDK's default
		// compression only cost CPU on both ends (14% of the worker's in a bench profile).
		ConnectionOptions: client.ConnectionOptions{GrpcCompression: &client.GrpcCompressionNone{}},
	}
	t := cfg.Temporal
	if t.TLS.Enabled || t.APIKey != "" || t.TLS.CertFile != "" {
		tc, err := tlsConfig(t.TLS)
		if err != nil {
			return client.Options{}, err
		}
		o.ConnectionOptions.TLS = tc
	}
	if t.APIKey != "" {
		o.Credentials = client.NewAPIKeyStaticCredentials(t.APIKey)
	}
	return codec.ClientOptions(o, cdc), nil
}

func tlsConfig(t config.TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("temporal.tls.caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("temporal.tls.caFile %s: no PEM certificate found", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("temporal.tls.certFile/keyFile: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Dial connects a Temporal client for cfg with the product's converters.
func Dial(ctx context.Context, cfg config.Config, opts ...Option) (client.Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, err := apply(cfg, opts)
	if err != nil {
		return nil, err
	}
	co, err := ClientOptions(cfg, s.logger)
	if err != nil {
		return nil, err
	}
	if s.metrics != nil {
		co.MetricsHandler = s.metrics.SDKHandler()
	}
	c, err := client.DialContext(ctx, co)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s): %w", cfg.Temporal.Address, cfg.Temporal.Namespace, err)
	}
	return c, nil
}

// App is a worker ready to start.
type App struct {
	Client client.Client
	Worker worker.Worker
	Logger *slog.Logger

	ownsClient  bool
	pprofListen string
	pprof       *http.Server

	// Metrics is nil unless worker.metricsListen is set or WithMetrics given.
	Metrics       *metrics.Metrics
	metricsListen string
	metricsSrv    *http.Server
	namespace     string
	identity      string
	started       atomic.Bool
}

// New validates cfg for a worker and builds the App without starting it.
func New(ctx context.Context, cfg config.Config, opts ...Option) (*App, error) {
	if err := cfg.ValidateWorker(); err != nil {
		return nil, err
	}
	s, err := apply(cfg, opts)
	if err != nil {
		return nil, err
	}
	if s.metrics == nil && cfg.Worker.MetricsListen != "" {
		if s.metrics, err = metrics.New(); err != nil {
			return nil, err
		}
	}
	deps, err := activityDeps(cfg, s.metrics)
	if err != nil {
		return nil, err
	}

	app := &App{Client: s.client, Logger: s.logger, pprofListen: cfg.Worker.PprofListen,
		Metrics: s.metrics, metricsListen: cfg.Worker.MetricsListen, namespace: cfg.Temporal.Namespace}
	if app.Client == nil {
		if app.Client, err = Dial(ctx, cfg, WithLogger(s.logger), WithMetrics(s.metrics)); err != nil {
			return nil, err
		}
		app.ownsClient = true
	}
	if app.Metrics != nil {
		app.Metrics.WatchWaiting(app.countWaiting)
	}
	// The SDK's cache is per process and sized when its first worker is
	// created, so this must precede worker.New.
	worker.SetStickyWorkflowCacheSize(cfg.Worker.StickyCacheSize)
	app.identity = workerIdentity()
	app.Worker = worker.New(app.Client, workflows.TaskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize:     cfg.Worker.MaxConcurrentActivities,
		MaxConcurrentWorkflowTaskExecutionSize: cfg.Worker.MaxConcurrentWorkflowTasks,
		WorkerStopTimeout:                      cfg.Worker.StopTimeout,
		Interceptors:                           []interceptor.WorkerInterceptor{metrics.Interceptor()},
		Identity:                               app.identity,
	})
	workflows.Register(app.Worker)
	activities.Register(app.Worker, activities.New(deps))
	return app, nil
}

func activityDeps(cfg config.Config, mt *metrics.Metrics) (activities.Deps, error) {
	m := cfg.Microsoft
	hc, err := msapi.NewHTTPClient(msapi.HTTPOptions{CAFile: m.CAFile, DialOverrides: m.DialOverrides, Timeout: m.RequestTimeout})
	if err != nil {
		return activities.Deps{}, fmt.Errorf("microsoft HTTP client: %w", err)
	}
	if mt != nil {
		hc.Transport = msapi.Observed(hc.Transport, mt)
	}
	cred := msauth.Credential{ClientID: m.Provisioner.ClientID, Secret: m.Provisioner.ClientSecret}
	if m.Provisioner.CertificateFile != "" {
		if cred.CertificatePEM, err = os.ReadFile(m.Provisioner.CertificateFile); err != nil {
			return activities.Deps{}, fmt.Errorf("microsoft.provisioner.certificateFile: %w", err)
		}
	}
	signer, err := NewConsentSigner(cfg.Consent)
	if err != nil {
		return activities.Deps{}, err
	}
	ring, err := NewCustody(cfg.Custody)
	if err != nil {
		return activities.Deps{}, err
	}
	mc := cfg.Dataverse.MarketoConfig
	return activities.Deps{
		Custody:              ring,
		KeyVaultURL:          cfg.KeyVault.URL,
		KeyVaultTenantID:     cfg.KeyVault.TenantID,
		Auth:                 msauth.New(msauth.Options{AuthorityHost: m.AuthorityHost, HTTPClient: hc}),
		HTTP:                 hc,
		GraphBaseURL:         m.GraphBaseURL,
		PowerPlatformBaseURL: m.PowerPlatformBaseURL,
		AuthorityHost:        m.AuthorityHost,
		ConsentRedirectURI:   cfg.Consent.RedirectURI,
		ConsentSigner:        signer,
		Provisioner:          cred,
		ConfigNames: dataverse.MarketoConfigNames{
			Entity:      mc.Entity,
			EntitySet:   mc.EntitySet,
			IDColumn:    mc.IDColumn,
			NameColumn:  mc.NameColumn,
			DefaultName: mc.DefaultName,
			UserLookup:  mc.UserLookup,
		},
		AllowedOrgSuffixes: m.AllowedOrgSuffixes,
		SyncFilterSolution: cfg.Dataverse.SyncFilterSolution,
		Webhook:            webhook(cfg.Consent),
	}, nil
}

// webhook is the consent hand-off webhook, nil when none is configured.
// Its own client: the Microsoft one trusts the emulator's CA and dials
// overrides meant for Microsoft hosts only.
func webhook(c config.Consent) *activities.Webhook {
	if c.WebhookURL == "" {
		return nil
	}
	return &activities.Webhook{URL: c.WebhookURL, HTTP: &http.Client{Timeout: 10 * time.Second}}
}

// NewConsentSigner builds the signer of consent links from
// consent.callbackKey and consent.stateTTL; nil without error when no key
// is configured (consent links are then unsigned and no callback accepts
// them). The worker and the consent callback must build it from the same key.
func NewConsentSigner(c config.Consent) (*consent.Signer, error) {
	key, err := c.CallbackKeyBytes()
	if err != nil || key == nil {
		return nil, err
	}
	s, err := consent.NewSigner(key, c.StateTTL, nil)
	if err != nil {
		return nil, fmt.Errorf("consent.stateTTL: %w", err)
	}
	return s, nil
}

// Start starts polling, and the profile endpoint when worker.pprofListen is
// set; it returns once the worker is registered with Temporal.
func (a *App) Start() error {
	if a.pprofListen != "" {
		if err := a.startPprof(); err != nil {
			return err
		}
	}
	if a.metricsListen != "" && a.Metrics != nil {
		if err := a.startMetrics(); err != nil {
			a.stopPprof()
			return err
		}
	}
	if err := a.Worker.Start(); err != nil {
		a.stopPprof()
		a.stopMetrics()
		return fmt.Errorf("start worker on %s: %w", workflows.TaskQueue, err)
	}
	a.started.Store(true)
	a.Logger.Info("worker started", "taskQueue", workflows.TaskQueue)
	return nil
}

// PprofAddr is the address the profile endpoint listens on, empty when off.
func (a *App) PprofAddr() string {
	if a.pprof == nil {
		return ""
	}
	return a.pprof.Addr
}

// startPprof serves net/http/pprof on its own mux, so nothing else that
// registers on http.DefaultServeMux is exposed with it.
func (a *App) startPprof() error {
	ln, err := net.Listen("tcp", a.pprofListen)
	if err != nil {
		return fmt.Errorf("worker.pprofListen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	a.pprof = &http.Server{Addr: ln.Addr().String(), Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := a.pprof.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.Logger.Error("pprof endpoint stopped", "err", err)
		}
	}()
	a.Logger.Info("pprof endpoint listening", "addr", a.pprof.Addr)
	return nil
}

func (a *App) stopPprof() {
	if a.pprof != nil {
		_ = a.pprof.Close()
	}
}

// Stop stops polling, waits up to worker.stopTimeout for running activities,
// and closes the client if the App dialled it.
func (a *App) Stop() {
	a.started.Store(false)
	a.Worker.Stop()
	a.stopPprof()
	a.stopMetrics()
	if a.ownsClient {
		a.Client.Close()
	}
	a.Logger.Info("worker stopped")
}

// Run builds and starts a worker for cfg and stops it gracefully when ctx is done.
func Run(ctx context.Context, cfg config.Config, opts ...Option) error {
	app, err := New(ctx, cfg, opts...)
	if err != nil {
		return err
	}
	app.Logger.Info("configuration", "config", cfg)
	if err := app.Start(); err != nil {
		if app.ownsClient {
			app.Client.Close()
		}
		return err
	}
	<-ctx.Done()
	app.Logger.Info("shutting down", "cause", context.Cause(ctx))
	app.Stop()
	return nil
}
