package vrrp

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/hactl/hactl/pkg/inventory"
)

func loadInv(t *testing.T, src string) *inventory.Inventory {
	t.Helper()
	inv, diags := inventory.NewLoader(inventory.Options{}).Load("t.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatalf("load: %v", diags)
	}
	return inv
}

func prod(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../inventory/prod.hcl")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// priorities returns "host:prio/host:prio/…" in host order of the cluster.
func priorities(in *Instance, hosts []string) string {
	var parts []string
	for _, h := range hosts {
		parts = append(parts, fmt.Sprint(in.PriorityOf(h)))
	}
	return strings.Join(parts, "/")
}

func TestSeedLayout(t *testing.T) {
	l, diags := Build(loadInv(t, prod(t)))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	hosts := []string{"master-node", "slave-node-1", "slave-node-2"}
	// The seed's three configs (issue text): VI_1 101/99/97, VI_2 99/101/97, VI_3 99/97/101.
	want := []struct {
		name, vip, prios, first string
		vrid                    int
	}{
		{"VI_1", "10.11.7.235/24", "101/99/97", "slave-node-1", 51},
		{"VI_2", "10.11.7.236/24", "99/101/97", "master-node", 52},
		{"VI_3", "10.11.7.237/24", "99/97/101", "master-node", 53},
	}
	if len(l.Instances) != 3 {
		t.Fatalf("instances: %d", len(l.Instances))
	}
	for i, w := range want {
		in := l.Instances[i]
		if in.Name != w.name || in.VIP.String() != w.vip || in.VRID != w.vrid || in.Master != hosts[i] {
			t.Errorf("instance %d: %+v", i, in)
		}
		if got := priorities(in, hosts); got != w.prios {
			t.Errorf("%s priorities %s, want %s", w.name, got, w.prios)
		}
		if in.FirstBackup().Host != w.first {
			t.Errorf("%s first backup %s, want %s", w.name, in.FirstBackup().Host, w.first)
		}
		if in.Members[0].State != "MASTER" || in.Members[1].State != "BACKUP" || in.Version != 2 {
			t.Errorf("%s states/version: %+v", w.name, in)
		}
		// advert_int 1, first backup 99: skew = 157/256 s; crash = 3 s + skew.
		skew := time.Duration(float64(157) / 256 * float64(time.Second))
		if in.Bounds.Graceful != skew || in.Bounds.Crash != 3*time.Second+skew {
			t.Errorf("%s bounds %+v", w.name, in.Bounds)
		}
	}
}

func TestRingLayout(t *testing.T) {
	src := strings.Replace(prod(t), `backup_order    = "inventory"`, `backup_order    = "ring"`, 1)
	l, diags := Build(loadInv(t, src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	hosts := []string{"master-node", "slave-node-1", "slave-node-2"}
	want := []string{"101/99/97", "97/101/99", "99/97/101"}
	for i, in := range l.Instances {
		if got := priorities(in, hosts); got != want[i] {
			t.Errorf("%s ring priorities %s, want %s", in.Name, got, want[i])
		}
		if in.FirstBackup().Host != hosts[(i+1)%3] {
			t.Errorf("%s: ring hands VIP %d to %s", in.Name, i+1, in.FirstBackup().Host)
		}
	}
}

func TestVRRPv3Bounds(t *testing.T) {
	src := strings.Replace(prod(t), `advert_int             = 1`, `advert_int             = 0.1`, 1)
	l, diags := Build(loadInv(t, src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	in := l.Instances[0]
	if in.Version != 3 {
		t.Fatalf("version %d", in.Version)
	}
	// v3 skew scales with advert_int: 157/256 × 0.1 s ≈ 61 ms; crash = 0.3 s + skew.
	if g := in.Bounds.Graceful.Milliseconds(); g != 61 {
		t.Errorf("graceful %v", in.Bounds.Graceful)
	}
	if c := in.Bounds.Crash.Milliseconds(); c != 361 {
		t.Errorf("crash %v", in.Bounds.Crash)
	}
}

func TestLayoutValidation(t *testing.T) {
	cases := []struct {
		name, old, new, summary string
	}{
		{"weight too weak", `    weight   = -5`, `    weight   = -2`, "Health-check weight too weak"},
		{"weight zero", `    weight   = -5`, `    weight   = 0`, "Health-check weight too weak"},
		{"positive weight too weak", `    weight   = -5`, `    weight   = 2`, "Health-check weight too weak"},
		{"priority step zero", `  priority_step   = 2`, `  priority_step   = 0`, "Priorities not distinct"},
		{"master priority 255", `  master_priority = 101`, `  master_priority = 255`, "master_priority out of range"},
		{"lowest priority below 1", `  priority_step   = 2`, `  priority_step   = 60`, "Priority out of range"},
		// issue 23: keepalived caps at 254, so 101+160 and 99+160 tie
		{"positive weight past 254", `    weight   = -5`, `    weight   = 160`, "Effective priority above 254"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(prod(t), tc.old, tc.new, 1)
			if src == prod(t) {
				t.Fatalf("no %q in prod.hcl", tc.old)
			}
			_, diags := Build(loadInv(t, src))
			var hit *hcl.Diagnostic
			for _, d := range diags {
				if d.Summary == tc.summary {
					hit = d
				}
			}
			if hit == nil {
				t.Fatalf("want %q, got %v", tc.summary, diags)
			}
			want := 1 + strings.Count(src[:strings.Index(src, tc.new)], "\n")
			if hit.Subject.Start.Line != want {
				t.Errorf("points at line %d, want %d (%q)", hit.Subject.Start.Line, want, tc.new)
			}
		})
	}
	// A positive weight larger than the step does move the VIP: accepted.
	src := strings.Replace(prod(t), `    weight   = -5`, `    weight   = 5`, 1)
	if _, diags := Build(loadInv(t, src)); diags.HasErrors() {
		t.Errorf("positive weight 5 > step 2 rejected: %v", diags)
	}
}

func loadFile(t *testing.T, path string) *inventory.Inventory {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return loadInv(t, string(b))
}

// TestIPv6Layout: a dual-stack host's two VIPs are one instance (same VRID,
// same priorities, the seed's VRRPv2 and bounds); an IPv6-only cluster's
// instances are VRRPv3 with VRRPv3's skew.
func TestIPv6Layout(t *testing.T) {
	ds, diags := Build(loadFile(t, "../inventory/testdata/lab-dualstack.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(ds.Instances) != 3 {
		t.Fatalf("dual-stack: %d instances, want one per host", len(ds.Instances))
	}
	for i, in := range ds.Instances {
		v4, v6 := fmt.Sprintf("198.18.0.%d/24", 201+i), fmt.Sprintf("2001:db8:18::%d/64", 201+i)
		if got := fmt.Sprint(in.Addrs()); got != "["+v4+" "+v6+"]" {
			t.Errorf("%s addrs %s", in.Name, got)
		}
		if in.IPv6() || in.Version != 2 || in.VRID != 51+i || in.Bounds.Crash != 3*time.Second+Skew(2, 1, 99) {
			t.Errorf("%s: IPv6 %v version %d vrid %d bounds %+v", in.Name, in.IPv6(), in.Version, in.VRID, in.Bounds)
		}
	}
	v6, diags := Build(loadFile(t, "../inventory/testdata/lab-ipv6.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, in := range v6.Instances {
		if !in.IPv6() || in.Version != 3 || len(in.Addrs()) != 1 || in.VIP6.IsValid() {
			t.Errorf("%s: IPv6 %v version %d addrs %v", in.Name, in.IPv6(), in.Version, in.Addrs())
		}
		// VRRPv3 at advert_int 1: (256 - 99) × 1 / 256, as VRRPv2.
		if in.Bounds.Graceful != Skew(3, 1, 99) || in.Bounds.Crash != 3*time.Second+Skew(3, 1, 99) {
			t.Errorf("%s bounds %+v", in.Name, in.Bounds)
		}
	}
}
