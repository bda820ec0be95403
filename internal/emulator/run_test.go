package emulator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunPrintsConfigAndStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Out: out}) }()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "state:") }, 5*time.Second, 20*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	s := out.String()
	for _, want := range []string{"CA certificate:", "ca.pem", "authority host: https://127.0.0.1:", contosoID, provClient, "https://contoso.crm.localhost:", "https://fabrikam.crm.localhost:"} {
		assert.Contains(t, s, want)
	}
	assert.NotContains(t, s, provSecret)
}
