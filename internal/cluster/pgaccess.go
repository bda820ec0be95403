package cluster

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// postgresCanReach says why the postgres user cannot reach dir, or nil. As
// root, PostgreSQL runs as that user (it refuses root), so every directory
// above its data directory must let it through. A checkout below a 0700
// directory (root's home, a mktemp -d) otherwise fails deep inside initdb
// with "could not change directory"; this names the directory and the fix.
func postgresCanReach(dir string) error {
	if os.Geteuid() != 0 {
		return nil // PostgreSQL runs as the caller, who made dir.
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("no postgres user to run PostgreSQL as (apt-get install -y postgresql): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return canTraverse(dir, uint32(uid), uint32(gid))
}

// canTraverse checks the search (x) permission of every ancestor of dir for
// the user uid in group gid, as the kernel would, from the closest one up.
func canTraverse(dir string, uid, gid uint32) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if os.IsNotExist(err) {
			continue // created later with 0755
		} else if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		mode := fi.Mode().Perm()
		var allowed bool
		switch {
		case st.Uid == uid:
			allowed = mode&0o100 != 0
		case st.Gid == gid:
			allowed = mode&0o010 != 0
		default:
			allowed = mode&0o001 != 0
		}
		if !allowed {
			return fmt.Errorf("PostgreSQL runs as the postgres user, which cannot enter %s (mode %04o) to reach its data directory %s: "+
				"give it a data directory it can reach, e.g. make stack STACK_FLAGS=\"--dir /var/tmp/mktos2s-stack\" (or chmod o+x %s)",
				p, mode, abs, p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}
