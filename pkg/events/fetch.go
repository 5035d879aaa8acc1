package events

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/remote"
)

// Log is the recorder's log on every host (render.EventsLog); Log + ".1" is
// the previous one after a rotation.
const Log = "/var/lib/hactl/events/events.log"

// readCmd prints the old log then the current one: oldest record first.
var readCmd = "cat " + Log + ".1 " + Log + " 2>/dev/null; true"

// clockCmd prints the host's clock in seconds, to the microsecond.
const clockCmd = "date +%s.%6N"

// Clock is the local clock (injected: tests give a fixed one).
type Clock func() time.Time

// Collect reads every reachable host's log and measures its clock against
// ours, in parallel. An unreachable host is a HostLog with Err set.
func Collect(ctx context.Context, hosts []*fleet.Host, now Clock) []HostLog {
	out := make([]HostLog, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		out[i].Host = h.Name()
		if h.Conn == nil {
			out[i].Err = h.Err
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := &out[i]
			l.Skew, l.Uncertainty, l.SkewKnown = Skew(ctx, h.Conn, now)
			data, err := remote.Output(ctx, h.Conn, readCmd)
			if err != nil {
				l.Err = fmt.Errorf("%s: read %s: %w", h.Name(), Log, err)
				return
			}
			var errs []error
			l.Records, errs = Parse(h.Name(), []byte(data))
			if len(errs) > 0 {
				l.Err = errs[0]
			}
		}()
	}
	wg.Wait()
	return out
}

// Skew reads the host's clock three times and keeps the reading with the
// shortest round trip: skew = host − midpoint of the round trip, ± half of it.
func Skew(ctx context.Context, c remote.Conn, now Clock) (skew, uncertainty time.Duration, ok bool) {
	best := time.Duration(-1)
	for range 3 {
		t0 := now()
		out, err := remote.Output(ctx, c, clockCmd)
		t1 := now()
		if err != nil {
			return 0, 0, false
		}
		host, err := parseClock(out)
		if err != nil {
			return 0, 0, false
		}
		rtt := t1.Sub(t0)
		if best < 0 || rtt < best {
			best = rtt
			skew = host.Sub(t0.Add(rtt / 2))
		}
	}
	return skew, best / 2, true
}

func parseClock(s string) (time.Time, error) {
	sec, frac, _ := strings.Cut(strings.TrimSpace(s), ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("host clock %q: %w", s, err)
	}
	frac = (frac + "000000000")[:9]
	ns, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("host clock %q: %w", s, err)
	}
	return time.Unix(n, ns), nil
}
