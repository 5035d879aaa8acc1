// Package metrics renders the fleet-level invariants hactl judges (one
// holder per VIP, on its planned master, no split brain) as OpenMetrics
// text, for `hactl status --output openmetrics` (a textfile collector or a
// scrape through a small exporter). The hosts' own metrics come from
// hactl_events.sh (node exporter textfile collector).
package metrics

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/hactl/hactl/pkg/verify"
)

// Host is what status knows about one host.
type Host struct {
	Name      string
	Reachable bool
	Drained   *bool // nil: not read
}

// Write prints the families in OpenMetrics text format, ending in # EOF.
func Write(w io.Writer, vips []verify.VIPState, hosts []Host) error {
	var b strings.Builder
	family := func(name, typ, help string) {
		fmt.Fprintf(&b, "# TYPE %s %s\n# HELP %s %s\n", name, typ, name, help)
	}
	family("hactl_vip_holders", "gauge", "Hosts that have the VIP on their interface (1 is right, 0 is an outage, 2+ is split brain).")
	for _, v := range vips {
		fmt.Fprintf(&b, "hactl_vip_holders{%s} %d\n", vipLabels(v), len(v.Holders))
	}
	family("hactl_vip_on_master", "gauge", "1 when the VIP is on its planned master only (or, the master drained, on the host that should have it).")
	for _, v := range vips {
		fmt.Fprintf(&b, "hactl_vip_on_master{%s} %d\n", vipLabels(v), boolNum(v.State == verify.StateOK))
	}
	family("hactl_vip_split_brain", "gauge", "1 when two or more hosts hold the VIP or claim VRRP MASTER for it.")
	for _, v := range vips {
		fmt.Fprintf(&b, "hactl_vip_split_brain{%s} %d\n", vipLabels(v), boolNum(v.State == verify.StateSplit))
	}
	family("hactl_vip_state", "stateset", "status's verdict on the VIP.")
	states := []string{verify.StateOK, verify.StateMoved, verify.StateMissing, verify.StateSplit, verify.StateUnknown}
	sort.Strings(states)
	for _, v := range vips {
		for _, s := range states {
			fmt.Fprintf(&b, "hactl_vip_state{%s,hactl_vip_state=%q} %d\n", vipLabels(v), s, boolNum(v.State == s))
		}
	}
	family("hactl_host_reachable", "gauge", "1 when hactl reached the host over SSH.")
	for _, h := range hosts {
		fmt.Fprintf(&b, "hactl_host_reachable{host=%q} %d\n", h.Name, boolNum(h.Reachable))
	}
	family("hactl_host_drained", "gauge", "1 while hactl drain holds the host out of service.")
	for _, h := range hosts {
		if h.Drained != nil {
			fmt.Fprintf(&b, "hactl_host_drained{host=%q} %d\n", h.Name, boolNum(*h.Drained))
		}
	}
	b.WriteString("# EOF\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// vipLabels never name the holder: a label that changes with every move
// would restart the `for:` of the alerting rules.
func vipLabels(v verify.VIPState) string {
	return fmt.Sprintf("cluster=%q,vip=%q,master=%q", v.Cluster, v.VIP, v.Master)
}

func boolNum(b bool) int {
	if b {
		return 1
	}
	return 0
}
