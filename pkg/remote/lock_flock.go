//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package remote

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on f, waiting for other holders.
// flock locks belong to the open file description, so two goroutines that
// each opened the file exclude each other just like two processes.
func lockFile(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			return err
		}
	}
}

func unlockFile(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
