package prune

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
	"github.com/hactl/hactl/pkg/render"
)

// rooted runs every command with the host's absolute paths moved under
// root, so RemoveFiles can run on a real shell without touching /etc.
type rooted struct {
	remote.Conn
	root string
}

func (r rooted) move(s string) string {
	s = strings.ReplaceAll(s, "/etc/", r.root+"/etc/")
	return strings.ReplaceAll(s, "/var/backups/", r.root+"/var/backups/")
}

func (r rooted) Run(ctx context.Context, cmd string, stdin io.Reader) (remote.Result, error) {
	return r.Conn.Run(ctx, r.move(cmd), stdin)
}

func write(t *testing.T, p, content string, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// TestDestroyRestoresTheOriginal is issue 23's second defect on destroy's
// side: the pre-hactl keepalived.conf kept by the swap as .hactl-orig is
// put back byte for byte, whatever the mtimes of the stamped backups
// (hactl's own files) say; without it the oldest stamped backup by name
// that hactl did not write still is.
func TestDestroyRestoresTheOriginal(t *testing.T) {
	c, err := remote.Dial(context.Background(), remotetest.NewServer(t).Config())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	orig := "! the distribution's file\n\tno trailing newline"
	managed := "! Managed by hactl (cluster \"lab\", host \"lab1\").\n"
	early, late := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		setup func(k string)
	}{
		{"kept as .hactl-orig", func(k string) {
			write(t, k+playbook.OriginalSuffix, orig, late)
			write(t, k+".hactl-20261101T000000Z", managed, early)
			write(t, k+".hactl-20261102T000000Z", managed, early)
		}},
		{"a stamped backup of a host from before .hactl-orig", func(k string) {
			write(t, k+".hactl-20261101T000000Z", orig, late)
			write(t, k+".hactl-20261102T000000Z", managed, early)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rooted{Conn: c, root: t.TempDir()}
			k := r.root + render.KeepalivedConf
			write(t, k, managed, late)
			tc.setup(k)
			done, err := RemoveFiles(context.Background(), r, "20261201T000000Z", true)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(k)
			if err != nil || string(got) != orig {
				t.Fatalf("keepalived.conf after destroy: %q, %v; want the original %q (done %v)", got, err, orig, done)
			}
			if _, err := os.Stat(k + playbook.OriginalSuffix); !os.IsNotExist(err) {
				t.Errorf("the original is still kept beside the restored file: %v", err)
			}
		})
	}
}
