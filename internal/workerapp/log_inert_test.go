package workerapp

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/config"
)

// Log lines quote outside text (Microsoft's messages, a signal's sender):
// in either format none of its control or bidi characters is written raw.
func TestLogsAreInert(t *testing.T) {
	const hostile = "x\u202Eexe.txt \u009b2J \x1b]52;c;ZXZpbA==\x07"
	for _, format := range []string{"json", "text"} {
		var b bytes.Buffer
		l, err := NewLogger(config.Log{Level: "info", Format: format}, &b)
		require.NoError(t, err)
		l.Info("signal from "+hostile, "by", hostile, "error", errors.New("graph: "+hostile))
		out := b.String()
		assert.False(t, strings.ContainsAny(out, "\u202e\u009b\x1b\x07"), "%s: %q", format, out)
		assert.Contains(t, out, "exe.txt", format)
	}
}
