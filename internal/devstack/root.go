package devstack

import (
	"github.com/spf13/cobra"

	"github.com/mktos2s/mktos2s/internal/cli"
)

// NewRoot is the devstack command tree: every starter command, plus dev,
// demo and emulator. Tests run it in process with SetArgs.
func NewRoot() *cobra.Command {
	root := cli.NewRoot(devCmd, demoCmd, emulatorCmd)
	root.Use = "devstack"
	root.Short = "The mktos2s local stack (dev server, emulator, worker) and every starter command"
	return root
}
