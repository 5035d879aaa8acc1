package failover

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hactl/hactl/internal/testinv"
	"github.com/hactl/hactl/internal/vrrpsim"
	"github.com/hactl/hactl/pkg/drain"
	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/remote"
)

func run1(t *testing.T, r *rig, ctx context.Context, abort <-chan struct{}, mode Mode) (Report, error) {
	t.Helper()
	return r.runner(t, abort).Run(ctx, []Scenario{{Node: "lab1", Mode: mode}})
}

func wantActions(t *testing.T, r *rig, host string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got := withoutConnDrain(r.actions(host)); !reflect.DeepEqual(got, want) {
		t.Errorf("%s commands:\n got %q\nwant %q", host, got, want)
	}
}

// withoutConnDrain drops a connection drain's commands (checked on their
// own by connDrainsStarted): a drain scenario runs one around each move,
// with drain.Settle as its grace when the cluster has none.
func withoutConnDrain(cmds []string) []string {
	out := []string{}
	for _, c := range cmds {
		if !strings.Contains(c, drain.ConnUnit) && !strings.Contains(c, drain.ConnScript) && c != drain.PreflightConnCommand(true) && c != drain.PreflightConnCommand(false) {
			out = append(out, c)
		}
	}
	return out
}

// connDrainsStarted counts the connection drains started on host whose
// description contains what.
func connDrainsStarted(r *rig, host, what string) int {
	n := 0
	for _, c := range r.actions(host) {
		if strings.HasPrefix(c, "systemd-run") && strings.Contains(c, drain.ConnUnit) && strings.Contains(c, what) {
			n++
		}
	}
	return n
}

func noActionsElsewhere(t *testing.T, r *rig) {
	t.Helper()
	wantActions(t, r, "lab2")
	wantActions(t, r, "lab3")
}

func TestStopPasses(t *testing.T) {
	r := newRig(t)
	rep, err := run1(t, r, context.Background(), nil, ModeStop)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	res.Timeline = nil // timeline_test.go
	// Samples every 100 ms of virtual time from t0: the VIP shows on lab2 at
	// 0.4 s; one more sample sees keepalived inactive, then it is started and
	// the VIP is home 3.7 s later.
	want := Result{
		Node: "lab1", Mode: ModeStop, VIP: "198.18.0.201/24", MovedTo: "lab2", DriftS: 0.4, BoundS: 0.61, MarginS: 0.5,
		HTTPRequests: 5 + 1 + 38, HTTPFailed: 0, HTTPGapS: 0.1, HTTPNodes: map[string]int{"lab1": 44},
		FailbackS: 3.7, FailbackHTTPGapS: 0.1, Restored: true, Pass: true,
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("result\n got %+v\nwant %+v", res, want)
	}
	if !rep.OK() {
		t.Error("report not OK")
	}
	wantActions(t, r, "lab1", CmdStopKeepalived(), CmdStartKeepalived())
	noActionsElsewhere(t, r)
	if r.prober.url != "http://198.18.0.201:80/hactl-health" || r.prober.n != 44 {
		t.Errorf("probed %s %d times", r.prober.url, r.prober.n)
	}
	var msgs []string
	for _, s := range r.steps {
		msgs = append(msgs, s.String())
	}
	if !strings.Contains(strings.Join(msgs, "\n"), "lab1 stop: stopping keepalived, waiting for 198.18.0.201 on lab2…") {
		t.Errorf("progress:\n%s", strings.Join(msgs, "\n"))
	}
}

func TestKillLateButWithinBound(t *testing.T) {
	r := newRig(t)
	r.w.Takeover = 3500 * time.Millisecond // crash bound 3.61 s
	rep, err := run1(t, r, context.Background(), nil, ModeKill)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if !res.Pass || res.MovedTo != "lab2" || res.DriftS != 3.5 || res.BoundS != 3.61 || !res.Restored {
		t.Fatalf("%+v", res)
	}
	// systemd restarts keepalived 5 s after the kill; the VIP is home 3.7 s later.
	if res.FailbackS != 3.7 {
		t.Errorf("failback %v", res.FailbackS)
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "restarted by systemd 5s after") {
		t.Errorf("notes %q", res.Notes)
	}
	wantActions(t, r, "lab1", CmdFreezeKeepalived(), CmdKillKeepalived())
	noActionsElsewhere(t, r)
}

func TestStopTooLate(t *testing.T) {
	r := newRig(t)
	r.w.Takeover = 1500 * time.Millisecond // bound 0.61 + 0.5 margin
	rep, err := run1(t, r, context.Background(), nil, ModeStop)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if res.Pass || !res.Restored || res.DriftS != 1.5 || !strings.Contains(res.Error, "exceeds bound") {
		t.Fatalf("%+v", res)
	}
	if rep.OK() {
		t.Error("report OK with a failed scenario")
	}
	wantActions(t, r, "lab1", CmdStopKeepalived(), CmdStartKeepalived())
}

func TestVIPNeverMovesIsRestored(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		cmds []string
	}{
		{ModeStop, []string{CmdStopKeepalived(), CmdStartKeepalived()}},
		// The crash is undone by restoration: thaw (allowed to fail), start.
		{ModeKill, []string{CmdFreezeKeepalived(), CmdKillKeepalived(), CmdThawKeepalived(), CmdStartKeepalived()}},
		{ModeNginxDead, []string{CmdMaskNginx(), CmdStopNginx(), CmdUnmaskNginx(), CmdStartNginx()}},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			r := newRig(t)
			r.w.Takeover = never
			r.w.AutoRestart = never
			rep, err := run1(t, r, context.Background(), nil, tc.mode)
			if err != nil {
				t.Fatal(err)
			}
			res := rep.Scenarios[0]
			if res.Pass || !res.Restored || res.MovedTo != "" || !strings.Contains(res.Error, "not on lab2 alone") {
				t.Fatalf("%+v", res)
			}
			wantActions(t, r, "lab1", tc.cmds...)
			noActionsElsewhere(t, r)
		})
	}
}

func TestSplitFails(t *testing.T) {
	r := newRig(t)
	// A crash without the drop-in's ExecStopPost: lab1 keeps answering on its
	// VIP until 3.5 s next to lab2, which took over at 0.3 s (samples at 0.3
	// and 3.4 s see both: 3.1 s).
	r.w.Takeover = 300 * time.Millisecond
	r.w.KeepOnDead = 3500 * time.Millisecond
	rep, err := run1(t, r, context.Background(), nil, ModeKill)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if res.Pass || !res.Restored || res.DriftS != 3.5 || !strings.Contains(res.Error, "VIP on two hosts for 3.1s") {
		t.Fatalf("%+v", res)
	}
}

func TestShortSplitWithinSettle(t *testing.T) {
	r := newRig(t)
	r.w.Takeover = 300 * time.Millisecond
	r.w.KeepOnDead = 1200 * time.Millisecond // seen on both from 0.3 to 1.1 s < 1.5 s settle
	rep, err := run1(t, r, context.Background(), nil, ModeKill)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if !res.Pass || res.DriftS != 1.2 || !strings.Contains(strings.Join(res.Notes, "\n"), "briefly on two hosts (800ms") {
		t.Fatalf("%+v", res)
	}
}

func TestNginxRestartedVIPStays(t *testing.T) {
	r := newRig(t)
	rep, err := run1(t, r, context.Background(), nil, ModeNginx)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if !res.Pass || res.MovedTo != "lab1" || res.DriftS != 1.2 || res.BoundS != 4 || res.FailbackS != 0 {
		t.Fatalf("%+v", res)
	}
	wantActions(t, r, "lab1", CmdStopNginx())
	noActionsElsewhere(t, r)
}

// TestNginxSlowStopCountsFromGone: nginx's graceful stop waited 5 s for
// connections a VIP move had left behind (seen on the lab: "Stopping timed
// out. Terminating."); the check script restarted nginx 1.2 s after it was
// gone. The check's bound counts from nginx gone (no check can start nginx
// while its stop job runs); the stop's time is a note. Before, the clock
// started before the stop: "nginx back after 6.2s" failed the scenario.
func TestNginxSlowStopCountsFromGone(t *testing.T) {
	r := newRig(t)
	r.w.NginxStop = 5 * time.Second
	rep, err := run1(t, r, context.Background(), nil, ModeNginx)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if !res.Pass || res.DriftS != 1.2 || !strings.Contains(strings.Join(res.Notes, "\n"), "nginx's own stop took 5s") {
		t.Fatalf("%+v", res)
	}
}

// TestNginxDeadSlowStop: the same slow stop with nginx masked; the VIP
// moves when the stop's ExecStopPost ran, and the takeover counts from
// there.
func TestNginxDeadSlowStop(t *testing.T) {
	r := newRig(t)
	r.w.NginxStop = 5 * time.Second
	r.w.Takeover = 600 * time.Millisecond
	rep, err := run1(t, r, context.Background(), nil, ModeNginxDead)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if !res.Pass || res.DriftS != 0.6 || !strings.Contains(strings.Join(res.Notes, "\n"), "nginx's own stop took 5s") {
		t.Fatalf("%+v", res)
	}
}

func TestNginxNotRestartedIsRestored(t *testing.T) {
	r := newRig(t)
	r.w.NginxRestart = never
	rep, err := run1(t, r, context.Background(), nil, ModeNginx)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if res.Pass || !res.Restored || !strings.Contains(res.Error, "not active again") {
		t.Fatalf("%+v", res)
	}
	wantActions(t, r, "lab1", CmdStopNginx(), CmdStartNginx())
}

func TestNginxDeadPasses(t *testing.T) {
	r := newRig(t)
	// nginx's stop event puts lab1 in FAULT: the backup's skew, as a graceful stop.
	r.w.Takeover = 600 * time.Millisecond
	rep, err := run1(t, r, context.Background(), nil, ModeNginxDead)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if !res.Pass || res.MovedTo != "lab2" || res.DriftS != 0.6 || res.BoundS != 0.61 || res.MarginS != 0.5 || res.FailbackS != 3.7 {
		t.Fatalf("%+v", res)
	}
	wantActions(t, r, "lab1", CmdMaskNginx(), CmdStopNginx(), CmdUnmaskNginx(), CmdStartNginx())
}

func TestSSHErrorRestores(t *testing.T) {
	r := newRig(t)
	// The stop's answer is lost although the command ran (recorded by the fake).
	lab1 := r.w.Fleet.Get("lab1")
	lab1.Conn = &flakyConn{Fake: r.w.Fakes["lab1"], failOn: CmdStopKeepalived()}
	rep, err := run1(t, r, context.Background(), nil, ModeStop)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if res.Pass || !res.Restored || !strings.Contains(res.Error, "connection lost") {
		t.Fatalf("%+v", res)
	}
	wantActions(t, r, "lab1", CmdStopKeepalived(), CmdStartKeepalived())
}

func TestRestoreCommandFailsIsRetried(t *testing.T) {
	r := newRig(t)
	// unmask fails once inside the scenario; start then refuses (masked)...
	r.w.FailCommand("lab1", CmdUnmaskNginx(), 1)
	r.w.Clock.At(1500*time.Millisecond, func() {
		r.w.FailCommand("lab1", CmdUnmaskNginx(), 0)
	})
	r.w.Takeover = 600 * time.Millisecond
	rep, err := run1(t, r, context.Background(), nil, ModeNginxDead)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	// ...so restoration tries the action at once (0.6 s, fails again), then
	// retries it a second later, now successfully.
	if res.Pass || !res.Restored || !strings.Contains(res.Error, CmdUnmaskNginx()) {
		t.Fatalf("%+v", res)
	}
	wantActions(t, r, "lab1", CmdMaskNginx(), CmdStopNginx(), CmdUnmaskNginx(), CmdUnmaskNginx(), CmdUnmaskNginx(), CmdStartNginx())
}

func TestInterruptRestores(t *testing.T) {
	r := newRig(t)
	r.w.Takeover = never
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.w.Clock.At(300*time.Millisecond, cancel) // Ctrl-C while waiting for the takeover
	rep, err := run1(t, r, ctx, make(chan struct{}), ModeNginxDead)
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	res := rep.Scenarios[0]
	if !rep.Interrupted || rep.Aborted || res.Pass || !res.Restored || len(rep.Left) != 0 || !strings.Contains(res.Error, "interrupted") {
		t.Fatalf("%+v %+v", rep, res)
	}
	// Restoration ran on a fresh context although ctx was cancelled.
	wantActions(t, r, "lab1", CmdMaskNginx(), CmdStopNginx(), CmdUnmaskNginx(), CmdStartNginx())
	if rep.OK() {
		t.Error("interrupted report OK")
	}
}

func TestInterruptStopsTheRun(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.w.Clock.At(200*time.Millisecond, cancel)
	rep, err := r.runner(t, nil).Run(ctx, []Scenario{{"lab1", ModeStop}, {"lab2", ModeStop}})
	if !errors.Is(err, ErrInterrupted) || len(rep.Scenarios) != 1 {
		t.Fatalf("%v %+v", err, rep)
	}
	wantActions(t, r, "lab1", CmdStopKeepalived(), CmdStartKeepalived())
	noActionsElsewhere(t, r)
}

func TestSecondInterruptBeforeRestoring(t *testing.T) {
	r := newRig(t)
	r.w.Takeover = never
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	abort := make(chan struct{})
	// Two Ctrl-C in quick succession: nothing may be restored.
	r.w.Clock.At(time.Second, func() { cancel(); close(abort) })
	rep, err := run1(t, r, ctx, abort, ModeNginxDead)
	if !errors.Is(err, ErrRestoreAborted) {
		t.Fatalf("err %v", err)
	}
	if !rep.Aborted || rep.Scenarios[0].Restored {
		t.Fatalf("%+v", rep)
	}
	left := strings.Join(rep.Left, "\n")
	for _, want := range []string{"unmask and start nginx on lab1", "lab1: keepalived active, nginx inactive", "VIP 198.18.0.201/24 is missing"} {
		if !strings.Contains(left, want) {
			t.Errorf("left lacks %q:\n%s", want, left)
		}
	}
	wantActions(t, r, "lab1", CmdMaskNginx(), CmdStopNginx())
	if !strings.Contains(err.Error(), "unmask and start nginx on lab1") {
		t.Errorf("error does not say what is left: %v", err)
	}
}

func TestSecondInterruptWhileWaiting(t *testing.T) {
	r := newRig(t)
	r.w.Takeover = never
	r.w.Failback = never // the VIP never comes home
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	abort := make(chan struct{})
	r.w.Clock.At(300*time.Millisecond, cancel)
	r.w.Clock.At(5*time.Second, func() { close(abort) })
	rep, err := run1(t, r, ctx, abort, ModeStop)
	if !errors.Is(err, ErrRestoreAborted) || !rep.Aborted {
		t.Fatalf("%v %+v", err, rep)
	}
	// The restoring command was sent; only the wait was cut short.
	wantActions(t, r, "lab1", CmdStopKeepalived(), CmdStartKeepalived())
	if got := strings.Join(rep.Left, "\n"); got != "VIP 198.18.0.201/24 is missing: on [], want lab1 only" {
		t.Errorf("left %q", got)
	}
	if r.w.Clock.Elapsed() > 6*time.Second {
		t.Errorf("restoration went on for %s after the abort", r.w.Clock.Elapsed())
	}
}

func TestPreflightRefuses(t *testing.T) {
	r := newRig(t)
	r.w.SetNginx("lab2", "failed")
	run := r.runner(t, nil)
	st, err := run.Preflight(context.Background())
	if !errors.Is(err, ErrNotReady) || st.OK() || !strings.Contains(err.Error(), "lab2: keepalived active, nginx failed") {
		t.Fatalf("%v", err)
	}
	rep, err := run.Run(context.Background(), []Scenario{{"lab1", ModeStop}})
	if !errors.Is(err, ErrNotReady) || len(rep.Scenarios) != 0 {
		t.Fatalf("%v %+v", err, rep)
	}
	wantActions(t, r, "lab1")
	noActionsElsewhere(t, r)
}

func TestAllModesAllNodes(t *testing.T) {
	r := newRig(t)
	r.w.Takeover = 500 * time.Millisecond // within every bound
	modes, _ := ParseModes("all")
	scs, err := Plan(r.layout, "", modes)
	if err != nil || len(scs) != 15 {
		t.Fatal(err, scs)
	}
	rep, err := r.runner(t, nil).Run(context.Background(), scs)
	if err != nil || !rep.OK() || len(rep.Scenarios) != 15 {
		t.Fatalf("%v %+v", err, rep)
	}
	wantActions(t, r, "lab3", CmdStopKeepalived(), CmdStartKeepalived(), CmdFreezeKeepalived(), CmdKillKeepalived(),
		CmdStopNginx(), CmdMaskNginx(), CmdStopNginx(), CmdUnmaskNginx(), CmdStartNginx(),
		drain.WriteCommand(-3), drain.WriteCommand(facts.DrainOut), drain.WriteCommand(0))
	if rep.Scenarios[14].MovedTo != "lab1" { // lab3's first backup in inventory order
		t.Errorf("%+v", rep.Scenarios[14])
	}
}

// TestDrainMode: drain (-3: drain.Step, then -254 once the VIP is on lab2 alone),
// undrain (0); the VIP moves and comes home with an overlap, so no probe
// fails, and the fail-back's own probes are reported.
func TestDrainMode(t *testing.T) {
	r := newRig(t)
	rep, err := run1(t, r, context.Background(), nil, ModeDrain)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if !res.Pass || res.MovedTo != "lab2" || res.DriftS < 3.9 || res.DriftS > 4.1 || res.BoundS != 4.61 || res.HTTPFailed != 0 || res.FailbackS < 4.7 || res.FailbackHTTPFailed != 0 {
		t.Fatalf("%+v", res)
	}
	wantActions(t, r, "lab1", drain.WriteCommand(-3), drain.WriteCommand(facts.DrainOut), drain.WriteCommand(0))
	if r.w.Drain("lab1") != 0 {
		t.Errorf("lab1 left drained: %d", r.w.Drain("lab1"))
	}
	// The long-lived connections: one upload and one keep-alive client
	// through the drain, the same through the undrain.
	if r.holder.n != 2 || len(res.LongLived) != 4 {
		t.Fatalf("holds %d, long-lived %+v", r.holder.n, res.LongLived)
	}
	for i, want := range []struct{ phase, kind string }{{"drain", KindUpload}, {"drain", KindKeepAlive}, {"undrain", KindUpload}, {"undrain", KindKeepAlive}} {
		if l := res.LongLived[i]; l.Phase != want.phase || l.Kind != want.kind || !l.Survived || l.URL != "http://198.18.0.201:80/hactl-health" {
			t.Errorf("long-lived[%d] = %+v, want %v", i, l, want)
		}
	}
}

// TestDrainModeGraceZeroCutIsReported: with drain_grace 0 (lab.hcl) a
// drain cuts open connections by design: reported, not a failure.
func TestDrainModeGraceZeroCutIsReported(t *testing.T) {
	r := newRig(t)
	r.holder.cut = true
	rep, err := run1(t, r, context.Background(), nil, ModeDrain)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if !res.Pass || res.Error != "" || len(res.LongLived) != 4 {
		t.Fatalf("%+v", res)
	}
	notes := strings.Join(res.Notes, "\n")
	if !strings.Contains(notes, "4 of 4 long-lived connections cut (drain_grace is 0: a drain keeps open connections at most 2s after the switch): drain upload, drain keepalive, undrain upload, undrain keepalive") {
		t.Errorf("notes:\n%s", notes)
	}
	if s := res.LongLived[0].String(); s != "drain: upload http://198.18.0.201:80/hactl-health: 400000 of 900000 bytes, connection cut (after 400000 bytes: connection reset by peer)" {
		t.Errorf("%q", s)
	}
	if s := res.LongLived[3].String(); s != "undrain: keepalive http://198.18.0.201:80/hactl-health: 31 requests, 1 failed, connection cut (request 31: connection reset by peer)" {
		t.Errorf("%q", s)
	}
	wantActions(t, r, "lab1", drain.WriteCommand(-3), drain.WriteCommand(facts.DrainOut), drain.WriteCommand(0))
	// Without a grace each move still has a connection drain, for
	// drain.Settle: lab1 keeps the VIP through the drain, lab2 through the
	// undrain, each forwarding to the other once.
	for _, h := range []string{"lab1", "lab2"} {
		if connDrainsStarted(r, h, "keeps 198.18.0.201") != 1 || connDrainsStarted(r, h, "forwards established") != 1 {
			t.Errorf("%s connection drains: %q", h, r.actions(h))
		}
	}
	if !strings.Contains(notes, "connection drain: lab1 0 open after 2.0s of the 2s grace") || !strings.Contains(notes, "connection drain: lab2 0 open after 2.0s of the 2s grace") {
		t.Errorf("notes:\n%s", notes)
	}
}

// TestDrainModeGraceZeroWithoutNft: without nft on the backups the Settle
// cannot run; the drain scenario moves the VIP without it, as before, and
// passes.
func TestDrainModeGraceZeroWithoutNft(t *testing.T) {
	r := newRig(t)
	r.w.ConnMissing["lab2"] = "nft"
	r.w.ConnMissing["lab3"] = "nft"
	rep, err := run1(t, r, context.Background(), nil, ModeDrain)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if !res.Pass || res.MovedTo != "lab2" || res.HTTPFailed != 0 || res.FailbackHTTPFailed != 0 {
		t.Fatalf("%+v", res)
	}
	// Every other member of the instance forwards, whichever takes the VIP:
	// lab3 too in the undrain, so neither move has one.
	for _, h := range []string{"lab1", "lab2", "lab3"} {
		if n := connDrainsStarted(r, h, ""); n != 0 {
			t.Errorf("%s: %d connection drains started, want none", h, n)
		}
	}
	var steps []string
	for _, st := range r.steps {
		steps = append(steps, st.Msg)
	}
	if all := strings.Join(steps, "\n"); strings.Count(all, "requests in flight at the switch are not kept: connection draining refused: lab2 lacks nft; lab3 lacks nft (install nftables where it is missing)\n") != 2 {
		t.Errorf("steps:\n%s", all)
	}
}

// graceRig is the lab with drain_grace 20 s on its cluster.
func graceRig(t *testing.T) *rig {
	t.Helper()
	inv, l := labLayout(t)
	for _, c := range inv.Clusters {
		c.DrainGrace = 20 * time.Second
	}
	return &rig{w: vrrpsim.New(inv, l), layout: l, prober: &okProber{}}
}

// TestDrainModeGraceDrainsConnections: with drain_grace > 0 the scenario
// runs pkg/drain's connection drain around each move (lab1 keeps the VIP
// for its connections through the drain, lab2 through the undrain, each
// stopped again), and passes when the connections survived.
func TestDrainModeGraceDrainsConnections(t *testing.T) {
	r := graceRig(t)
	rep, err := run1(t, r, context.Background(), nil, ModeDrain)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if !res.Pass || res.MovedTo != "lab2" || res.HTTPFailed != 0 || len(res.LongLived) != 4 {
		t.Fatalf("%+v", res)
	}
	// Each host keeps the VIP for its connections once (lab1 through the
	// drain, lab2 through the undrain) and forwards to the other once.
	for _, h := range []string{"lab1", "lab2"} {
		if connDrainsStarted(r, h, "keeps 198.18.0.201") != 1 || connDrainsStarted(r, h, "forwards established") != 1 {
			t.Errorf("%s connection drains: %q", h, r.actions(h))
		}
	}
	if notes := strings.Join(res.Notes, "\n"); !strings.Contains(notes, "connection drain: lab1 0 open") || !strings.Contains(notes, "connection drain: lab2 0 open") {
		t.Errorf("notes:\n%s", notes)
	}
}

// TestDrainModeGraceCutFails: with drain_grace > 0 a cut long-lived
// connection fails the scenario, which is still restored.
func TestDrainModeGraceCutFails(t *testing.T) {
	r := graceRig(t)
	r.holder.cut = true
	rep, err := run1(t, r, context.Background(), nil, ModeDrain)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if res.Pass || !res.Restored || !strings.Contains(res.Error, "4 of 4 long-lived connections cut despite drain_grace 20s: drain upload") {
		t.Fatalf("%+v", res)
	}
}

func TestParseModesAndPlan(t *testing.T) {
	if _, err := ParseModes("reboot"); !errors.Is(err, ErrUnknownMode) {
		t.Error(err)
	}
	_, l := labLayout(t)
	if _, err := Plan(l, "lab9", []Mode{ModeStop}); !errors.Is(err, ErrUnknownNode) {
		t.Error(err)
	}
	scs, err := Plan(l, "lab2", []Mode{ModeKill})
	if err != nil || !reflect.DeepEqual(scs, []Scenario{{"lab2", ModeKill}}) {
		t.Error(err, scs)
	}
}

func TestHTTPStats(t *testing.T) {
	t0 := time.Unix(0, 0)
	at := func(ms int, ok bool, node string) probeRec {
		p := probeRec{sent: t0.Add(time.Duration(ms) * time.Millisecond)}
		if ok {
			p.res = ProbeResult{Status: 200, Node: node}
		} else {
			p.res = ProbeResult{Err: errors.New("refused")}
		}
		return p
	}
	ps := []probeRec{at(0, true, "lab1"), at(100, true, "lab1"), at(300, false, ""), at(200, false, ""),
		at(400, false, ""), at(500, true, "lab2"), at(600, false, "")}
	total, failed, gap, nodes := httpStats(ps)
	if total != 7 || failed != 4 || gap != 400*time.Millisecond || !reflect.DeepEqual(nodes, map[string]int{"lab1": 2, "lab2": 1}) {
		t.Errorf("%d %d %s %v", total, failed, gap, nodes)
	}
	// No answer at all: the gap is the whole probing time.
	if _, _, gap, _ := httpStats([]probeRec{at(0, false, ""), at(700, false, "")}); gap != 700*time.Millisecond {
		t.Errorf("gap %s", gap)
	}
}

func newDualStackRig(t *testing.T) *rig {
	t.Helper()
	inv, l := testinv.LoadFile(t, "../inventory/testdata/lab-dualstack.hcl")
	return &rig{w: vrrpsim.New(inv, l), layout: l, prober: &okProber{}}
}

// TestDualStackStopMovesThePair: both addresses of lab1's instance are
// watched and probed; the takeover and fail-back count only when both are
// on one host.
func TestDualStackStopMovesThePair(t *testing.T) {
	r := newDualStackRig(t)
	rep, err := run1(t, r, context.Background(), nil, ModeStop)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if !res.Pass || res.VIP != "198.18.0.201/24" || res.VIP6 != "2001:db8:18::201/64" || res.MovedTo != "lab2" || res.DriftS != 0.4 {
		t.Fatalf("%+v", res)
	}
	// One probe per address per poll: twice the IPv4-only count.
	if res.HTTPRequests != 2*44 || r.prober.n != 2*44 {
		t.Errorf("probes %d (%d sent)", res.HTTPRequests, r.prober.n)
	}
	urls := r.prober.seen()
	if !urls["http://198.18.0.201:80/hactl-health"] || !urls["http://[2001:db8:18::201]:80/hactl-health"] || len(urls) != 2 {
		t.Errorf("probed %v", urls)
	}
}

// TestDualStackPairLeftBehind: the IPv6 VIP stays on the stopped master (as
// if added by hand there): the takeover is not complete, and the pair is
// reported apart.
func TestDualStackPairLeftBehind(t *testing.T) {
	r := newDualStackRig(t)
	r.w.Place("2001:db8:18::201/64", 0, time.Hour, "lab1")
	rep, err := run1(t, r, context.Background(), nil, ModeStop)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if res.Pass || !strings.Contains(res.Error, "not on lab2 alone") {
		t.Fatalf("%+v", res)
	}
	if all := res.Error + strings.Join(res.Notes, "\n"); !strings.Contains(all, "dual-stack pair apart") || !strings.Contains(all, "its pair 2001:db8:18::201/64 is on [lab1]") {
		t.Errorf("pair apart not reported: %+v", res)
	}
}

// TestDualStackBrieflyApart: a poll that falls between keepalived's two
// address changes sees the pair apart for less than the settle window: a
// note, not a failure.
func TestDualStackBrieflyApart(t *testing.T) {
	r := newDualStackRig(t)
	r.w.Place("2001:db8:18::201/64", 400*time.Millisecond, 600*time.Millisecond, "lab1")
	rep, err := run1(t, r, context.Background(), nil, ModeStop)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if !res.Pass || res.DriftS != 0.6 || !strings.Contains(strings.Join(res.Notes, "\n"), "dual-stack pair briefly apart") {
		t.Fatalf("%+v", res)
	}
}

// TestStopNeverInactive: systemd never reports the stopped keepalived as
// inactive; the scenario fails saying so, after stopTimeout of virtual
// time, and keepalived is started again all the same.
func TestStopNeverInactive(t *testing.T) {
	r := newRig(t)
	r.w.FailCommand("lab1", remote.Unit("keepalived").IsActive(), 3)
	rep, err := run1(t, r, context.Background(), nil, ModeStop)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if res.Pass || !res.Restored || !strings.Contains(res.Error, "lab1: keepalived still unknown 30s after its stop") || res.MovedTo != "lab2" {
		t.Fatalf("%+v", res)
	}
	wantActions(t, r, "lab1", CmdStopKeepalived(), CmdStartKeepalived())
}

// TestModeNamesAreTheOneList: "all" runs every mode of Modes, each name
// parses to its own mode, and the refusal names every value.
func TestModeNamesAreTheOneList(t *testing.T) {
	all, err := ParseModes("all")
	if err != nil || len(all) != len(Modes()) {
		t.Fatalf("all: %v %v", all, err)
	}
	for i, m := range Modes() {
		if all[i] != m {
			t.Errorf("all[%d] = %s, want %s", i, all[i], m)
		}
		if got, err := ParseModes(string(m)); err != nil || len(got) != 1 || got[0] != m {
			t.Errorf("%s: %v %v", m, got, err)
		}
	}
	_, err = ParseModes("reboot")
	for _, n := range ModeNames() {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("refusal %q does not name %s", err, n)
		}
	}
}

// TestProbesInFlightAtTheEnd: the probes still in flight when a scenario
// ends are waited for, not cancelled and counted as failed requests (a
// drain "must cost none": one cancelled probe failed it).
func TestProbesInFlightAtTheEnd(t *testing.T) {
	r := newRig(t)
	r.prober.delay = 20 * time.Millisecond // real time: in flight when the virtual-time scenario ends
	rep, err := run1(t, r, context.Background(), nil, ModeDrain)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	if !res.Pass || res.HTTPFailed != 0 || res.HTTPRequests == 0 {
		t.Fatalf("%+v", res)
	}
}
