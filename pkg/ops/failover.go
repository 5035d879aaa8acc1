package ops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hactl/hactl/pkg/failover"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/hostlock"
	"github.com/hactl/hactl/pkg/report"
)

// FailoverOptions are `hactl failover-test`.
type FailoverOptions struct {
	Conn  ConnOptions
	Node  string
	Modes []failover.Mode
	Limit []string
	// Report is a file to draw the run into as one HTML page ("": none).
	Report string
	// Abort is closed to abandon restoring the fleet (the second
	// interrupt); the first is ctx's cancellation.
	Abort <-chan struct{}
	// Progress receives every step of the engine; nil discards them.
	Progress func(failover.Step)
}

// FailoverResult is a failover test: either refused before any change
// (Refused, with the fleet's state in Preflight) or run (Report).
type FailoverResult struct {
	Report    failover.Report
	Preflight *failover.Status
	Refused   error
	// ReportErr: the --report page could not be written.
	ReportErr error
	// Err: interrupted, not restored, the fleet degraded between
	// scenarios, or the page could not be written. A scenario that
	// failed is in Report, not here.
	Err error
}

// FailoverTest disrupts each selected master in turn and measures where
// its VIP goes; it starts only from a healthy fleet and restores it.
func FailoverTest(ctx context.Context, s *Session, o FailoverOptions) (*FailoverResult, error) {
	limited, err := limitLayout(s.Inv, s.Layout, o.Limit)
	if err != nil {
		return nil, err
	}
	scenarios, err := failover.Plan(limited, o.Node, o.Modes)
	if err != nil {
		return nil, UsageError(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fl, layout, err := s.observe(ctx, o.Conn, layoutHosts(s.Inv, limited))
	if err != nil {
		return nil, err
	}
	defer fl.Close()
	// The same host lock as apply: a failover test stops daemons that an
	// apply may be restarting, and the other way round. A lapsed lock stops
	// the run, which then restores.
	release, err := lockFleet(ctx, fl, s.deps.Locker, cancel)
	if err != nil {
		return nil, FailedError(err)
	}
	defer release()
	run, err := failover.New(failover.Options{
		Layout: layout, Fleet: fl, Clock: s.deps.Clock, Prober: s.deps.Prober, Abort: o.Abort, Progress: o.Progress,
	})
	if err != nil {
		return nil, FailedError(err)
	}
	if st, err := run.Preflight(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, FailedError(fmt.Errorf("interrupted before any change: %w", ctx.Err()))
		}
		return &FailoverResult{Report: failover.Report{Scenarios: []failover.Result{}}, Preflight: &st, Refused: err}, nil
	}
	res := &FailoverResult{}
	res.Report, res.Err = run.Run(ctx, scenarios)
	if o.Report != "" {
		// Also after a failed or interrupted run: that is when the page
		// is most wanted.
		if res.ReportErr = s.writeReport(o.Report, res.Report); res.ReportErr != nil && res.Err == nil {
			res.Err = res.ReportErr
		}
	}
	return res, nil
}

// writeReport draws rep as an HTML page into path.
func (s *Session) writeReport(path string, rep failover.Report) error {
	now := time.Now()
	if s.deps.Clock != nil {
		now = s.deps.Clock.Now()
	}
	page, err := report.HTML(rep, report.Info{Inventory: s.Path, Generated: now})
	if err != nil {
		return err
	}
	return report.WriteFile(path, page)
}

// lockFleet takes the host lock on every reachable host of fl, all or none
// in one global order (hostlock.LockAll: of two runs that want the same
// hosts exactly one proceeds); any refusal releases what it took and fails
// before anything changes. A lock whose heartbeat lapses calls lost (the
// run stops and restores).
func lockFleet(ctx context.Context, fl *fleet.Fleet, lk hostlock.Locker, lost func()) (func(), error) {
	if lk.Command == "" {
		lk.Command = "failover-test"
	}
	var wants []hostlock.Want
	for _, h := range fl.Hosts {
		if h.Conn != nil {
			wants = append(wants, hostlock.Want{Host: h.Name(), Conn: h.Conn})
		}
	}
	got := lk.LockAll(ctx, wants, len(wants))
	var held []*hostlock.Held
	var errs, notTaken []error
	for _, g := range got {
		if errors.Is(g.Err, hostlock.ErrNotTaken) {
			// Given back because of another host: that host's error says why.
			notTaken = append(notTaken, g.Err)
			continue
		}
		if g.Err != nil {
			errs = append(errs, g.Err)
			continue
		}
		held = append(held, g.Held)
		go func() {
			select {
			case <-g.Held.Lost():
				lost()
			case <-ctx.Done():
			}
		}()
	}
	release := func() {
		for _, x := range held {
			x.Release()
		}
	}
	if len(errs) == 0 {
		errs = notTaken
	}
	if len(errs) > 0 {
		release()
		return nil, errors.Join(errs...)
	}
	return release, nil
}
