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
