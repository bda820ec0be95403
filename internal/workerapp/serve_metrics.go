package workerapp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/workflows"
)

// MetricsAddr is the address the metrics endpoint listens on, empty when off.
func (a *App) MetricsAddr() string {
	if a.metricsSrv == nil {
		return ""
	}
	return a.metricsSrv.Addr
}

// startMetrics serves /metrics and /readyz on worker.metricsListen.
func (a *App) startMetrics() error {
	ln, err := net.Listen("tcp", a.metricsListen)
	if err != nil {
		return fmt.Errorf("worker.metricsListen: %w", err)
	}
	a.metricsSrv = &http.Server{Addr: ln.Addr().String(), Handler: a.Metrics.Handler(a.ready), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := a.metricsSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.Logger.Error("metrics endpoint stopped", "err", err)
		}
	}()
	a.Logger.Info("metrics endpoint listening", "addr", a.metricsSrv.Addr)
	return nil
}

func (a *App) stopMetrics() {
	if a.metricsSrv != nil {
		_ = a.metricsSrv.Close()
	}
}

// ready is /readyz: the worker was started and not stopped, the frontend
// answers, and the server lists this worker among the task queue's pollers.
func (a *App) ready(r *http.Request) error {
	if !a.started.Load() {
		return errors.New("worker not started")
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if _, err := a.Client.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("Temporal frontend: %w", err)
	}
	resp, err := a.Client.DescribeTaskQueue(ctx, workflows.TaskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
	if err != nil {
		return fmt.Errorf("describe task queue %s: %w", workflows.TaskQueue, err)
	}
	for _, p := range resp.GetPollers() {
		if p.GetIdentity() == a.identity {
			return nil
		}
	}
	return fmt.Errorf("not yet polling %s (identity %s)", workflows.TaskQueue, a.identity)
}

// workerIdentity names this process in the server's poller list, which
// /readyz reads (the SDK's default, pid@host@queue, is not exported).
func workerIdentity() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%d@%s@%s", os.Getpid(), host, workflows.TaskQueue)
}

// countWaiting counts, in visibility, the running onboardings whose step is
// awaiting-admin-consent, and those of them started before a time.
func (a *App) countWaiting(ctx context.Context, startedBefore time.Time) (int64, int64, error) {
	base := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running' AND %s = '%s'",
		workflows.WorkflowType, workflows.SearchOnboardingStep.GetName(), workflows.StepAwaitingAdminConsent)
	count := func(q string) (int64, error) {
		resp, err := a.Client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: a.namespace, Query: q})
		return resp.GetCount(), err
	}
	all, err := count(base)
	if err != nil {
		a.Logger.Warn("count onboardings waiting for consent", "err", err)
		return 0, 0, err
	}
	old, err := count(base + " AND StartTime < '" + startedBefore.UTC().Format(time.RFC3339) + "'")
	if err != nil {
		a.Logger.Warn("count onboardings waiting for consent", "err", err)
		return 0, 0, err
	}
	return all, old, nil
}
