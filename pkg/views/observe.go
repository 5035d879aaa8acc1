package views

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hactl/hactl/pkg/events"
	"github.com/hactl/hactl/pkg/metrics"
	"github.com/hactl/hactl/pkg/ops"
	"github.com/hactl/hactl/pkg/ui"
)

// --- hactl events ---

func (v *human) Timeline(r *ops.TimelineResult) error {
	printTimeline(v.p, r.Timeline)
	return nil
}

type eventsJSON struct {
	ui.Envelope
	*events.Timeline
}

func (v *jsonView) Timeline(r *ops.TimelineResult) error {
	return v.out(eventsJSON{Envelope: ui.Result(r.Err), Timeline: r.Timeline})
}

// printTimeline is the text view of `hactl events`: per VIP its moves,
// then the intervals that were not one holder; the hosts' clocks last.
func printTimeline(p *ui.Printer, tl *events.Timeline) {
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000Z") }
	p.Printf("Events from %s to %s (UTC, corrected for each host's clock)\n\n", ts(tl.Since), ts(tl.Until))
	for _, v := range tl.VIPs {
		p.Printf("%s  cluster %s, master %s\n", p.Styles.Bold.Render(v.VIP), v.Cluster, orDash(v.Master))
		var rows [][]string
		for _, m := range v.Moves {
			d := ""
			switch {
			case m.GapS > 0:
				d = fmt.Sprintf("no holder %.3fs", m.GapS)
			case m.OverlapS > 0:
				d = fmt.Sprintf("two holders %.3fs", m.OverlapS)
			}
			rows = append(rows, []string{ts(m.Time), m.From + " → " + m.To, m.Cause, d})
		}
		if len(rows) == 0 {
			p.Println("  no move")
		} else {
			p.Table([]string{"TIME", "MOVE", "CAUSE", "BEFORE"}, rows, nil)
		}
		for _, iv := range v.Intervals {
			switch iv.State {
			case events.None:
				p.Printf("  %s from %s for %.3fs%s\n", p.Styles.Bad.Render("NO HOLDER"), ts(iv.Start), iv.Seconds, openNote(iv))
			case events.Split:
				p.Printf("  %s %s from %s for %.3fs%s\n", p.Styles.Bad.Render("SPLIT"), strings.Join(iv.Holders, " + "), ts(iv.Start), iv.Seconds, openNote(iv))
			}
		}
		p.Println()
	}
	var rows [][]string
	for _, h := range tl.Hosts {
		skew, errs := "-", ""
		if h.SkewS != nil {
			skew = fmt.Sprintf("%+.3fs ±%.3fs", *h.SkewS, *h.UncertaintyS)
		}
		if h.Error != nil {
			errs = *h.Error
		}
		rows = append(rows, []string{h.Name, fmt.Sprint(h.Records), skew, errs})
	}
	p.Table([]string{"HOST", "RECORDS", "CLOCK SKEW", "ERROR"}, rows, nil)
}

func openNote(iv events.Interval) string {
	if iv.Open {
		return " (still now)"
	}
	return ""
}

// --- status --watch ---

// Watch on a terminal in text mode redraws the status table under the
// latest transitions on every record; elsewhere each record is one JSON
// line, written at once.
func (v *human) Watch() ops.WatchSink {
	if v.io.OutTTY {
		return &watchTable{p: v.p}
	}
	return &watchLines{enc: json.NewEncoder(v.io.Out)}
}

// Watch writes a stream of JSON lines, not one document: the run has
// written its output, also when the interrupt ends it.
func (v *jsonView) Watch() ops.WatchSink {
	v.wrote = true
	return &watchLines{enc: json.NewEncoder(v.io.Out)}
}

type watchTable struct{ p *ui.Printer }

func (w *watchTable) Redraws() bool                   { return true }
func (w *watchTable) Record(events.Record, time.Time) {}
func (w *watchTable) Lost(string, error)              {}
func (w *watchTable) Status(r *ops.StatusResult, recent []events.Record) {
	p := w.p
	p.Printf("\x1b[H\x1b[2J")
	printVIPs(p, r.VIPs)
	p.Println()
	printStatusHosts(p, r.Hosts)
	p.Println()
	p.Printf("Latest transitions (Ctrl-C to stop), %s:\n", time.Now().Format("15:04:05"))
	for _, e := range recent {
		p.Printf("  %s  %-6s %-4s %-16s %s → %s  %s\n", e.Time.Local().Format("15:04:05.000"), e.Host, e.Kind, e.Key(), e.From, e.To, e.Cause)
	}
}

// watchEvent is one line of `status --watch --output json`.
type watchEvent struct {
	events.Record
	// Received is when hactl got the record (its own clock).
	Received time.Time `json:"received"`
}

// watchError is a line for a host hactl lost (it keeps trying).
type watchError struct {
	Host  string `json:"host"`
	Error string `json:"error"`
}

type watchLines struct{ enc *json.Encoder }

func (w *watchLines) Redraws() bool                             { return false }
func (w *watchLines) Status(*ops.StatusResult, []events.Record) {}
func (w *watchLines) Record(rec events.Record, received time.Time) {
	_ = w.enc.Encode(watchEvent{Record: rec, Received: received})
}
func (w *watchLines) Lost(host string, err error) {
	_ = w.enc.Encode(watchError{Host: host, Error: err.Error()})
}

// --- status --output openmetrics ---

// openMetrics is status's --output openmetrics: the fleet invariants for
// Prometheus; every other verb shows as in text.
type openMetrics struct{ *human }

// Status writes the metrics and exits 0 whenever the hosts could be
// asked: the metrics carry the verdict, alerting rules judge it.
func (v openMetrics) Status(r *ops.StatusResult, _ bool) error { return WriteOpenMetrics(v.io.Out, r) }

// WriteOpenMetrics writes a status as --output openmetrics does; status
// --serve answers each scrape with it.
func WriteOpenMetrics(w io.Writer, r *ops.StatusResult) error {
	var hosts []metrics.Host
	for _, h := range r.Hosts {
		hosts = append(hosts, metrics.Host{Name: h.Name, Reachable: h.Reachable, Drained: h.Drained})
	}
	return metrics.Write(w, r.VIPs, hosts)
}

// Watch with openmetrics follows as JSON lines, as any output that is
// not a terminal's table.
func (v openMetrics) Watch() ops.WatchSink { return &watchLines{enc: json.NewEncoder(v.io.Out)} }
