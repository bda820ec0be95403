package testenv

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/mktos2s/mktos2s/internal/devserver"
)

// recorder is a testing.TB that records Fatalf and Skipf instead of
// stopping the goroutine.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                      {}
func (r *recorder) Fatalf(f string, args ...any) { r.fatal = fmt.Sprintf(f, args...) }
func (r *recorder) Skipf(f string, args ...any)  { r.skip = fmt.Sprintf(f, args...) }

// TestRequireTemporalCLI: without the CLI a test fails and says how to build
// it; only -short turns that into a skip.
func TestRequireTemporalCLI(t *testing.T) {
	t.Setenv(devserver.EnvBinary, filepath.Join(t.TempDir(), "no-temporal"))
	for _, tt := range []struct {
		name          string
		short         bool
		fatal, skip   bool
		mentionsBuild bool
	}{
		{name: "full run fails", fatal: true, mentionsBuild: true},
		{name: "-short skips", short: true, skip: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			requireCLI(r, tt.short)
			assert.Equal(t, tt.fatal, r.fatal != "", r.fatal)
			assert.Equal(t, tt.skip, r.skip != "", r.skip)
			if tt.mentionsBuild {
				assert.Contains(t, r.fatal, "make temporal")
				assert.Contains(t, r.fatal, "-short")
			}
		})
	}
}
