package playbook

import (
	"context"
	"fmt"
	"os"
	"os/user"
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
	me, grp := whoAmI(t)
	owner, group := me.Username, grp.Name
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

// whoAmI is the test's user and group: the owner the swaps set.
func whoAmI(t *testing.T) (*user.User, *user.Group) {
	t.Helper()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	grp, err := user.LookupGroupId(me.Gid)
	if err != nil {
		t.Fatal(err)
	}
	return me, grp
}

// swapOnShell runs one template swap of live to content with the given
// stamp and post-swap check over the in-process SSH server.
func swapOnShell(t *testing.T, c remote.Conn, live, stamp, content, check string) (Outcome, error) {
	t.Helper()
	me, grp := whoAmI(t)
	cur := facts.File{}
	if old, err := os.ReadFile(live); err == nil {
		cur = facts.File{Exists: true, Mode: 0o644, Owner: me.Username, Group: grp.Name, SHA256: sum(old)}
	}
	want := render.File{Path: live, Mode: 0o600, Owner: me.Username, Group: grp.Name, Content: []byte(content), Sensitive: true}
	tg := &Target{Name: "h", Conn: c, Stamp: stamp, Files: map[string]render.File{live: want},
		Facts: &facts.Facts{Files: map[string]facts.File{live: cur}}}
	return converge(&Template{Path: live, Check: check}, tg)
}

func dialTestServer(t *testing.T) remote.Conn {
	t.Helper()
	c, err := remote.Dial(context.Background(), remotetest.NewServer(t).Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// backupsOf lists live's stamped backups by name.
func backupsOf(t *testing.T, live string) []string {
	t.Helper()
	m, err := filepath.Glob(live + ".hactl-[0-9]*")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSwapBackupOfAnOldFileSurvives is issue 23's first defect: a live file
// older (mtime) than the kept backups — rolled back by hand with cp -a, or
// a clock that was ahead — must not have its fresh backup pruned; when the
// post-swap check fails, the previous file is really back.
func TestSwapBackupOfAnOldFileSurvives(t *testing.T) {
	c := dialTestServer(t)
	live := filepath.Join(t.TempDir(), "keepalived.conf")
	for i := range Backups {
		b := fmt.Sprintf("%s.hactl-2026110%dT000000Z", live, i+1)
		if err := os.WriteFile(b, []byte(fmt.Sprintf("backup %d\n", i)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := []byte("! the operator's rollback\n")
	if err := os.WriteFile(live, old, 0o644); err != nil {
		t.Fatal(err)
	}
	long := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(live, long, long); err != nil {
		t.Fatal(err)
	}
	_, err := swapOnShell(t, c, live, "20261124T000000Z", "broken\n", "false")
	if err == nil || !strings.Contains(err.Error(), "the previous file was restored") {
		t.Fatalf("want a restored failed check, got %v", err)
	}
	if got, _ := os.ReadFile(live); string(got) != string(old) {
		t.Fatalf("live file after the failed check: %q, want the previous %q", got, old)
	}
	if n := len(backupsOf(t, live)); n != Backups {
		t.Errorf("a failed change pruned backups: %d left, want %d", n, Backups)
	}
}

// TestSwapRestoreThatFailsIsNotReported: when the previous file cannot be
// put back (here the check itself removes the backup), the error says so
// instead of claiming a restore.
func TestSwapRestoreThatFailsIsNotReported(t *testing.T) {
	c := dialTestServer(t)
	live := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(live, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := swapOnShell(t, c, live, "20261124T000000Z", "new\n", `rm -f "$B"; false`)
	if err == nil || strings.Contains(err.Error(), "file was restored") || !strings.Contains(err.Error(), "NOT restored") {
		t.Fatalf("want an error saying the previous file was not restored, got %v", err)
	}
	if got, _ := os.ReadFile(live); string(got) != "new\n" {
		t.Fatalf("live %q", got)
	}
}

// TestSwapKeepsThePreHactlOriginal is issue 23's second defect: after more
// changes than Backups, the file hactl found keeps its own name,
// byte for byte, and the stamped backups are pruned by name to Backups
// whatever their mtimes.
func TestSwapKeepsThePreHactlOriginal(t *testing.T) {
	c := dialTestServer(t)
	live := filepath.Join(t.TempDir(), "keepalived.conf")
	orig := []byte("! the distribution's keepalived.conf\nvrrp_instance X { }\n")
	if err := os.WriteFile(live, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range Backups + 2 {
		if _, err := swapOnShell(t, c, live, fmt.Sprintf("202611%02dT000000Z", i+1),
			fmt.Sprintf("! Managed by hactl, version %d\n", i), ""); err != nil {
			t.Fatal(err)
		}
		// mtimes that say nothing about the order
		for j, b := range backupsOf(t, live) {
			when := time.Date(2030-j, 1, 1, 0, 0, 0, 0, time.UTC)
			if err := os.Chtimes(b, when, when); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := os.ReadFile(live + OriginalSuffix)
	if err != nil || string(got) != string(orig) {
		t.Fatalf("original %q, %v; want %q", got, err, orig)
	}
	bs := backupsOf(t, live)
	if len(bs) != Backups || !strings.HasSuffix(bs[len(bs)-1], ".hactl-20261107T000000Z") {
		t.Errorf("backups %v: want the %d newest by name", bs, Backups)
	}
	if last, _ := os.ReadFile(bs[len(bs)-1]); string(last) != "! Managed by hactl, version 5\n" {
		t.Errorf("newest backup %q", last)
	}
}

// TestSwapNeverOverwritesABackup: a backup of the same name (two runs in
// one stamp) is never replaced — the version it holds would be lost — and
// the live file stays as it was.
func TestSwapNeverOverwritesABackup(t *testing.T) {
	c := dialTestServer(t)
	live := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(live, []byte("v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	taken := live + ".hactl-20261124T000000.000Z"
	if err := os.WriteFile(taken, []byte("v1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := swapOnShell(t, c, live, "20261124T000000.000Z", "v3\n", ""); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("want a refusal naming the existing backup, got %v", err)
	}
	if b, _ := os.ReadFile(taken); string(b) != "v1\n" {
		t.Errorf("the backup was overwritten: %q", b)
	}
	if l, _ := os.ReadFile(live); string(l) != "v2\n" {
		t.Errorf("the live file changed: %q", l)
	}
}
