package render

import (
	"net/netip"
	"strings"
	"testing"
)

// TestConnDrainScript: the keeper's script adds and removes the VIP on lo
// with the ARP sysctls saved and restored, the forwarder's loads and
// deletes one nftables table whose rule never matches a SYN; values that
// are not one plain word or not IPv4 are refused.
func TestConnDrainScript(t *testing.T) {
	a := netip.MustParseAddr
	base := ConnDrain{Host: "lab1", Interface: "eth0", Unit: "hactl-conndrain.service", Table: "hactl_conndrain"}
	keep := base
	keep.Local = []netip.Addr{a("198.18.0.201")}
	b, err := ConnDrainScript(keep)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"IFACE=eth0", "arp_ignore=1", "arp_announce=2", "ip addr replace 198.18.0.201/32 dev lo",
		"ip addr del 198.18.0.201/32 dev lo", `read -r ignore announce < "$SAVED"`, "ss -H -t -a -n src 198.18.0.201"} {
		if !strings.Contains(s, want) {
			t.Errorf("keeper script lacks %q", want)
		}
	}
	if strings.Contains(s, "nft ") {
		t.Error("keeper script touches nftables")
	}
	fwd := base
	fwd.Forward = []ConnForward{{VIP: a("198.18.0.201"), To: a("198.18.0.11")}, {VIP: a("198.18.0.202"), To: a("198.18.0.11")}}
	if b, err = ConnDrainScript(fwd); err != nil {
		t.Fatal(err)
	}
	s = string(b)
	for _, want := range []string{
		"table ip hactl_conndrain\ndelete table ip hactl_conndrain\ntable ip hactl_conndrain {",
		"type filter hook prerouting priority -150; policy accept;",
		`ip daddr 198.18.0.201 tcp flags & syn == 0 ct state invalid,new counter dup to 198.18.0.11 device "eth0" drop`,
		`ip daddr 198.18.0.202 tcp flags & syn == 0 ct state invalid,new counter dup to 198.18.0.11 device "eth0" drop`,
		"nft delete table ip hactl_conndrain",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("forwarder script lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "dev lo") || strings.Contains(s, "sysctl") {
		t.Error("forwarder script keeps a VIP or changes sysctls")
	}
	bad := []ConnDrain{keep, keep, fwd}
	bad[0].Interface = "eth0; reboot"
	bad[1].Local = []netip.Addr{a("2001:db8:18::201")}
	bad[2].Forward = []ConnForward{{VIP: a("198.18.0.201"), To: a("2001:db8:18::11")}}
	for _, c := range bad {
		if _, err := ConnDrainScript(c); err == nil {
			t.Errorf("rendered %+v", c)
		}
	}
}
