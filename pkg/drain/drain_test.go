package drain_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hactl/hactl/internal/testinv"
	"github.com/hactl/hactl/internal/vrrpsim"
	"github.com/hactl/hactl/pkg/drain"
	"github.com/hactl/hactl/pkg/facts"
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
	if len(vals) != 2 || vals[0] != facts.DrainLow || vals[1] != facts.DrainOut {
		t.Fatalf("drain wrote %v, want -253 then -254", vals)
	}
	// FAULT only once the VIP sits on lab2 alone (after the move and the overlap).
	if at[1]-at[0] < w.DrainMove+w.Overlap {
		t.Errorf("-254 written %v after -253, before the VIP moved (%v)", at[1]-at[0], w.DrainMove+w.Overlap)
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
// take it) fails the drain and puts the drain file back.
func TestDrainTimeoutRestores(t *testing.T) {
	w, d := lab(t)
	w.DrainMove = time.Hour
	_, err := d.Drain(context.Background(), "lab1")
	if err == nil || !strings.Contains(err.Error(), "drain file restored to 0") {
		t.Fatalf("err = %v", err)
	}
	if vals, _ := writes(w, "lab1"); len(vals) != 2 || vals[1] != 0 {
		t.Errorf("wrote %v, want -253 then 0", vals)
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

// TestDrainResumes: a host left at -253 by an interrupted drain is waited
// for again before FAULT, which would otherwise drop a VIP not yet moved.
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
