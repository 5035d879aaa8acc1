package playbook

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/hostlock"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/render"
)

// Event is one line of progress.
type Event struct {
	Host    string
	Step    string
	Status  string // "ok", "changed", "failed", "settled", "warning"
	Summary string
	Elapsed time.Duration
	Diff    string
}

// Change is one thing a dry run found would change.
type Change struct {
	Step, Summary, Diff string
}

// Result is one host's outcome.
type Result struct {
	Host    string
	Changed int
	Changes []Change // dry run: what would change
	Err     error
}

// HostInput is what the runner needs to know of one host.
type HostInput struct {
	Target *Target
	// Check runs after facts are gathered (OS supported, interface carries
	// the address …); an error fails the host before anything changes.
	Check func(*facts.Facts) error
	// Render renders the host's files once its facts are known (the
	// keepalived it runs decides what they say), after Check; they become
	// Target.Files. nil: Target.Files as given.
	Render func(*facts.Facts) ([]render.File, error)
	// Paths are the paths Render gives: their state is gathered with the
	// facts, before Render runs.
	Paths []string
}

// FactsObserver is implemented by a Rollout that decides on the hosts'
// facts (VRRP transport, drained): the runner hands it each host's facts
// as soon as they are gathered.
type FactsObserver interface {
	Facts(host string, f *facts.Facts)
}

// Runner runs a Book on many hosts.
type Runner struct {
	Book     *Book
	Parallel int
	DryRun   bool
	// Lock takes the per-host lock (Locker's) before anything else; false:
	// no lock, as in plans.
	Lock   bool
	Locker hostlock.Locker
	// Event receives progress; it is called from several goroutines.
	Event func(Event)
	// Rollout, when set, is asked around each host's serial phase (see
	// Rollout); nil: hosts run their serial phase one after the other.
	Rollout Rollout
	// Extra facts to gather besides what the modules need.
	Needs facts.Request
	// Gathered, when set, is called once after phase 0 (every host locked
	// and read) with the facts of each host that has them, by name, before
	// anything changes: apply decides the clusters' membership and layout
	// on the records these facts carry, so reading the records costs no
	// round trip of its own. An error stops the run there: nothing
	// changes, every lock is given back, and every host's result carries
	// the error.
	Gathered func(ctx context.Context, f map[string]*facts.Facts) error
}

// Rollout is what the runner asks between hosts in phase 2, so that
// changing a daemon never takes a served VIP down on two hosts at once
// (pkg/rollout implements it for VRRP).
type Rollout interface {
	// Snapshot runs before a host's serial phase when that phase is going
	// to touch a daemon (handlers are pending, the host changed in phase 1,
	// or a serial step would act), so the rollout can record which VIPs
	// are served before the host's daemons restart and Settle can insist
	// on exactly those. A converged host costs nothing: no snapshot is
	// taken. It returns true when the host's group serves nothing at all
	// (no VIP held by any host, every host observed): the group's acting
	// hosts then run their serial phase at the same time (at most Parallel
	// at once) before any host of a serving group is touched.
	Snapshot(ctx context.Context, host string) (dark bool)
	// Group names a host's cluster.
	Group(host string) string
	// Settle runs after hosts' serial phases changed a daemon, before the
	// next host starts its own: it waits once for all of them (one, or
	// those of a dark group that started together) and returns the hosts
	// that did not settle, with why.
	Settle(ctx context.Context, hosts []string) map[string]error
}

type hostRun struct {
	idx     int // position in the runner's input
	in      HostInput
	res     Result
	pending map[string]bool   // handlers notified
	swaps   map[string][]Swap // handler → files it depends on
	// records are the handlers with a pending record on the host: "" when
	// this run wrote it, else when an earlier run did (from the facts).
	records map[string]string
	held    *hostlock.Held
	// facts and factsErr are phase 0's facts, parsed.
	facts    *facts.Facts
	factsErr error
}

// lockLost tells, before a step or handler starts, whether the host's lock
// lapsed. A lost lock never cancels what already runs: a step or handler
// that started finishes (a package install, a file swap with its check and
// restore, a restart) so the host is left as a whole step left it; what has
// not started does not start, and a handler that was due keeps its pending
// record on the host for the next run (issue 23: a lapse mid-apply
// abandoned installs and handlers half-way).
func (hr *hostRun) lockLost(what string) error {
	if hr.held == nil {
		return nil
	}
	select {
	case <-hr.held.Lost():
		return fmt.Errorf("%s: %w; %s not started", hr.res.Host, hostlock.ErrLockLost, what)
	default:
		return nil
	}
}

// Run converges every host. A failing host never stops the others.
func (r *Runner) Run(ctx context.Context, hosts []HostInput) []Result {
	runs := make([]*hostRun, len(hosts))
	for i, h := range hosts {
		runs[i] = &hostRun{idx: i, in: h, res: Result{Host: h.Target.Name}, pending: map[string]bool{}, swaps: map[string][]Swap{}, records: map[string]string{}}
	}
	needs := r.Needs
	for _, s := range r.Book.Steps {
		needs = needs.Merge(s.Module.Needs())
	}
	for _, h := range r.Book.Handlers {
		needs = needs.Merge(h.Module.Needs())
	}
	var paths []string
	for _, h := range hosts {
		for p := range h.Target.Files {
			paths = append(paths, p)
		}
		paths = append(paths, h.Paths...)
	}
	sort.Strings(paths)
	needs = needs.Merge(facts.Request{Paths: paths})

	// Phase 0: every host's lock, all or none (see hostlock.LockAll), with
	// the facts gathered under it in the same round trip; without a lock
	// the facts alone. Every host at once: --parallel bounds changes only.
	locked := map[*hostRun]hostlock.Got{}
	start := time.Now()
	if !r.Lock || r.DryRun {
		got := make([]hostlock.Got, len(runs))
		var g errgroup.Group
		g.SetLimit(fleet.ReadParallel(r.Parallel))
		for i, hr := range runs {
			g.Go(func() error {
				got[i].Out, got[i].Err = remote.Output(ctx, hr.in.Target.Conn, facts.Script(needs))
				return nil
			})
		}
		_ = g.Wait()
		for i, hr := range runs {
			locked[hr] = got[i]
		}
	} else {
		wants := make([]hostlock.Want, len(runs))
		for i, hr := range runs {
			wants[i] = hostlock.Want{Host: hr.in.Target.Name, Conn: hr.in.Target.Conn, Then: facts.Script(needs)}
		}
		for i, got := range r.Locker.LockAll(ctx, wants, fleet.ReadParallel(r.Parallel)) {
			locked[runs[i]] = got
		}
	}
	gathered := map[string]*facts.Facts{}
	for _, hr := range runs {
		hr.held = locked[hr].Held
		if got := locked[hr]; got.Err == nil {
			hr.facts, hr.factsErr = facts.Parse(got.Out)
			if hr.factsErr == nil {
				gathered[hr.res.Host] = hr.facts
			}
		}
	}
	if r.Gathered != nil {
		if err := r.Gathered(ctx, gathered); err != nil {
			out := make([]Result, len(runs))
			for i, hr := range runs {
				if hr.held != nil {
					hr.held.Release()
				}
				out[i] = Result{Host: hr.res.Host, Err: err}
			}
			return out
		}
	}

	// Phase 1, all hosts in parallel: facts, packages and files.
	var g errgroup.Group
	g.SetLimit(max(r.Parallel, 1))
	for _, hr := range runs {
		g.Go(func() error {
			hr.res.Err = r.prepare(hr, locked[hr], start)
			if hr.res.Err == nil {
				hr.res.Err = r.steps(ctx, hr, needs, false)
			}
			return nil
		})
	}
	_ = g.Wait()

	// Phase 2, one host at a time: handlers and services, then settle.
	// When a host's cluster serves nothing yet (Snapshot reports it dark),
	// nothing can be taken down there, and each first start of keepalived
	// waits a full master-down interval before it claims its VIP: the
	// cluster's hosts that will act run their serial phase together, and
	// settle together before any host of a serving cluster is touched.
	var mu sync.Mutex
	var unsettled []*hostRun
	settleAll := func() {
		// In inventory order, whatever order a batch finished in.
		sort.SliceStable(unsettled, func(i, j int) bool { return unsettled[i].idx < unsettled[j].idx })
		r.settleAll(ctx, unsettled)
		unsettled = nil
	}
	serialPhase := func(hr *hostRun) {
		before := hr.res.Changed
		err := r.handlers(ctx, hr)
		if err == nil {
			err = r.steps(ctx, hr, needs, true)
		}
		hr.res.Err = err
		if err == nil && !r.DryRun && hr.res.Changed > before && r.Rollout != nil {
			mu.Lock()
			unsettled = append(unsettled, hr)
			mu.Unlock()
		}
	}
	done := map[*hostRun]bool{}
	for i, hr := range runs {
		if hr.res.Err != nil || done[hr] {
			continue
		}
		dark := false
		if r.Rollout != nil && !r.DryRun && r.serialMayAct(ctx, hr) {
			dark = r.Rollout.Snapshot(ctx, hr.res.Host)
			if !dark && len(unsettled) > 0 {
				settleAll()
				dark = r.Rollout.Snapshot(ctx, hr.res.Host)
			}
		}
		if !dark {
			serialPhase(hr)
			settleAll()
			continue
		}
		batch := []*hostRun{hr}
		group := r.Rollout.Group(hr.res.Host)
		for _, x := range runs[i+1:] {
			if x.res.Err == nil && !done[x] && r.Rollout.Group(x.res.Host) == group && r.serialMayAct(ctx, x) {
				batch = append(batch, x)
			}
		}
		var bg errgroup.Group
		bg.SetLimit(max(r.Parallel, 1))
		for _, x := range batch {
			done[x] = true
			bg.Go(func() error { serialPhase(x); return nil })
		}
		_ = bg.Wait()
	}
	settleAll()
	out := make([]Result, len(runs))
	for i, hr := range runs {
		if hr.held != nil {
			hr.held.Release()
			select {
			case <-hr.held.Lost():
				if hr.res.Err != nil && !errors.Is(hr.res.Err, hostlock.ErrLockLost) {
					hr.res.Err = fmt.Errorf("%w (%s: %w)", hr.res.Err, hr.res.Host, hostlock.ErrLockLost)
				}
			default:
			}
		}
		out[i] = hr.res
	}
	return out
}

// settleAll waits once for the hosts whose serial phase changed a daemon.
func (r *Runner) settleAll(ctx context.Context, hrs []*hostRun) {
	if len(hrs) == 0 {
		return
	}
	start := time.Now()
	names := make([]string, len(hrs))
	for i, hr := range hrs {
		names[i] = hr.res.Host
	}
	errs := r.Rollout.Settle(ctx, names)
	for _, hr := range hrs {
		if err := errs[hr.res.Host]; err != nil {
			hr.res.Err = err
			continue
		}
		r.emit(Event{Host: hr.res.Host, Step: "vrrp", Status: "settled", Summary: "every VIP on exactly one host", Elapsed: time.Since(start)})
	}
}

// serialMayAct tells whether the host's serial phase may change anything:
// handlers are pending, phase 1 changed the host (facts are stale then), or
// a serial step's plan has operations. Any doubt (an error) counts as "may
// act".
func (r *Runner) serialMayAct(ctx context.Context, hr *hostRun) bool {
	t := hr.in.Target
	if len(hr.pending) > 0 || t.Touched {
		return true
	}
	for _, s := range r.Book.Steps {
		if sm, ok := s.Module.(serial); !ok || !sm.Serial() {
			continue
		}
		if p, err := s.Module.Plan(ctx, t); err != nil || len(p.Ops) > 0 {
			return true
		}
	}
	return false
}

// act decides what m needs on the host, then runs it, or in a dry run
// only describes it.
func (r *Runner) act(ctx context.Context, t *Target, m Module, notify []string) (Outcome, error) {
	p, err := m.Plan(ctx, t)
	if err != nil {
		return Outcome{}, err
	}
	if r.DryRun {
		return preview(ctx, p)
	}
	o, err := execute(ctx, t, p, notify)
	if o.Changed {
		t.Touched = true
	}
	return o, err
}

func (r *Runner) emit(e Event) {
	if r.Event != nil {
		r.Event(e)
	}
}

// prepare takes in the host's lock and facts from phase 0 (got, started
// at start) and checks them.
func (r *Runner) prepare(hr *hostRun, got hostlock.Got, start time.Time) error {
	t := hr.in.Target
	if got.Err != nil && got.Held == nil && r.Lock && !r.DryRun {
		return got.Err // the lock was refused, or never reached the host
	}
	if got.Err != nil {
		return fmt.Errorf("%s: gather facts: %w", t.Name, got.Err)
	}
	if hr.factsErr != nil {
		return fmt.Errorf("%s: %w", t.Name, hr.factsErr)
	}
	f := hr.facts
	t.Facts = f
	if fo, ok := r.Rollout.(FactsObserver); ok {
		fo.Facts(t.Name, f)
	}
	if hr.in.Check != nil {
		if err := hr.in.Check(f); err != nil {
			return err
		}
	}
	if hr.in.Render != nil {
		files, err := hr.in.Render(f)
		if err != nil {
			return err
		}
		t.Files = make(map[string]render.File, len(files))
		for _, x := range files {
			t.Files[x.Path] = x
		}
	}
	// Handlers an earlier run notified and never ran: the files look up to
	// date, but the daemon has not loaded them.
	known := map[string]bool{}
	for _, h := range r.Book.Handlers {
		known[h.Name] = true
		if since, ok := f.Pending[h.Name]; ok {
			hr.pending[h.Name] = true
			if since == "" {
				since = "an unknown time"
			}
			hr.records[h.Name] = since
		}
	}
	// A record left by a run of another playbook: this one cannot run it,
	// and it must not be dropped silently (a daemon may still run an old
	// file), so it stays and the operator is told what clears it.
	for _, name := range slices.Sorted(maps.Keys(f.Pending)) {
		if !known[name] {
			r.emit(Event{Host: t.Name, Step: "handler " + name, Status: "warning", Summary: fmt.Sprintf(
				"pending since %s, but this playbook has no handler %q: apply the playbook that recorded it, or do what it does by hand and remove %s",
				f.Pending[name], name, facts.PendingFile(name))})
		}
	}
	r.emit(Event{Host: t.Name, Step: "facts", Status: "ok", Summary: fmt.Sprintf("%s, keepalived %s, arping %s", f.OS.PrettyName, orNone(f.KeepalivedVersion), orNone(f.Arping)), Elapsed: time.Since(start)})
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// steps runs the parallel-phase steps (serialPhase false) or the serial ones.
func (r *Runner) steps(ctx context.Context, hr *hostRun, needs facts.Request, serialPhase bool) error {
	t := hr.in.Target
	for _, s := range r.Book.Steps {
		sm, ok := s.Module.(serial)
		if (ok && sm.Serial()) != serialPhase {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", t.Name, err)
		}
		if err := hr.lockLost(fmt.Sprintf("step %q and what follows", s.Name)); err != nil {
			return err
		}
		if q, ok := s.Module.(absent); ok && q.Absent(t) {
			continue
		}
		start := time.Now()
		o, err := r.act(ctx, t, s.Module, s.Notify)
		if o.Recorded {
			for _, n := range s.Notify {
				hr.pending[n] = true
				if _, ok := hr.records[n]; !ok {
					hr.records[n] = ""
				}
			}
		}
		ev := Event{Host: t.Name, Step: s.Name, Summary: o.Summary, Elapsed: time.Since(start), Diff: o.Diff}
		if err != nil {
			ev.Status, ev.Summary = "failed", firstLine(err.Error())
			r.emit(ev)
			return fmt.Errorf("%s: step %q: %w", t.Name, s.Name, err)
		}
		ev.Status = "ok"
		if o.Changed {
			ev.Status = "changed"
			hr.res.Changed++
			hr.res.Changes = append(hr.res.Changes, Change{Step: s.Name, Summary: o.Summary, Diff: o.Diff})
			for _, n := range s.Notify {
				hr.pending[n] = true
				hr.swaps[n] = append(hr.swaps[n], o.Swaps...)
			}
		}
		r.emit(ev)
		if o.Changed && o.Refresh && !r.DryRun {
			f, err := facts.Gather(ctx, t.Conn, needs)
			if err != nil {
				return fmt.Errorf("%s: %w", t.Name, err)
			}
			t.Facts = f
		}
	}
	return nil
}

// RestoreTimeout bounds putting files back after a failed handler. Restores
// run under a context that Ctrl-C does not cancel: an interrupt must not
// leave a daemon failed on a file it cannot load.
const RestoreTimeout = 60 * time.Second

// handlers runs the notified handlers in playbook order. When one fails, the
// files that notified it are put back and it runs once more, so the service
// returns on its previous configuration; the host is reported failed. A
// handler's pending record is cleared once it ran (or once the service runs
// again on the restored files the record was about).
func (r *Runner) handlers(ctx context.Context, hr *hostRun) error {
	t := hr.in.Target
	for _, h := range r.Book.Handlers {
		if !hr.pending[h.Name] {
			continue
		}
		since, recorded := hr.records[h.Name]
		if err := hr.lockLost(fmt.Sprintf("handler %q (it stays pending on the host: the next apply runs it)", h.Name)); err != nil {
			return err
		}
		start := time.Now()
		o, err := r.act(ctx, t, h.Module, nil)
		ev := Event{Host: t.Name, Step: "handler " + h.Name, Summary: o.Summary, Elapsed: time.Since(start)}
		if since != "" {
			ev.Summary += fmt.Sprintf(" (pending since %s from an interrupted run)", since)
		}
		if err == nil && recorded && !r.DryRun {
			if _, cerr := run(ctx, t, ClearPendingCommand(h.Name)); cerr != nil {
				err = fmt.Errorf("it ran, but its pending record stays (the next run runs it again): %w", cerr)
			}
		}
		if err == nil {
			ev.Status = "changed"
			hr.res.Changed++
			if !r.DryRun {
				t.Touched = true
			}
			if r.DryRun {
				summary := o.Summary
				if since != "" {
					summary = fmt.Sprintf("would run handler %s: pending since %s from an interrupted run", h.Name, since)
				}
				hr.res.Changes = append(hr.res.Changes, Change{Step: "handler " + h.Name, Summary: summary})
			}
			r.emit(ev)
			continue
		}
		ev.Status, ev.Summary = "failed", firstLine(err.Error())
		r.emit(ev)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RestoreTimeout)
		defer cancel()
		var restored []string
		swaps := hr.swaps[h.Name]
		for _, s := range swaps {
			if _, rerr := run(rctx, t, RestoreCommand(s)); rerr == nil {
				restored = append(restored, s.Path)
			}
		}
		if len(restored) == 0 {
			return fmt.Errorf("%s: handler %q: %w", t.Name, h.Name, err)
		}
		_, again := r.act(rctx, t, h.Module, nil)
		state := "and it is running again on the previous files"
		if again != nil {
			state = "but it still fails: " + firstLine(again.Error())
		} else if len(restored) == len(swaps) && recorded && since == "" {
			// The daemon runs what is on disk again: nothing is pending.
			_, _ = run(rctx, t, ClearPendingCommand(h.Name))
		}
		return fmt.Errorf("%s: handler %q: %w\nrestored %s, %s", t.Name, h.Name, err, strings.Join(restored, ", "), state)
	}
	return nil
}

// PendingDrift is status's view of pending handlers: the files are what
// hactl wrote, but a daemon has not loaded them (the next apply runs the
// handler).
func PendingDrift(f *facts.Facts) []string {
	var out []string
	for _, h := range slices.Sorted(maps.Keys(f.Pending)) {
		out = append(out, fmt.Sprintf("handler %s pending since %s (an interrupted run; the next apply of the playbook that defines it runs it)", h, f.Pending[h]))
	}
	return out
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
