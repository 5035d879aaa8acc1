package rollout

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hactl/hactl/internal/testinv"
	"github.com/hactl/hactl/internal/vrrpsim"
	"github.com/hactl/hactl/pkg/drain"
	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/playbook"
)

// fakeSites is a serving layer on the simulated lab: each host has a live
// version (old or new); a "bad" host fails its check while it serves the
// new one. Every call is recorded with the VIPs the host held at that
// moment, so the test sees that nothing went live while the host served.
type fakeSites struct {
	w       *vrrpsim.World
	mu      sync.Mutex
	changes map[string]bool // host -> its layer would change
	bad     map[string]bool // host -> the new layer fails its check there
	live    map[string]string
	kept    map[string]string
	calls   []string
}

func (f *fakeSites) note(host, what string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var held []string
	for vip, hs := range f.w.Holders() {
		for _, h := range hs {
			if h == host {
				held = append(held, vip)
			}
		}
	}
	s := host + " " + what
	if what == "apply" || what == "check" || what == "restore" {
		s += fmt.Sprintf(" (holds %d VIPs)", len(held))
	}
	f.calls = append(f.calls, s)
}

func (f *fakeSites) Changes(_ context.Context, h string) (bool, error) {
	f.note(h, "plan")
	return f.changes[h], nil
}
func (f *fakeSites) Keep(_ context.Context, h string) error {
	f.note(h, "keep")
	f.kept[h] = f.live[h]
	return nil
}
func (f *fakeSites) Apply(_ context.Context, h string) error {
	f.note(h, "apply")
	f.live[h] = "new"
	return nil
}
func (f *fakeSites) Check(_ context.Context, h string) error {
	f.note(h, "check")
	if f.bad[h] && f.live[h] == "new" {
		return errors.New(`site "api": health api.example.test:443/v1/health on ` + h + `:443: HTTP 404, want 2xx`)
	}
	return nil
}
func (f *fakeSites) Restore(_ context.Context, h string) error {
	f.note(h, "restore")
	f.live[h] = f.kept[h]
	return nil
}
func (f *fakeSites) Forget(_ context.Context, h string) error {
	f.note(h, "forget")
	return nil
}

func sitesLab(t *testing.T) (*vrrpsim.World, *fakeSites, SitesOptions) {
	t.Helper()
	inv, l := testinv.Load(t, "lab.hcl")
	w := vrrpsim.New(inv, l)
	f := &fakeSites{w: w, changes: map[string]bool{"lab1": true, "lab2": true, "lab3": true}, bad: map[string]bool{},
		live: map[string]string{"lab1": "old", "lab2": "old", "lab3": "old"}, kept: map[string]string{}}
	o := SitesOptions{Hosts: []string{"lab1", "lab2", "lab3"}, Step: f, Clock: w.Clock,
		Drainer: drain.New(drain.Options{Layout: l, Fleet: w.Fleet, Clock: w.Clock})}
	return w, f, o
}

// gapless samples every VIP every 10 ms of virtual time for d and reports
// the moments one had no holder.
func gapless(w *vrrpsim.World, d time.Duration) *[]string {
	var gaps []string
	for at := time.Duration(0); at < d; at += 10 * time.Millisecond {
		w.Clock.At(at, func() {
			for vip, hs := range w.Holders() {
				if len(hs) == 0 {
					gaps = append(gaps, fmt.Sprintf("%s at %s", vip, at))
				}
			}
		})
	}
	return &gaps
}

func TestRollSitesCanaryFirstDrained(t *testing.T) {
	w, f, o := sitesLab(t)
	gaps := gapless(w, 2*time.Minute)
	res, err := RollSites(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	// The canary is changed and checked while it holds no VIP: clients
	// never see it; the others, once it passed, in place.
	want := []string{"lab1 plan", "lab1 keep", "lab1 apply (holds 0 VIPs)", "lab1 check (holds 0 VIPs)", "lab1 forget"}
	for _, h := range []string{"lab2", "lab3"} {
		want = append(want, h+" plan", h+" keep", h+" apply (holds 1 VIPs)", h+" check (holds 1 VIPs)", h+" forget")
	}
	if !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(f.calls, "\n"), strings.Join(want, "\n"))
	}
	if !res[0].Canary || res[1].Canary || res[2].Canary {
		t.Errorf("canary flags %v", res)
	}
	if len(*gaps) > 0 {
		t.Errorf("a VIP had no holder: %v", *gaps)
	}
	for _, h := range o.Hosts {
		if d := w.Drain(h); d != facts.InService {
			t.Errorf("%s left with drain value %d", h, d)
		}
	}
	// Every VIP back home at the end.
	for vip, hs := range w.Holders() {
		if len(hs) != 1 {
			t.Errorf("%s held by %v after the rollout", vip, hs)
		}
	}
}

func TestRollSitesBadCanaryStopsThere(t *testing.T) {
	w, f, o := sitesLab(t)
	f.bad["lab1"] = true
	gaps := gapless(w, 2*time.Minute)
	res, err := RollSites(context.Background(), o)
	var ce *CheckError
	if !errors.As(err, &ce) || ce.Host != "lab1" || !ce.Canary || ce.Restore != nil {
		t.Fatalf("err = %v, want the canary lab1's check error", err)
	}
	for _, s := range []string{"canary lab1", `site "api"`, "health", "previous sites are back", "no other host was touched"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	want := []string{"lab1 plan", "lab1 keep", "lab1 apply (holds 0 VIPs)",
		"lab1 check (holds 0 VIPs)", "lab1 check (holds 0 VIPs)", "lab1 check (holds 0 VIPs)", "lab1 restore (holds 0 VIPs)"}
	if !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(f.calls, "\n"), strings.Join(want, "\n"))
	}
	if f.live["lab1"] != "old" || f.live["lab2"] != "old" || f.live["lab3"] != "old" {
		t.Errorf("live layers %v, want old everywhere", f.live)
	}
	for _, h := range []string{"lab2", "lab3"} {
		if len(w.Sent()) > 0 {
			for _, s := range w.Sent() {
				if s.Host == h {
					if _, ok := drain.ParseWriteCommand(s.Cmd); ok {
						t.Errorf("%s drained although the canary failed", h)
					}
				}
			}
		}
	}
	if !errors.Is(res[1].Err, ErrStopped) || !errors.Is(res[2].Err, ErrStopped) {
		t.Errorf("results %v: lab2, lab3 should be stopped", res)
	}
	if w.Drain("lab1") != facts.InService {
		t.Errorf("canary left drained (%d) after its restore", w.Drain("lab1"))
	}
	if len(*gaps) > 0 {
		t.Errorf("a VIP had no holder: %v", *gaps)
	}
}

func TestRollSitesSkipsUnchangedAndStopsAtLaterHost(t *testing.T) {
	w, f, o := sitesLab(t)
	f.changes["lab1"] = false // converged: neither drained nor checked
	f.bad["lab3"] = true
	o.Hosts = []string{"lab1", "lab2", "lab3"}
	res, err := RollSites(context.Background(), o)
	var ce *CheckError
	if !errors.As(err, &ce) || ce.Host != "lab3" || ce.Canary {
		t.Fatalf("err = %v, want lab3's (not a canary) check error", err)
	}
	if res[0].Changed || !res[1].Canary || res[1].Err != nil {
		t.Errorf("results %+v: lab1 unchanged, lab2 the canary and fine", res)
	}
	for _, s := range w.Sent() {
		if _, ok := drain.ParseWriteCommand(s.Cmd); ok && s.Host == "lab1" {
			t.Error("unchanged lab1 was drained")
		}
	}
	if f.live["lab2"] != "new" || f.live["lab3"] != "old" {
		t.Errorf("live layers %v", f.live)
	}
}

// A drain that is refused (no other host can take the VIPs) changes the
// host in place, still checked.
func TestRollSitesDrainRefusedInPlace(t *testing.T) {
	w, f, o := sitesLab(t)
	o.Drained = map[string]bool{}
	for _, h := range []string{"lab2", "lab3"} {
		w.Fakes[h].Run(context.Background(), drain.WriteCommand(facts.DrainOut), nil) //nolint:errcheck // simulator
		o.Drained[h] = true
	}
	o.Hosts = []string{"lab1"}
	var warned bool
	o.Event = func(e playbook.Event) {
		if e.Status == "warning" && strings.Contains(e.Summary, "not drained") {
			warned = true
		}
	}
	if _, err := RollSites(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if !warned || f.live["lab1"] != "new" {
		t.Errorf("warned %v, live %v", warned, f.live)
	}
}

func TestRollSitesDrainEvery(t *testing.T) {
	w, f, o := sitesLab(t)
	o.DrainEvery = true
	gaps := gapless(w, 2*time.Minute)
	if _, err := RollSites(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	for _, c := range f.calls {
		if strings.Contains(c, "holds 1") {
			t.Errorf("with DrainEvery a host changed while serving: %s", c)
		}
	}
	if len(*gaps) > 0 {
		t.Errorf("a VIP had no holder: %v", *gaps)
	}
}

// sitesLabGrace is sitesLab whose Drainer keeps open connections for grace
// at each move (a connection drain), with the Drainer without one as Cut;
// events are recorded.
func sitesLabGrace(t *testing.T, grace time.Duration) (*vrrpsim.World, *fakeSites, SitesOptions, *[]playbook.Event) {
	t.Helper()
	w, f, o := sitesLab(t)
	_, l := testinv.Load(t, "lab.hcl")
	o.Drainer = drain.New(drain.Options{Layout: l, Fleet: w.Fleet, Clock: w.Clock, Grace: grace})
	o.Cut = drain.New(drain.Options{Layout: l, Fleet: w.Fleet, Clock: w.Clock})
	var events []playbook.Event
	o.Event = func(e playbook.Event) { events = append(events, e) }
	return w, f, o, &events
}

// connStarts lists, per host, the connection drains started there (the
// systemd-run of drain.StartConnCommand) with the uploaded script of each.
func connStarts(w *vrrpsim.World, host string) (starts int, scripts []string) {
	for _, s := range w.Sent() {
		if s.Host == host && strings.HasPrefix(s.Cmd, "systemd-run --quiet --unit="+drain.ConnUnit+" ") {
			starts++
		}
	}
	for _, u := range w.Fakes[host].Uploads() {
		if u.Path == drain.ConnScript {
			scripts = append(scripts, string(u.Content))
		}
	}
	return starts, scripts
}

// TestRollSitesCanaryConnDrain: the canary's drain and undrain each run a
// connection drain: at the drain lab1 keeps its VIP on lo for the request
// in flight while lab2 and lab3 forward to it, at the undrain lab2 (which
// covered for it) keeps it while lab1 and lab3 forward; each ends when the
// connections have (not after the whole grace period), nothing is left
// running, and the hosts after the canary are not moved at all.
func TestRollSitesCanaryConnDrain(t *testing.T) {
	w, f, o, events := sitesLabGrace(t, 10*time.Second)
	begun := map[string]time.Duration{}
	w.Conns = func(host string, at time.Duration) int {
		// One request in flight on the old holder (lab1 at the drain,
		// lab2 at the undrain) for 1.5 s after its count began.
		b, ok := begun[host]
		if !ok {
			begun[host], b = at, at
		}
		if at-b < 1500*time.Millisecond {
			return 1
		}
		return 0
	}
	if _, err := RollSites(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	wantStarts := map[string]int{"lab1": 2, "lab2": 2, "lab3": 2}
	for h, n := range wantStarts {
		starts, scripts := connStarts(w, h)
		if starts != n || len(scripts) != n {
			t.Fatalf("%s: %d connection drains started (%d scripts), want %d", h, starts, len(scripts), n)
		}
		if w.ConnActive(h) {
			t.Errorf("%s: connection drain still running after the rollout", h)
		}
	}
	_, s1 := connStarts(w, "lab1")
	_, s2 := connStarts(w, "lab2")
	if !strings.Contains(s1[0], "ip addr replace 198.18.0.201/32 dev lo") || !strings.Contains(s2[0], "dup to 198.18.0.11 ") {
		t.Errorf("drain: lab1 must keep .201, lab2 forward to lab1:\n%s\n%s", s1[0], s2[0])
	}
	if !strings.Contains(s2[1], "ip addr replace 198.18.0.201/32 dev lo") || !strings.Contains(s1[1], "dup to 198.18.0.12 ") {
		t.Errorf("undrain: lab2 must keep .201, lab1 forward to lab2:\n%s\n%s", s2[1], s1[1])
	}
	var summaries []string
	for _, e := range *events {
		if e.Host == "lab1" {
			summaries = append(summaries, e.Status+" "+e.Summary)
		}
		if e.Status == "warning" {
			t.Errorf("warning: %s %s", e.Host, e.Summary)
		}
	}
	all := strings.Join(summaries, "\n")
	for _, want := range []string{"ok canary: drained: 198.18.0.201/24 now on lab2; every connection open at the move ended (waited ",
		"ok canary: undrained: 198.18.0.201/24 now on lab1; every connection open at the move ended (waited "} {
		if !strings.Contains(all, want) {
			t.Errorf("lab1's events lack %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "waited 10") {
		t.Errorf("a move waited the whole grace period:\n%s", all)
	}
	if f.live["lab1"] != "new" || f.live["lab3"] != "new" {
		t.Errorf("live layers %v", f.live)
	}
}

// TestRollSitesConnDrainRefusedCuts: a host without nft refuses the
// connection drain; the canary is still drained and undrained, without one
// (Cut), with one warning that says why and what it costs.
func TestRollSitesConnDrainRefusedCuts(t *testing.T) {
	w, f, o, events := sitesLabGrace(t, 10*time.Second)
	w.ConnMissing["lab3"] = "nft"
	if _, err := RollSites(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if f.calls[2] != "lab1 apply (holds 0 VIPs)" {
		t.Errorf("the canary changed while it served: %v", f.calls)
	}
	for _, h := range []string{"lab1", "lab2", "lab3"} {
		if n, _ := connStarts(w, h); n != 0 {
			t.Errorf("%s: %d connection drains started after the refusal", h, n)
		}
	}
	var warnings []string
	for _, e := range *events {
		if e.Status == "warning" {
			warnings = append(warnings, e.Host+" "+e.Summary)
		}
	}
	// Once: the undrain goes without a connection drain too.
	if len(warnings) != 1 || !strings.Contains(warnings[0], "lab1 open connections not kept (drain lab1: connection draining refused: lab3 lacks nft") ||
		!strings.Contains(warnings[0], "a request in flight at the move can fail") {
		t.Errorf("warnings:\n%s", strings.Join(warnings, "\n"))
	}
	if d := w.Drain("lab1"); d != facts.InService {
		t.Errorf("lab1 left with drain value %d", d)
	}
	if got := w.Holders()["198.18.0.201/24"]; len(got) != 1 || got[0] != "lab1" {
		t.Errorf(".201 on %v after the rollout", got)
	}
}

// TestRollSitesConnDrainRefusedNoFallback: without Cut, a refused
// connection drain stops the rollout before anything changed.
func TestRollSitesConnDrainRefusedNoFallback(t *testing.T) {
	w, f, o, _ := sitesLabGrace(t, 10*time.Second)
	o.Cut = nil
	w.ConnMissing["lab2"] = "nft"
	_, err := RollSites(context.Background(), o)
	if !errors.Is(err, drain.ErrConnsRefused) || !strings.Contains(err.Error(), "lab1: drain before the sites change") {
		t.Fatalf("err = %v", err)
	}
	for _, h := range []string{"lab1", "lab2", "lab3"} {
		if f.live[h] != "old" {
			t.Errorf("%s changed: %v", h, f.live)
		}
	}
	for _, s := range w.Sent() {
		if _, ok := drain.ParseWriteCommand(s.Cmd); ok {
			t.Errorf("%s: drain file written: %s", s.Host, s.Cmd)
		}
	}
}
