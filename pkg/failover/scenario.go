package failover

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hactl/hactl/pkg/drain"
	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/vrrp"
)

// The units a scenario disrupts.
const (
	keepalivedUnit remote.Unit = "keepalived"
	nginxUnit      remote.Unit = "nginx"
)

// The commands the scenarios send, exactly as sent (tests assert them);
// every one is built by remote.Unit, so the unit names are quoted.

// CmdStopKeepalived is a graceful stop: keepalived sends a priority-0 advert.
// --no-block: systemctl returns once the stop job is queued, not when
// keepalived has exited about a second later; the backup takes over during
// that second, and sampling must already be running.
func CmdStopKeepalived() string { return keepalivedUnit.StopNoBlock() }

// CmdStartKeepalived resets first: hactl's drop-in limits keepalived to 5
// starts a minute (a crash loop must not flap the VIP), and a test's own
// starts must neither hit that limit nor use up the budget of the restart
// after a crash.
func CmdStartKeepalived() string { return keepalivedUnit.ResetFailed() + "; " + keepalivedUnit.Start() }

// CmdFreezeKeepalived: a plain SIGKILL is not always a crash: keepalived's
// processes do not die at the same instant and one may still send the
// priority-0 advert (lab-facts.md). Frozen processes send nothing, so freeze
// all first. reset-failed gives systemd's automatic restart after the crash
// a fresh start budget.
func CmdFreezeKeepalived() string {
	return keepalivedUnit.ResetFailed() + "; " + keepalivedUnit.Kill("SIGSTOP")
}

// CmdKillKeepalived crashes the frozen processes.
func CmdKillKeepalived() string { return keepalivedUnit.Kill("SIGKILL") }

// CmdThawKeepalived undoes a freeze whose kill never happened; harmless (and
// allowed to fail) when nothing is left to continue.
func CmdThawKeepalived() string { return keepalivedUnit.Kill("SIGCONT") }

// CmdStopNginx and CmdStartNginx stop nginx and start it again.
func CmdStopNginx() string  { return nginxUnit.Stop() }
func CmdStartNginx() string { return nginxUnit.ResetFailed() + "; " + nginxUnit.Start() }

// CmdMaskNginx masks for this boot only: a test that dies half-way never
// leaves nginx masked for good.
func CmdMaskNginx() string   { return nginxUnit.MaskRuntime() }
func CmdUnmaskNginx() string { return nginxUnit.UnmaskRuntime() }

// action is one way back from a disruption, recorded before the disruptive
// command is sent (a command whose answer is lost may still have acted).
type action struct {
	desc string
	cmds []string
	// tolerate lists commands whose failure does not matter.
	tolerate map[string]bool
}

// undo is the stack of actions a scenario still owes the fleet.
type undo struct{ stack []action }

func (u *undo) push(a action) { u.stack = append(u.stack, a) }
func (u *undo) pop()          { u.stack = u.stack[:len(u.stack)-1] }

// outcome is how a scenario's restoration ended.
type outcome struct {
	left    []string
	aborted bool
}

// scen is one running scenario.
type scen struct {
	r      *Runner
	sc     Scenario
	in     *vrrp.Instance
	node   *fleet.Host
	backup string
	w      *watch
	u      undo
	res    *Result
	margin time.Duration
	bound  time.Duration
	check  struct{ interval, fall int }
	rec    recorder // events for the timeline
	// t1 is when the fail-back began (zero: none): probes from then on
	// are the fail-back's.
	t1 time.Time
}

// addrs names the instance's addresses for progress lines: "198.18.0.201",
// or "198.18.0.201 + 2001:db8:18::201" for a dual-stack pair.
func (s *scen) addrs() string {
	var l []string
	for _, a := range s.in.Addrs() {
		l = append(l, a.Addr().String())
	}
	return strings.Join(l, " + ")
}

func (s *scen) step(format string, args ...any) {
	s.r.o.Progress(Step{Node: s.sc.Node, Mode: s.sc.Mode, Msg: fmt.Sprintf(format, args...)})
}

func (s *scen) note(format string, args ...any) {
	s.res.Notes = append(s.res.Notes, fmt.Sprintf(format, args...))
}

// fail records the first reason the scenario fails.
func (s *scen) fail(format string, args ...any) {
	if s.res.Error == "" {
		s.res.Error = fmt.Sprintf(format, args...)
	} else {
		s.note(format, args...)
	}
}

// run sends cmd to the node; a transport error or a non-zero exit is an error.
func (s *scen) run(ctx context.Context, cmd string) error {
	return runCmd(ctx, s.node, cmd)
}

func runCmd(ctx context.Context, h *fleet.Host, cmd string) error {
	if h.Conn == nil {
		return fmt.Errorf("%s: %q: not connected: %w", h.Name(), cmd, h.Err)
	}
	if _, err := remote.Output(ctx, h.Conn, cmd); err != nil {
		return fmt.Errorf("%s: %q: %w", h.Name(), cmd, err)
	}
	return nil
}

// runOne runs one scenario and its restoration.
func (r *Runner) runOne(ctx context.Context, sc Scenario) (Result, outcome) {
	in := r.o.Layout.MasterOf(sc.Node)
	res := Result{Node: sc.Node, Mode: sc.Mode}
	node := r.o.Fleet.Get(sc.Node)
	if in == nil || node == nil || node.Cluster == nil || len(in.Members) < 2 {
		res.Error = fmt.Sprintf("%s: not a master with a backup in this fleet", sc.Node)
		return res, r.restore(ctx, nil, sc)
	}
	res.VIP = in.VIP.String()
	if in.VIP6.IsValid() {
		res.VIP6 = in.VIP6.String()
	}
	s := &scen{r: r, sc: sc, in: in, node: node, backup: in.FirstBackup().Host, res: &res}
	s.check.interval, s.check.fall = node.Cluster.HealthCheck.Interval, node.Cluster.HealthCheck.Fall
	s.bound, s.margin = r.Bound(in, s.check.interval, s.check.fall, sc.Mode)
	res.BoundS, res.MarginS = secs(s.bound), secs(s.margin)

	var hosts []*fleet.Host
	for _, h := range r.o.Fleet.Hosts {
		if h.Cluster != nil && h.Cluster.Name == in.Cluster {
			hosts = append(hosts, h)
		}
	}
	probeCtx, cancelProbes := context.WithCancel(ctx)
	defer cancelProbes()
	// Every address of the instance is watched and probed: a dual-stack
	// pair must move, and answer, together.
	var urls []string
	for _, a := range in.Addrs() {
		urls = append(urls, ProbeURL(a.Addr(), node.Cluster.Nginx.Listen, HealthPath))
	}
	s.w = &watch{
		r: r, hosts: hosts, node: node, one: &vrrp.Layout{Instances: []*vrrp.Instance{in}}, urls: urls,
		settle: r.settle(in), probeCtx: probeCtx, probeCh: make(chan probeRec, 64),
	}

	var err error
	switch sc.Mode {
	case ModeStop:
		err = s.stop(ctx)
	case ModeKill:
		err = s.kill(ctx)
	case ModeNginx:
		err = s.nginx(ctx)
	case ModeNginxDead:
		err = s.nginxDead(ctx)
	case ModeDrain:
		err = s.drain(ctx)
	default:
		err = fmt.Errorf("%w %q", ErrUnknownMode, sc.Mode)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			s.fail("interrupted: %v", err)
		} else {
			s.fail("%v", err)
		}
	}
	// The probes still in flight are waited for (each bounded by the
	// prober's timeout), not cancelled: a probe cut short by the scenario's
	// own end ("context canceled") is no failed request of the site (a
	// dual-stack drain in the e2e tests failed on one).
	var gap time.Duration
	probes := s.w.finish()
	res.HTTPRequests, res.HTTPFailed, gap, res.HTTPNodes = httpStatsPerURL(probes, len(s.w.urls))
	res.HTTPGapS = secs(gap)
	res.Timeline = s.timeline()
	if !s.t1.IsZero() {
		var back []probeRec
		for _, p := range probes {
			if !p.sent.Before(s.t1) {
				back = append(back, p)
			}
		}
		_, res.FailbackHTTPFailed, gap, _ = httpStatsPerURL(back, len(s.w.urls))
		res.FailbackHTTPGapS = secs(gap)
	}
	if sc.Mode == ModeDrain && res.HTTPFailed > 0 {
		s.fail("%d of %d requests failed: a drain must cost none", res.HTTPFailed, res.HTTPRequests)
	}
	if s.w.split {
		s.fail("VIP on two hosts for %s (longer than the %s settle window)", s.w.splitSpan.longest, s.w.settle)
	} else if s.w.splitSpan.longest > 0 {
		s.note("VIP briefly on two hosts (%s, within the %s settle window)", s.w.splitSpan.longest, s.w.settle)
	}
	if s.w.apartLong != "" {
		s.fail("dual-stack pair apart for %s (longer than the %s settle window): %s", s.w.apartSpan.longest, s.w.settle, s.w.apartLong)
	} else if s.w.apartSpan.longest > 0 {
		s.note("dual-stack pair briefly apart (%s, within the %s settle window)", s.w.apartSpan.longest, s.w.settle)
	}

	out := r.restore(ctx, s.u.stack, sc)
	res.Restored = len(out.left) == 0 && !out.aborted
	if !res.Restored && res.Error == "" {
		res.Error = "not restored: " + strings.Join(out.left, "; ")
	}
	res.Pass = res.Restored && res.Error == ""
	// One closing line per scenario: whoever reads only the progress (a
	// JSON run's stderr, a CI log's tail) still sees why it failed.
	if res.Pass {
		s.step("passed: drift %.2fs, %d of %d requests failed", res.DriftS, res.HTTPFailed, res.HTTPRequests)
	} else {
		s.step("FAILED: %s", res.Error)
	}
	return res, out
}

// takeover waits for the VIP on the first backup only. It keeps watching
// past bound+margin (up to twice that, at least 3 s more) so that a late
// handover is reported with its real drift instead of "never".
func (s *scen) takeover(ctx context.Context, t0 time.Time) error {
	s.rec.mark(EventDisrupt, t0)
	limit := s.bound + s.margin
	wait := limit + max(limit, 3*time.Second)
	smp, ok, err := s.w.until(ctx, t0, wait, func(x sample) bool { return x.only(s.backup) }, nil)
	if err != nil {
		return err
	}
	if !ok {
		s.res.MovedTo = strings.Join(smp.holders, ",")
		s.fail("VIP %s not on %s alone within %s (on [%s] after %s)%s", s.in.VIP, s.backup, wait.Round(10*time.Millisecond),
			strings.Join(smp.holders, " "), smp.at.Sub(t0).Round(10*time.Millisecond), s.w.blindNote(smp))
		return nil
	}
	s.res.MovedTo = s.backup
	s.rec.mark(EventTakeover, smp.at)
	drift := smp.at.Sub(t0)
	s.res.DriftS = secs(drift)
	if drift > limit {
		s.fail("drift %s exceeds bound %s + margin %s", drift.Round(10*time.Millisecond), s.bound.Round(10*time.Millisecond), s.margin)
	}
	return nil
}

func (w *watch) blindNote(s sample) string {
	if s.blind {
		return "; a host could not be asked: " + w.obsErr
	}
	return ""
}

// failback waits for the VIP on its master only and records the time since t1.
func (s *scen) failback(ctx context.Context, t1 time.Time) error {
	s.rec.mark(EventRestore, t1)
	s.t1 = t1
	smp, ok, err := s.w.until(ctx, t1, s.r.o.FailbackTimeout, func(x sample) bool { return x.only(s.sc.Node) }, nil)
	if err != nil {
		return err
	}
	if !ok {
		s.fail("VIP %s not back on %s alone within %s (on [%s])%s", s.in.VIP, s.sc.Node, s.r.o.FailbackTimeout,
			strings.Join(smp.holders, " "), s.w.blindNote(smp))
		return nil
	}
	s.res.FailbackS = secs(smp.at.Sub(t1))
	s.rec.mark(EventFailback, smp.at)
	return nil
}

// restoreStep runs the top undo action's commands as the scenario's own way
// back, and pops it when all succeeded.
func (s *scen) restoreStep(ctx context.Context) error {
	a := s.u.stack[len(s.u.stack)-1]
	for _, c := range a.cmds {
		if err := s.run(ctx, c); err != nil && !a.tolerate[c] {
			return err
		}
	}
	s.u.pop()
	return nil
}

// stopTimeout bounds the wait for a stopped unit (keepalived exits about a
// second after its stop job starts; systemd's own TimeoutStopSec is 90 s).
const stopTimeout = 30 * time.Second

// waitStopped keeps sampling (VIP placement and HTTP probes, so the
// figures have no blind stretch) until systemd reports unit on the node
// inactive or failed, at most stopTimeout.
func (s *scen) waitStopped(ctx context.Context, unit string) error {
	s.w.unit = unit
	defer func() { s.w.unit = "" }()
	smp, ok, err := s.w.until(ctx, s.r.o.Clock.Now(), stopTimeout, func(x sample) bool { return x.unit == "inactive" || x.unit == "failed" }, nil)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s: %s still %s %s after its stop", s.sc.Node, unit, smp.unit, stopTimeout)
	}
	return nil
}

func (s *scen) stop(ctx context.Context) error {
	s.u.push(action{desc: "start keepalived on " + s.sc.Node, cmds: []string{CmdStartKeepalived()}})
	s.step("stopping keepalived, waiting for %s on %s…", s.addrs(), s.backup)
	t0 := s.r.o.Clock.Now()
	if err := s.run(ctx, CmdStopKeepalived()); err != nil {
		return err
	}
	if err := s.takeover(ctx, t0); err != nil {
		return err
	}
	// The start must not be queued behind a stop job still running: the
	// fail-back is timed from a stopped keepalived.
	if err := s.waitStopped(ctx, string(keepalivedUnit)); err != nil {
		return err
	}
	s.step("starting keepalived, waiting for %s back on %s…", s.addrs(), s.sc.Node)
	t1 := s.r.o.Clock.Now()
	if err := s.restoreStep(ctx); err != nil {
		return err
	}
	return s.failback(ctx, t1)
}

// kill crashes keepalived and expects the hactl drop-in to clean up (its
// ExecStopPost removes the dead node's VIPs, so nothing answers next to the
// new master) and systemd to restart it (Restart=on-failure), after which the
// master preempts. Fail-back is measured from the moment systemd has
// keepalived active again, the crash's equivalent of a restore command.
func (s *scen) kill(ctx context.Context) error {
	s.u.push(action{
		desc:     "resume and start keepalived on " + s.sc.Node,
		cmds:     []string{CmdThawKeepalived(), CmdStartKeepalived()},
		tolerate: map[string]bool{CmdThawKeepalived(): true},
	})
	s.step("freezing and killing keepalived")
	// t0 is the freeze: from then on no advert leaves the node.
	t0 := s.r.o.Clock.Now()
	if err := s.run(ctx, CmdFreezeKeepalived()); err != nil {
		return err
	}
	if err := s.run(ctx, CmdKillKeepalived()); err != nil {
		return err
	}
	s.step("keepalived killed, waiting for %s on %s…", s.addrs(), s.backup)
	if err := s.takeover(ctx, t0); err != nil || s.res.Error != "" {
		return err
	}
	s.step("waiting for systemd to restart keepalived and %s back on %s…", s.addrs(), s.sc.Node)
	s.w.unit = "keepalived"
	var t1 time.Time
	smp, ok, err := s.w.until(ctx, s.r.o.Clock.Now(), s.r.o.FailbackTimeout,
		func(x sample) bool { return !t1.IsZero() && x.only(s.sc.Node) },
		func(x sample) bool {
			if t1.IsZero() && x.unit == "active" {
				t1 = x.at
			}
			return true
		})
	s.w.unit = ""
	if err != nil {
		return err
	}
	if !ok {
		if t1.IsZero() {
			s.fail("keepalived not restarted by systemd within %s (is hactl's drop-in with Restart=on-failure applied?)", s.r.o.FailbackTimeout)
		} else {
			s.fail("VIP %s not back on %s alone within %s of keepalived's restart (on [%s])", s.in.VIP, s.sc.Node,
				s.r.o.FailbackTimeout, strings.Join(smp.holders, " "))
		}
		return nil
	}
	s.res.FailbackS, s.t1 = secs(smp.at.Sub(t1)), t1
	s.rec.mark(EventRestore, t1)
	s.rec.mark(EventFailback, smp.at)
	s.note("keepalived restarted by systemd %s after the crash", t1.Sub(t0).Round(10*time.Millisecond))
	s.u.pop()
	return nil
}

// nginx stops nginx and expects the check script to start it again before
// the check has failed fall times. nginx's unit drop-in reports the stop to
// keepalived, so the VIP may move meanwhile; it must come back (fail-back).
// drift_s is the time from nginx gone (the stop returned) until nginx was
// active again; moved_to is where the VIP went (the node itself when it
// stayed).
func (s *scen) nginx(ctx context.Context) error {
	s.u.push(action{desc: "start nginx on " + s.sc.Node, cmds: []string{CmdStartNginx()}})
	t0, err := s.stopNginx(ctx)
	if err != nil {
		return err
	}
	s.step("nginx stopped, waiting for the check script to restart it (bound %s)…", s.bound.Round(10*time.Millisecond))
	s.w.unit = "nginx"
	defer func() { s.w.unit = "" }()
	stayed := true
	var moved []string
	stays := func(x sample) bool {
		if !x.blind && !x.only(s.sc.Node) {
			stayed = false
			// Where it went, not the instant it was nowhere.
			if len(moved) == 0 && len(x.holders) > 0 {
				moved = x.holders
			}
		}
		return true
	}
	limit := s.bound + s.margin
	wait := limit + max(limit, 3*time.Second)
	smp, ok, err := s.w.until(ctx, t0, wait, func(x sample) bool { return x.unit == "active" }, stays)
	if err != nil {
		return err
	}
	if !ok {
		s.fail("nginx on %s not active again within %s (%s)", s.sc.Node, wait, smp.unit)
		return nil
	}
	s.rec.mark(EventRecovered, smp.at)
	back := smp.at.Sub(t0)
	s.res.DriftS = secs(back)
	if back > limit {
		s.fail("nginx back after %s, beyond fall × interval %s + margin %s", back.Round(10*time.Millisecond), s.bound, s.margin)
	}
	// Watch one more check interval: a VIP that moves because the check
	// failed anyway would do so by then.
	hold := time.Duration(s.check.interval) * time.Second
	if _, _, err := s.w.until(ctx, smp.at, hold, func(sample) bool { return false }, stays); err != nil {
		return err
	}
	s.u.pop()
	if stayed {
		s.res.MovedTo = s.sc.Node
		return nil
	}
	// nginx's unit drop-in tells keepalived of the stop at once (FAULT):
	// the VIP moves and comes home by preemption once the check restarted
	// nginx. That is the trade for a dead nginx costing the skew alone.
	s.res.MovedTo = strings.Join(moved, ",")
	s.note("the stop moved %s to [%s] (nginx's ExecStopPost); waiting for it back on %s", s.in.VIP.Addr(), strings.Join(moved, " "), s.sc.Node)
	return s.failback(ctx, smp.at)
}

// slowStop is how long nginx's own stop may take before the scenario says
// so: it is ~50 ms when no connection is open.
const slowStop = time.Second

// stopNginx stops nginx and returns when it is gone: `systemctl stop`
// returns once the unit is inactive, its ExecStopPost (the drop-in's
// event file, which moves the VIPs) run. The scenario's clock starts there.
// nginx's stop is graceful (Debian: QUIT, SIGTERM after 5 s; EL: the
// unit's TimeoutStopSec): a worker waits for its open connections, and
// connections left behind by a VIP that moved away moments before (their
// client's packets now reach another host) can hold it for the whole
// timeout. No check script can start nginx again before its stop job
// ended (a start would cancel it), so the check's bound counts from nginx
// gone; the stop's own time is a note, and the disruption's mark on the
// timeline stays at the stop's start.
func (s *scen) stopNginx(ctx context.Context) (time.Time, error) {
	s.step("stopping nginx")
	start := s.r.o.Clock.Now()
	s.rec.mark(EventDisrupt, start)
	if err := s.run(ctx, CmdStopNginx()); err != nil {
		return time.Time{}, err
	}
	gone := s.r.o.Clock.Now()
	if took := gone.Sub(start); took > slowStop {
		s.note("nginx's own stop took %s (a graceful stop waits for open connections, up to its unit's stop timeout); the bound counts from nginx gone",
			took.Round(10*time.Millisecond))
	}
	return gone, nil
}

// nginxDead keeps nginx down (masked, so the check script cannot start it):
// nginx's unit drop-in writes its event file on the stop, keepalived puts
// the node's instances in FAULT, and the first backup takes over after its
// skew. The clock starts after the mask (a daemon reload, ~1 s).
func (s *scen) nginxDead(ctx context.Context) error {
	s.u.push(action{desc: "unmask and start nginx on " + s.sc.Node, cmds: []string{CmdUnmaskNginx(), CmdStartNginx()}})
	s.step("masking nginx")
	if err := s.run(ctx, CmdMaskNginx()); err != nil {
		return err
	}
	t0, err := s.stopNginx(ctx)
	if err != nil {
		return err
	}
	s.step("nginx stopped and masked, waiting for %s on %s (bound %s + %s)…", s.addrs(), s.backup, s.bound.Round(10*time.Millisecond), s.margin)
	if err := s.takeover(ctx, t0); err != nil {
		return err
	}
	s.step("unmasking and starting nginx, waiting for %s back on %s…", s.addrs(), s.sc.Node)
	t1 := s.r.o.Clock.Now()
	if err := s.restoreStep(ctx); err != nil {
		return err
	}
	return s.failback(ctx, t1)
}

// drain is `hactl drain` and `hactl undrain` step by step: drain.Step (every
// instance just below the first backup and above the rest: the first backup
// alone claims the VIP after its master-down timer, the node keeping it until
// then; -253 when no such value exists), -254 once the VIP sits
// on the backup alone (FAULT: out as a backup too), then 0 (the node
// preempts its VIP back). drift_s is the drain's handover.
//
// Long-lived connections (an upload and a keep-alive client) are opened
// before the drain and again before the undrain, and held through the
// VIP's move. With the cluster's drain_grace > 0 the scenario runs pkg/drain's
// connection drain around each move, as `hactl drain` does, and a cut
// connection fails it; with drain_grace 0 they are cut by design (the
// documented limit) and only reported.
func (s *scen) drain(ctx context.Context) error {
	states := drain.Read(ctx, s.w.hosts)
	if err := drain.Check(s.r.o.Layout, s.sc.Node, states); err != nil {
		return err
	}
	mine := map[string]bool{}
	for _, a := range s.in.Addrs() {
		mine[a.String()] = true
	}
	step := drain.Step(s.r.o.Layout, s.sc.Node, states, mine)
	s.res.DrainStep = step
	grace := s.node.Cluster.DrainGrace
	d := drain.New(drain.Options{Layout: s.r.o.Layout, Fleet: s.r.o.Fleet, Clock: s.r.o.Clock, Grace: grace,
		Event: func(m string) { s.step("%s", m) }})
	defer s.judgeLongLived(grace)

	cd, err := d.StartDrainConns(ctx, s.sc.Node)
	if err != nil {
		return err
	}
	s.u.push(action{desc: "undrain " + s.sc.Node, cmds: []string{drain.WriteCommand(facts.InService)}})
	held := s.hold(ctx, "drain")
	defer held.wait()
	s.step("draining (drain file %d), waiting for %s on %s…", step, s.in.VIP.Addr(), s.backup)
	t0 := s.r.o.Clock.Now()
	if err := s.run(ctx, drain.WriteCommand(step)); err != nil {
		return s.endConns(ctx, cd, false, err)
	}
	if err := s.takeover(ctx, t0); err != nil || s.res.Error != "" {
		return s.endConns(ctx, cd, false, err)
	}
	if err := s.run(ctx, drain.WriteCommand(facts.DrainOut)); err != nil {
		return s.endConns(ctx, cd, false, err)
	}
	if err := s.endConns(ctx, cd, true, nil); err != nil {
		return err
	}
	held.wait()

	cd, err = d.StartUndrainConns(ctx, s.sc.Node)
	if err != nil {
		return err
	}
	back := s.hold(ctx, "undrain")
	defer back.wait()
	s.step("undraining (drain file %d), waiting for %s back on %s…", facts.InService, s.in.VIP.Addr(), s.sc.Node)
	t1 := s.r.o.Clock.Now()
	if err := s.restoreStep(ctx); err != nil {
		return s.endConns(ctx, cd, false, err)
	}
	if err := s.failback(ctx, t1); err != nil || s.res.Error != "" {
		return s.endConns(ctx, cd, false, err)
	}
	return s.endConns(ctx, cd, true, nil)
}

// endConns finishes a connection drain (nil: none); moved says the VIP
// has moved, so the drain first waits for the connections. It returns
// failed, or the drain's own error.
func (s *scen) endConns(ctx context.Context, cd *drain.ConnDrain, moved bool, failed error) error {
	c, err := cd.Finish(ctx, moved && failed == nil)
	if err != nil {
		return errors.Join(failed, fmt.Errorf("connection draining: %w", err))
	}
	if c != nil {
		var left []string
		for h, n := range c.Left {
			left = append(left, fmt.Sprintf("%s %d", h, n))
		}
		sort.Strings(left)
		s.note("connection drain: %s open after %.1fs of the %.0fs grace", strings.Join(left, ", "), c.WaitedSeconds, c.GraceSeconds)
	}
	return failed
}

// holding is one set of long-lived connections in flight.
type holding struct {
	s    *scen
	done chan []LongLived
	got  bool
}

// hold opens the long-lived connections to the VIP (the first address of
// the instance) for the move's bound and margin plus 2 s: long enough to
// span the VIP's move, short enough to end within a grace period.
func (s *scen) hold(ctx context.Context, phase string) *holding {
	h := &holding{s: s, done: make(chan []LongLived, 1)}
	u := s.w.urls[0]
	dur := s.bound + s.margin + 2*time.Second
	go func() {
		ls := s.r.o.Holder.Hold(ctx, u, dur)
		for i := range ls {
			ls[i].Phase = phase
		}
		h.done <- ls
	}()
	return h
}

// wait collects the connections' outcome once.
func (h *holding) wait() {
	if h.got {
		return
	}
	h.got = true
	h.s.res.LongLived = append(h.s.res.LongLived, <-h.done...)
}

// judgeLongLived reports the long-lived connections: a cut one fails the
// scenario when drain_grace should have kept it, and is the documented
// limit otherwise.
func (s *scen) judgeLongLived(grace time.Duration) {
	// Each connection's figures are in LongLived (and printed from there):
	// the verdict names them only.
	cut := cutOnes(s.res.LongLived)
	if len(cut) == 0 {
		return
	}
	if grace > 0 {
		s.fail("%d of %d long-lived connections cut despite drain_grace %s: %s", len(cut), len(s.res.LongLived), grace, strings.Join(cut, ", "))
		return
	}
	s.note("%d of %d long-lived connections cut (drain_grace is 0: a drain keeps open connections at most %s after the switch): %s", len(cut), len(s.res.LongLived), drain.Settle, strings.Join(cut, ", "))
}

// restore puts back what a scenario left and waits until the fleet's Status
// is OK. It runs on a fresh context (the scenario's may be cancelled by the
// first interrupt), bounded by RestoreTimeout; Options.Abort stops it at once.
func (r *Runner) restore(parent context.Context, pending []action, sc Scenario) outcome {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), r.o.RestoreTimeout)
	defer cancel()
	abort := r.o.Abort
	if abort != nil {
		// Also cut off a command in flight when the abort comes.
		go func() {
			select {
			case <-abort:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	aborted := func() bool {
		select {
		case <-abort:
			return true
		default:
			return false
		}
	}
	progress := func(format string, args ...any) {
		r.o.Progress(Step{Node: sc.Node, Mode: sc.Mode, Msg: fmt.Sprintf(format, args...)})
	}
	node := r.o.Fleet.Get(sc.Node)
	// try runs one action; false when a command that matters failed.
	try := func(a action) error {
		if node == nil {
			return fmt.Errorf("%s: host not in the fleet", sc.Node)
		}
		for _, c := range a.cmds {
			if err := runCmd(ctx, node, c); err != nil && !a.tolerate[c] {
				return err
			}
		}
		return nil
	}
	// failed keeps the actions that did not go through, in order; they are
	// retried while waiting (an SSH hiccup should not leave nginx masked).
	var failed []action
	var lastErr map[string]error
	attempt := func(as []action) {
		failed, lastErr = nil, map[string]error{}
		for _, a := range as {
			if aborted() {
				failed = append(failed, a)
				continue
			}
			progress("restoring: %s", a.desc)
			if err := try(a); err != nil {
				failed = append(failed, a)
				lastErr[a.desc] = err
			}
		}
	}
	left := func() []string {
		var out []string
		for _, a := range failed {
			if err := lastErr[a.desc]; err != nil {
				out = append(out, fmt.Sprintf("%s (%v)", a.desc, err))
			} else {
				out = append(out, a.desc)
			}
		}
		return out
	}
	reversed := make([]action, 0, len(pending))
	for i := len(pending) - 1; i >= 0; i-- {
		reversed = append(reversed, pending[i])
	}
	attempt(reversed)
	if aborted() {
		return outcome{left: append(left(), r.quickReasons(parent)...), aborted: true}
	}
	// Wait for the whole fleet to be healthy again: preemption takes a
	// master-down interval, and a crash restart RestartSec more.
	start := r.o.Clock.Now()
	lastTry := start
	progress("waiting for every VIP on its master and all services active…")
	for {
		if aborted() {
			return outcome{left: append(left(), r.quickReasons(parent)...), aborted: true}
		}
		if len(failed) > 0 && r.o.Clock.Now().Sub(lastTry) >= retryEvery {
			lastTry = r.o.Clock.Now()
			attempt(failed)
		}
		st := r.Status(ctx)
		if st.OK() && len(failed) == 0 {
			return outcome{}
		}
		if r.o.Clock.Now().Sub(start) >= r.o.RestoreTimeout || ctx.Err() != nil {
			if aborted() {
				return outcome{left: append(left(), r.quickReasons(parent)...), aborted: true}
			}
			return outcome{left: append(left(), st.Reasons()...)}
		}
		select {
		case <-abort:
		case <-ctx.Done():
		case <-r.o.Clock.After(r.o.Poll):
		}
	}
}

// retryEvery spaces out retries of restoring commands that failed.
const retryEvery = time.Second

// quickReasons reads the Status once more after an abort, briefly: the user
// wants out, but also to know which VIPs and services are left as they are.
func (r *Runner) quickReasons(parent context.Context) []string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), 2*time.Second)
	defer cancel()
	return r.Status(ctx).Reasons()
}
