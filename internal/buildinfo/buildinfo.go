// Package buildinfo says which build a binary is: its version (set at link
// time or read from the Go build information), commit and the Temporal SDK
// it was built with, for `starter version` and `worker --version`.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"go.temporal.io/sdk/temporal"
)

// Version is set at link time: go build -ldflags "-X github.com/mktos2s/mktos2s/internal/buildinfo.Version=v1.2.3".
// Without it, the module version of the Go build information is used.
var Version = ""

// Info is the build of the running binary.
type Info struct {
	Version    string `json:"version"`
	Commit     string `json:"commit,omitempty"`
	Modified   bool   `json:"modified,omitempty"`
	GoVersion  string `json:"goVersion"`
	TemporalGo string `json:"temporalSdk"`
}

// Read returns the running binary's build information.
func Read() Info {
	in := Info{Version: Version, GoVersion: runtime.Version(), TemporalGo: temporal.SDKVersion}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if in.Version == "" {
			in.Version = "unknown"
		}
		return in
	}
	if in.Version == "" {
		in.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Commit = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	if in.Version == "" {
		in.Version = "(devel)"
	}
	return in
}

// String is the one-line form: "starter v1.2.3 (commit 0123abc, go1.25.0, Temporal Go SDK 1.51.0)".
func (in Info) String(binary string) string {
	commit := in.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if commit == "" {
		commit = "unknown"
	}
	if in.Modified {
		commit += "+modified"
	}
	return fmt.Sprintf("%s %s (commit %s, %s, Temporal Go SDK %s)", binary, in.Version, commit, in.GoVersion, in.TemporalGo)
}
