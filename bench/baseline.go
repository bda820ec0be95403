package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/mktos2s/mktos2s/workflows"
)

// The bare chain is what Temporal itself allows: the same number of
// activities as a happy-path Onboarding and one signal at the same point,
// with no search attributes, payload codec or I/O, and a query handler so
// that the driver can treat it as it treats an onboarding. It lives
// here, not in workflows/, because it is a yardstick and not a product.
const (
	bareTaskQueue    = "bench-bare-chain"
	bareWorkflowType = "BareChain"
	noopActivity     = "Noop"
)

// bareInput says how many activities run before and after the signal.
type bareInput struct {
	Before int `json:"before"`
	After  int `json:"after"`
}

// bareProgress is what the bare chain's query answers: the driver asks it
// once at the wait, as it asks an onboarding for its consent URL.
type bareProgress struct {
	Done    int  `json:"done"`
	Waiting bool `json:"waiting"`
}

func bareChain(ctx workflow.Context, in bareInput) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var p bareProgress
	if err := workflow.SetQueryHandler(ctx, workflows.QueryProgress, func() (bareProgress, error) { return p, nil }); err != nil {
		return err
	}
	for i := range in.Before {
		if err := workflow.ExecuteActivity(ctx, noopActivity, i).Get(ctx, nil); err != nil {
			return err
		}
		p.Done++
	}
	p.Waiting = true
	workflow.GetSignalChannel(ctx, workflows.SignalAdminConsent).Receive(ctx, nil)
	p.Waiting = false
	for i := range in.After {
		if err := workflow.ExecuteActivity(ctx, noopActivity, in.Before+i).Get(ctx, nil); err != nil {
			return err
		}
		p.Done++
	}
	return nil
}

func noop(context.Context, int) error { return nil }

// runBaselineWorkerRole runs a plain SDK worker (default options, like the
// product's worker.maxConcurrent* = 0) for the bare chain until SIGTERM.
func runBaselineWorkerRole(address, namespace string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := client.DialContext(ctx, client.Options{HostPort: address, Namespace: namespace, Logger: quietLogger()})
	if err != nil {
		return fmt.Errorf("bench: baseline worker: %w", err)
	}
	defer c.Close()
	w := worker.New(c, bareTaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(bareChain, workflow.RegisterOptions{Name: bareWorkflowType})
	w.RegisterActivityWithOptions(noop, activity.RegisterOptions{Name: noopActivity})
	if err := w.Start(); err != nil {
		return fmt.Errorf("bench: baseline worker: %w", err)
	}
	fmt.Println(readyLine)
	<-ctx.Done()
	w.Stop()
	return nil
}
