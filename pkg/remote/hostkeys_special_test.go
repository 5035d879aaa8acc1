package remote_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
)

// TestAcceptNewNeverReplacesASpecialFile is issue 23's fourth defect on the
// writer's side: a known_hosts_file that is a device (a private copy of
// /dev/null, made with mknod, so the test never touches the real one),
// directly or through a symlink, is refused with accept-new, and stays the
// device: the rename must never put a regular file in its place.
func TestAcceptNewNeverReplacesASpecialFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mknod of a character device needs root")
	}
	s := remotetest.NewServer(t)
	for _, viaLink := range []bool{false, true} {
		name := "device"
		if viaLink {
			name = "symlink to a device"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			dev := filepath.Join(dir, "null")
			if err := syscall.Mknod(dev, syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
				t.Skipf("mknod: %v", err)
			}
			file := dev
			if viaLink {
				file = filepath.Join(dir, "known_hosts")
				if err := os.Symlink(dev, file); err != nil {
					t.Fatal(err)
				}
			}
			cfg := s.Config()
			cfg.KnownHostsFile = file
			cfg.AcceptNewHostKeys = true
			c, err := remote.Dial(context.Background(), cfg)
			if err == nil {
				c.Close()
				t.Errorf("dial with accept-new into a device succeeded")
			} else if !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("error %v does not say why", err)
			}
			st, err := os.Lstat(dev)
			if err != nil || st.Mode()&os.ModeCharDevice == 0 {
				t.Fatalf("the device was replaced: %v %v", st.Mode(), err)
			}
		})
	}
}
