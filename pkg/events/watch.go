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

// WaitPeriod is how often the host looks at its log's size while hactl
// waits on it; a record reaches hactl within about this plus one round trip.
const WaitPeriod = 50 * time.Millisecond

// waitRounds bounds one wait (20 s): then the call returns with nothing new,
// so a dead connection is noticed and the command is never left hanging.
const waitRounds = 400

// waitCmd blocks on the host until the log is longer than off bytes, then
// prints "OFF SIZE" and the new bytes. A log shorter than off was rotated:
// it is read from its start. off < 0 only asks for the size.
func waitCmd(off int64) string {
	if off < 0 {
		return "stat -c %s " + Log + " 2>/dev/null || echo 0"
	}
	return fmt.Sprintf(`f=%s; off=%d; i=0; while :; do s=$(stat -c %%s "$f" 2>/dev/null || echo 0); [ "$s" -lt "$off" ] && off=0; [ "$s" -gt "$off" ] && break; i=$((i+1)); [ "$i" -ge %d ] && break; sleep %s; done; echo "$off $s"; [ "$s" -gt "$off" ] && tail -c +$((off+1)) "$f" | head -c $((s-off)); true`,
		Log, off, waitRounds, strconv.FormatFloat(WaitPeriod.Seconds(), 'f', -1, 64))
}

// Watch follows every reachable host's log from now on and calls emit for
// each new record (never concurrently), until ctx ends. A host whose
// connection fails is reported through fail and tried again each second.
func Watch(ctx context.Context, hosts []*fleet.Host, emit func(Record), fail func(host string, err error)) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, h := range hosts {
		if h.Conn == nil {
			fail(h.Name(), h.Err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			follow(ctx, h.Name(), h.Conn, func(r Record) {
				mu.Lock()
				defer mu.Unlock()
				emit(r)
			}, func(err error) {
				mu.Lock()
				defer mu.Unlock()
				fail(h.Name(), err)
			})
		}()
	}
	wg.Wait()
}

func follow(ctx context.Context, host string, c remote.Conn, emit func(Record), fail func(error)) {
	off := int64(-1)
	var partial []byte
	for ctx.Err() == nil {
		out, err := remote.Output(ctx, c, waitCmd(off))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			fail(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		if off < 0 {
			off, _ = strconv.ParseInt(strings.TrimSpace(out), 10, 64)
			continue
		}
		head, body, _ := strings.Cut(out, "\n")
		var from, size int64
		if _, err := fmt.Sscan(head, &from, &size); err != nil {
			fail(fmt.Errorf("unexpected answer %q", head))
			continue
		}
		if from == 0 && off > 0 {
			partial = nil // rotated
		}
		off = size
		data := append(partial, body...)
		// Only whole lines: the recorder may be mid-write.
		cut := strings.LastIndexByte(string(data), '\n') + 1
		partial = append([]byte(nil), data[cut:]...)
		recs, _ := Parse(host, data[:cut])
		for _, r := range recs {
			emit(r)
		}
	}
}
