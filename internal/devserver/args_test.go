package devserver

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExtraArgsPassDynamicConfigValues(t *testing.T) {
	args, envFile, err := extraArgs(Options{DynamicConfig: []string{"system.enableActivityEagerExecution=true"}})
	require.NoError(t, err)
	assert.Empty(t, envFile)
	assert.Equal(t, []string{
		"--dynamic-config-value", "history.transferProcessorMaxPollRPS=1000",
		"--dynamic-config-value", "system.enableActivityEagerExecution=true",
	}, args)
}

func TestExtraArgsRefuseAValueWithoutKeyOrValue(t *testing.T) {
	for _, kv := range []string{"system.enableActivityEagerExecution", "=true", "key="} {
		_, _, err := extraArgs(Options{DynamicConfig: []string{kv}})
		require.Error(t, err, kv)
		assert.Contains(t, err.Error(), "want key=value")
	}
}
