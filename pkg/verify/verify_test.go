package verify

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/hactl/hactl/internal/testinv"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
	"github.com/hactl/hactl/pkg/vrrp"
)

const ipOut = `2: eth0    inet 198.18.0.11/24 brd 198.18.0.255 scope global eth0\       valid_lft forever preferred_lft forever
2: eth0    inet 198.18.0.201/24 scope global secondary eth0\       valid_lft forever preferred_lft forever
`

func TestParseAddrs(t *testing.T) {
	got := ParseAddrs(ipOut)
	want := []netip.Prefix{netip.MustParsePrefix("198.18.0.11/24"), netip.MustParsePrefix("198.18.0.201/24")}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("%v", got)
	}
	if len(ParseAddrs("garbage\n\n")) != 0 {
		t.Fatal("garbage parsed")
	}
}

func layout(t *testing.T) *vrrp.Layout {
	t.Helper()
	_, l := testinv.Load(t, "lab.hcl")
	return l
}

func addrs(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

func TestClassify(t *testing.T) {
	l := layout(t)
	obs := []Observation{
		{Host: "lab1", Addrs: addrs("198.18.0.11/24", "198.18.0.201/24", "198.18.0.202/24")},
		{Host: "lab2", Addrs: addrs("198.18.0.12/24", "198.18.0.202/24")},
		{Host: "lab3", Addrs: addrs("198.18.0.13/24")},
	}
	got := Classify(l, obs)
	states := []string{got[0].State, got[1].State, got[2].State}
	if strings.Join(states, ",") != "ok,split,missing" {
		t.Fatalf("states %v", states)
	}
	if strings.Join(got[1].Holders, ",") != "lab1,lab2" {
		t.Errorf("holders %v", got[1].Holders)
	}
	if AllOK(got) || Settled(got, "lab") {
		t.Error("AllOK/Settled on a split")
	}
	if SplitHint(got) == "" {
		t.Error("no hint for a split")
	}

	obs[1].Addrs = addrs("198.18.0.12/24")
	obs[0].Addrs = addrs("198.18.0.11/24", "198.18.0.201/24", "198.18.0.202/24", "198.18.0.203/24")
	got = Classify(l, obs)
	if got[1].State != StateMoved || got[2].State != StateMoved || !Settled(got, "lab") || AllOK(got) {
		t.Errorf("moved: %+v", got)
	}

	obs[2].Err = errors.New("unreachable")
	obs[0].Addrs = addrs("198.18.0.11/24", "198.18.0.201/24")
	got = Classify(l, obs)
	if got[2].State != StateUnknown || got[0].State != StateOK {
		t.Errorf("unknown: %+v", got)
	}
}

// journal is what VRRPCommand prints on a Debian 12 host (keepalived 2.2.7)
// that was restarted: the states before the last start are forgotten.
const journal = `Starting Keepalived v2.2.7 (01/16,2022)
(VI_1) Entering BACKUP STATE (init)
(VI_1) Entering MASTER STATE
Stopping
Stopped Keepalived v2.2.7 (01/16,2022)
Starting Keepalived v2.2.7 (01/16,2022)
Starting VRRP child process, pid=812
(VI_1) Entering BACKUP STATE (init)
(VI_2) Entering BACKUP STATE (init)
VRRP_Instance(VI_3) Entering MASTER STATE
(VI_2) Entering MASTER STATE
`

func TestParseVRRP(t *testing.T) {
	got := ParseVRRP(journal)
	if got["VI_1"] != "BACKUP" || got["VI_2"] != "MASTER" || got["VI_3"] != "MASTER" || len(got) != 3 {
		t.Fatalf("%v", got)
	}
	if got := ParseVRRP(journal + "Stopping\n"); len(got) != 0 {
		t.Errorf("a stopped daemon claims %v", got)
	}
}

// TestAllMaster: every host claims MASTER of every instance (multicast
// dropped) — split even where `ip addr` has not caught up, and the hint
// names multicast and unicast; a unicast cluster gets the firewall hint.
func TestAllMaster(t *testing.T) {
	l := layout(t)
	all := map[string]string{"VI_1": "MASTER", "VI_2": "MASTER", "VI_3": "MASTER"}
	obs := []Observation{
		{Host: "lab1", Addrs: addrs("198.18.0.11/24", "198.18.0.201/24"), VRRP: all},
		{Host: "lab2", Addrs: addrs("198.18.0.12/24", "198.18.0.202/24"), VRRP: all},
		{Host: "lab3", Addrs: addrs("198.18.0.13/24", "198.18.0.203/24"), VRRP: all},
	}
	got := Classify(l, obs)
	for _, v := range got {
		if v.State != StateSplit || len(v.Claims) != 3 || len(v.Holders) != 1 {
			t.Errorf("%+v", v)
		}
	}
	hint := SplitHint(got)
	for _, want := range []string{"Every keepalived of cluster lab claims MASTER", "multicast", `vrrp_transport = "unicast"`} {
		if !strings.Contains(hint, want) {
			t.Errorf("hint lacks %q: %s", want, hint)
		}
	}
	for i := range got {
		got[i].Transport = inventory.TransportUnicast
	}
	if hint := SplitHint(got); !strings.Contains(hint, "protocol 112") || strings.Contains(hint, `set vrrp_transport`) {
		t.Errorf("unicast hint: %s", hint)
	}
	// Healthy: one claim per instance, nothing to say.
	obs[0].VRRP = map[string]string{"VI_1": "MASTER", "VI_2": "BACKUP", "VI_3": "BACKUP"}
	obs[1].VRRP = map[string]string{"VI_1": "BACKUP", "VI_2": "MASTER", "VI_3": "BACKUP"}
	obs[2].VRRP = map[string]string{"VI_1": "BACKUP", "VI_2": "BACKUP", "VI_3": "MASTER"}
	if got := Classify(l, obs); !AllOK(got) || SplitHint(got) != "" {
		t.Errorf("healthy: %+v", got)
	}
}

// ipOutAll is `ip -o addr show dev eth0` on a dual-stack lab host holding
// its pair (iproute2 6.1, Debian 12), plus a VIP that failed DAD.
const ipOutAll = `3: eth0    inet 198.18.0.11/24 scope global eth0\       valid_lft forever preferred_lft forever
3: eth0    inet 198.18.0.201/24 scope global secondary eth0\       valid_lft forever preferred_lft forever
3: eth0    inet6 2001:db8:18::201/64 scope global nodad \       valid_lft forever preferred_lft forever
3: eth0    inet6 2001:db8:18::202/64 scope global tentative dadfailed \       valid_lft forever preferred_lft forever
3: eth0    inet6 2001:db8:18::11/64 scope global nodad \       valid_lft forever preferred_lft forever
3: eth0    inet6 fe80::90b9:2bff:fe87:fe3d/64 scope link tentative \       valid_lft forever preferred_lft forever
`

func TestParseAddrsIPv6(t *testing.T) {
	got := fmt.Sprint(ParseAddrs(ipOutAll))
	want := "[198.18.0.11/24 198.18.0.201/24 2001:db8:18::201/64 2001:db8:18::11/64 fe80::90b9:2bff:fe87:fe3d/64]"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func loadTestdata(t *testing.T, name string) (*inventory.Inventory, *vrrp.Layout) {
	t.Helper()
	return testinv.LoadFile(t, "../inventory/testdata/"+name)
}

// TestClassifyDualStack: one state per address, in layout order (IPv4 VIP,
// then its IPv6 pair); a pair held apart is reported by Apart; a split of
// one address is a split of that address only.
func TestClassifyDualStack(t *testing.T) {
	_, l := loadTestdata(t, "lab-dualstack.hcl")
	own := func(i int) []string {
		return []string{fmt.Sprintf("198.18.0.%d/24", 10+i), fmt.Sprintf("2001:db8:18::1%d/64", i),
			fmt.Sprintf("198.18.0.%d/24", 200+i), fmt.Sprintf("2001:db8:18::20%d/64", i)}
	}
	obs := []Observation{
		{Host: "lab1", Addrs: addrs(own(1)...)},
		{Host: "lab2", Addrs: addrs(own(2)...)},
		{Host: "lab3", Addrs: addrs(own(3)...)},
	}
	got := Classify(l, obs)
	var names []string
	for _, v := range got {
		names = append(names, v.VIP+"@"+strings.Join(v.Holders, ",")+"="+v.State)
	}
	want := "198.18.0.201/24@lab1=ok 2001:db8:18::201/64@lab1=ok 198.18.0.202/24@lab2=ok 2001:db8:18::202/64@lab2=ok " +
		"198.18.0.203/24@lab3=ok 2001:db8:18::203/64@lab3=ok"
	if strings.Join(names, " ") != want || !AllOK(got) || len(Apart(l, got)) != 0 {
		t.Fatalf("healthy:\n got  %s\n want %s\n apart %v", strings.Join(names, " "), want, Apart(l, got))
	}

	// lab2's IPv6 VIP sits on lab1 too (added by hand): split for that
	// address alone, and the pair is apart.
	obs[0].Addrs = append(obs[0].Addrs, netip.MustParsePrefix("2001:db8:18::202/64"))
	got = Classify(l, obs)
	if got[2].State != StateOK || got[3].State != StateSplit || strings.Join(got[3].Holders, ",") != "lab1,lab2" {
		t.Errorf("split of one address: %+v / %+v", got[2], got[3])
	}
	if a := Apart(l, got); len(a) != 1 || !strings.Contains(a[0], "2001:db8:18::202/64 is on [lab1 lab2]") || !strings.Contains(a[0], "VI_2") {
		t.Errorf("apart: %q", a)
	}

	// lab3 stopped: both of its addresses moved, together, to lab1.
	obs[0].Addrs = addrs(append(own(1), "198.18.0.203/24", "2001:db8:18::203/64")...)
	obs[2].Addrs = addrs(own(3)[:2]...)
	got = Classify(l, obs)
	if got[4].State != StateMoved || got[5].State != StateMoved || got[5].Holders[0] != "lab1" || len(Apart(l, got)) != 0 || !Settled(got, "lab") {
		t.Errorf("moved pair: %+v %+v apart %v", got[4], got[5], Apart(l, got))
	}
	// Only the IPv4 half moved: the pair is apart.
	obs[0].Addrs = addrs(append(own(1), "198.18.0.203/24")...)
	obs[2].Addrs = addrs(append(own(3)[:2], "2001:db8:18::203/64")...)
	if a := Apart(l, Classify(l, obs)); len(a) != 1 {
		t.Errorf("half moved: apart %q", a)
	}
}

// TestObserveFamilies: a cluster with IPv6 VIPs is read with `ip -o addr`
// (both families), an IPv4-only one with the `ip -o -4 addr` it always used.
func TestObserveFamilies(t *testing.T) {
	for _, tc := range []struct {
		inv, want, vip string
	}{
		{"lab-dualstack.hcl", "ip -o addr show dev 'eth0'", "2001:db8:18::201/64"},
		{"lab-ipv6.hcl", "ip -o addr show dev 'eth0'", "2001:db8:18::201/64"},
		{"lab.hcl", "ip -o -4 addr show dev 'eth0'", "198.18.0.201/24"},
	} {
		t.Run(tc.inv, func(t *testing.T) {
			var inv *inventory.Inventory
			var l *vrrp.Layout
			if tc.inv == "lab.hcl" {
				inv, l = testinv.Load(t, tc.inv)
			} else {
				inv, l = loadTestdata(t, tc.inv)
			}
			var cmds []string
			var mu sync.Mutex
			var hosts []*fleet.Host
			for _, h := range inv.Hosts() {
				fake := &remotetest.Fake{Handler: func(cmd string, _ []byte) remote.Result {
					mu.Lock()
					cmds = append(cmds, cmd)
					mu.Unlock()
					if h.Name == "lab1" && strings.HasPrefix(cmd, tc.want) {
						return remote.Result{Stdout: []byte(ipOutAll)}
					}
					return remote.Result{}
				}}
				hosts = append(hosts, &fleet.Host{Host: h, Cluster: inv.ClusterOf(h.Name), Conn: fake})
			}
			for _, obs := range [][]Observation{Observe(context.Background(), hosts), ObserveVRRP(context.Background(), hosts)} {
				vs := Classify(l, obs)
				var v *VIPState
				for i := range vs {
					if vs[i].VIP == tc.vip {
						v = &vs[i]
					}
				}
				if v == nil || v.State != StateOK {
					t.Errorf("%s: %+v", tc.vip, vs)
				}
			}
			for _, c := range cmds {
				if !strings.HasPrefix(c, tc.want) {
					t.Errorf("command %q, want %q…", c, tc.want)
				}
			}
		})
	}
}

// TestClassifyDrained: a drained master's VIP belongs on its first backup
// that is not drained; on the master itself it is moved.
func TestClassifyDrained(t *testing.T) {
	l := layout(t)
	obs := MarkDrained([]Observation{
		{Host: "lab1", Addrs: addrs("198.18.0.11/24")},
		{Host: "lab2", Addrs: addrs("198.18.0.12/24", "198.18.0.201/24", "198.18.0.202/24")},
		{Host: "lab3", Addrs: addrs("198.18.0.13/24", "198.18.0.203/24")},
	}, map[string]bool{"lab1": true})
	got := Classify(l, obs)
	if !AllOK(got) || got[0].Want != "lab2" || got[1].Want != "" {
		t.Fatalf("drained lab1: %+v", got)
	}
	obs[0].Addrs, obs[1].Addrs = addrs("198.18.0.11/24", "198.18.0.201/24"), addrs("198.18.0.12/24", "198.18.0.202/24")
	got = Classify(l, obs)
	if got[0].State != StateMoved || !strings.Contains(Problems(got), "master lab1 drained, want lab2") {
		t.Errorf("drained master holding its VIP: %+v %s", got[0], Problems(got))
	}
	// lab1 and lab2 drained: .201's next is lab3.
	obs = MarkDrained(obs, map[string]bool{"lab1": true, "lab2": true})
	if got := Classify(l, obs); got[0].Want != "lab3" {
		t.Errorf("want %q", got[0].Want)
	}
}
