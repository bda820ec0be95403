package buildinfo

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"go.temporal.io/sdk/temporal"
)

func TestReadNamesTheSDKAndALinkTimeVersion(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "v9.8.7"
	in := Read()
	assert.Equal(t, "v9.8.7", in.Version)
	assert.Equal(t, temporal.SDKVersion, in.TemporalGo)
	s := in.String("starter")
	assert.Contains(t, s, "starter v9.8.7 (commit ")
	assert.Contains(t, s, "Temporal Go SDK "+temporal.SDKVersion)
}
