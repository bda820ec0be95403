package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/cli"
)

const module = "github.com/mktos2s/mktos2s"

// testDoubles are the packages that fake Microsoft or run a throwaway
// Temporal: a production binary that links one ships a fake Microsoft.
var testDoubles = []string{
	module + "/internal/emulator",
	module + "/internal/devserver",
	module + "/internal/devstack",
	module + "/internal/testenv",
	module + "/internal/msapi/emutest",
	// Not testify: the SDK's own internal package imports it.
	"go.temporal.io/sdk/testsuite",
}

func deps(t *testing.T, pkg string) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	require.NoError(t, err, "go list -deps %s", pkg)
	set := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		set[p] = true
	}
	return set
}

// The worker and the starter (operator CLI, codec endpoint, consent
// callback) are what a deployment runs; the local-stack commands live in
// ./devstack, which must keep linking them (or this check proves nothing).
func TestProductionBinariesLinkNoTestDouble(t *testing.T) {
	for _, bin := range []string{module + "/worker", module + "/starter"} {
		d := deps(t, bin)
		require.True(t, d[module+"/internal/workerapp"], "%s: go list -deps lists the product's packages", bin)
		for _, p := range testDoubles {
			assert.False(t, d[p], "%s links %s", bin, p)
		}
	}
	d := deps(t, module+"/devstack")
	for _, p := range testDoubles[:3] {
		assert.True(t, d[p], "devstack should link %s", p)
	}
}

func TestStarterHasNoLocalStackCommands(t *testing.T) {
	root := cli.NewRoot()
	for _, name := range []string{"dev", "demo", "emulator", "stack"} {
		c, _, err := root.Find([]string{name})
		assert.True(t, err != nil || c == root, "starter has a %s command; it belongs to devstack", name)
	}
}
