package render

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestPathsAreWhatHostRenders: Paths (read before the facts) names exactly
// the files HostWith renders, in its order, whatever the keepalived.
func TestPathsAreWhatHostRenders(t *testing.T) {
	inv, lay := load(t, "../../inventory/prod.hcl", nil)
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{{}, {Legacy: true, KeepalivedVersion: "1.3.5"}} {
		files, err := r.HostWith(inv, lay, inv.Hosts()[0].Name, o)
		if err != nil {
			t.Fatal(err)
		}
		want := Paths()
		if len(files) != len(want) {
			t.Fatalf("%+v: %d files, Paths has %d", o, len(files), len(want))
		}
		for i, f := range files {
			if f.Path != want[i] {
				t.Errorf("%+v: file %d is %s, Paths says %s", o, i, f.Path, want[i])
			}
		}
	}
}

// TestWriteTreeModesAndStop: files land as DIR/<host>/<path> with their
// own mode in private directories; a cancelled run writes nothing more and
// says why.
func TestWriteTreeModesAndStop(t *testing.T) {
	dir := t.TempDir()
	files := []File{
		{Host: "a", Path: "/etc/keepalived/keepalived.conf", Mode: 0o600, Content: []byte("secret\n")},
		{Host: "a", Path: "/etc/keepalived/check.sh", Mode: 0o755, Content: []byte("#!/bin/sh\n")},
	}
	if err := WriteTree(context.Background(), dir, files); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		st, err := os.Stat(filepath.Join(dir, f.Host, f.Path))
		if err != nil || st.Mode().Perm() != f.Mode {
			t.Errorf("%s: %v %v, want mode %o", f.Path, st.Mode(), err, f.Mode)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "a", "etc")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("a/etc: %v %v, want 0700", st.Mode(), err)
	}
	cause := errors.New("interrupted")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	dir2 := t.TempDir()
	if err := WriteTree(ctx, dir2, files); !errors.Is(err, cause) {
		t.Errorf("cancelled: %v, want the cause", err)
	}
	if ents, _ := os.ReadDir(dir2); len(ents) != 0 {
		t.Errorf("a cancelled run wrote %v", ents)
	}
}
