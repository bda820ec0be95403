package devserver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The UI's codec endpoint carries the codec token: the UI still gets it, but
// no process argument on the machine shows it (`ps`, /proc/*/cmdline), and
// its settings file is gone after Stop.
func TestCodecTokenStaysOutOfProcessArguments(t *testing.T) {
	bin := binaryOrSkip(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const token = "codec-token-in-no-argument-4f1c0d3e"
	endpoint := "http://127.0.0.1:1/auth/" + token

	s, err := Start(ctx, Options{Binary: bin, UI: true, CodecEndpoint: endpoint})
	require.NoError(t, err)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = s.Stop()
		}
	})

	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	require.NoError(t, err)
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the process ended meanwhile
		}
		assert.NotContains(t, string(b), token, "%s shows the codec token", f)
	}

	// The UI serves the endpoint to the browser (it must: the browser calls it).
	var settings struct {
		Codec struct {
			Endpoint string `json:"endpoint"`
		} `json:"codec"`
	}
	resp, err := http.Get(s.UIURL + "/api/v1/settings")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(body, &settings), string(body))
	assert.Equal(t, endpoint, settings.Codec.Endpoint)

	file := s.envFile
	require.NotEmpty(t, file)
	info, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	require.NoError(t, s.Stop())
	stopped = true
	assert.NoFileExists(t, file)
	assert.False(t, strings.Contains(file, token))
}
