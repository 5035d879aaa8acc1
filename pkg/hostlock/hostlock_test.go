package hostlock

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
)

func dial(t *testing.T, s *remotetest.Server) remote.Conn {
	t.Helper()
	c, err := remote.Dial(context.Background(), s.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// fastLock is the production lock with test timings: a heartbeat every
// 100 ms, given up after 1 s, breakable after 2 s.
func fastLock(t *testing.T, dir string) Locker {
	return Locker{Path: filepath.Join(dir, "hactl.lock"), Beat: 100 * time.Millisecond, Lapse: time.Second, Stale: 2 * time.Second}
}

// TestLockNamesHolder: a second run is refused with ErrLocked naming what
// holds the lock, who, from where and since when; after Release it gets it.
func TestLockNamesHolder(t *testing.T) {
	dir := t.TempDir()
	s := remotetest.NewServer(t, remotetest.WithEnv("SSH_CLIENT=198.18.0.1 40000 22"))
	lk := fastLock(t, dir)
	lk.Command = "failover-test"
	a, err := lk.Lock(context.Background(), dial(t, s), "h1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = fastLock(t, dir).Lock(context.Background(), dial(t, s), "h1")
	host, _ := os.Hostname()
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"h1: another hactl run holds the lock: failover-test by ", "@" + host + " (pid ", ") from 198.18.0.1, since 20", "; its last heartbeat on "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	a.Release()
	b, err := fastLock(t, dir).Lock(context.Background(), dial(t, s), "h1")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	b.Release()
}

// TestLockFailureIsNotContention: a lock file that cannot be opened is
// reported as that, never as another run holding the lock.
func TestLockFailureIsNotContention(t *testing.T) {
	s := remotetest.NewServer(t)
	_, err := Locker{Path: filepath.Join(t.TempDir(), "no", "such", "dir", "hactl.lock")}.Lock(context.Background(), dial(t, s), "h1")
	if err == nil || errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "cannot open") {
		t.Fatalf("err = %v", err)
	}
}

// TestLiveLockIsNeverBroken: a holder whose heartbeat gets through keeps
// the lock however long it holds it.
func TestLiveLockIsNeverBroken(t *testing.T) {
	dir := t.TempDir()
	s := remotetest.NewServer(t)
	a, err := fastLock(t, dir).Lock(context.Background(), dial(t, s), "h1")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	time.Sleep(5 * time.Second) // 2.5 × Stale
	if _, err := fastLock(t, dir).Lock(context.Background(), dial(t, s), "h1"); !errors.Is(err, ErrLocked) {
		t.Fatalf("a live lock was taken over: %v", err)
	}
	select {
	case <-a.Lost():
		t.Fatal("the live holder thinks it lost the lock")
	default:
	}
}

// TestLostHolderExpires: the holder's connection stops carrying packets.
// Its heartbeat lapses, so it gives up (Lost, and its host context ends);
// a new run is refused while the heartbeat is recent and takes the lock
// once it is older than Stale.
func TestLostHolderExpires(t *testing.T) {
	dir := t.TempDir()
	// Two servers on one machine: the holder's stops reading (its packets
	// are dropped), the other carries the new runs.
	s := remotetest.NewServer(t)
	lost := remotetest.NewServer(t)
	a, err := fastLock(t, dir).Lock(context.Background(), dial(t, lost), "h1")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	lost.Freeze()
	cut := time.Now()
	if _, err := fastLock(t, dir).Lock(context.Background(), dial(t, s), "h1"); !errors.Is(err, ErrLocked) {
		t.Fatalf("right after the cut: %v", err)
	}
	select {
	case <-a.Lost():
	case <-time.After(3 * time.Second):
		t.Fatal("the cut-off holder never noticed")
	}
	var b *Held
	for b == nil {
		b, err = fastLock(t, dir).Lock(context.Background(), dial(t, s), "h1")
		if err != nil && !errors.Is(err, ErrLocked) {
			t.Fatal(err)
		}
		if time.Since(cut) > 10*time.Second {
			t.Fatalf("the stale lock never expired: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer b.Release()
	if d := time.Since(cut); d < 2*time.Second {
		t.Errorf("lock broken %v after the cut, before Stale", d)
	}
}

// TestOrphanedWorkKeepsLock: the lost holder had started a command that is
// still running on the host (sshd does not kill a dead session's commands).
// The stale lock is broken, but the new run finds that command by its
// SSH_CLIENT and is refused, naming it; once it ends the run gets the lock.
func TestOrphanedWorkKeepsLock(t *testing.T) {
	dir := t.TempDir()
	old := remotetest.NewServer(t, remotetest.WithEnv("SSH_CLIENT=198.18.0.1 40001 22"))
	cur := remotetest.NewServer(t, remotetest.WithEnv("SSH_CLIENT=198.18.0.2 40002 22"))
	ca := dial(t, old)
	a, err := fastLock(t, dir).Lock(context.Background(), ca, "h1")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	work, stop := context.WithCancel(context.Background())
	started := make(chan struct{})
	go func() {
		close(started)
		_, _ = ca.Run(work, "sleep 60", nil)
	}()
	<-started
	time.Sleep(200 * time.Millisecond)
	old.Freeze()
	<-a.Lost()
	time.Sleep(2500 * time.Millisecond) // past Stale
	_, err = fastLock(t, dir).Lock(context.Background(), dial(t, cur), "h1")
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "commands of its connection still run on the host (pids ") {
		t.Fatalf("err = %v", err)
	}
	// The orphan ends (its connection carries the cancel again).
	old.Thaw()
	stop()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := fastLock(t, dir).Lock(context.Background(), dial(t, cur), "h1")
		if err == nil {
			b.Release()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the orphan ended: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOwnerLineFromShells: the owner line's from= (the client's address,
// any byte outside [0-9a-fA-F.:] as _) and ssh= (SSH_CLIENT, spaces as
// commas), made by shell builtins, are what tr made of them, in dash and
// bash alike (the lock runs in the login shell); and a new run reads the
// previous holder's ssh= back as its SSH_CLIENT (the orphaned-work check).
func TestOwnerLineFromShells(t *testing.T) {
	for _, sh := range []string{"sh", "bash"} {
		if _, err := exec.LookPath(sh); err != nil {
			t.Logf("no %s here", sh)
			continue
		}
		for _, client := range []string{"198.18.0.1 40000 22", "2001:db8:18::1 40000 22", "fe80::1%eth0 1 22", "a b", "  x,y ", ""} {
			dir := t.TempDir()
			l := Locker{Path: filepath.Join(dir, "hactl.lock")}
			// The lock taken and given back at once (stdin is empty); a
			// second script prints what it read as the previous holder.
			cmd := exec.Command(sh, "-c", l.script("tok", ""))
			cmd.Env = append(os.Environ(), "SSH_CLIENT="+client)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s %q: %v\n%s", sh, client, err, out)
			}
			owner, err := os.ReadFile(filepath.Join(dir, "hactl.lock.owner"))
			if err != nil {
				t.Fatal(err)
			}
			from, _, _ := strings.Cut(client, " ")
			from = strings.Map(func(r rune) rune {
				if strings.ContainsRune("0123456789abcdefABCDEF.:", r) {
					return r
				}
				return '_'
			}, from)
			want := " from=" + from + " ssh=" + strings.ReplaceAll(client, " ", ",") + "\n"
			if !strings.HasSuffix(string(owner), want) {
				t.Errorf("%s, SSH_CLIENT %q: owner line %q, want it to end in %q", sh, client, owner, want)
			}
			probe := strings.Replace(l.script("tok2", ""), "\nif [ -n \"$prev\" ]", "\necho \"prev=[$prev]\"; exit 0\nif [ -n \"$prev\" ]", 1)
			out, err := exec.Command(sh, "-c", probe).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "prev=["+strings.ReplaceAll(client, ",", " ")+"]") {
				t.Errorf("%s, SSH_CLIENT %q: read back %q (%v)", sh, client, out, err)
			}
		}
	}
}
