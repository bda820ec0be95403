// Package testenv starts what the integration tests of mktos2s run against:
// the real Temporal dev server (bin/temporal), the local emulator of Entra ID,
// Graph and Dataverse, and the real worker, in this process (workerapp) or as
// a subprocess (the worker binary). Everything listens on loopback only.
//
// Test packages start one Env in TestMain and share it; tests keep apart by
// using their own tenants (AddTenant) or their own Temporal namespace.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/types/known/durationpb"
	"gopkg.in/yaml.v3"

	"github.com/mktos2s/mktos2s/internal/config"
	"github.com/mktos2s/mktos2s/internal/devserver"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/testenv/testcodec"
	"github.com/mktos2s/mktos2s/internal/workerapp"
)

// ConsentRedirectURI is registered on every app the tests onboard. It is on
// loopback and never followed: nothing may leave the machine, and the
// emulator's redirect to it is asserted, not visited.
const ConsentRedirectURI = "http://127.0.0.1:9/mktos2s-consent-done"

// quiet keeps the SDK's default logger of plain clients off the test output.
func quiet() tlog.Logger { return tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)) }

// Options configure Start.
type Options struct {
	// Seed is the emulator's world; nil = emulator.DefaultSeed().
	Seed *emulator.Seed
	// Logger receives what the emulator and the dev server wrapper log; nil = discarded.
	Logger *slog.Logger
	// ServerOutput receives the dev server's stdout and stderr; nil = discarded.
	ServerOutput io.Writer
}

// Env is a running dev server and emulator.
type Env struct {
	Dev *devserver.Server
	Emu *emulator.Server
	// Seed is the world the emulator started from.
	Seed *emulator.Seed

	dir     string
	stopEmu context.CancelFunc
	closed  bool
}

// Start launches the emulator and the dev server. Close stops both.
func Start(ctx context.Context, o Options) (*Env, error) {
	if o.Seed == nil {
		o.Seed = emulator.DefaultSeed()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if len(o.Seed.Tenants) == 0 || o.Seed.Tenants[0].Provisioner.ClientID == "" {
		return nil, errors.New("testenv: the seed's first tenant needs a provisioner")
	}
	dir, err := os.MkdirTemp("", "mktos2s-testenv-")
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	e := &Env{Seed: o.Seed, dir: dir}
	// The emulator lives until Close, not until the caller's start-up context ends.
	emuCtx, stop := context.WithCancel(context.Background())
	e.stopEmu = stop
	e.Emu, err = emulator.Start(emuCtx, emulator.Options{
		Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "emulator"), Seed: o.Seed, Logger: o.Logger,
	})
	if err != nil {
		_ = e.Close()
		return nil, fmt.Errorf("testenv: %w", err)
	}
	e.Dev, err = devserver.Start(ctx, devserver.Options{Logger: o.Logger, Output: o.ServerOutput})
	if err != nil {
		_ = e.Close()
		return nil, fmt.Errorf("testenv: %w", err)
	}
	return e, nil
}

// Close stops the dev server and the emulator and removes their files.
func (e *Env) Close() error {
	if e.closed {
		return nil
	}
	e.closed = true
	var errs []error
	if e.Dev != nil {
		errs = append(errs, e.Dev.Stop())
	}
	if e.Emu != nil {
		errs = append(errs, e.Emu.Close())
	}
	e.stopEmu()
	errs = append(errs, os.RemoveAll(e.dir))
	return errors.Join(errs...)
}

// Dir is a scratch directory removed by Close.
func (e *Env) Dir() string { return e.dir }

// Settings are the configuration keys (as in mktos2s.yaml) that point the
// product at this environment, for the given Temporal namespace. Payloads are
// encrypted with the public test key of package testcodec.
func (e *Env) Settings(namespace string) map[string]string {
	p := e.Seed.Tenants[0].Provisioner
	return map[string]string{
		"temporal.address":                   e.Dev.Address,
		"temporal.namespace":                 namespace,
		"codec.keys":                         testcodec.KeyID + "=" + testcodec.KeyBase64,
		"custody.keys":                       testcodec.CustodyKeyID + "=" + testcodec.CustodyKeyBase64,
		"codec.activeKeyId":                  testcodec.KeyID,
		"microsoft.authorityHost":            e.Emu.URL(),
		"microsoft.graphBaseURL":             e.Emu.URL() + "/v1.0",
		"microsoft.caFile":                   e.Emu.CAFile(),
		"microsoft.dialOverrides":            "*.localhost=127.0.0.1",
		"microsoft.allowedOrgSuffixes":       ".crm.localhost",
		"microsoft.provisioner.clientId":     p.ClientID,
		"microsoft.provisioner.clientSecret": p.Secret,
		"consent.redirectURI":                ConsentRedirectURI,
		"consent.recheckInterval":            "10m",
		"log.level":                          "warn",
		"log.format":                         "text",
		"worker.stopTimeout":                 "5s",
	}
}

// Environ is Settings as MKTOS2S_* variables, for a worker subprocess.
func (e *Env) Environ(namespace string) []string {
	byName := map[string]string{}
	for _, k := range config.Keys() {
		byName[k.Name] = k.Env()
	}
	var env []string
	for k, v := range e.Settings(namespace) {
		env = append(env, byName[k]+"="+v)
	}
	slices.Sort(env)
	return env
}

// Config loads Settings through the product's own loader (from a YAML file,
// so the process environment of the test plays no part) and validates it.
func (e *Env) Config(namespace string) (config.Config, error) {
	doc := map[string]any{}
	for k, v := range e.Settings(namespace) {
		m := doc
		parts := strings.Split(k, ".")
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = v
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return config.Config{}, fmt.Errorf("testenv: %w", err)
	}
	f, err := os.CreateTemp(e.dir, "mktos2s-*.yaml")
	if err != nil {
		return config.Config{}, fmt.Errorf("testenv: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return config.Config{}, fmt.Errorf("testenv: %w", err)
	}
	if err := f.Close(); err != nil {
		return config.Config{}, fmt.Errorf("testenv: %w", err)
	}
	cfg, err := config.Load(config.Options{File: f.Name()})
	if err != nil {
		return config.Config{}, err
	}
	if err := cfg.ValidateWorker(); err != nil {
		return config.Config{}, err
	}
	return cfg, nil
}

// Dial connects a client with the product's encrypting converters (the
// starter's client).
func (e *Env) Dial(ctx context.Context, namespace string) (client.Client, error) {
	cfg, err := e.Config(namespace)
	if err != nil {
		return nil, err
	}
	return workerapp.Dial(ctx, cfg, workerapp.WithLogger(slog.New(slog.DiscardHandler)))
}

// DialRaw connects a client WITHOUT the codec: it sees payloads exactly as
// Temporal stores them.
func (e *Env) DialRaw(ctx context.Context, namespace string) (client.Client, error) {
	return client.DialContext(ctx, client.Options{HostPort: e.Dev.Address, Namespace: namespace, Logger: quiet()})
}

// NewWorker builds the real worker (workerapp) in this process; the caller
// starts and stops it.
func (e *Env) NewWorker(ctx context.Context, namespace string, logger *slog.Logger) (*workerapp.App, error) {
	cfg, err := e.Config(namespace)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return workerapp.New(ctx, cfg, workerapp.WithLogger(logger))
}

// AddNamespace registers a namespace with the product's search attributes and
// waits until it accepts requests. A separate namespace keeps a test's
// workflows away from the workers of other tests.
func (e *Env) AddNamespace(ctx context.Context, name string) error {
	nc, err := client.NewNamespaceClient(client.Options{HostPort: e.Dev.Address, Logger: quiet()})
	if err != nil {
		return fmt.Errorf("testenv: namespace client: %w", err)
	}
	defer nc.Close()
	err = nc.Register(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace:                        name,
		WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
	})
	var exists *serviceerror.NamespaceAlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("testenv: register namespace %s: %w", name, err)
	}
	attrs := map[string]enumspb.IndexedValueType{}
	for _, a := range devserver.SearchAttributes {
		attrs[a] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
	}
	ops := e.Dev.Client().OperatorService()
	// A new namespace reaches every service of the server only after its
	// registry refreshes; until then calls fail with NamespaceNotFound.
	return Poll(ctx, 30*time.Second, func() error {
		if _, err := ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
			Namespace: name, SearchAttributes: attrs,
		}); err != nil {
			var already *serviceerror.AlreadyExists
			if !errors.As(err, &already) {
				return err
			}
		}
		resp, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: name})
		if err != nil {
			return err
		}
		for a := range attrs {
			if resp.GetCustomAttributes()[a] != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
				return fmt.Errorf("search attribute %s not registered in %s yet", a, name)
			}
		}
		_, err = e.Dev.Client().WorkflowService().ListOpenWorkflowExecutions(ctx,
			&workflowservice.ListOpenWorkflowExecutionsRequest{Namespace: name, MaximumPageSize: 1})
		return err
	})
}

// Poll calls f every 200 ms until it succeeds, ctx ends or timeout passes,
// and returns f's last error.
func Poll(ctx context.Context, timeout time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := f()
		if err == nil || isStop(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testenv: gave up after %s: %w", timeout, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
