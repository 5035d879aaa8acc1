package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/spf13/cobra"

	"github.com/hactl/hactl/pkg/failover"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/hostlock"
	"github.com/hactl/hactl/pkg/report"
	"github.com/hactl/hactl/pkg/ui"
)

// FailoverOptions is `hactl failover-test`.
type FailoverOptions struct {
	Conn  ConnOptions
	Node  string
	Mode  string
	Limit []string
	// Report is --report FILE.html: the run drawn as one page (pkg/report).
	Report string
}

func newFailoverTest(ctx context.Context, g *Globals) *cobra.Command {
	o := &FailoverOptions{}
	cmd := &cobra.Command{
		Use:   "failover-test -i FILE [--node NAME] [--mode stop|kill|nginx|nginx-dead|drain|all] [--report FILE.html]",
		Short: "Disrupt each master in turn and measure where its VIP goes, how fast, and what HTTP clients saw",
		Long: `failover-test starts from a healthy fleet (every VIP on its master only, every
host reachable with keepalived and nginx active; otherwise it refuses), then for
each selected node disrupts it, watches its VIP over the open SSH connections
and probes http://VIP/hactl-health from this machine every 100 ms, and puts
everything back.

Modes:
  stop        systemctl stop keepalived (graceful: priority-0 advert); bound: skew
  kill        freeze then SIGKILL keepalived (crash); bound: 3 × advert_int + skew;
              systemd restarts it (hactl's drop-in) and the VIP comes home
  nginx       systemctl stop nginx; the check script restarts it; nginx's stop
              event moves the VIP meanwhile and it comes home; bound (nginx
              back): fall × interval
  nginx-dead  nginx masked (--runtime) and stopped; the VIP moves on nginx's
              stop event; bound: skew (the clock starts after the mask)
  drain       hactl drain then undrain (drain file -253, -254, 0); passes only
              with 0 failed requests; bound: 3 × advert_int + skew + advert_int
  all         the five, in that order

Drift is measured from the moment the disruptive command is issued to the
first sample showing the VIP on the first backup alone. Ctrl-C stops the test
and restores; a second Ctrl-C abandons restoration and lists what is left.`,
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, _ []string) error { return runFailover(ctx, g, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.Node, "node", "", "disrupt only this node (default: every master in turn)")
	f.StringVar(&o.Mode, "mode", string(failover.ModeStop), "stop, kill, nginx, nginx-dead, drain or all")
	f.StringVar(&o.Report, "report", "", "also write the run as a self-contained HTML page (timeline per scenario) to `FILE.html`")
	o.Conn.addFlags(cmd)
	addLimitFlag(cmd, &o.Limit)
	cmd.Flag("limit").Usage = "test only the clusters of these hosts or clusters (a failover test needs the whole cluster)"
	registerCompletions(cmd, g)
	return cmd
}

func runFailover(ctx context.Context, g *Globals, o *FailoverOptions) error {
	modes, err := failover.ParseModes(o.Mode)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	l, err := g.load(ctx)
	if err != nil {
		return err
	}
	if len(o.Limit) > 0 {
		sel, err := selectHosts(l, o.Limit)
		if err != nil {
			return err
		}
		l = &Loaded{Inv: l.Inv, Layout: layoutOf(l.Layout, clusterHosts(l.Inv, sel), l.Inv)}
	}
	scenarios, err := failover.Plan(l.Layout, o.Node, modes)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}

	// Stderr is shared by the engine's progress and the signal watcher.
	var mu sync.Mutex
	errp := g.stderr()
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		errp.Printf(format, args...)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	abort := make(chan struct{})
	// This command counts interrupts itself: the second one must abort
	// restoration, which runs on a fresh context.
	stopSignals := watchSignals(g.interrupts.take(), cancel, abort, func(first bool) {
		if first {
			say("%s\n", errp.Styles.Warn.Render("interrupted: stopping and restoring the fleet (Ctrl-C again abandons restoration)"))
		} else {
			say("%s\n", errp.Styles.Bad.Render("second interrupt: abandoning restoration"))
		}
	})
	defer stopSignals()

	fl, err := g.connect(runCtx, l, o.Conn, layoutHosts(l))
	if err != nil {
		return err
	}
	defer fl.Close()
	if l, err = recordedLayout(runCtx, g, l, fl); err != nil {
		return err
	}

	// The same host lock as apply: a failover test stops daemons that an
	// apply may be restarting, and the other way round.
	release, err := lockFleet(runCtx, fl, g.Deps.Locker, cancel)
	if err != nil {
		return &ExitError{Code: ExitFailed, Err: err}
	}
	defer release()

	run, err := failover.New(failover.Options{
		Layout: l.Layout, Fleet: fl, Clock: g.Deps.Clock, Prober: g.Deps.Prober, Abort: abort,
		Progress: func(s failover.Step) { say("%s\n", s) },
	})
	if err != nil {
		return &ExitError{Code: ExitFailed, Err: err}
	}

	if st, err := run.Preflight(runCtx); err != nil {
		if runCtx.Err() != nil {
			return &ExitError{Code: ExitFailed, Err: fmt.Errorf("interrupted before any change: %w", runCtx.Err())}
		}
		return refuse(g, st, err)
	}

	rep, runErr := run.Run(runCtx, scenarios)
	if o.Report != "" {
		if err := writeFailoverReport(g, o.Report, rep); err != nil {
			say("%s\n", errp.Styles.Bad.Render("hactl: "+err.Error()))
			if runErr == nil {
				runErr = err
			}
		}
	}
	if g.Output == "json" {
		doc := failoverJSON{Envelope: ui.Result(runErr), Report: rep}
		if runErr == nil && !rep.OK() {
			doc.Envelope.OK = false
			doc.Envelope.Error = "a scenario failed"
		}
		if err := g.jsonOut(doc); err != nil {
			return &ExitError{Code: ExitFailed, Err: err}
		}
	} else {
		printFailover(g.stdout(), rep)
	}
	if rep.Aborted || len(rep.Left) > 0 {
		say("%s\n", errp.Styles.Bad.Render("hactl: the fleet is NOT restored; left as it is:"))
		for _, s := range rep.Left {
			say("  - %s\n", s)
		}
	}
	switch {
	case runErr != nil:
		// Interrupted, not restored, or the fleet degraded between scenarios.
		return &ExitError{Code: ExitFailed, Err: runErr}
	case !rep.OK():
		return &ExitError{Code: ExitFailed, Err: errReported}
	}
	return nil
}

// watchSignals counts interrupts: the first cancels the run (the engine then
// restores), the second closes abort. It returns a function that stops it.
func watchSignals(in <-chan os.Signal, cancel context.CancelFunc, abort chan struct{}, tell func(first bool)) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n := 0
		for {
			select {
			case <-done:
				return
			case <-in:
				n++
				tell(n == 1)
				if n == 1 {
					cancel()
				} else {
					close(abort)
					return
				}
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// failoverJSON is the --output json document: {"scenarios":[…]} plus, when
// something went wrong, "left", "interrupted", "error", or "preflight".
type failoverJSON struct {
	ui.Envelope
	failover.Report
	Preflight *failover.Status `json:"preflight,omitempty"`
}

// refuse reports a fleet that is not healthy enough to test.
func refuse(g *Globals, st failover.Status, err error) error {
	if g.Output == "json" {
		doc := failoverJSON{Envelope: ui.Result(err), Report: failover.Report{Scenarios: []failover.Result{}}, Preflight: &st}
		if jerr := g.jsonOut(doc); jerr != nil {
			return &ExitError{Code: ExitFailed, Err: jerr}
		}
		return &ExitError{Code: ExitFailed, Err: errReported}
	}
	p := g.stdout()
	printVIPs(p, st.VIPs)
	p.Printf("%s the fleet must be healthy before a failover test:\n", p.Styles.Bad.Render("refusing:"))
	for _, r := range st.Reasons() {
		p.Printf("  - %s\n", r)
	}
	return &ExitError{Code: ExitFailed, Err: errReported}
}

func printFailover(p *ui.Printer, rep failover.Report) {
	rows := make([][]string, 0, len(rep.Scenarios))
	for _, s := range rep.Scenarios {
		rows = append(rows, report.SummaryCells(s))
	}
	p.Table([]string{"NODE", "MODE", "VIP", "MOVED TO", "DRIFT", "BOUND", "HTTP ERR", "MAX GAP", "FAILBACK", "PASS"},
		rows, func(row, col int) *lipgloss.Style {
			if col != 9 {
				return nil
			}
			if rep.Scenarios[row].Pass {
				return &p.Styles.OK
			}
			return &p.Styles.Bad
		})
	for _, s := range rep.Scenarios {
		if s.Error != "" {
			p.Printf("%s %s %s: %s\n", p.Styles.Bad.Render("✗"), s.Node, s.Mode, s.Error)
		}
		for _, n := range s.Notes {
			p.Printf("%s\n", p.Styles.Dim.Render(fmt.Sprintf("  %s %s: %s", s.Node, s.Mode, n)))
		}
	}
	if rep.Interrupted {
		p.Printf("%s\n", p.Styles.Warn.Render("interrupted: remaining scenarios were not run"))
	}
}

// writeFailoverReport draws rep as --report FILE.html, also after a failed or
// interrupted run: that is when the page is most wanted.
func writeFailoverReport(g *Globals, path string, rep failover.Report) error {
	now := time.Now()
	if g.Deps.Clock != nil {
		now = g.Deps.Clock.Now()
	}
	page, err := report.HTML(rep, report.Info{Inventory: g.Inventory, Generated: now})
	if err != nil {
		return err
	}
	return report.WriteFile(path, page)
}

// lockFleet takes the host lock on every reachable host of fl, in parallel;
// any refusal releases what it took and fails before anything changes. A
// lock whose heartbeat lapses calls lost (the run stops and restores).
func lockFleet(ctx context.Context, fl *fleet.Fleet, lk hostlock.Locker, lost func()) (func(), error) {
	if lk.Command == "" {
		lk.Command = "failover-test"
	}
	var mu sync.Mutex
	var held []*hostlock.Held
	var errs []error
	var wg sync.WaitGroup
	for _, h := range fl.Hosts {
		if h.Conn == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			x, err := lk.Lock(ctx, h.Conn, h.Name())
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			held = append(held, x)
			go func() {
				select {
				case <-x.Lost():
					lost()
				case <-ctx.Done():
				}
			}()
		}()
	}
	wg.Wait()
	release := func() {
		for _, x := range held {
			x.Release()
		}
	}
	if len(errs) > 0 {
		release()
		return nil, errors.Join(errs...)
	}
	return release, nil
}
