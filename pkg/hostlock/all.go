package hostlock

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hactl/hactl/pkg/remote"
)

// Want is one host LockAll is to lock, and what to run under its lock (see
// LockAnd; "" for nothing).
type Want struct {
	Host string
	Conn remote.Conn
	Then string
}

// Got is what LockAll got for one Want: the lock and then's output, or why
// not (Held nil).
type Got struct {
	Held *Held
	Out  string
	Err  error
}

// OrderedWait is how long the ordered retry of LockAll waits for each host
// lock: long enough for a run that collided with this one to give back the
// locks it took, far shorter than a run that really holds them.
const OrderedWait = 10 * time.Second

// ErrNotTaken marks a host whose lock LockAll gave back (or never took)
// because another run holds some other host of the same run.
var ErrNotTaken = errors.New("not locked (a run takes all its hosts or none)")

// LockAll takes the locks of every host, at most parallel at once, so that
// of runs that want overlapping hosts exactly one proceeds (issue 23: two
// applies of one inventory started together each held some hosts and were
// refused on the others, and both failed). First every lock is tried at
// once; when another run holds any of them, every lock taken is given
// back, and they are taken again one at a time in one global order (by
// host name), each waiting up to OrderedWait for its holder: two runs
// doing the same queue on the first host they share, and the one behind
// fails there, holding nothing. A host whose lock fails for its own reason
// (unreachable, commands of a lost run still running) fails alone.
func (l Locker) LockAll(ctx context.Context, wants []Want, parallel int) []Got {
	got := make([]Got, len(wants))
	var g errgroup.Group
	g.SetLimit(max(parallel, 1))
	for i, w := range wants {
		g.Go(func() error {
			got[i].Held, got[i].Out, got[i].Err = l.LockAnd(ctx, w.Conn, w.Host, w.Then)
			return nil
		})
	}
	_ = g.Wait()
	if !contended(got) {
		return got
	}
	releaseAll(got)
	order := make([]int, len(wants))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return wants[order[a]].Host < wants[order[b]].Host })
	ordered := l
	ordered.Wait = orDur(l.OrderedWait, OrderedWait)
	for n, i := range order {
		w := wants[i]
		got[i] = Got{}
		got[i].Held, got[i].Out, got[i].Err = ordered.LockAnd(ctx, w.Conn, w.Host, w.Then)
		if !isContention(got[i].Err) {
			continue
		}
		// Behind another run: give back what was taken, touch no more.
		for _, j := range order[:n] {
			if got[j].Held != nil {
				got[j].Held.Release()
			}
			got[j] = Got{Err: fmt.Errorf("%s: %w: %w on %s", wants[j].Host, ErrNotTaken, ErrLocked, w.Host)}
		}
		for _, j := range order[n+1:] {
			got[j] = Got{Err: fmt.Errorf("%s: %w: %w on %s", wants[j].Host, ErrNotTaken, ErrLocked, w.Host)}
		}
		break
	}
	return got
}

// contended: another live run holds one of the locks.
func contended(got []Got) bool {
	for _, g := range got {
		if isContention(g.Err) {
			return true
		}
	}
	return false
}

// isContention is a refusal because another hactl run holds the lock, not
// one because a lost run's commands still run there or because the holder
// is not a hactl run (those hosts fail alone, as before).
func isContention(err error) bool {
	return errors.Is(err, ErrLocked) && !errors.Is(err, ErrBusy) && !errors.Is(err, ErrUnverified)
}

func releaseAll(got []Got) {
	var wg sync.WaitGroup
	for i := range got {
		if got[i].Held != nil {
			wg.Add(1)
			go func() { defer wg.Done(); got[i].Held.Release() }()
		}
	}
	wg.Wait()
}
