package drain

// Connection draining: while a VIP moves, the host it leaves keeps serving
// the connections it already has, like a cloud load balancer's
// deregistration delay. The host leaving a VIP keeps it as a local address on
// lo (no ARP answers for it), and every other member of the VIP's instance
// sends the packets of connections it does not know (no SYN, no conntrack
// entry of its own) at L2 to that host, which answers the clients directly.
// Both halves run as a transient systemd unit that watches keepalived
// (render.ConnDrain's script does the work): a reboot, a keepalived stop or
// restart, or the unit's time limit ends them, and hactl stops them when the
// connections have ended or the grace period has passed.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/render"
	"github.com/hactl/hactl/pkg/vrrp"
)

// The host-side names of a connection drain. They are fixed: one drain or
// undrain runs at a time in a cluster (hactl's lock), and a new one first
// stops what an interrupted one left.
const (
	ConnUnit   = "hactl-conndrain.service"
	ConnScript = "/run/hactl-conndrain.sh"
	ConnTable  = "hactl_conndrain"
	// connMargin is added to the unit's time limit beyond the grace period
	// and the VIP's move, so that only a vanished hactl ever meets it.
	connMargin = 60 * time.Second
	// connPoll is how often the open connections are counted.
	connPoll = time.Second
	// connQuiet is how long the old holder must have had no connection
	// before its drain ends (within the grace). Right after a move a
	// client's neighbour entry can still point at the old holder for a
	// moment (it answered ARP while it kept the VIP with overlap): its new
	// connections land there, on the VIP kept on lo, and are served. Ending
	// the drain at the first count of 0 took the VIP off lo and the
	// forwarding rule off the new holder just then: the next handshake on
	// the old holder had its data reset by the new one (TestSites lost 2
	// requests that way, once in 14 rollouts under load).
	connQuiet = 2 * time.Second
	// Settle is the grace period of a drain or undrain that has none
	// (drain_grace 0, --grace 0): the VIP's old holder keeps the connections
	// open at the switch this long, so a request in flight when the client's
	// next packet goes to the new holder completes instead of being reset
	// (the e2e drains lost 1 of ~70 new connections that way now and then on
	// a loaded machine). Long-lived connections are still cut, after it. It
	// is best effort: where the connection drain cannot run (a host without
	// nft, an IPv6 VIP, a kernel that refuses the rule) the move goes ahead
	// without it, as before, and says so.
	Settle = 2 * time.Second
)

// ErrConnsRefused is wrapped by the error of a connection drain that cannot
// be set up (a host lacks nft or systemd-run, an IPv6 VIP): refused before
// anything changed, so the same move without a grace period (which cuts
// open connections) is still possible. It wraps ErrRefused.
var ErrConnsRefused = fmt.Errorf("connection draining %w", ErrRefused)

// Handoff is one VIP leaving the host From, which keeps its connections.
type Handoff struct {
	VIP  netip.Prefix
	From string
}

// Conns is what a connection drain did.
type Conns struct {
	// GraceSeconds is the longest the old holders were given.
	GraceSeconds float64 `json:"grace_seconds"`
	// WaitedSeconds is how long hactl waited for the connections to end,
	// from the moment the VIPs had moved.
	WaitedSeconds float64 `json:"waited_seconds"`
	// Left maps each host that kept VIPs to the connections it still had
	// open when hactl stopped the draining (0: every one had ended).
	Left map[string]int `json:"left"`
}

// StartConnCommand starts the unit: ConnScript's up, then its watch, which
// lives at most limit and ends as soon as keepalived's main process changes
// (a stop, a restart or a crash), and its down when the unit stops for any
// reason. No BindsTo=keepalived.service: systemd propagates a restart of
// keepalived to a unit bound to it as a restart, so on the lab the draining
// came back up after `systemctl restart keepalived` instead of ending
// (keepalived must be active when it starts, which preflight checks).
func StartConnCommand(limit time.Duration, description string) string {
	secs := int(math.Ceil(limit.Seconds()))
	return fmt.Sprintf("systemd-run --quiet --unit=%s --description=%s -p %s -p %s /bin/sh %s watch %d",
		ConnUnit, remote.Quote(description),
		remote.Quote("ExecStartPre=/bin/sh "+ConnScript+" up"),
		remote.Quote("ExecStopPost=/bin/sh "+ConnScript+" down"), ConnScript, secs)
}

// StopConnCommand stops the unit (its ExecStopPost runs the script's down)
// and runs down once more, which exits 1 naming anything still in place.
// A host without the script has nothing to stop.
func StopConnCommand() string {
	return fmt.Sprintf("systemctl stop %s 2>/dev/null; systemctl reset-failed %s 2>/dev/null; if [ -e %s ]; then /bin/sh %s down; fi",
		ConnUnit, ConnUnit, ConnScript, ConnScript)
}

// CountConnCommand prints "VIP N" for every VIP the host keeps on lo.
func CountConnCommand() string { return "/bin/sh " + ConnScript + " count" }

// PreflightConnCommand exits 0 when the host can take part: keepalived is
// active (the unit watches its main process), systemd-run and ss exist, and nft where the
// host forwards; otherwise it prints what is missing.
func PreflightConnCommand(forward bool) string {
	need := "systemd-run ss ip sysctl"
	if forward {
		need += " nft"
	}
	return "m=''; for c in " + need + `; do command -v "$c" >/dev/null 2>&1 || m="$m $c"; done; ` +
		`systemctl is-active -q keepalived || m="$m keepalived(inactive)"; [ -z "$m" ] || { echo "missing:$m"; exit 1; }`
}

// ParseCount sums CountConnCommand's output.
func ParseCount(out string) (int, error) {
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return 0, fmt.Errorf("connection count: unexpected line %q", line)
		}
		v, err := strconv.Atoi(f[1])
		if err != nil || v < 0 {
			return 0, fmt.Errorf("connection count: unexpected line %q", line)
		}
		n += v
	}
	return n, nil
}

// ConnPlan gives each host of the cluster its part for these handoffs: a
// host keeps the VIPs it leaves on lo, and the other members of each VIP's
// instance (whichever of them ends up with it) forward to the host leaving
// it. Hosts with no part are absent. IPv4 only: an IPv6 VIP is refused
// before anything changes (see the README: an address on lo is not hidden
// from neighbour discovery the way arp_ignore hides it from ARP, and hactl
// has not verified the forwarding for IPv6).
func ConnPlan(l *vrrp.Layout, hosts []*fleet.Host, moves []Handoff) (map[string]*render.ConnDrain, error) {
	by := map[string]*fleet.Host{}
	for _, h := range hosts {
		by[h.Host.Name] = h
	}
	plan := map[string]*render.ConnDrain{}
	part := func(name string) *render.ConnDrain {
		if plan[name] == nil {
			plan[name] = &render.ConnDrain{Host: name, Interface: by[name].Host.Interface, Unit: ConnUnit, Table: ConnTable}
		}
		return plan[name]
	}
	for _, m := range moves {
		if !m.VIP.Addr().Is4() {
			return nil, fmt.Errorf("%w for VIP %s: it works for IPv4 VIPs only (use --grace 0 to move it without keeping its connections)", ErrConnsRefused, m.VIP)
		}
		from := by[m.From]
		if from == nil {
			return nil, fmt.Errorf("connection draining: %s is not in the cluster", m.From)
		}
		if !from.Host.Address.Is4() {
			return nil, fmt.Errorf("%w for VIP %s: %s's address %s is not IPv4", ErrConnsRefused, m.VIP, m.From, from.Host.Address)
		}
		in := instanceOf(l, m.VIP)
		if in == nil {
			return nil, fmt.Errorf("connection draining: VIP %s is in no instance", m.VIP)
		}
		for _, a := range in.Addrs() {
			if !a.Addr().Is4() {
				return nil, fmt.Errorf("%w for VIP %s: its instance also moves IPv6 VIP %s, and draining works for IPv4 only (use --grace 0)", ErrConnsRefused, m.VIP, a)
			}
		}
		p := part(m.From)
		p.Local = append(p.Local, m.VIP.Addr())
		for _, mem := range in.Members {
			if mem.Host == m.From || by[mem.Host] == nil {
				continue
			}
			f := part(mem.Host)
			f.Forward = append(f.Forward, render.ConnForward{VIP: m.VIP.Addr(), To: from.Host.Address})
		}
	}
	for name, p := range plan {
		if p.Local != nil && p.Forward != nil {
			// A host that keeps one VIP while it forwards another to a third
			// host: two moves in opposite directions in one command, which
			// drain and undrain never make.
			return nil, fmt.Errorf("connection draining: %s would both keep and forward VIPs", name)
		}
	}
	return plan, nil
}

func instanceOf(l *vrrp.Layout, vip netip.Prefix) *vrrp.Instance {
	for _, in := range l.Instances {
		if in.VIP == vip {
			return in
		}
	}
	return nil
}

// connDrain is one connection drain in progress.
type connDrain struct {
	d     *Drainer
	hosts map[string]*fleet.Host
	plan  map[string]*render.ConnDrain
	grace time.Duration
}

// startConns sets up the plan on every host: the hosts that keep VIPs first,
// then the forwarders, all before the VIPs move. Refused (nothing changed)
// when a host lacks what its part needs; on any other failure what was
// started is stopped again.
//
// An error that leaves nothing in place (a refusal, or a start undone
// cleanly) is an undone: the moves can go ahead without it.
func (d *Drainer) startConns(ctx context.Context, hosts []*fleet.Host, moves []Handoff, limit, grace time.Duration) (*connDrain, error) {
	l := d.layout(hosts[0].Cluster.Name)
	plan, err := ConnPlan(l, hosts, moves)
	if err != nil {
		return nil, undone{err}
	}
	cd := &connDrain{d: d, hosts: map[string]*fleet.Host{}, plan: plan, grace: grace}
	for _, h := range hosts {
		cd.hosts[h.Host.Name] = h
	}
	names := cd.names()
	var problems []string
	scripts := map[string][]byte{}
	for _, name := range names {
		h := cd.hosts[name]
		if h.Conn == nil {
			problems = append(problems, fmt.Sprintf("%s is unreachable: %v", name, h.Err))
			continue
		}
		res, err := h.Conn.Run(ctx, PreflightConnCommand(plan[name].Forward != nil), nil)
		if err != nil {
			return nil, undone{fmt.Errorf("connection draining: %s: %w", name, err)}
		}
		if res.ExitCode != 0 {
			problems = append(problems, fmt.Sprintf("%s lacks %s", name, strings.TrimPrefix(strings.TrimSpace(string(res.Stdout)), "missing: ")))
		}
		if scripts[name], err = render.ConnDrainScript(*plan[name]); err != nil {
			return nil, undone{err}
		}
	}
	if len(problems) > 0 {
		return nil, undone{fmt.Errorf("%w: %s (install nftables where it is missing%s)", ErrConnsRefused, strings.Join(problems, "; "), orCut(d.o.Grace))}
	}
	for _, name := range names {
		p := plan[name]
		h := cd.hosts[name]
		err := func() error {
			if _, err := remote.Output(ctx, h.Conn, StopConnCommand()); err != nil {
				return fmt.Errorf("stop an earlier connection drain: %w", err)
			}
			if err := h.Conn.Upload(ctx, ConnScript, scripts[name], 0o700); err != nil {
				return fmt.Errorf("upload %s: %w", ConnScript, err)
			}
			if _, err := remote.Output(ctx, h.Conn, StartConnCommand(limit, describe(p))); err != nil {
				return fmt.Errorf("start %s: %w", ConnUnit, err)
			}
			return nil
		}()
		if err != nil {
			err = fmt.Errorf("connection draining: %s: %w", name, err)
			if serr := cd.stop(context.WithoutCancel(ctx)); serr != nil {
				return nil, errors.Join(err, serr)
			}
			return nil, undone{err}
		}
		d.event("%s: %s", name, describe(p))
	}
	return cd, nil
}

// orCut is the refusal's hint at --grace 0 where a grace period was asked
// for; without one there is nothing to turn off.
func orCut(grace time.Duration) string {
	if grace > 0 {
		return ", or use --grace 0"
	}
	return ""
}

// undone is the error of a connection drain that could not start and left
// nothing in place (refused, or started in part and stopped cleanly).
type undone struct{ error }

func (u undone) Unwrap() error { return u.error }

// connDescPrefix starts every unit description: `systemctl status` then
// says whose unit it is; status drops it.
const connDescPrefix = "hactl connection drain: "

// describe is the unit's description, which status shows while it runs.
func describe(p *render.ConnDrain) string {
	if p.Local != nil {
		return fmt.Sprintf(connDescPrefix+"keeps %s for its open connections", joinAddrs(p.Local))
	}
	var parts []string
	for _, f := range p.Forward {
		parts = append(parts, f.VIP.String()+" → "+f.To.String())
	}
	return connDescPrefix + "forwards established connections of " + strings.Join(parts, ", ")
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// names lists the hosts with a part: keepers first, then forwarders, each
// sorted.
func (cd *connDrain) names() []string {
	var keep, fwd []string
	for name, p := range cd.plan {
		if p.Local != nil {
			keep = append(keep, name)
		} else {
			fwd = append(fwd, name)
		}
	}
	sort.Strings(keep)
	sort.Strings(fwd)
	return append(keep, fwd...)
}

// wait counts the keepers' open connections every second until none is
// left or the grace period has passed, reporting each change.
func (cd *connDrain) wait(ctx context.Context) (*Conns, error) {
	clk := cd.d.o.Clock
	start := clk.Now()
	res := &Conns{GraceSeconds: cd.grace.Seconds(), Left: map[string]int{}}
	last := map[string]int{}
	var quiet time.Time // since when no connection was left (zero: some were)
	for {
		total := 0
		for _, name := range cd.names() {
			if cd.plan[name].Local == nil {
				continue
			}
			out, err := remote.Output(ctx, cd.hosts[name].Conn, CountConnCommand())
			if err != nil {
				return nil, fmt.Errorf("%s: count connections: %w", name, err)
			}
			n, err := ParseCount(out)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			res.Left[name] = n
			total += n
			if v, seen := last[name]; !seen || v != n {
				cd.d.event("%s: %d connection(s) left on %s (%s of %s)", name, n, joinAddrs(cd.plan[name].Local),
					clk.Now().Sub(start).Round(time.Second), cd.grace)
				last[name] = n
			}
		}
		now := clk.Now()
		waited := now.Sub(start)
		res.WaitedSeconds = math.Round(waited.Seconds()*10) / 10
		switch {
		case total > 0:
			quiet = time.Time{}
		case quiet.IsZero():
			quiet = now
		}
		if (total == 0 && now.Sub(quiet) >= connQuiet) || waited >= cd.grace {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-clk.After(connPoll):
		}
	}
}

// stop ends the draining on every host with a part, in parallel, and
// reports anything a host still has in place.
func (cd *connDrain) stop(ctx context.Context) error {
	names := cd.names()
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		h := cd.hosts[name]
		if h.Conn == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := remote.Output(ctx, h.Conn, StopConnCommand()); err != nil {
				errs[i] = fmt.Errorf("%s: stop connection draining: %w", name, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startConnsFor starts a connection drain for moves when something moves;
// nil (nothing to finish) otherwise. With the Drainer's grace period it is
// refused as a whole when it cannot run; without one it is the Settle, and
// the moves go ahead without it when it cannot run (said in an event). The
// unit's own time limit covers the VIPs' move, the grace period and a
// margin: only a hactl that vanished mid-way leaves it to that limit.
func (d *Drainer) startConnsFor(ctx context.Context, hosts []*fleet.Host, moves []Handoff) (*connDrain, error) {
	if len(moves) == 0 {
		return nil, nil
	}
	sort.Slice(moves, func(i, j int) bool { return moves[i].VIP.String() < moves[j].VIP.String() })
	grace := d.o.Grace
	if grace <= 0 {
		grace = Settle
	}
	limit := moveTimeout(d.layout(hosts[0].Cluster.Name)) + grace + connMargin
	cd, err := d.startConns(ctx, hosts, moves, limit, grace)
	var u undone
	if err != nil && d.o.Grace <= 0 && errors.As(err, &u) && ctx.Err() == nil {
		d.event("requests in flight at the switch are not kept: %v", err)
		return nil, nil
	}
	return cd, err
}

// finish ends a connection drain (a nil one is none). With res (the VIPs
// have moved) it first waits for the connections, records the outcome in
// res and says how it ended; failed is the error that ends the command
// early, returned joined with any failure to stop.
func (cd *connDrain) finish(ctx context.Context, res *Result, failed error) error {
	if cd == nil {
		return failed
	}
	if res != nil && failed == nil {
		c, err := cd.wait(ctx)
		if err != nil {
			failed = err
		} else {
			res.Conns = c
			for _, name := range cd.names() {
				if n, ok := c.Left[name]; ok && n > 0 && cd.d.o.Grace <= 0 {
					cd.d.event("%s: %d connection(s) still open %s after the switch: cut (no drain_grace)", name, n, cd.grace)
				} else if ok && n > 0 {
					cd.d.event("%s: %d connection(s) still open after the %s grace period: cut", name, n, cd.grace)
				} else if ok {
					cd.d.event("%s: every connection ended after %.1fs", name, c.WaitedSeconds)
				}
			}
		}
	}
	if err := cd.stop(context.WithoutCancel(ctx)); err != nil {
		return errors.Join(failed, err)
	}
	if res != nil && failed == nil {
		cd.d.event("connection draining stopped on %s", strings.Join(cd.names(), ", "))
	}
	return failed
}

// GraceFor is the grace period of a drain of host: flag when it was given
// (set), else its cluster's drain_grace.
func GraceFor(inv *inventory.Inventory, host string, flag time.Duration, set bool) (time.Duration, error) {
	if set {
		if flag < 0 || flag > inventory.MaxDrainGrace {
			return 0, fmt.Errorf("--grace %s: want 0 (cut open connections) to %s", flag, inventory.MaxDrainGrace)
		}
		return flag, nil
	}
	c := inv.ClusterOf(host)
	if c == nil {
		return 0, fmt.Errorf("host %q is not in the inventory", host)
	}
	return c.DrainGrace, nil
}

// ActiveConnCommand prints the unit's state and description.
func ActiveConnCommand() string {
	return "systemctl show -p ActiveState -p Description " + ConnUnit + " 2>/dev/null"
}

// ActiveConn returns the description of the connection drain running on
// the host (what it keeps or forwards), "" when none runs or it cannot be
// told: status shows it, and its absence is no error.
func ActiveConn(ctx context.Context, c remote.Conn) string {
	res, err := c.Run(ctx, ActiveConnCommand(), nil)
	if err != nil || res.ExitCode != 0 {
		return ""
	}
	return ParseActiveConn(string(res.Stdout))
}

// ParseActiveConn reads ActiveConnCommand's output: the description of an
// active (or activating/deactivating) unit, else "".
func ParseActiveConn(out string) string {
	state, desc := "", ""
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "ActiveState="); ok {
			state = strings.TrimSpace(v)
		} else if v, ok := strings.CutPrefix(line, "Description="); ok {
			desc = strings.TrimSpace(v)
		}
	}
	switch state {
	case "active", "activating", "deactivating", "reloading":
		if desc = strings.TrimPrefix(desc, connDescPrefix); desc == "" {
			desc = ConnUnit
		}
		return desc
	}
	return ""
}
