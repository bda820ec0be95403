// Package metrics is what the worker shows an operations team: the Temporal
// SDK's own worker and client metrics (through the SDK's OpenTelemetry
// contrib handler, exported to Prometheus), the product's metrics
// (onboardings, consent waits, Microsoft calls, throttling, rotations), and a
// readiness endpoint, all on one loopback listener (worker.metricsListen).
package metrics

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"

	"github.com/mktos2s/mktos2s/internal/msapi"
)

// Names of the product's metric families, as scraped. The ones recorded
// through the SDK's handler (workflow outcomes, rotation cycles) get
// Prometheus' _total suffix from the exporter, like the SDK's own counters.
const (
	OnboardingsStarted     = "mktos2s_onboardings_started_total"
	OnboardingsCompleted   = "mktos2s_onboardings_completed_total"
	OnboardingsCompensated = "mktos2s_onboardings_compensated_total"
	WaitingConsent         = "mktos2s_onboardings_waiting_consent"
	WaitingConsentOver7d   = "mktos2s_onboardings_waiting_consent_over_7d"
	MicrosoftCalls         = "mktos2s_microsoft_calls_total"
	MicrosoftThrottled     = "mktos2s_microsoft_throttled_total"
	RetryAfterSeconds      = "mktos2s_microsoft_retry_after_seconds_total"
	RotationCycles         = "mktos2s_rotation_cycles_total"
	RotationsFailed        = "mktos2s_rotations_failed_total"
)

// Counter names as the SDK's handler is given them (the exporter adds _total).
const (
	sdkOnboardingsStarted     = "mktos2s_onboardings_started"
	sdkOnboardingsCompleted   = "mktos2s_onboardings_completed"
	sdkOnboardingsCompensated = "mktos2s_onboardings_compensated"
	sdkRotationCycles         = "mktos2s_rotation_cycles"
	sdkRotationsFailed        = "mktos2s_rotations_failed"
)

// secondsBuckets suit the SDK's latencies (poll, schedule-to-start,
// execution), not OpenTelemetry's default millisecond-sized boundaries.
var secondsBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

// Metrics is one worker process's registry.
type Metrics struct {
	reg      *prometheus.Registry
	provider *sdkmetric.MeterProvider
	sdk      client.MetricsHandler

	calls      *prometheus.CounterVec
	throttled  *prometheus.CounterVec
	retryAfter *prometheus.CounterVec
}

// New builds the registry: Go runtime and process collectors, the SDK's
// metrics through OpenTelemetry, and the product's.
func New() (*Metrics, error) {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(m.reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, fmt.Errorf("metrics: prometheus exporter: %w", err)
	}
	m.provider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithView(sdkmetric.NewView(
		sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram, Unit: "s"},
		sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: secondsBuckets}},
	)))
	m.sdk = temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter:                m.provider.Meter("temporal-sdk-go"),
		UseMonotonicCounters: true,
		// A metric that cannot be recorded must not take the worker down.
		OnError: func(error) {},
	})

	labels := []string{"service", "operation"}
	m.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MicrosoftCalls, Help: "HTTP calls to Microsoft (Entra token, Graph, Dataverse) by operation and status class (2xx, 4xx, 5xx, error = no response).",
	}, append(labels, "status_class"))
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MicrosoftThrottled, Help: "Microsoft answers that throttled the call (429, or 503 with Retry-After).",
	}, labels)
	m.retryAfter = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: RetryAfterSeconds, Help: "Seconds of Retry-After that throttled answers asked for (the activity waits that long before its retry).",
	}, labels)
	m.reg.MustRegister(m.calls, m.throttled, m.retryAfter)
	return m, nil
}

// SDKHandler is the client.Options.MetricsHandler for the worker's client.
func (m *Metrics) SDKHandler() client.MetricsHandler { return m.sdk }

// Registry is where every family is registered (for tests and extra collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveCall implements msapi.Observer.
func (m *Metrics) ObserveCall(c msapi.Call) {
	m.calls.WithLabelValues(c.Service, c.Op, statusClass(c.Status)).Inc()
	if c.Throttled {
		m.throttled.WithLabelValues(c.Service, c.Op).Inc()
		m.retryAfter.WithLabelValues(c.Service, c.Op).Add(c.RetryAfter.Seconds())
	}
}

func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "error"
	}
	return strconv.Itoa(status/100) + "xx"
}

// CountWaiting counts the running onboardings waiting for consent, all of
// them and those started before the given time.
type CountWaiting func(ctx context.Context, startedBefore time.Time) (all, before int64, err error)

// WatchWaiting exports the consent-wait gauges, counted by count when
// Prometheus scrapes (at most every 10 s): the count is the namespace's,
// from Temporal's visibility store, the same on every worker.
func (m *Metrics) WatchWaiting(count CountWaiting) {
	m.reg.MustRegister(&waitingCollector{count: count, now: time.Now})
}

// Handler serves /metrics (Prometheus text) and /readyz (ready() nil: 200).
func (m *Metrics) Handler(ready func(r *http.Request) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready(r); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// Close flushes nothing (Prometheus pulls) but releases the meter provider.
func (m *Metrics) Close() { _ = m.provider.Shutdown(context.Background()) }
