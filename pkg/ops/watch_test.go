package ops

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hactl/hactl/pkg/events"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
)

// watchSink records what Watch showed.
type watchSink struct {
	redraws  bool
	mu       sync.Mutex
	records  []events.Record
	statuses [][]events.Record // the recent records of each redraw
	lost     []string
	onRecord func(n int) // after the n-th record seen (either way)
}

func (w *watchSink) Redraws() bool { return w.redraws }
func (w *watchSink) Status(res *StatusResult, recent []events.Record) {
	w.mu.Lock()
	w.statuses = append(w.statuses, append([]events.Record(nil), recent...))
	n := len(recent)
	w.mu.Unlock()
	if res == nil || len(res.VIPs) != 3 {
		panic(fmt.Sprintf("a redraw without the status: %+v", res))
	}
	if n > 0 {
		w.onRecord(n)
	}
}
func (w *watchSink) Record(rec events.Record, received time.Time) {
	w.mu.Lock()
	w.records = append(w.records, rec)
	n := len(w.records)
	w.mu.Unlock()
	w.onRecord(n)
}
func (w *watchSink) Lost(host string, err error) {
	w.mu.Lock()
	w.lost = append(w.lost, host+": "+err.Error())
	w.mu.Unlock()
}

// watchLab is the fake lab whose lab1 records two transitions once the
// watch began (lab2's log stays as it was) and whose lab3 cannot be
// reached.
func watchLab(t *testing.T) *Session {
	lab := newFakeLab()
	offRE := regexp.MustCompile(`off=(\d+);`)
	line := func(seq int, to string) string {
		return fmt.Sprintf(`{"time":"2026-12-06T00:00:%02d.000000Z","host":"lab1","cluster":"lab","kind":"vrrp","instance":"VI_1","vip":"198.18.0.201/24","from":"MASTER","to":%q,"seq":%d}`+"\n", seq, to, seq)
	}
	s := session(t, lab)
	s.deps.Dial = func(ctx context.Context, cfg remote.Config) (remote.Conn, error) {
		if cfg.Name == "lab3" {
			return nil, errors.New("connection refused")
		}
		base, err := lab.dial(ctx, cfg)
		if err != nil {
			return nil, err
		}
		var mu sync.Mutex
		log, waits := line(1, "BACKUP"), 0 // seq 1 is from before the watch
		return &remotetest.Fake{Handler: func(cmd string, in []byte) remote.Result {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case strings.HasPrefix(cmd, "stat -c %s "+events.Log):
				return remote.Result{Stdout: []byte(strconv.Itoa(len(log)) + "\n")}
			case strings.Contains(cmd, "off="):
				waits++
				if cfg.Name == "lab1" && waits == 2 {
					log += line(2, "STOP") + line(3, "BACKUP")
				}
				off, _ := strconv.Atoi(offRE.FindStringSubmatch(cmd)[1])
				if off == len(log) {
					time.Sleep(5 * time.Millisecond) // the host's wait, shortened
				}
				return remote.Result{Stdout: []byte(fmt.Sprintf("%d %d\n%s", off, len(log), log[off:]))}
			}
			return base.(*remotetest.Fake).Handler(cmd, in)
		}}, nil
	}
	return s
}

// TestWatch: status --watch's loop. Off a terminal every record the hosts
// write after the watch began reaches the sink once, in order, and a host
// that cannot be reached is reported; on a terminal the status is drawn
// at the start and again with the latest records after each one. The
// interrupt (ctx) ends it without an error.
func TestWatch(t *testing.T) {
	for _, redraws := range []bool{false, true} {
		t.Run(fmt.Sprintf("redraws=%v", redraws), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			sink := &watchSink{redraws: redraws, onRecord: func(n int) {
				if n == 2 {
					cancel()
				}
			}}
			if err := Watch(ctx, watchLab(t), StatusOptions{Conn: ConnOptions{Parallel: 4, Timeout: time.Second}}, sink); err != nil {
				t.Fatal(err)
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				t.Fatal("the records never arrived")
			}
			seqs := func(rs []events.Record) string {
				var s []string
				for _, r := range rs {
					s = append(s, fmt.Sprint(r.Host, r.Seq, r.To))
				}
				return strings.Join(s, " ")
			}
			if !redraws {
				if got := seqs(sink.records); got != "lab12STOP lab13BACKUP" || len(sink.statuses) != 0 {
					t.Errorf("records %q, redraws %d", got, len(sink.statuses))
				}
				if len(sink.lost) != 1 || !strings.HasPrefix(sink.lost[0], "lab3: ") {
					t.Errorf("lost %q, want lab3", sink.lost)
				}
				return
			}
			if len(sink.records) != 0 || len(sink.statuses) != 3 || len(sink.statuses[0]) != 0 ||
				seqs(sink.statuses[1]) != "lab12STOP" || seqs(sink.statuses[2]) != "lab12STOP lab13BACKUP" {
				t.Errorf("records %d; redraws %v", len(sink.records), sink.statuses)
			}
		})
	}
}
