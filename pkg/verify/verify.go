// Package verify answers "where is every VIP right now?" from `ip -o addr`
// on every host (`ip -o -4 addr` where a cluster has no IPv6 VIP), and
// classifies each VIP address: ok (on its master only), moved (on one other
// host), missing (nowhere), split (on two or more hosts). A dual-stack
// instance's two addresses are classified one by one; Apart reports a pair
// whose addresses are not held by the same host.
package verify

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"sync"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/vrrp"
)

// VIP states.
const (
	StateOK      = "ok"
	StateMoved   = "moved"
	StateMissing = "missing"
	StateSplit   = "split"
	// StateUnknown: seen nowhere, but a host could not be asked.
	StateUnknown = "unknown"
)

// VIPState is one VIP's placement (the JSON shape documented in README.md).
type VIPState struct {
	VIP     string   `json:"vip"`
	Cluster string   `json:"cluster"`
	Master  string   `json:"master"`
	Holders []string `json:"holders"`
	State   string   `json:"state"`
	// Claims lists the hosts whose keepalived last entered MASTER state for
	// this VIP's instance (from its journal); absent when not read. Two or
	// more claims is split brain even if `ip addr` shows the VIP once.
	Claims []string `json:"vrrp_masters,omitempty"`
	// Want is where the VIP belongs when that is not its master (the
	// master is drained): the first backup that is not.
	Want string `json:"want,omitempty"`
	// Transport is the cluster's vrrp_transport when the caller knows it; it
	// only tunes SplitHint.
	Transport string `json:"vrrp_transport,omitempty"`
}

// OK reports whether the VIP sits on its master only.
func (v VIPState) OK() bool { return v.State == StateOK }

// AddrCommand lists the IPv4 addresses of iface, one per line.
func AddrCommand(iface string) string {
	return "ip -o -4 addr show dev " + remote.Quote(iface)
}

// AddrCommandAll lists the IPv4 and IPv6 addresses of iface, one per line.
func AddrCommandAll(iface string) string {
	return "ip -o addr show dev " + remote.Quote(iface)
}

// addrCommandFor is the command for h: both families where its cluster has
// an IPv6 VIP (any host of the cluster may hold it), else IPv4 only, as
// before IPv6 existed.
func addrCommandFor(h *fleet.Host) string {
	if h.Cluster != nil && h.Cluster.HasIPv6() {
		return AddrCommandAll(h.Host.Interface)
	}
	return AddrCommand(h.Host.Interface)
}

// ParseAddrs reads `ip -o addr` output (either family). An IPv6 address
// flagged dadfailed is skipped: the kernel found it in use elsewhere and
// will neither answer for it nor send from it, so the host does not hold it.
// (keepalived adds its VIPs with nodad, so its own never fail DAD.)
func ParseAddrs(out string) []netip.Prefix {
	var ps []netip.Prefix
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" || f[i] == "inet6" {
				p, err := netip.ParsePrefix(f[i+1])
				if err == nil && !facts.DADFailed(f[i+2:]) {
					ps = append(ps, p)
				}
				break
			}
		}
	}
	return ps
}

// Observation is what one host reported.
type Observation struct {
	Host  string
	Addrs []netip.Prefix
	// VRRP maps instance names (VI_1…) to the state keepalived last entered
	// (MASTER, BACKUP, FAULT) since it started; nil when not read.
	VRRP map[string]string
	// Drained: `hactl drain` took the host out (its drain file); its VIP
	// belongs on the next host in takeover order that is not drained.
	Drained bool
	Err     error
}

// Observe reads the VIP interface of every reachable host in parallel.
// Unreachable hosts (and hosts whose command fails) carry Err.
func Observe(ctx context.Context, hosts []*fleet.Host) []Observation {
	return observeEach(hosts, func(h *fleet.Host, o *Observation) {
		if o.Addrs, o.Err = runAddrs(ctx, h.Conn, addrCommandFor(h), h.Host.Interface); o.Err != nil {
			o.Err = fmt.Errorf("%s: %w", h.Host.Name, o.Err)
		}
	})
}

// observeEach runs observe for every reachable host in parallel; unreachable
// hosts carry their connection error.
func observeEach(hosts []*fleet.Host, observe func(*fleet.Host, *Observation)) []Observation {
	obs := make([]Observation, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		obs[i].Host = h.Host.Name
		if h.Conn == nil {
			obs[i].Err = h.Err
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			observe(h, &obs[i])
		}()
	}
	wg.Wait()
	return obs
}

// Addrs runs AddrCommand (IPv4) on one connection.
func Addrs(ctx context.Context, c remote.Conn, iface string) ([]netip.Prefix, error) {
	return runAddrs(ctx, c, AddrCommand(iface), iface)
}

func runAddrs(ctx context.Context, c remote.Conn, cmd, iface string) ([]netip.Prefix, error) {
	out, err := remote.Output(ctx, c, cmd)
	if _, failed := remote.AsExit(err); failed {
		return nil, fmt.Errorf("ip addr show dev %s: %w", iface, err)
	}
	if err != nil {
		return nil, err
	}
	return ParseAddrs(out), nil
}

// Classify maps observations onto the layout's VIPs, in layout order; a
// dual-stack instance gives two states, its IPv4 VIP's and then its IPv6
// VIP's (placement and split brain are judged per address).
func Classify(l *vrrp.Layout, obs []Observation) []VIPState {
	var out []VIPState
	for _, in := range l.Instances {
		for _, vip := range in.Addrs() {
			out = append(out, classify(in, vip, obs))
		}
	}
	return out
}

func classify(in *vrrp.Instance, vip netip.Prefix, obs []Observation) VIPState {
	s := VIPState{VIP: vip.String(), Cluster: in.Cluster, Master: in.Master, Holders: []string{}}
	want := expected(in, obs)
	if want != in.Master {
		s.Want = want
	}
	blind := false
	for _, o := range obs {
		if o.Err != nil {
			if in.PriorityOf(o.Host) > 0 {
				blind = true
			}
			continue
		}
		for _, a := range o.Addrs {
			if a.Addr() == vip.Addr() {
				s.Holders = append(s.Holders, o.Host)
				break
			}
		}
		// keepalived's state is per instance: both addresses of a pair
		// share their claims.
		if o.VRRP != nil && o.VRRP[in.Name] == "MASTER" && in.PriorityOf(o.Host) > 0 {
			s.Claims = append(s.Claims, o.Host)
		}
	}
	switch {
	case len(s.Holders) > 1 || len(s.Claims) > 1:
		s.State = StateSplit
	case len(s.Holders) == 1 && s.Holders[0] == want:
		s.State = StateOK
	case len(s.Holders) == 1:
		s.State = StateMoved
	case blind:
		s.State = StateUnknown
	default:
		s.State = StateMissing
	}
	return s
}

// expected is the host in's VIP belongs on: its master, or while the master
// is drained the first member in takeover order that is not.
func expected(in *vrrp.Instance, obs []Observation) string {
	drained := map[string]bool{}
	for _, o := range obs {
		drained[o.Host] = o.Drained
	}
	for _, m := range in.Members {
		if !drained[m.Host] {
			return m.Host
		}
	}
	return in.Master
}

// MarkDrained sets Drained on the observations of the hosts drained names.
func MarkDrained(obs []Observation, drained map[string]bool) []Observation {
	for i := range obs {
		obs[i].Drained = drained[obs[i].Host]
	}
	return obs
}

// Apart lists, one message each, the dual-stack instances whose two
// addresses are not held by the same hosts: keepalived moves them as one
// unit, so a pair found apart was changed by hand or by something else.
// vs is Classify's result for l.
func Apart(l *vrrp.Layout, vs []VIPState) []string {
	byVIP := map[string]VIPState{}
	for _, v := range vs {
		byVIP[v.VIP] = v
	}
	var out []string
	for _, in := range l.Instances {
		if !in.VIP6.IsValid() {
			continue
		}
		a, okA := byVIP[in.VIP.String()]
		b, okB := byVIP[in.VIP6.String()]
		if !okA || !okB || a.State == StateUnknown || b.State == StateUnknown {
			continue
		}
		if strings.Join(a.Holders, ",") != strings.Join(b.Holders, ",") {
			out = append(out, fmt.Sprintf("%s %s is on [%s] but its pair %s is on [%s]; both belong to one VRRP instance (%s) and must move together",
				in.Cluster, in.VIP, strings.Join(a.Holders, " "), in.VIP6, strings.Join(b.Holders, " "), in.Name))
		}
	}
	return out
}

// AllOK reports whether every VIP is on its master only.
func AllOK(vs []VIPState) bool {
	for _, v := range vs {
		if !v.OK() {
			return false
		}
	}
	return true
}

// Settled reports whether every VIP of cluster is held by exactly one host
// (its master or not): the condition a rolling restart waits for. A VIP that
// cannot be seen (a host is unreachable) does not hold the rollout up; the
// final verification reports it.
func Settled(vs []VIPState, cluster string) bool {
	for _, v := range vs {
		if v.Cluster == cluster && v.State != StateUnknown && len(v.Holders) != 1 {
			return false
		}
	}
	return true
}

// Problems describes every VIP that is not on its master only, one clause
// each, plus the split-brain hint when there is a split.
func Problems(vs []VIPState) string {
	var p []string
	for _, v := range vs {
		if !v.OK() {
			where := "master " + v.Master
			if v.Want != "" {
				where += " drained, want " + v.Want
			}
			p = append(p, fmt.Sprintf("%s is %s (holders: %s; %s)", v.VIP, v.State, strings.Join(v.Holders, ","), where))
		}
	}
	if hint := SplitHint(vs); hint != "" {
		p = append(p, hint)
	}
	return strings.Join(p, "; ")
}

// SplitHint explains the usual cause of a split: VRRP adverts not reaching the
// peers, so every host believes it is MASTER. With multicast (or when the
// transport is unknown) that is multicast being filtered, and unicast is the
// fix; with unicast it is protocol 112 being dropped between the addresses.
func SplitHint(vs []VIPState) string {
	var split []VIPState
	for _, v := range vs {
		if v.State == StateSplit {
			split = append(split, v)
		}
	}
	if len(split) == 0 {
		return ""
	}
	symptom := "A VIP on several hosts means the hosts do not hear each other's VRRP adverts"
	if all := allClaim(vs, split); all != "" {
		symptom = "Every keepalived of cluster " + all + " claims MASTER of every VIP: none hears the others' VRRP adverts"
	}
	if split[0].Transport == "unicast" {
		return symptom + ": unicast VRRP (IP protocol 112) between the hosts' addresses is dropped (firewall, security group). " +
			"Allow protocol 112 (vrrp) from every peer address."
	}
	return symptom + ": multicast (224.0.0.18, IP protocol 112) is probably filtered between them (cloud networks, " +
		"firewalls, VLANs, switches without multicast). Allow VRRP, or set vrrp_transport = \"unicast\" on the cluster " +
		"(keepalived then sends adverts to each peer's address)."
}

// allClaim returns the cluster whose VIPs are each claimed (or held) by all
// of its hosts: the all-MASTER signature of adverts that never arrive.
func allClaim(vs, split []VIPState) string {
	cluster := split[0].Cluster
	hosts := map[string]bool{}
	for _, v := range vs {
		if v.Cluster == cluster {
			hosts[v.Master] = true
		}
	}
	for _, v := range vs {
		if v.Cluster != cluster {
			continue
		}
		n := max(len(v.Claims), len(v.Holders))
		if n < len(hosts) || len(hosts) < 2 {
			return ""
		}
	}
	return cluster
}

// VRRPCommand prints the keepalived journal lines that say which state each
// instance entered, plus the daemon's start/stop lines: cheap (a bounded
// tail of one unit's journal) and present on every systemd host.
const VRRPCommand = `journalctl -u keepalived -o cat --no-pager -n 400 2>/dev/null | ` +
	`grep -E 'Entering [A-Z]+ STATE|Starting (Keepalived|VRRP child)|Stopped Keepalived|Stopping' || true`

var (
	enterRE = regexp.MustCompile(`\(([^()\s]+)\)\s*:?\s*Entering ([A-Z]+) STATE`)
	resetRE = regexp.MustCompile(`Starting (Keepalived|VRRP child)|Stopped Keepalived|Stopping`)
)

// ParseVRRP reads VRRPCommand's output: the last state each instance entered
// since keepalived last started (a stop forgets everything: a stopped daemon
// claims nothing). Both keepalived 2.x "(VI_1) Entering MASTER STATE" and
// 1.3's "VRRP_Instance(VI_1) Entering MASTER STATE" are understood.
func ParseVRRP(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if resetRE.MatchString(line) {
			m = map[string]string{}
			continue
		}
		if g := enterRE.FindStringSubmatch(line); g != nil {
			m[g[1]] = g[2]
		}
	}
	return m
}

// ObserveVRRP is Observe plus each host's keepalived states, in the same
// round trip per host. Use it for verdicts (status, apply's final check);
// polling loops use the cheaper Observe.
func ObserveVRRP(ctx context.Context, hosts []*fleet.Host) []Observation {
	const mark = "@@hactl-vrrp"
	return observeEach(hosts, func(h *fleet.Host, o *Observation) {
		cmd := addrCommandFor(h) + "; rc=$?; echo " + mark + "; " + VRRPCommand + "; exit $rc"
		out, err := remote.Output(ctx, h.Conn, cmd)
		if _, failed := remote.AsExit(err); failed {
			o.Err = fmt.Errorf("%s: ip addr show dev %s: %w", h.Host.Name, h.Host.Interface, err)
			return
		}
		if err != nil {
			o.Err = fmt.Errorf("%s: %w", h.Host.Name, err)
			return
		}
		addrs, journal, _ := strings.Cut(out, mark+"\n")
		o.Addrs, o.VRRP = ParseAddrs(addrs), ParseVRRP(journal)
	})
}

// FromFacts is the observation a host's facts already hold, as ObserveVRRP
// would have made it when the facts were gathered: the addresses of the
// host's interface (IPv4 only where its cluster has no IPv6 VIP, as
// addrCommandFor asks) and keepalived's states when the facts were asked
// for them (facts.Request.VRRP = VRRPCommand).
func FromFacts(h *fleet.Host, f *facts.Facts) Observation {
	o := Observation{Host: h.Host.Name, VRRP: ParseVRRP(f.VRRP)}
	v6 := h.Cluster != nil && h.Cluster.HasIPv6()
	for _, p := range f.Addrs[h.Host.Interface] {
		if v6 || p.Addr().Is4() {
			o.Addrs = append(o.Addrs, p)
		}
	}
	return o
}

// SetTransports records each VIP's cluster transport (for SplitHint) and
// returns vs.
func SetTransports(vs []VIPState, inv *inventory.Inventory) []VIPState {
	for i := range vs {
		for _, c := range inv.Clusters {
			if c.Name == vs[i].Cluster {
				vs[i].Transport = c.Transport
			}
		}
	}
	return vs
}
