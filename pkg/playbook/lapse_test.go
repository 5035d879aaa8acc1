package playbook

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/hostlock"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
)

// lapsing is a real connection whose lock heartbeat stops getting through
// once a command containing trigger starts (a host or a link too busy to
// answer), while commands already running, and new ones, still work.
// Pending records go to a test directory instead of PendingDir.
type lapsing struct {
	*remote.Counted
	trigger, pending string
	cut              atomic.Bool
}

func (c *lapsing) cmd(cmd string) string {
	if strings.Contains(cmd, c.trigger) {
		c.cut.Store(true)
	}
	return strings.ReplaceAll(cmd, facts.PendingDir, c.pending)
}

func (c *lapsing) Run(ctx context.Context, cmd string, stdin io.Reader) (remote.Result, error) {
	if c.cut.Load() && strings.Contains(cmd, "touch -c") {
		<-ctx.Done() // a heartbeat of its own session never gets through
		return remote.Result{}, ctx.Err()
	}
	return c.Counted.Run(ctx, c.cmd(cmd), stdin)
}

func (c *lapsing) Stream(ctx context.Context, cmd string, stdin io.Reader, stdout io.Writer) (remote.Result, error) {
	return c.Counted.Stream(ctx, c.cmd(cmd), stdin, stdout)
}

func (c *lapsing) Ping(ctx context.Context) error {
	if c.cut.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return c.Counted.Ping(ctx)
}

// TestLockLapseLeavesNoHalfDoneStep: the lock's heartbeat lapses while a
// step runs. The step finishes (nothing is abandoned half-way), the next
// step and the notified handler do not start, the handler's pending record
// stays on the host for the next run, and the host fails with ErrLockLost.
func TestLockLapseLeavesNoHalfDoneStep(t *testing.T) {
	dir := t.TempDir()
	s := remotetest.NewServer(t, remotetest.WithDir(dir))
	c, err := remote.Dial(context.Background(), s.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pending := filepath.Join(t.TempDir(), "pending")
	conn := &lapsing{Counted: remote.Count(c), trigger: "touch first", pending: pending}
	r := &Runner{
		Book: &Book{
			Steps: []Step{
				{Name: "one", Module: &Command{Cmd: "touch first; sleep 3; touch second"}, Notify: []string{"h"}},
				{Name: "two", Module: &Command{Cmd: "touch third"}},
			},
			Handlers: []Handler{{Name: "h", Module: &Command{Cmd: "touch handled"}}},
		},
		Parallel: 1,
		Lock:     true,
		Locker:   hostlock.Locker{Path: filepath.Join(dir, "hactl.lock"), Beat: 100 * time.Millisecond, Lapse: time.Second, Stale: 2 * time.Second},
	}
	res := r.Run(context.Background(), []HostInput{{Target: &Target{Name: "h1", Conn: conn}}})
	if !errors.Is(res[0].Err, hostlock.ErrLockLost) {
		t.Fatalf("err = %v, want the lock lost", res[0].Err)
	}
	for f, want := range map[string]bool{"first": true, "second": true, "third": false, "handled": false} {
		if _, err := os.Stat(filepath.Join(dir, f)); (err == nil) != want {
			t.Errorf("%s exists: %v, want %v (a lapse must finish what started and start nothing)", f, err == nil, want)
		}
	}
	if _, err := os.Stat(filepath.Join(pending, "h")); err != nil {
		t.Errorf("the due handler's pending record is gone: %v", err)
	}
}
