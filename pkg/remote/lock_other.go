//go:build !(linux || darwin || freebsd || openbsd || netbsd || dragonfly)

package remote

import "os"

// Without flock the append relies on O_APPEND alone (see hostKeys).
func lockFile(*os.File) error { return nil }

func unlockFile(*os.File) {}
