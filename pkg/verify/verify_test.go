package verify

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

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
	inv, d := inventory.NewLoader(inventory.Options{}).LoadFile("../../inventory/lab.hcl")
	if d.HasErrors() {
		t.Fatal(d)
	}
	l, d := vrrp.Build(inv)
	if d.HasErrors() {
		t.Fatal(d)
	}
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
