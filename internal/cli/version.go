package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mktos2s/mktos2s/internal/buildinfo"
)

func (a *app) versionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the starter's version, commit and Temporal SDK version",
		Args:  cobra.NoArgs,
		// The version is asked for when something is wrong: it must not
		// depend on a configuration that loads.
		PersistentPreRunE: func(*cobra.Command, []string) error { a.started = true; return nil },
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := buildinfo.Read()
			if asJSON {
				return writeJSON(out(cmd), in)
			}
			fmt.Fprintln(out(cmd), in.String("starter"))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"version","commit","modified","goVersion","temporalSdk"}`)
	return cmd
}
