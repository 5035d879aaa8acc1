// Package report draws a failover test as one self-contained HTML page
// (hactl failover-test --report FILE.html): per scenario a timeline, one lane
// per host showing who held the VIP when, every HTTP probe as a green or red
// mark, the disruptive command, the theoretical bound, the restore and the
// fail-back; and the summary table with the figures of the text output.
//
// The page has inline CSS and SVG and nothing else: no script, no font, no
// URL, so it opens the same offline, from a mail attachment or a CI artifact.
// Everything from the inventory or the fleet goes through html/template.
package report

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hactl/hactl/pkg/failover"
)

//go:embed page.html.tmpl
var files embed.FS

// Info is what the page says about the run besides its results.
type Info struct {
	Inventory string    // the -i file, as given
	Generated time.Time // when the report was made
}

// The drawing's geometry, in SVG user units (pixels at 100 %).
const (
	width    = 960.0
	labelW   = 90.0 // host names left of the lanes
	rightPad = 20.0
	topPad   = 34.0 // event labels above the lanes
	laneH    = 26.0
	laneGap  = 6.0
	probeH   = 18.0 // the probe row under the lanes
	axisH    = 28.0
	markW    = 3.0
)

// HTML renders the page. It is a pure function of its arguments.
func HTML(rep failover.Report, info Info) ([]byte, error) {
	t, err := template.New("page.html.tmpl").Funcs(template.FuncMap{"secs": seconds, "inc": func(i int) int { return i + 1 }}).ParseFS(files, "page.html.tmpl")
	if err != nil {
		return nil, fmt.Errorf("report template: %w", err)
	}
	p := page{Info: info, Generated: info.Generated.UTC().Format(time.RFC3339), OK: rep.OK(),
		Left: rep.Left, Interrupted: rep.Interrupted, Aborted: rep.Aborted}
	for i, s := range rep.Scenarios {
		p.Rows = append(p.Rows, summaryRow(s))
		p.Scenarios = append(p.Scenarios, drawScenario(i, s))
	}
	var b bytes.Buffer
	if err := t.Execute(&b, p); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	return b.Bytes(), nil
}

// WriteFile writes a report next to path and renames it into place, so a
// reader never sees half a page and an old report survives a failed write.
// The page is no secret (no auth_pass, no key): mode 0644.
func WriteFile(path string, data []byte) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".hactl-*")
	if err != nil {
		return fmt.Errorf("report %s: %w", path, err)
	}
	tmp := f.Name()
	err = func() error {
		if _, err := f.Write(data); err != nil {
			return err
		}
		if err := f.Chmod(0o644); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		return f.Close()
	}()
	if err == nil {
		if st, serr := os.Lstat(path); serr == nil && !st.Mode().IsRegular() {
			err = fmt.Errorf("exists and is not a regular file (%s)", st.Mode().Type())
		} else if serr != nil && !os.IsNotExist(serr) {
			err = serr
		}
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("report %s: %w", path, err)
	}
	return nil
}

type page struct {
	Info        Info
	Generated   string
	OK          bool
	Rows        []row
	Scenarios   []scenario
	Left        []string
	Interrupted bool
	Aborted     bool
}

// row is one line of the summary table: the columns of the text output.
type row struct {
	Cells []string
	Pass  bool
}

// Header is the summary table's columns (those of `hactl failover-test`).
var header = []string{"NODE", "MODE", "VIP", "MOVED TO", "DRIFT", "BOUND", "HTTP FAILED/TOTAL", "LONGEST GAP", "FAIL-BACK", "PASS"}

func (page) Header() []string { return header }

func summaryRow(s failover.Result) row { return row{Pass: s.Pass, Cells: SummaryCells(s)} }

// SummaryCells is one scenario's row of the summary table, the same on the
// page and in failover-test's text output.
func SummaryCells(s failover.Result) []string {
	moved, failback := s.MovedTo, seconds(s.FailbackS)
	if s.Mode == failover.ModeNginx {
		failback = "-"
		if moved == s.Node {
			moved += " (stayed)"
		}
	}
	if moved == "" {
		moved = "-"
	}
	pass := "pass"
	if !s.Pass {
		pass = "FAIL"
	}
	return []string{
		s.Node, string(s.Mode), s.VIP, moved, seconds(s.DriftS),
		fmt.Sprintf("%s +%.2f", seconds(s.BoundS), s.MarginS),
		fmt.Sprintf("%d/%d", s.HTTPFailed, s.HTTPRequests), seconds(s.HTTPGapS), failback, pass,
	}
}

func seconds(s float64) string { return fmt.Sprintf("%.2fs", s) }

// scenario is one drawn timeline.
type scenario struct {
	ID string
	R  failover.Result
	// StaysMode: the VIP is meant to stay (nginx); drift_s is nginx's return.
	StaysMode bool
	Command   string
	W, H      string
	Lanes     []lane
	Probes    []mark
	Events    []event
	Bound     *band // 0 → bound
	Margin    *band // bound → bound + margin
	Ticks     []tick
	// Geometry the template needs.
	X0, X1, LaneW    string // the time axis' ends and length
	LanesTop, BoundH string // the band behind lanes and probes
	ProbeRows        []probeRow
	EventTop         string
	AxisY, TickY     string
	LabelY           string
	LegendOK         bool
	LegendFail       bool
	NoTimeline       bool
}

type lane struct {
	Host        string
	Y, H, TextY string
	Holds       []band
}

type band struct {
	X, W  string
	Title string
}

// probeRow is the row of one probed URL (two for a dual-stack instance).
type probeRow struct {
	Label, TextY string
	URL          string // shown only when there are two rows
}

type mark struct {
	X, Y, W, H string
	OK         bool
	Title      string
}

type event struct {
	X      string
	Kind   string
	Label  string
	TextY  string
	Title  string
	Anchor string
}

type tick struct {
	X     string
	Label string
}

// drawScenario lays out one scenario's timeline.
func drawScenario(i int, r failover.Result) scenario {
	sc := scenario{ID: fmt.Sprintf("s%d", i+1), R: r, Command: failover.DisruptCommand(r), StaysMode: r.Mode == failover.ModeNginx}
	tl := r.Timeline
	if tl == nil {
		tl = &failover.Timeline{}
	}
	sc.NoTimeline = len(tl.Samples) == 0 && len(tl.Probes) == 0

	// The axis spans every record, t0 and the bound with its margin.
	lo, hi := 0.0, r.BoundS+r.MarginS
	period := 0.1 // the poll period, until the samples tell
	if n := len(tl.Samples); n >= 2 {
		period = (tl.Samples[n-1].T - tl.Samples[0].T) / float64(n-1)
	}
	for _, s := range tl.Samples {
		lo, hi = math.Min(lo, s.T), math.Max(hi, s.T+period)
	}
	for _, p := range tl.Probes {
		lo, hi = math.Min(lo, p.T), math.Max(hi, p.T+period)
	}
	for _, e := range tl.Events {
		lo, hi = math.Min(lo, e.T), math.Max(hi, e.T)
	}
	if hi <= lo {
		hi = lo + 1
	}
	x0, x1 := labelW, width-rightPad
	x := func(t float64) float64 { return x0 + (t-lo)/(hi-lo)*(x1-x0) }

	hosts := tl.Hosts
	y := topPad
	sc.LanesTop = f(y)
	for _, h := range hosts {
		ln := lane{Host: h, Y: f(y), H: f(laneH), TextY: f(y + laneH/2 + 4)}
		ln.Holds = holds(tl.Samples, h, period, hi, x)
		sc.Lanes = append(sc.Lanes, ln)
		y += laneH + laneGap
	}
	row := map[string]int{}
	for _, p := range tl.Probes {
		if _, ok := row[p.URL]; !ok {
			row[p.URL] = len(row)
		}
	}
	if len(row) == 0 {
		row[""] = 0
	}
	rows := make([]probeRow, len(row))
	for u, k := range row {
		pr := probeRow{Label: "HTTP", TextY: f(y + float64(k)*probeH + probeH/2 + 4)}
		if len(row) > 1 {
			pr.Label, pr.URL = "HTTP v4", u
			if strings.Contains(u, "[") {
				pr.Label = "HTTP v6"
			}
		}
		rows[k] = pr
	}
	sc.ProbeRows = rows
	for _, p := range tl.Probes {
		py := y + float64(row[p.URL])*probeH
		title := fmt.Sprintf("probe at %+.2f s: ", p.T)
		if len(row) > 1 {
			title = fmt.Sprintf("probe of %s at %+.2f s: ", p.URL, p.T)
		}
		switch {
		case p.OK:
			title += fmt.Sprintf("200 from %s", orDash(p.Node))
			sc.LegendOK = true
		case p.Status != 0:
			title += fmt.Sprintf("HTTP %d from %s", p.Status, orDash(p.Node))
			sc.LegendFail = true
		default:
			title += "no answer"
			if p.Error != "" {
				title += ": " + p.Error
			}
			sc.LegendFail = true
		}
		sc.Probes = append(sc.Probes, mark{X: f(x(p.T) - markW/2), Y: f(py + 2), W: f(markW), H: f(probeH - 4), OK: p.OK, Title: title})
	}
	y += float64(len(rows)) * probeH
	sc.AxisY, sc.TickY, sc.EventTop = f(y), f(y+4), f(topPad-6)
	sc.BoundH = f(y - topPad)
	sc.X0, sc.X1, sc.LaneW = f(x0), f(x1), f(x1-x0)
	if r.BoundS > 0 {
		sc.Bound = &band{X: f(x(0)), W: f(x(r.BoundS) - x(0)), Title: fmt.Sprintf("theoretical bound %.2f s", r.BoundS)}
	}
	if r.MarginS > 0 {
		sc.Margin = &band{X: f(x(r.BoundS)), W: f(x(r.BoundS+r.MarginS) - x(r.BoundS)), Title: fmt.Sprintf("margin +%.2f s", r.MarginS)}
	}
	// Labels alternate between two rows so that close events stay readable.
	for j, e := range tl.Events {
		ev := event{X: f(x(e.T)), Kind: e.Kind, Label: eventLabel(r.Mode, e.Kind), TextY: f(12 + float64(j%2)*13),
			Title: fmt.Sprintf("%s at %+.2f s", eventLabel(r.Mode, e.Kind), e.T), Anchor: "middle"}
		if e.Kind == failover.EventDisrupt && sc.Command != "" {
			ev.Title += ": " + sc.Command
		}
		switch xe := x(e.T); {
		case xe < x0+40:
			ev.Anchor = "start"
		case xe > x1-40:
			ev.Anchor = "end"
		}
		sc.Events = append(sc.Events, ev)
	}
	for _, t := range ticks(lo, hi) {
		sc.Ticks = append(sc.Ticks, tick{X: f(x(t)), Label: strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", t), "0"), ".") + " s"})
	}
	sc.LabelY = f(y + 18)
	sc.W, sc.H = f(width), f(y+axisH)
	return sc
}

// holds are the spans in which host carried the VIP: from each sample that
// saw it to the next sample (the last one lasts one period).
func holds(ss []failover.TimelineSample, host string, period, hi float64, x func(float64) float64) []band {
	var out []band
	start := math.NaN()
	end := func(t float64) {
		if !math.IsNaN(start) {
			out = append(out, band{X: f(x(start)), W: f(x(t) - x(start)),
				Title: fmt.Sprintf("%s held the VIP from %+.2f s to %+.2f s", host, start, t)})
			start = math.NaN()
		}
	}
	for i, s := range ss {
		has := slices.Contains(s.Holders, host)
		switch {
		case has && math.IsNaN(start):
			start = s.T
		case !has && !s.Blind:
			end(s.T)
		}
		if i == len(ss)-1 {
			end(math.Min(s.T+period, hi))
		}
	}
	return out
}

// ticks are round instants across [lo, hi], about ten of them.
func ticks(lo, hi float64) []float64 {
	step := 0.1
	for _, s := range []float64{0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300} {
		step = s
		if (hi-lo)/s <= 12 {
			break
		}
	}
	var out []float64
	for t := math.Ceil(lo/step) * step; t <= hi+1e-9; t += step {
		out = append(out, math.Round(t*1000)/1000)
	}
	return out
}

func eventLabel(m failover.Mode, kind string) string {
	switch kind {
	case failover.EventDisrupt:
		return "disrupt"
	case failover.EventTakeover:
		return "taken over"
	case failover.EventRestore:
		if m == failover.ModeKill {
			return "systemd restarted it"
		}
		return "restore"
	case failover.EventFailback:
		return "back home"
	case failover.EventRecovered:
		return "nginx back"
	}
	return kind
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// f formats a coordinate: two decimals at most, no trailing zeros, so the
// golden files stay stable and small.
func f(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		return "0"
	}
	return s
}
