package events

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hactl/hactl/internal/golden"
)

var update = flag.Bool("update", false, "rewrite golden files")

func loadLogs(t *testing.T) []HostLog {
	t.Helper()
	var logs []HostLog
	for _, h := range []string{"lab1", "lab2", "lab3"} {
		b, err := os.ReadFile(filepath.Join("testdata", h+".log"))
		if err != nil {
			t.Fatal(err)
		}
		recs, errs := Parse(h, b)
		l := HostLog{Host: h, Records: recs, SkewKnown: true, Uncertainty: time.Millisecond}
		if h == "lab2" {
			l.Skew = 2 * time.Second // lab2's clock runs 2 s ahead
		}
		if len(errs) > 0 {
			l.Err = errs[0]
		}
		logs = append(logs, l)
	}
	return logs
}

var window = Options{
	Since: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC),
	Until: time.Date(2026, 12, 6, 0, 1, 0, 0, time.UTC),
}

// TestBuildGolden: a stop, the preemption back, a VIP added by hand on a
// third host, then nginx down; lab2's clock is 2 s ahead and corrected.
func TestBuildGolden(t *testing.T) {
	tl := Build(loadLogs(t), []VIPInfo{{VIP: "198.18.0.201/24", Cluster: "lab", Instance: "VI_1", Master: "lab1"}}, window)
	b, err := json.MarshalIndent(tl, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/timeline.json.golden", append(b, '\n'), *update)

	v := tl.VIPs[0]
	var moves []string
	for _, m := range v.Moves {
		moves = append(moves, m.From+">"+m.To+": "+m.Cause)
	}
	want := []string{
		"lab1>lab2: keepalived stopped on lab1",
		"lab2>lab1: preempted by lab1 (priority 101)",
		"lab1>lab2: nginx down on lab1",
	}
	if strings.Join(moves, "\n") != strings.Join(want, "\n") {
		t.Errorf("moves:\n%s\nwant:\n%s", strings.Join(moves, "\n"), strings.Join(want, "\n"))
	}
	if g := v.Moves[0].GapS; g != 0.62 {
		t.Errorf("stop gap = %v, want 0.62 (lab2's skew corrected)", g)
	}
	if o := v.Moves[1].OverlapS; o != 0.08 {
		t.Errorf("preempt overlap = %v, want 0.08", o)
	}
	var splits []string
	for _, iv := range v.Intervals {
		if iv.State == Split {
			splits = append(splits, strings.Join(iv.Holders, "+")+" "+iv.Start.Format("05.000"))
		}
	}
	if strings.Join(splits, ",") != "lab1+lab2 17.620,lab1+lab3 30.000" {
		t.Errorf("split intervals %v", splits)
	}
	if tl.Hosts[0].Error == nil || !strings.Contains(*tl.Hosts[0].Error, "lab1: events.log line 9") {
		t.Errorf("torn line not reported as host:line: %v", tl.Hosts[0].Error)
	}
	if last := v.Intervals[len(v.Intervals)-1]; !last.Open || last.Holders[0] != "lab2" {
		t.Errorf("last interval %+v", last)
	}
}

// TestBuildWindow: moves before --since are not listed, but they decide
// who held the VIP when the window opens.
func TestBuildWindow(t *testing.T) {
	o := window
	o.Since = o.Since.Add(25 * time.Second)
	v := Build(loadLogs(t), nil, o).VIPs[0]
	if len(v.Moves) != 1 || v.Moves[0].From != "lab1" {
		t.Fatalf("moves %+v", v.Moves)
	}
	if first := v.Intervals[0]; !first.Start.Equal(o.Since) || strings.Join(first.Holders, ",") != "lab1" {
		t.Errorf("first interval %+v", first)
	}
}

func TestParseClock(t *testing.T) {
	got, err := parseClock("1796516857.448778\n")
	if err != nil || got.UnixMicro() != 1796516857448778 {
		t.Errorf("%v %v", got, err)
	}
	if _, err := parseClock("x"); err == nil {
		t.Error("no error for garbage")
	}
}
