package playbook

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
	"github.com/hactl/hactl/pkg/render"
)

// TestSwapOnRealShell runs the template swap, the executor's commands and
// upload, over the in-process SSH server on real files: a live file made
// world-readable by hand leaves a backup that only its owner can read when
// the file holds a secret, and keeps its mode otherwise.
func TestSwapOnRealShell(t *testing.T) {
	owner, group := testOwner(t)
	s := remotetest.NewServer(t)
	c, err := remote.Dial(context.Background(), s.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		name       string
		sensitive  bool
		backupMode os.FileMode
	}{
		{"keepalived.conf", true, 0o600},
		{"hactl.conf", false, 0o644},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live := filepath.Join(t.TempDir(), tc.name)
			old := []byte("auth_pass oldsecret\n")
			if err := os.WriteFile(live, old, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(live, 0o644); err != nil { // whatever the umask
				t.Fatal(err)
			}
			want := render.File{Path: live, Mode: 0o600, Owner: owner, Group: group,
				Content: []byte("auth_pass newsecret\n"), Sensitive: tc.sensitive}
			tg := &Target{Name: "h", Conn: c, Stamp: "20261124T000000Z",
				Files: map[string]render.File{live: want},
				Facts: &facts.Facts{Files: map[string]facts.File{live: {Exists: true, Mode: 0o644, Owner: owner, Group: group, SHA256: sum(old)}}}}
			o, err := converge(&Template{Path: live}, tg)
			if err != nil {
				t.Fatal(err)
			}
			if len(o.Swaps) != 1 || o.Swaps[0].Backup != live+".hactl-20261124T000000Z" {
				t.Fatalf("swaps %+v", o.Swaps)
			}
			got, err := os.ReadFile(live)
			if err != nil || string(got) != string(want.Content) {
				t.Fatalf("live file %q, %v", got, err)
			}
			if st, _ := os.Stat(live); st.Mode().Perm() != 0o600 {
				t.Errorf("live file mode %04o", st.Mode().Perm())
			}
			b, err := os.ReadFile(o.Swaps[0].Backup)
			if err != nil || string(b) != string(old) {
				t.Fatalf("backup %q, %v", b, err)
			}
			st, err := os.Stat(o.Swaps[0].Backup)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != tc.backupMode {
				t.Errorf("backup mode %04o, want %04o", st.Mode().Perm(), tc.backupMode)
			}
		})
	}
}

// TestPendingRecordOnRealShell runs the record and clear commands (moved
// under a temporary directory) over the in-process SSH server: a record
// holds the time of the first unhandled run, a second record keeps it, the
// facts script reads it back by handler name, and clearing removes it.
func TestPendingRecordOnRealShell(t *testing.T) {
	s := remotetest.NewServer(t)
	c, err := remote.Dial(context.Background(), s.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := filepath.Join(t.TempDir(), "pending")
	moved := func(cmd string) string { return strings.ReplaceAll(cmd, facts.PendingDir, dir) }
	ctx := context.Background()
	if _, err := remote.Output(ctx, c, moved(RecordPendingCommand([]string{"keepalived", "odd name"}))); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(filepath.Join(dir, "keepalived"))
	if err != nil || len(first) != len("2026-11-24T00:00:00Z\n") {
		t.Fatalf("record %q, %v", first, err)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, err := remote.Output(ctx, c, moved(RecordPendingCommand([]string{"keepalived"}))); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "keepalived")); string(again) != string(first) {
		t.Errorf("second record %q replaced the first %q", again, first)
	}
	out, err := remote.Output(ctx, c, moved(facts.Script(facts.Request{})))
	if err != nil {
		t.Fatal(err)
	}
	f, err := facts.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if f.Pending["keepalived"] != strings.TrimSpace(string(first)) || f.Pending["odd name"] == "" || len(f.Pending) != 2 {
		t.Errorf("facts read %v", f.Pending)
	}
	if _, err := remote.Output(ctx, c, moved(ClearPendingCommand("odd name"))); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 || left[0].Name() != "keepalived" {
		t.Errorf("after clearing: %v", left)
	}
}
