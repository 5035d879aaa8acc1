package views

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hactl/hactl/internal/golden"
	"github.com/hactl/hactl/pkg/events"
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
