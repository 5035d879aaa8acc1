package drain_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hactl/hactl/internal/testinv"
	"github.com/hactl/hactl/internal/vrrpsim"
	"github.com/hactl/hactl/pkg/drain"
	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/vrrp"
)

// lab is inventory/lab.hcl's three balancers (lab1 .201, lab2 .202, lab3
// .203; each VIP's first backup is the next host) in virtual time.
func lab(t *testing.T) (*vrrpsim.World, *drain.Drainer) {
	t.Helper()
	inv, l := testinv.Load(t, "lab.hcl")
	w := vrrpsim.New(inv, l)
	return w, drain.New(drain.Options{Layout: l, Fleet: w.Fleet, Clock: w.Clock})
}

// writes lists the drain values written to host, with when.
func writes(w *vrrpsim.World, host string) (vals []int, at []time.Duration) {
	for _, s := range w.Sent() {
		if v, ok := drain.ParseWriteCommand(s.Cmd); ok && s.Host == host {
			vals, at = append(vals, v), append(at, s.At)
		}
	}
	return vals, at
}

func TestDrainThenUndrain(t *testing.T) {
	w, d := lab(t)
	// Sample the VIP every 10 ms of virtual time: never unheld.
	var gaps []time.Duration
	for at := time.Duration(0); at < 30*time.Second; at += 10 * time.Millisecond {
		w.Clock.At(at, func() {
			if len(w.Holders()["198.18.0.201/24"]) == 0 {
				gaps = append(gaps, at)
			}
		})
	}
	res, err := d.Drain(context.Background(), "lab1")
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Holders()["198.18.0.201/24"]; len(got) != 1 || got[0] != "lab2" {
		t.Errorf("after drain .201 on %v, want lab2", got)
	}
	if res.Moved["198.18.0.201/24"] != "lab2" || len(res.Moved) != 1 {
		t.Errorf("moved = %v", res.Moved)
	}
	vals, at := writes(w, "lab1")
	// -3: lab1's 101 just below lab2's 99 and above lab3's 97 (drain.Step).
	if len(vals) != 2 || vals[0] != -3 || vals[1] != facts.DrainOut {
		t.Fatalf("drain wrote %v, want -3 then -254", vals)
	}
	// FAULT only once the VIP sits on lab2 alone (after the move and the overlap).
	if at[1]-at[0] < w.DrainMove+w.Overlap {
		t.Errorf("-254 written %v after -3, before the VIP moved (%v)", at[1]-at[0], w.DrainMove+w.Overlap)
	}
	if w.Drain("lab1") != facts.DrainOut {
		t.Errorf("drain file %d", w.Drain("lab1"))
	}

	if _, err := d.Undrain(context.Background(), "lab1"); err != nil {
		t.Fatal(err)
	}
	for vip, hs := range w.Holders() {
		if len(hs) != 1 {
			t.Errorf("%s on %v after undrain", vip, hs)
		}
	}
	if got := w.Holders()["198.18.0.201/24"]; len(got) != 1 || got[0] != "lab1" {
		t.Errorf("after undrain .201 on %v, want lab1", got)
	}
	if vals, _ := writes(w, "lab1"); len(vals) != 3 || vals[2] != 0 {
		t.Errorf("undrain wrote %v", vals)
	}
	if len(gaps) > 0 {
		t.Errorf(".201 unheld at %v", gaps)
	}
}

func TestRefuseLastHost(t *testing.T) {
	w, d := lab(t)
	for _, h := range []string{"lab2", "lab3"} {
		if _, err := d.Drain(context.Background(), h); err != nil {
			t.Fatal(err)
		}
	}
	before := len(w.Sent())
	_, err := d.Drain(context.Background(), "lab1")
	if !errors.Is(err, drain.ErrRefused) || !strings.Contains(err.Error(), "last host that can hold VIP 198.18.0.201/24") {
		t.Fatalf("err = %v", err)
	}
	for _, s := range w.Sent()[before:] {
		if _, ok := drain.ParseWriteCommand(s.Cmd); ok {
			t.Errorf("a refused drain wrote: %s %s", s.Host, s.Cmd)
		}
	}
}

func TestRefuseUnhealthyPeer(t *testing.T) {
	w, d := lab(t)
	w.SetNginx("lab2", "inactive")
	_, err := d.Drain(context.Background(), "lab1")
	if !errors.Is(err, drain.ErrRefused) || !strings.Contains(err.Error(), "VIP 198.18.0.201/24 would go to lab2") {
		t.Fatalf("err = %v", err)
	}
	if v, _ := writes(w, "lab1"); len(v) != 0 {
		t.Errorf("wrote %v", v)
	}
}

// TestDrainTimeoutRestores: a VIP that never moves (the next host does not
// take it, at the first step nor at priority 1) fails the drain and puts the
// drain file back.
func TestDrainTimeoutRestores(t *testing.T) {
	w, d := lab(t)
	w.DrainMove = time.Hour
	_, err := d.Drain(context.Background(), "lab1")
	if err == nil || !strings.Contains(err.Error(), "drain file restored to 0") {
		t.Fatalf("err = %v", err)
	}
	if vals, _ := writes(w, "lab1"); len(vals) != 3 || vals[0] != -3 || vals[1] != facts.DrainLow || vals[2] != 0 {
		t.Errorf("wrote %v, want -3, -253 then 0", vals)
	}
	if w.Drain("lab1") != 0 {
		t.Errorf("drain file %d", w.Drain("lab1"))
	}
}

func TestWriteCommand(t *testing.T) {
	for _, v := range []int{facts.DrainLow, facts.DrainOut, 0} {
		cmd := drain.WriteCommand(v)
		if got, ok := drain.ParseWriteCommand(cmd); !ok || got != v {
			t.Errorf("%d: parsed %d %v from %s", v, got, ok, cmd)
		}
		for _, want := range []string{"mktemp '/etc/keepalived/hactl-drain.hactl-XXXXXX'", "chmod 0644", "chown root:root", `mv -f "$t" '/etc/keepalived/hactl-drain'`} {
			if !strings.Contains(cmd, want) {
				t.Errorf("%s lacks %q", cmd, want)
			}
		}
	}
}

// TestDrainResumes: a host left at a first step by an interrupted drain is
// waited for again, at that step, before FAULT, which would otherwise drop a
// VIP not yet moved.
func TestDrainResumes(t *testing.T) {
	w, d := lab(t)
	if _, err := w.Fakes["lab1"].Run(context.Background(), drain.WriteCommand(facts.DrainLow), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Drain(context.Background(), "lab1"); err != nil {
		t.Fatal(err)
	}
	vals, at := writes(w, "lab1")
	if len(vals) != 2 || vals[1] != facts.DrainOut || at[1] < w.DrainMove+w.Overlap {
		t.Errorf("wrote %v at %v: want -254 only once .201 moved (%v)", vals, at, w.DrainMove+w.Overlap)
	}
	if got := w.Holders()["198.18.0.201/24"]; len(got) != 1 || got[0] != "lab2" {
		t.Errorf(".201 on %v", got)
	}
}

// layoutOf builds one cluster's instances from "host:priority" lists, the
// master first, VIPs 10.0.0.1, .2, … in order.
func layoutOf(t *testing.T, members ...[]string) *vrrp.Layout {
	t.Helper()
	l := &vrrp.Layout{}
	for i, ms := range members {
		in := &vrrp.Instance{Name: fmt.Sprintf("VI_%d", i+1), Cluster: "c", VIP: netip.MustParsePrefix(fmt.Sprintf("10.0.0.%d/24", i+1))}
		for _, m := range ms {
			h, p, _ := strings.Cut(m, ":")
			n, err := strconv.Atoi(p)
			if err != nil {
				t.Fatal(err)
			}
			in.Members = append(in.Members, vrrp.Member{Host: h, Priority: n})
		}
		in.Master = in.Members[0].Host
		l.Instances = append(l.Instances, in)
	}
	return l
}

// TestStep: the first step puts the drained host's priority below the next
// holder of every VIP it holds and at or above every other candidate (a
// backup resets its master-down timer on adverts of its own priority or
// higher), or is priority 1 where no single value does.
func TestStep(t *testing.T) {
	_, labLayout := testinv.Load(t, "lab.hcl")
	in := func(names ...string) []drain.HostState {
		var s []drain.HostState
		for _, n := range names {
			s = append(s, drain.HostState{Name: n, Healthy: true})
		}
		return s
	}
	out := func(s []drain.HostState, name string, st drain.HostState) []drain.HostState {
		for i := range s {
			if s[i].Name == name {
				st.Name = name
				s[i] = st
			}
		}
		return s
	}
	held := func(vips ...string) map[string]bool {
		m := map[string]bool{}
		for _, v := range vips {
			m[v] = true
		}
		return m
	}
	three := in("lab1", "lab2", "lab3")
	for _, c := range []struct {
		name   string
		l      *vrrp.Layout
		host   string
		states []drain.HostState
		held   map[string]bool
		want   int
	}{
		{"lab: 101 between 99 and 97", labLayout, "lab1", three, held("198.18.0.201/24"), -3},
		{"lab3's own VIP: lab1 99, lab2 97", labLayout, "lab3", three, held("198.18.0.203/24"), -3},
		{"first backup drained: below lab3's 97, nothing after", labLayout, "lab1",
			out(in("lab1", "lab2", "lab3"), "lab2", drain.HostState{Drain: facts.DrainOut}), held("198.18.0.201/24"), -5},
		{"first backup unreachable counts as out", labLayout, "lab1",
			out(in("lab1", "lab2", "lab3"), "lab2", drain.HostState{Err: errors.New("down")}), held("198.18.0.201/24"), -5},
		{"two VIPs held, one value fits both", labLayout, "lab1",
			out(in("lab1", "lab2", "lab3"), "lab3", drain.HostState{Drain: facts.DrainOut}), held("198.18.0.201/24", "198.18.0.203/24"), -3},
		{"holds nothing: priority 1", labLayout, "lab1", three, held(), facts.DrainLow},
		{"gaps that no single value fits", layoutOf(t, []string{"h:101", "x:95", "y:94"}, []string{"z:150", "h:50", "w:49", "v:48"}),
			"h", in("h", "x", "y", "z", "w", "v"), held("10.0.0.1/24", "10.0.0.2/24"), facts.DrainLow},
		{"wide gaps", layoutOf(t, []string{"h:200", "x:150", "y:100"}), "h", in("h", "x", "y"), held("10.0.0.1/24"), -51},
		{"first candidate at priority 1 cannot be undercut", layoutOf(t, []string{"h:3", "x:1"}), "h", in("h", "x"), held("10.0.0.1/24"), facts.DrainLow},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := drain.Step(c.l, c.host, c.states, c.held)
			if got != c.want {
				t.Errorf("Step = %d, want %d", got, c.want)
			}
			if !facts.Drained(got) || got < facts.DrainLow {
				t.Errorf("Step %d is not a first step", got)
			}
			if got == facts.DrainLow {
				return
			}
			// The property itself, per held VIP: of the candidates, only the
			// first is above the host's lowered priority.
			gone := map[string]bool{}
			for _, s := range c.states {
				gone[s.Name] = s.Err != nil || facts.Drained(s.Drain)
			}
			for _, inst := range c.l.Instances {
				if !c.held[inst.VIP.String()] {
					continue
				}
				lowered := max(1, inst.PriorityOf(c.host)+got)
				var above []string
				for _, m := range inst.Members {
					if m.Host != c.host && !gone[m.Host] && m.Priority > lowered {
						above = append(above, m.Host)
					}
				}
				if len(above) != 1 {
					t.Errorf("%s: at %d, %v would claim", inst.VIP, lowered, above)
				}
			}
		})
	}
}
