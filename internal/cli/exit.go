package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/mktos2s/mktos2s/internal/lifecycle"
	"github.com/mktos2s/mktos2s/workflows"
)

// Exit codes of every starter command (README "Many tenants"). Scripts rely
// on them: never renumber one, only add.
const (
	ExitOK       = 0 // done: started, completed, verified, shown
	ExitError    = 1 // anything else: Temporal unreachable, an unexpected error
	ExitBadInput = 2 // a flag, argument, batch file or configuration value is wrong; nothing was changed
	ExitNotFound = 3 // no such onboarding, rotation or tenant (or it was offboarded)
	ExitFailed   = 4 // the onboarding or offboarding failed or was cancelled, or an undo failed
	ExitWaiting  = 5 // not done yet: still running, or waiting for admin consent or a confirmation
	ExitConflict = 6 // refused by the current state: already onboarded, already running, not running
)

// ExitCodes documents the codes for `starter help exit-codes` and the README.
var ExitCodes = []struct {
	Code    int
	Meaning string
}{
	{ExitOK, "success: started, completed, verified, shown"},
	{ExitError, "unexpected error (Temporal unreachable, internal error)"},
	{ExitBadInput, "bad input: a flag, argument, batch file row or configuration value; nothing was changed"},
	{ExitNotFound, "not found: no such onboarding, rotation or tenant, or it was offboarded"},
	{ExitFailed, "failed: the onboarding/offboarding failed or was cancelled, or an undo failed"},
	{ExitWaiting, "waiting: still running, waiting for admin consent or for a confirmation"},
	{ExitConflict, "refused: already onboarded, already running, or not in a state that allows it"},
}

// exitError carries the exit code of an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// coded gives err an exit code (nil stays nil).
func coded(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// ExitCode is the process exit code for err, the error a command returned.
func ExitCode(err error) int {
	var (
		ee      *exitError
		onb     *lifecycle.AlreadyOnboardedError
		running *lifecycle.AlreadyRunningError
		ve      *workflows.ValidationError
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, errNotFound):
		return ExitNotFound
	case errors.As(err, &onb), errors.As(err, &running):
		return ExitConflict
	case errors.As(err, &ve):
		return ExitBadInput
	}
	return ExitError
}

// Run executes the starter with args and returns its exit code. Errors met
// before a command ran (unknown command or flag, bad arguments, a
// configuration that does not load) are bad input.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, extra ...Extra) int {
	return RunNamed(ctx, "starter", nil, args, stdout, stderr, extra...)
}

// RunNamed is Run for another binary over the same commands (devstack):
// its name prefixes errors and adjust renames the root.
func RunNamed(ctx context.Context, name string, adjust func(*cobra.Command), args []string, stdout, stderr io.Writer, extra ...Extra) int {
	root, a := newRoot(extra...)
	if adjust != nil {
		adjust(root)
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	var ee *exitError
	if !a.started && !errors.As(err, &ee) {
		return ExitBadInput
	}
	return ExitCode(err)
}

func (a *app) exitCodesCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "exit-codes",
		Short:             "What each exit code of starter means",
		Args:              cobra.NoArgs,
		PersistentPreRunE: func(*cobra.Command, []string) error { a.started = true; return nil },
		Run: func(cmd *cobra.Command, _ []string) {
			for _, c := range ExitCodes {
				fmt.Fprintf(out(cmd), "%d  %s\n", c.Code, c.Meaning)
			}
		},
	}
}
