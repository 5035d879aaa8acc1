package views

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hactl/hactl/internal/golden"
	"github.com/hactl/hactl/pkg/events"
	"github.com/hactl/hactl/pkg/ops"
	"github.com/hactl/hactl/pkg/ui"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestPrintTimeline: the text view of `hactl events` on the events
// package's fixture (a stop, the failback, a VIP added by hand, nginx down).
func TestPrintTimeline(t *testing.T) {
	var logs []events.HostLog
	for _, h := range []string{"lab1", "lab2", "lab3"} {
		b, err := os.ReadFile(filepath.Join("..", "events", "testdata", h+".log"))
		if err != nil {
			t.Fatal(err)
		}
		recs, _ := events.Parse(h, b)
		l := events.HostLog{Host: h, Records: recs, SkewKnown: true, Uncertainty: time.Millisecond}
		if h == "lab2" {
			l.Skew = 2 * time.Second
		}
		logs = append(logs, l)
	}
	since := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	tl := events.Build(logs, []events.VIPInfo{{VIP: "198.18.0.201/24", Cluster: "lab", Master: "lab1"}},
		events.Options{Since: since, Until: since.Add(time.Minute)})
	io, out, _ := ui.Test()
	printTimeline(io.Stdout(), tl)
	golden.Check(t, "testdata/events.txt.golden", out.Bytes(), *update)
}

// TestWatchViews: status --watch off a terminal, and with --output json,
// writes one JSON line per record (its keys plus received) and per lost
// host, and the JSON run counts as written (no error document after the
// interrupt); on a terminal in text mode it redraws instead.
func TestWatchViews(t *testing.T) {
	rec := events.Record{Host: "lab1", Kind: "vrrp", Instance: "VI_1", VIP: "198.18.0.201/24", From: "MASTER", To: "STOP", Cause: "keepalived stopped", Seq: 7}
	at := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	for _, format := range []string{"text", "json"} {
		io, out, _ := ui.Test()
		v, err := New(io, format, "status")
		if err != nil {
			t.Fatal(err)
		}
		sink := v.Watch()
		if sink.Redraws() {
			t.Fatalf("%s off a terminal redraws", format)
		}
		sink.Record(rec, at)
		sink.Lost("lab3", errors.New("connection refused"))
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		var first, second map[string]any
		if len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &first) != nil || json.Unmarshal([]byte(lines[1]), &second) != nil {
			t.Fatalf("%s: not two JSON lines:\n%s", format, out)
		}
		if first["to"] != "STOP" || first["cause"] != "keepalived stopped" || first["received"] != "2026-12-06T01:00:00Z" ||
			second["host"] != "lab3" || second["error"] != "connection refused" {
			t.Errorf("%s lines:\n%s", format, out)
		}
		if v.Wrote() != (format == "json") {
			t.Errorf("%s: Wrote() = %v", format, v.Wrote())
		}
	}
	io, _, _ := ui.Test()
	io.OutTTY = true
	v, _ := New(io, "text", "status")
	if !v.Watch().Redraws() {
		t.Error("a terminal in text mode does not redraw")
	}
}

// TestOpenMetricsView: openmetrics is status's only; its status exits 0
// with a misplaced VIP (the metrics carry the verdict) where the text view
// returns the problem.
func TestOpenMetricsView(t *testing.T) {
	io, out, _ := ui.Test()
	if _, err := New(io, "openmetrics", "events"); err == nil {
		t.Error("openmetrics accepted for events")
	}
	v, err := New(io, "OpenMetrics", "status")
	if err != nil {
		t.Fatal(err)
	}
	res := &ops.StatusResult{Hosts: []ops.HostStatus{{Name: "lab1", Reachable: true}}, Err: errors.New("198.18.0.201/24 missing")}
	if err := v.Status(res, false); err != nil || !strings.HasSuffix(out.String(), "# EOF\n") || !strings.Contains(out.String(), `hactl_host_reachable{host="lab1"} 1`) {
		t.Errorf("err %v\n%s", err, out)
	}
	text, _ := New(io, "text", "status")
	if err := text.Status(res, false); err == nil {
		t.Error("the text view of status hides the problem")
	}
}
