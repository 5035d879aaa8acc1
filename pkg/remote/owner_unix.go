//go:build unix

package remote

import (
	"os"
	"syscall"
)

// keepOwner gives f the owner and group of old, when the process may (root
// rewriting another user's file); otherwise f keeps the process's own, which
// is old's whenever an unprivileged process could write it.
func keepOwner(f *os.File, old os.FileInfo) {
	if st, ok := old.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid()) {
		_ = f.Chown(int(st.Uid), int(st.Gid))
	}
}
