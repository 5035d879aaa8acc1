package events

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
)

// TestFollow: a log that grows by a torn line, its end, a rotation: every
// whole record is emitted once, in order, and nothing written before the
// watch began.
func TestFollow(t *testing.T) {
	line := func(seq int) string {
		return fmt.Sprintf(`{"time":"2026-12-06T00:00:%02d.000000Z","host":"lab1","kind":"vrrp","instance":"VI_1","vip":"198.18.0.201/24","from":"BACKUP","to":"MASTER","seq":%d}`+"\n", seq, seq)
	}
	var mu sync.Mutex
	log := line(1) // before the watch: not emitted
	steps := []func(){
		func() { log += line(2) + line(3)[:20] },           // a torn write
		func() { log += line(3)[20:] },                     // its end
		func() { log = line(4) },                           // rotated: a new, shorter log
		func() { log += line(5) + "not json\n" + line(6) }, // a bad line is skipped
	}
	offRE := regexp.MustCompile(`off=(\d+);`)
	calls := 0
	fake := &remotetest.Fake{Handler: func(cmd string, _ []byte) remote.Result {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(cmd, "stat ") {
			return remote.Result{Stdout: []byte(strconv.Itoa(len(log)) + "\n")}
		}
		if calls < len(steps) {
			steps[calls]()
		}
		calls++
		off, _ := strconv.Atoi(offRE.FindStringSubmatch(cmd)[1])
		if len(log) < off {
			off = 0
		}
		return remote.Result{Stdout: []byte(fmt.Sprintf("%d %d\n%s", off, len(log), log[off:]))}
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []int64
	follow(ctx, "lab1", fake, func(r Record) {
		got = append(got, r.Seq)
		if len(got) == 5 {
			cancel()
		}
	}, func(err error) { t.Errorf("fail: %v", err) })
	if fmt.Sprint(got) != "[2 3 4 5 6]" {
		t.Errorf("emitted seqs %v, want [2 3 4 5 6]", got)
	}
}

func TestWaitCmd(t *testing.T) {
	if c := waitCmd(-1); !strings.HasPrefix(c, "stat -c %s "+Log) {
		t.Errorf("size command %q", c)
	}
	c := waitCmd(42)
	for _, want := range []string{"off=42;", "sleep 0.05", `-ge 400 ]`, `tail -c +$((off+1))`} {
		if !strings.Contains(c, want) {
			t.Errorf("wait command lacks %q: %s", want, c)
		}
	}
}
