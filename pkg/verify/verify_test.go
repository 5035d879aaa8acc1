package verify

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/hactl/hactl/internal/testinv"
	"github.com/hactl/hactl/pkg/inventory"
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
