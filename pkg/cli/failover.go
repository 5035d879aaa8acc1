package cli

import (
	"context"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/hactl/hactl/pkg/failover"
	"github.com/hactl/hactl/pkg/ops"
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
		Use:   "failover-test -i FILE [--node NAME] [--mode " + strings.Join(failover.ModeNames(), "|") + "] [--report FILE.html]",
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
  drain       hactl drain then undrain (drain file -N, -254, 0); passes only
              with 0 failed requests; bound: 3 × advert_int + skew + advert_int
  all         the five, in that order

Drift is measured from the moment the disruptive command is issued to the
first sample showing the VIP on the first backup alone. Ctrl-C stops the test
and restores; a second Ctrl-C abandons restoration and lists what is left.`,
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, _ []string) error { return runFailover(ctx, g, o) },
	}
	names := failover.ModeNames()
	f := cmd.Flags()
	f.StringVar(&o.Node, "node", "", "disrupt only this node (default: every master in turn)")
	f.StringVar(&o.Mode, "mode", string(failover.ModeStop), strings.Join(names[:len(names)-1], ", ")+" or "+names[len(names)-1])
	f.StringVar(&o.Report, "report", "", "also write the run as a self-contained HTML page (timeline per scenario) to `FILE.html`")
	addConnFlags(cmd, &o.Conn)
	addLimitFlag(cmd, &o.Limit)
	cmd.Flag("limit").Usage = "test only the clusters of these hosts or clusters (a failover test needs the whole cluster)"
	return cmd
}

func runFailover(ctx context.Context, g *Globals, o *FailoverOptions) error {
	modes, err := failover.ParseModes(o.Mode)
	if err != nil {
		return g.exit(ops.UsageError(err))
	}
	s, err := g.load(ctx)
	if err != nil {
		return err
	}
	progress, say := g.view.FailoverProgress()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	abort := make(chan struct{})
	// This command counts interrupts itself: the second one must abort
	// restoration, which runs on a fresh context.
	stopSignals := watchSignals(g.interrupts.take(), cancel, abort, func(first bool) {
		if first {
			say(true, "interrupted: stopping and restoring the fleet (Ctrl-C again abandons restoration)")
		} else {
			say(false, "second interrupt: abandoning restoration")
		}
	})
	defer stopSignals()
	res, err := ops.FailoverTest(runCtx, s, ops.FailoverOptions{Conn: o.Conn, Node: o.Node, Modes: modes, Limit: o.Limit,
		Report: o.Report, Abort: abort, Progress: progress})
	if err != nil {
		return g.exit(err)
	}
	if err := g.view.Failover(res); err != nil {
		return g.exit(err)
	}
	switch {
	case res.Refused != nil, res.Err == nil && !res.Report.OK():
		// The view said why.
		return g.exit(errReported)
	}
	// Interrupted, not restored, or the fleet degraded between scenarios.
	return g.exit(res.Err)
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
