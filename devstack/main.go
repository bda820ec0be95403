// Command devstack runs mktos2s locally: `devstack demo` (make demo),
// `devstack dev` and `devstack emulator`, with the Temporal dev server and the
// Microsoft emulator, plus every starter command. It is for development,
// demos and tests only; production runs worker and starter, which link
// neither the emulator nor the dev server.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mktos2s/mktos2s/internal/devstack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := devstack.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
