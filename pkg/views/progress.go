package views

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/ui"
)

// progress prints, as it happens, one line per event to stderr: what
// changed or failed, or every step with -v. On a terminal it also keeps a
// live line at the bottom naming the hosts that have been quiet for more
// than a second (a package install, a VIP wait, a connect timeout),
// redrawn by tick.
type progress struct {
	mu      sync.Mutex
	p       *ui.Printer
	verbose bool
	now     func() time.Time
	// readOnly shows the --limit notice (the human view only).
	readOnly bool
	// hosts being worked on, in order, with their last event's time and step.
	hosts    []string
	since    map[string]time.Time
	lastStep map[string]string
	shown    bool // the live line is on the screen
}

func newProgress(p *ui.Printer, verbose, readOnly bool) *progress {
	return &progress{p: p, verbose: verbose, readOnly: readOnly, now: time.Now,
		since: map[string]time.Time{}, lastStep: map[string]string{}}
}

// ReadOnly says how many hosts a --limit run only reads.
func (pr *progress) ReadOnly(extra int) {
	if !pr.readOnly {
		return
	}
	pr.p.Printf("%s %d other host(s) of the same cluster(s) are only read, to verify VIP placement; nothing on them changes\n",
		pr.p.Styles.Dim.Render("--limit:"), extra)
}

// Live shows the live line for hosts until the returned stop is called
// (only on a terminal). doing names what the hosts do until their first
// event ("connecting").
func (pr *progress) Live(hosts []string, doing string) (stop func()) {
	pr.mu.Lock()
	pr.hosts = hosts
	for _, h := range hosts {
		pr.since[h], pr.lastStep[h] = pr.now(), doing
	}
	pr.mu.Unlock()
	if !pr.p.Terminal() {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				pr.tick()
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		pr.mu.Lock()
		defer pr.mu.Unlock()
		pr.clear()
		pr.hosts = nil
	}
}

// tick redraws the live line: every host quiet for more than a second.
func (pr *progress) tick() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	var parts []string
	for _, h := range pr.hosts {
		if d := pr.now().Sub(pr.since[h]); d > time.Second {
			parts = append(parts, fmt.Sprintf("%s %ds %s", h, int(d.Seconds()), pr.lastStep[h]))
		}
	}
	pr.clear()
	if len(parts) == 0 {
		return
	}
	line := "… " + strings.Join(parts, ", ")
	if w := pr.p.Width(); w > 1 && len([]rune(line)) >= w {
		line = string([]rune(line)[:w-2]) + "…"
	}
	pr.p.Printf("%s", pr.p.Styles.Dim.Render(line))
	pr.shown = true
}

func (pr *progress) clear() {
	if pr.shown {
		pr.p.Printf("\r\x1b[K")
		pr.shown = false
	}
}

// Event prints one event (what changed or failed; everything with -v).
func (pr *progress) Event(e playbook.Event) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.since[e.Host], pr.lastStep[e.Host] = pr.now(), "after "+e.Step
	if !pr.verbose && e.Status == "ok" {
		return
	}
	pr.clear()
	st := pr.p.Styles
	status := e.Status
	switch e.Status {
	case "changed", "warning":
		status = st.Warn.Render(fmt.Sprintf("%-11s", e.Status))
	case "failed", "unreachable":
		status = st.Bad.Render(fmt.Sprintf("%-11s", e.Status))
	case "ok", "settled":
		status = st.OK.Render(fmt.Sprintf("%-11s", e.Status))
	}
	el := ""
	if e.Elapsed > 0 {
		el = st.Dim.Render(fmt.Sprintf(" %.2fs", e.Elapsed.Seconds()))
	}
	pr.p.Printf("%-10s %-26s %s %s%s\n", e.Host, e.Step, status, e.Summary, el)
}
