// Command starter is the operator's CLI of mktos2s: start, consent, status,
// cancel, list, credentials, rotate and offboard for onboardings, and the
// codec endpoint (codec-server) and consent callback (serve) it serves. The
// local stack (dev, demo, emulator) is ./devstack's. Run `starter --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mktos2s/mktos2s/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
