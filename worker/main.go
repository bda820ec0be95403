// Command worker runs the mktos2s onboarding worker: it polls the
// mktos2s-onboarding task queue and runs the Onboarding workflow and its
// activities until SIGINT or SIGTERM, then stops gracefully.
//
// Configuration comes from mktos2s.yaml (or --config), MKTOS2S_* variables
// and the flags below; see the README for every key.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/mktos2s/mktos2s/internal/buildinfo"
	"github.com/mktos2s/mktos2s/internal/config"
	"github.com/mktos2s/mktos2s/internal/workerapp"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := pflag.NewFlagSet("worker", pflag.ContinueOnError)
	file := fs.String("config", "", "config file (default: mktos2s.yaml in ., ./config or ~/.config/mktos2s)")
	fs.String("address", "", "Temporal frontend host:port (temporal.address)")
	fs.String("namespace", "", "Temporal namespace (temporal.namespace)")
	fs.String("log-level", "", "debug, info, warn or error (log.level)")
	fs.String("log-format", "", "json or text (log.format)")
	version := fs.Bool("version", false, "print the version, commit and Temporal SDK version, and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	if *version {
		fmt.Println(buildinfo.Read().String("worker"))
		return nil
	}
	cfg, err := config.Load(config.Options{File: *file, Flags: fs, FlagKeys: map[string]string{
		"address":    "temporal.address",
		"namespace":  "temporal.namespace",
		"log-level":  "log.level",
		"log-format": "log.format",
	}})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		// Let a second signal kill the process if the graceful stop hangs.
		stop()
	}()
	return workerapp.Run(ctx, cfg)
}
