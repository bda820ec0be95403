package devstack

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/mktos2s/mktos2s/internal/cli"
)

// NewRoot is the devstack command tree: every starter command, plus dev,
// demo, emulator and stack. Tests run it in process with SetArgs.
func NewRoot() *cobra.Command {
	root := cli.NewRoot(devCmd, demoCmd, emulatorCmd, stackCmd)
	rename(root)
	return root
}

// Run is devstack's main: starter's exit codes (README "Many tenants").
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.RunNamed(ctx, "devstack", rename, args, stdout, stderr, devCmd, demoCmd, emulatorCmd, stackCmd)
}

func rename(root *cobra.Command) {
	root.Use = "devstack"
	root.Short = "The mktos2s local stack (dev server, emulator, worker) and every starter command"
}
