package hostlock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
)

// TestHeartbeatRidesTheLockSession: the lock, what runs under it and every
// heartbeat share one session; the heartbeats keep the owner file fresh
// (issue 23: a session per heartbeat starved on a busy host).
func TestHeartbeatRidesTheLockSession(t *testing.T) {
	dir := t.TempDir()
	s := remotetest.NewServer(t)
	lk := fastLock(t, dir)
	lk.Beat = 50 * time.Millisecond
	a, out, err := lk.LockAnd(context.Background(), dial(t, s), "h1", "echo facts; echo more")
	if err != nil {
		t.Fatal(err)
	}
	if out != "facts\nmore\n" {
		t.Errorf("output under the lock %q", out)
	}
	time.Sleep(time.Second) // 20 beats
	if n := len(s.Commands()); n != 1 {
		t.Errorf("%d sessions, want the lock's one: %q", n, s.Commands())
	}
	if n := s.KeepAlives(); n < 5 {
		t.Errorf("%d keepalives in 20 beats", n)
	}
	st, err := os.Stat(lk.Path + ".owner")
	if err != nil {
		t.Fatal(err)
	}
	if age := time.Since(st.ModTime()); age > 500*time.Millisecond {
		t.Errorf("owner file %v old while heartbeats run", age)
	}
	select {
	case <-a.Lost():
		t.Fatal("a live lock was lost")
	default:
	}
	a.Release()
	if _, _, err := lk.LockAnd(context.Background(), dial(t, s), "h1", "exit 3"); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("a failing command under the lock: %v", err)
	}
}

// TestLoserNamesTheLiveHolder: a run that just took the flock has not yet
// written its owner line; the file still names a finished run, long ago.
// A loser must neither name that run nor break the live lock as stale.
func TestLoserNamesTheLiveHolder(t *testing.T) {
	dir := t.TempDir()
	s := remotetest.NewServer(t)
	lk := fastLock(t, dir)
	c := dial(t, s)
	owner := "token=old since=2020-01-01T00:00:00Z holder=999999 by=old@gone pid=4242 cmd=apply from=192.0.2.9 ssh=x"
	if _, err := remote.Output(context.Background(), c, "printf '%s\\n' "+remote.Quote(owner)+" >"+remote.Quote(lk.Path+".owner")+" && touch -d 2020-01-01 "+remote.Quote(lk.Path+".owner")); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		_, _ = c.Run(ctx, "exec 9>>"+remote.Quote(lk.Path)+"; flock 9; echo held; exec sleep 10", nil)
	}()
	for !holding(lk.Path) {
		time.Sleep(20 * time.Millisecond)
	}
	_, err := lk.Lock(context.Background(), c, "h1")
	if !errors.Is(err, ErrLocked) || strings.Contains(err.Error(), "4242") || !strings.Contains(err.Error(), "has not yet written its owner line") {
		t.Fatalf("err = %v", err)
	}
}

// holding tells whether some process has path open as its fd 9.
func holding(path string) bool {
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/9")
	for _, f := range fds {
		if l, err := os.Readlink(f); err == nil && l == path {
			return true
		}
	}
	return false
}

// slow delays the start of its lock session: this run reaches the host late.
type slow struct {
	*remote.Counted
	delay time.Duration
}

func (c slow) Stream(ctx context.Context, cmd string, stdin io.Reader, stdout io.Writer) (remote.Result, error) {
	time.Sleep(c.delay)
	return c.Counted.Stream(ctx, cmd, stdin, stdout)
}

// TestLockAllExactlyOneWins: two runs want the same three hosts and each
// reaches a different host first, so at once each holds some and is refused
// on others (issue 23: both applies failed). Exactly one must get all
// three, and the other none, naming the winner as the holder.
func TestLockAllExactlyOneWins(t *testing.T) {
	var hosts []*remotetest.Server
	var paths []string
	for i := 0; i < 3; i++ {
		hosts = append(hosts, remotetest.NewServer(t, remotetest.WithEnv(fmt.Sprintf("SSH_CLIENT=198.18.0.%d 4000%d 22", i+1, i))))
		paths = append(paths, filepath.Join(t.TempDir(), "hactl.lock"))
	}
	for round := 0; round < 2; round++ {
		// Run A reaches h1 late, run B h3.
		late := []int{0, 2}
		got := make([][]Got, 2)
		var wg sync.WaitGroup
		for run := 0; run < 2; run++ {
			var wants []Want
			for i, s := range hosts {
				c := slow{Counted: remote.Count(dial(t, s))}
				if i == late[run] {
					c.delay = 300 * time.Millisecond
				}
				wants = append(wants, Want{Host: fmt.Sprintf("h%d", i+1), Conn: c})
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Each host has its own lock file; the Locker's Path is
				// chosen per host by the wrapper below.
				got[run] = lockAllPaths(t, wants, paths)
			}()
		}
		wg.Wait()
		winners := 0
		for run := 0; run < 2; run++ {
			held := 0
			for _, g := range got[run] {
				if g.Held != nil {
					held++
				}
			}
			switch held {
			case 3:
				winners++
			case 0:
				for _, g := range got[run] {
					if !errors.Is(g.Err, ErrLocked) {
						t.Errorf("round %d: loser's error %v", round, g.Err)
					}
				}
			default:
				t.Errorf("round %d: run %d holds %d of 3 hosts", round, run, held)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d winners, want exactly 1: %v / %v", round, winners, errsOf(got[0]), errsOf(got[1]))
		}
		for _, gs := range got {
			for _, g := range gs {
				if g.Held != nil {
					g.Held.Release()
				}
			}
		}
	}
}

func errsOf(gs []Got) []error {
	var out []error
	for _, g := range gs {
		out = append(out, g.Err)
	}
	return out
}

// pathConn runs the lock of one host at its own lock path: the hosts of
// this test share one machine.
type pathConn struct {
	slow
	from, to string
}

func (c pathConn) Stream(ctx context.Context, cmd string, stdin io.Reader, stdout io.Writer) (remote.Result, error) {
	return c.slow.Stream(ctx, strings.ReplaceAll(cmd, c.from, c.to), stdin, stdout)
}

func lockAllPaths(t *testing.T, wants []Want, paths []string) []Got {
	lk := Locker{Path: "/nonexistent/hactl-test-lock", Beat: 100 * time.Millisecond, Lapse: time.Second, Stale: 5 * time.Second, OrderedWait: time.Second}
	for i := range wants {
		wants[i].Conn = pathConn{slow: wants[i].Conn.(slow), from: lk.Path, to: paths[i]}
	}
	return lk.LockAll(context.Background(), wants, len(wants))
}

// TestForeignHolderFailsAlone: a host whose lock something other than a
// hactl run holds (no owner line names a live holder) fails alone; the
// run keeps the other hosts, as before all-or-none.
func TestForeignHolderFailsAlone(t *testing.T) {
	var wants []Want
	var paths []string
	var servers []*remotetest.Server
	for i := 0; i < 2; i++ {
		s := remotetest.NewServer(t)
		servers = append(servers, s)
		paths = append(paths, filepath.Join(t.TempDir(), "hactl.lock"))
		wants = append(wants, Want{Host: fmt.Sprintf("h%d", i+1), Conn: slow{Counted: remote.Count(dial(t, s))}})
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	c := dial(t, servers[0])
	go func() {
		_, _ = c.Run(ctx, "exec 9>>"+remote.Quote(paths[0])+"; flock 9; echo other >"+remote.Quote(paths[0]+".owner")+"; exec sleep 10", nil)
	}()
	for !holding(paths[0]) {
		time.Sleep(20 * time.Millisecond)
	}
	got := lockAllPaths(t, wants, paths)
	if !errors.Is(got[0].Err, ErrLocked) || !errors.Is(got[0].Err, ErrUnverified) || got[1].Held == nil {
		t.Fatalf("got %v / %v", got[0].Err, got[1].Err)
	}
	got[1].Held.Release()
}
