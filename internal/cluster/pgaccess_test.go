package cluster

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCanTraverseNamesTheClosedDirectory(t *testing.T) {
	// A user who owns nothing here and is in no group of it: only the
	// "others" bits count for it, as for the postgres user below root's files.
	const uid, gid = 4242424, 4242424
	for _, tc := range []struct {
		name    string
		mode    os.FileMode
		wantErr bool
	}{
		{"open parent", 0o755, false},
		{"search only", 0o711, false},
		{"closed parent (mktemp -d, a home directory)", 0o700, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Not t.TempDir: its own top directory is 0700.
			top, err := os.MkdirTemp("", "pgaccess")
			require.NoError(t, err)
			t.Cleanup(func() { _ = os.RemoveAll(top) })
			require.NoError(t, os.Chmod(top, 0o755))
			parent := filepath.Join(top, "checkout")
			require.NoError(t, os.Mkdir(parent, 0o755))
			require.NoError(t, os.Chmod(parent, tc.mode))
			t.Cleanup(func() { _ = os.Chmod(parent, 0o755) })
			err = canTraverse(filepath.Join(parent, ".data", "stack", "pg"), uid, gid)
			if !tc.wantErr {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), parent)
			require.Contains(t, err.Error(), "--dir")
		})
	}
}
