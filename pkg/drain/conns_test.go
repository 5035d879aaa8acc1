package drain_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hactl/hactl/internal/testinv"
	"github.com/hactl/hactl/internal/vrrpsim"
	"github.com/hactl/hactl/pkg/drain"
)

// labGrace is lab() with a connection drain of grace; events are recorded.
func labGrace(t *testing.T, grace time.Duration) (*vrrpsim.World, *drain.Drainer, *[]string) {
	t.Helper()
	inv, l := testinv.Load(t, "lab.hcl")
	w := vrrpsim.New(inv, l)
	var events []string
	d := drain.New(drain.Options{Layout: l, Fleet: w.Fleet, Clock: w.Clock, Grace: grace,
		Event: func(s string) { events = append(events, s) }})
	return w, d, &events
}

// connSent lists the connection-drain commands sent to host ("start",
// "stop", "count"), with when.
func connSent(w *vrrpsim.World, host string) (kinds []string, at []time.Duration) {
	for _, s := range w.Sent() {
		if s.Host != host {
			continue
		}
		kind := ""
		switch {
		case strings.HasPrefix(s.Cmd, "systemd-run "):
			kind = "start"
		case s.Cmd == drain.StopConnCommand():
			kind = "stop"
		}
		if kind != "" {
			kinds, at = append(kinds, kind), append(at, s.At)
		}
	}
	return kinds, at
}

func script(t *testing.T, w *vrrpsim.World, host string) string {
	t.Helper()
	ups := w.Fakes[host].Uploads()
	if len(ups) != 1 || ups[0].Path != drain.ConnScript || ups[0].Mode != 0o700 {
		t.Fatalf("%s uploads: %+v", host, ups)
	}
	return string(ups[0].Content)
}

// TestConnDrainWaitsForQuiet: the old holder had no connection at the
// first count after the move, then one arrived (a client whose neighbour
// entry still pointed at it): the drain keeps the VIP on its lo until it has
// had none for connQuiet, instead of ending at the first 0 (before, it
// ended there and the late connection's data was reset by the new holder).
func TestConnDrainWaitsForQuiet(t *testing.T) {
	w, d, _ := labGrace(t, 30*time.Second)
	var first time.Duration = -1
	w.Conns = func(host string, at time.Duration) int {
		if host != "lab1" {
			return 0
		}
		if first < 0 {
			first = at
		}
		if at-first >= 500*time.Millisecond && at-first < 1500*time.Millisecond {
			return 1
		}
		return 0
	}
	res, err := d.Drain(context.Background(), "lab1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Conns == nil || res.Conns.Left["lab1"] != 0 {
		t.Fatalf("conns = %+v", res.Conns)
	}
	// Counts at 0 s (0), 1 s (1), 2 s and 3 s (0): quiet from 2 s, over at 4 s.
	if res.Conns.WaitedSeconds < 3.5 || res.Conns.WaitedSeconds > 5 {
		t.Errorf("waited %.1fs, want ~4 (the late connection and 2 s without one)", res.Conns.WaitedSeconds)
	}
}

// TestConnDrainKeepsThenStops: lab1's connections (3, ending 12 s after the
// drain began) keep .201 on lab1's lo while lab2 and lab3 forward to it; the
// draining starts before the VIP moves and stops once they have ended.
func TestConnDrainKeepsThenStops(t *testing.T) {
	w, d, events := labGrace(t, 30*time.Second)
	w.Conns = func(host string, at time.Duration) int {
		if host != "lab1" || at >= 12*time.Second {
			return 0
		}
		return 3
	}
	res, err := d.Drain(context.Background(), "lab1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Conns == nil || res.Conns.Left["lab1"] != 0 || len(res.Conns.Left) != 1 || res.Conns.GraceSeconds != 30 {
		t.Fatalf("conns = %+v", res.Conns)
	}
	// The VIP moved after ~3.95 s; the connections ended at 12 s, and the
	// old holder stayed without one for connQuiet (2 s) more.
	if res.Conns.WaitedSeconds < 9 || res.Conns.WaitedSeconds > 11.5 {
		t.Errorf("waited %.1fs, want ~10", res.Conns.WaitedSeconds)
	}
	for _, h := range []string{"lab1", "lab2", "lab3"} {
		kinds, at := connSent(w, h)
		// stop (an earlier run's leftovers), start, then the final stop.
		if len(kinds) != 3 || kinds[0] != "stop" || kinds[1] != "start" || kinds[2] != "stop" {
			t.Fatalf("%s: %v", h, kinds)
		}
		if at[1] >= w.DrainMove {
			t.Errorf("%s started at %v, after the VIP began to move", h, at[1])
		}
		if at[2] < 12*time.Second {
			t.Errorf("%s stopped at %v, before the connections ended", h, at[2])
		}
		if w.ConnActive(h) {
			t.Errorf("%s: unit still active", h)
		}
	}
	keep := script(t, w, "lab1")
	for _, want := range []string{"ip addr replace 198.18.0.201/32 dev lo", "arp_ignore=1", "arp_announce=2", "ip addr del 198.18.0.201/32 dev lo"} {
		if !strings.Contains(keep, want) {
			t.Errorf("lab1's script lacks %q", want)
		}
	}
	if strings.Contains(keep, "dup to") {
		t.Error("lab1 (the keeper) forwards")
	}
	for _, h := range []string{"lab2", "lab3"} {
		fwd := script(t, w, h)
		if !strings.Contains(fwd, `ip daddr 198.18.0.201 tcp flags & syn == 0 ct state invalid,new counter dup to 198.18.0.11 device "eth0" drop`) {
			t.Errorf("%s's script:\n%s", h, fwd)
		}
		if strings.Contains(fwd, "dev lo") {
			t.Errorf("%s (a forwarder) keeps a VIP on lo", h)
		}
	}
	all := strings.Join(*events, "\n")
	for _, want := range []string{"lab1: 3 connection(s) left on 198.18.0.201", "lab1: 0 connection(s) left", "lab1: every connection ended after", "connection draining stopped on lab1, lab2, lab3"} {
		if !strings.Contains(all, want) {
			t.Errorf("events lack %q:\n%s", want, all)
		}
	}
}

// TestConnDrainGivesUp: connections that never end are counted when the
// grace period is over, and the draining is stopped all the same.
func TestConnDrainGivesUp(t *testing.T) {
	w, d, events := labGrace(t, 10*time.Second)
	w.Conns = func(host string, _ time.Duration) int { return 2 }
	res, err := d.Drain(context.Background(), "lab1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Conns.Left["lab1"] != 2 || res.Conns.WaitedSeconds < 10 || res.Conns.WaitedSeconds > 11 {
		t.Errorf("conns = %+v", res.Conns)
	}
	if !strings.Contains(strings.Join(*events, "\n"), "lab1: 2 connection(s) still open after the 10s grace period: cut") {
		t.Errorf("events: %q", *events)
	}
	for _, h := range []string{"lab1", "lab2", "lab3"} {
		if w.ConnActive(h) {
			t.Errorf("%s: unit still active after the grace period", h)
		}
	}
}

// TestConnUndrain: the fail-back keeps .201 on lab2 (its holder while lab1
// was drained), and lab1 and lab3 forward to lab2.
func TestConnUndrain(t *testing.T) {
	w, d, _ := labGrace(t, 20*time.Second)
	if _, err := d.Drain(context.Background(), "lab1"); err != nil {
		t.Fatal(err)
	}
	w.Conns = func(host string, at time.Duration) int {
		if host == "lab2" {
			return 1
		}
		return 0
	}
	res, err := d.Undrain(context.Background(), "lab1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Conns == nil || res.Conns.Left["lab2"] != 1 || len(res.Conns.Left) != 1 {
		t.Fatalf("conns = %+v", res.Conns)
	}
	ups := w.Fakes["lab2"].Uploads()
	if len(ups) != 2 || !strings.Contains(string(ups[1].Content), "ip addr replace 198.18.0.201/32 dev lo") {
		t.Errorf("lab2's undrain script: %+v", ups)
	}
	ups = w.Fakes["lab1"].Uploads()
	if len(ups) != 2 || !strings.Contains(string(ups[1].Content), "dup to 198.18.0.12 device") {
		t.Errorf("lab1's undrain script: %+v", ups)
	}
	if got := w.Holders()["198.18.0.201/24"]; len(got) != 1 || got[0] != "lab1" {
		t.Errorf(".201 on %v", got)
	}
}

// TestConnDrainRefusesMissingNft: a forwarder without nft refuses the drain
// before anything changes.
func TestConnDrainRefusesMissingNft(t *testing.T) {
	w, d, _ := labGrace(t, 30*time.Second)
	w.ConnMissing["lab3"] = "nft"
	_, err := d.Drain(context.Background(), "lab1")
	if !errors.Is(err, drain.ErrRefused) || !strings.Contains(err.Error(), "lab3 lacks nft") {
		t.Fatalf("err = %v", err)
	}
	if v, _ := writes(w, "lab1"); len(v) != 0 {
		t.Errorf("a refused drain wrote %v", v)
	}
	for _, h := range []string{"lab1", "lab2", "lab3"} {
		if k, _ := connSent(w, h); len(k) != 0 || len(w.Fakes[h].Uploads()) != 0 {
			t.Errorf("%s: %v", h, k)
		}
	}
}

// TestConnDrainFailureStops: a drain whose VIP never moves restores the
// drain file and stops the connection draining it had started.
func TestConnDrainFailureStops(t *testing.T) {
	w, d, _ := labGrace(t, 30*time.Second)
	w.DrainMove = time.Hour
	if _, err := d.Drain(context.Background(), "lab1"); err == nil {
		t.Fatal("drain succeeded")
	}
	for _, h := range []string{"lab1", "lab2", "lab3"} {
		if w.ConnActive(h) {
			t.Errorf("%s: unit still active", h)
		}
	}
}

// TestConnPlanIPv6Refused: an IPv6 (or dual-stack) VIP is refused with the
// reason, nothing sent.
func TestConnPlanIPv6Refused(t *testing.T) {
	for _, f := range []string{"lab-ipv6.hcl", "lab-dualstack.hcl"} {
		inv, l := testinv.LoadFile(t, "../inventory/testdata/"+f)
		w := vrrpsim.New(inv, l)
		d := drain.New(drain.Options{Layout: l, Fleet: w.Fleet, Clock: w.Clock, Grace: time.Minute})
		_, err := d.Drain(context.Background(), "lab1")
		if !errors.Is(err, drain.ErrRefused) || !strings.Contains(err.Error(), "IPv4") {
			t.Errorf("%s: err = %v", f, err)
		}
		if v, _ := writes(w, "lab1"); len(v) != 0 {
			t.Errorf("%s: a refused drain wrote %v", f, v)
		}
	}
}

func TestParseCount(t *testing.T) {
	if n, err := drain.ParseCount("198.18.0.201 3\n198.18.0.202 4\n"); err != nil || n != 7 {
		t.Errorf("%d %v", n, err)
	}
	if n, err := drain.ParseCount(""); err != nil || n != 0 {
		t.Errorf("%d %v", n, err)
	}
	if _, err := drain.ParseCount("198.18.0.201 x\n"); err == nil {
		t.Error("garbage parsed")
	}
}

func TestParseActiveConn(t *testing.T) {
	for out, want := range map[string]string{
		"ActiveState=active\nDescription=hactl connection drain: keeps 198.18.0.201 for its open connections\n":   "keeps 198.18.0.201 for its open connections",
		"Description=hactl connection drain: keeps 198.18.0.201 for its open connections\nActiveState=inactive\n": "",
		"ActiveState=inactive\nDescription=hactl-conndrain.service\n":                                             "",
		"": "",
	} {
		if got := drain.ParseActiveConn(out); got != want {
			t.Errorf("%q: %q, want %q", out, got, want)
		}
	}
}

// TestGraceFor: --grace overrides drain_grace (0 included); out of range
// is refused.
func TestGraceFor(t *testing.T) {
	inv, _ := testinv.Load(t, "lab.hcl")
	inv.ClusterOf("lab1").DrainGrace = 90 * time.Second
	for _, c := range []struct {
		flag time.Duration
		set  bool
		want time.Duration
		err  bool
	}{
		{0, false, 90 * time.Second, false},
		{0, true, 0, false},
		{5 * time.Minute, true, 5 * time.Minute, false},
		{-time.Second, true, 0, true},
		{2 * time.Hour, true, 0, true},
	} {
		got, err := drain.GraceFor(inv, "lab1", c.flag, c.set)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("GraceFor(%v, %v) = %v, %v; want %v (error %v)", c.flag, c.set, got, err, c.want, c.err)
		}
	}
	if _, err := drain.GraceFor(inv, "nope", 0, false); err == nil {
		t.Error("unknown host accepted")
	}
}

// TestSettleWithoutGrace: without a grace period each move still runs a
// connection drain, for drain.Settle: the old holder keeps the VIP for the
// requests in flight at the switch (lab1 through the drain, lab2 through
// the undrain), started before the drain file is written and stopped after
// the Settle.
func TestSettleWithoutGrace(t *testing.T) {
	w, d, events := labGrace(t, 0)
	w.Conns = func(string, time.Duration) int { return 0 }
	res, err := d.Drain(context.Background(), "lab1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Conns == nil || res.Conns.GraceSeconds != drain.Settle.Seconds() || res.Conns.Left["lab1"] != 0 || res.Conns.WaitedSeconds != drain.Settle.Seconds() {
		t.Fatalf("drain conns = %+v", res.Conns)
	}
	kinds, at := connSent(w, "lab1")
	_, wrote := writes(w, "lab1")
	if len(kinds) != 3 || kinds[1] != "start" || kinds[2] != "stop" || at[1] > wrote[0] || at[2] < wrote[1] {
		t.Errorf("lab1: %v at %v, drain file written at %v", kinds, at, wrote)
	}
	if !strings.Contains(script(t, w, "lab1"), "ip addr replace 198.18.0.201/32 dev lo") {
		t.Error("lab1 does not keep .201")
	}
	// A long-lived connection on lab2 is cut after the Settle, and said so.
	w.Conns = func(host string, _ time.Duration) int {
		if host == "lab2" {
			return 1
		}
		return 0
	}
	res, err = d.Undrain(context.Background(), "lab1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Conns == nil || res.Conns.GraceSeconds != drain.Settle.Seconds() || len(res.Conns.Left) != 1 || res.Conns.Left["lab2"] != 1 {
		t.Fatalf("undrain conns = %+v", res.Conns)
	}
	if !slices.Contains(*events, "lab2: 1 connection(s) still open 2s after the switch: cut (no drain_grace)") {
		t.Errorf("events: %q", *events)
	}
	if ups := w.Fakes["lab2"].Uploads(); len(ups) != 2 || !strings.Contains(string(ups[1].Content), "ip addr replace 198.18.0.201/32 dev lo") {
		t.Errorf("lab2's undrain script: %+v", ups)
	}
	for _, h := range []string{"lab1", "lab2", "lab3"} {
		if w.ConnActive(h) {
			t.Errorf("%s: unit still active", h)
		}
	}
	if strings.Contains(strings.Join(*events, "\n"), "not kept") {
		t.Errorf("events: %q", *events)
	}
}

// TestSettleSkippedWithoutNft: where the Settle cannot run (a forwarder
// without nft, an IPv6 VIP) a drain without a grace period moves the VIPs
// without it, as before, and says so; nothing of a connection drain is
// started.
func TestSettleSkippedWithoutNft(t *testing.T) {
	w, d, events := labGrace(t, 0)
	w.ConnMissing["lab3"] = "nft"
	res, err := d.Drain(context.Background(), "lab1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Conns != nil || res.Moved["198.18.0.201/24"] != "lab2" {
		t.Fatalf("res = %+v", res)
	}
	if !strings.Contains(strings.Join(*events, "\n"), "requests in flight at the switch are not kept: connection draining refused: lab3 lacks nft (install nftables where it is missing)\n") {
		t.Errorf("events: %q", *events)
	}
	for _, h := range []string{"lab1", "lab2", "lab3"} {
		if k, _ := connSent(w, h); len(k) != 0 || len(w.Fakes[h].Uploads()) != 0 {
			t.Errorf("%s: %v", h, k)
		}
	}

	for _, f := range []string{"lab-ipv6.hcl", "lab-dualstack.hcl"} {
		inv, l := testinv.LoadFile(t, "../inventory/testdata/"+f)
		w := vrrpsim.New(inv, l)
		var ev []string
		d := drain.New(drain.Options{Layout: l, Fleet: w.Fleet, Clock: w.Clock, Event: func(s string) { ev = append(ev, s) }})
		res, err := d.Drain(context.Background(), "lab1")
		if err != nil || res.Conns != nil {
			t.Fatalf("%s: %+v, %v", f, res, err)
		}
		if !strings.Contains(strings.Join(ev, "\n"), "requests in flight at the switch are not kept: connection draining refused for VIP") {
			t.Errorf("%s: events %q", f, ev)
		}
	}
}

// TestSettleStartFailureUndone: a Settle whose unit fails to start on one
// host is stopped everywhere and the move goes ahead without it; with a
// grace period the same failure fails the drain before the drain file is
// written.
func TestSettleStartFailureUndone(t *testing.T) {
	for _, grace := range []time.Duration{0, 30 * time.Second} {
		w, d, _ := labGrace(t, grace)
		g := grace
		if g == 0 {
			g = drain.Settle
		}
		// The unit's limit: the lab's move timeout (16 s) + the grace + 60 s.
		w.FailCommand("lab3", drain.StartConnCommand(16*time.Second+g+time.Minute,
			"hactl connection drain: forwards established connections of 198.18.0.201 → 198.18.0.11"), 1)
		res, err := d.Drain(context.Background(), "lab1")
		if grace > 0 {
			if err == nil {
				t.Fatal("a drain with a grace period went ahead without its connection drain")
			}
			if v, _ := writes(w, "lab1"); len(v) != 0 {
				t.Errorf("wrote %v", v)
			}
		} else if err != nil || res.Conns != nil || res.Moved["198.18.0.201/24"] != "lab2" {
			t.Fatalf("grace 0: %+v, %v", res, err)
		}
		for _, h := range []string{"lab1", "lab2", "lab3"} {
			if w.ConnActive(h) {
				t.Errorf("grace %v: %s: unit still active", grace, h)
			}
		}
		if k, _ := connSent(w, "lab2"); len(k) != 3 || k[1] != "start" || k[2] != "stop" {
			t.Errorf("grace %v: lab2 (started before lab3): %v", grace, k)
		}
	}
}
