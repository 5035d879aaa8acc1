// Package drain takes a balancer out of service and back without failed
// requests. keepalived tracks facts.DrainFile (track_file weight 1): the
// first step (Step, e.g. -3) lowers every instance of the host just below the
// next host in each held VIP's takeover order, so each VIP it holds stays
// until that host claims it (an overlap, never a gap); -254 then puts the
// instances in FAULT, so the host is no backup either; 0 brings it back at
// full priority and it preempts its own VIP.
// The file is on disk, so a drained host stays drained through apply, a
// keepalived restart and a reboot.
package drain

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hactl/hactl/pkg/clock"
	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/verify"
	"github.com/hactl/hactl/pkg/vrrp"
)

// ErrRefused is wrapped by the error of a drain that would leave a VIP
// without a host, or hand it to an unhealthy one; nothing was changed.
var ErrRefused = errors.New("refused")

// Options say what a drain works on.
type Options struct {
	Layout *vrrp.Layout
	// Fleet holds every host of the drained host's cluster.
	Fleet *fleet.Fleet
	Clock clock.Clock // nil: clock.Real
	// Event receives progress lines; nil discards them.
	Event func(string)
	// Grace > 0 keeps each VIP's old holder serving its open connections
	// for at most this long after the VIP moved (conns.go); 0 cuts them
	// after the Settle (where the connection drain can run at all).
	Grace time.Duration
}

// Result is what a drain or undrain did.
type Result struct {
	Host string `json:"host"`
	// Moved maps each VIP that changed hands to its holder afterwards.
	Moved   map[string]string `json:"moved"`
	Elapsed time.Duration     `json:"-"`
	Drained bool              `json:"drained"`
	// Conns is the connection drain, when there was one.
	Conns *Conns `json:"connections,omitempty"`
}

// WriteCommand replaces the drain file with v atomically (a temporary file
// renamed over it: keepalived never reads half a number), 0644 root:root.
func WriteCommand(v int) string {
	f := remote.Quote(facts.DrainFile)
	return fmt.Sprintf(`set -e; umask 022; t=$(mktemp %s); printf '%%d\n' %d > "$t"; chown root:root "$t"; chmod 0644 "$t"; mv -f "$t" %s`,
		remote.Quote(facts.DrainFile+".hactl-XXXXXX"), v, f)
}

var writeRE = regexp.MustCompile(`printf '%d\\n' (-?\d+) > "\$t"`)

// ParseWriteCommand returns the value a WriteCommand writes (for simulators).
func ParseWriteCommand(cmd string) (int, bool) {
	if !strings.Contains(cmd, facts.DrainFile) {
		return 0, false
	}
	m := writeRE.FindStringSubmatch(cmd)
	if m == nil {
		return 0, false
	}
	v, err := strconv.Atoi(m[1])
	return v, err == nil
}

// ReadCommand prints the drain file's value (nothing when there is none).
func ReadCommand() string {
	return "head -c 32 " + remote.Quote(facts.DrainFile) + " 2>/dev/null; echo"
}

// ParseRead reads ReadCommand's output the way keepalived does.
func ParseRead(out string) int {
	f, err := facts.Parse("@@drain\n" + out + "\n@@end\n")
	if err != nil {
		return 0
	}
	return f.Drain
}

// HostState is one host of the cluster as a drain sees it.
type HostState struct {
	Name    string
	Drain   int  // the drain file's value
	Healthy bool // keepalived and nginx active
	Err     error
}

// Read asks every host of the fleet for its drain value and services.
func Read(ctx context.Context, hosts []*fleet.Host) []HostState {
	out := make([]HostState, len(hosts))
	for i, h := range hosts {
		out[i].Name = h.Host.Name
		if h.Conn == nil {
			out[i].Err = h.Err
			continue
		}
		o, err := remote.Output(ctx, h.Conn, ReadCommand())
		if err != nil {
			out[i].Err = fmt.Errorf("%s: read %s: %w", h.Host.Name, facts.DrainFile, err)
			continue
		}
		out[i].Drain = ParseRead(o)
		res, err := h.Conn.Run(ctx, remote.IsActive("keepalived", "nginx"), nil)
		if err != nil {
			out[i].Err = fmt.Errorf("%s: %w", h.Host.Name, err)
			continue
		}
		out[i].Healthy = res.ExitCode == 0
	}
	return out
}

// Drainer drains and undrains hosts of one fleet.
type Drainer struct{ o Options }

// New returns a Drainer.
func New(o Options) *Drainer {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	return &Drainer{o: o}
}

func (d *Drainer) event(format string, args ...any) {
	if d.o.Event != nil {
		d.o.Event(fmt.Sprintf(format, args...))
	}
}

// Check refuses a drain of host that would leave one of its VIPs without a
// host that can hold it (every other member drained or unhealthy), or hand a
// VIP it holds now to an unhealthy host. states come from Read.
func Check(l *vrrp.Layout, host string, states []HostState) error {
	by := map[string]HostState{}
	for _, s := range states {
		by[s.Name] = s
	}
	var problems []string
	for _, in := range l.Instances {
		if in.PriorityOf(host) == 0 {
			continue
		}
		next := ""
		for _, m := range in.Members {
			if m.Host == host {
				continue
			}
			s, ok := by[m.Host]
			if !ok || s.Err != nil || facts.Drained(s.Drain) {
				continue
			}
			if next == "" {
				next = m.Host
				if !s.Healthy {
					problems = append(problems, fmt.Sprintf("VIP %s would go to %s, whose keepalived or nginx is not active", in.VIP, m.Host))
				}
			}
		}
		if next == "" {
			problems = append(problems, fmt.Sprintf("%s is the last host that can hold VIP %s (every other host is drained or unreachable)", host, in.VIP))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("drain %s %w: %s", host, ErrRefused, strings.Join(problems, "; "))
	}
	return nil
}

// Step is the drain file value of a drain's first step on host, which holds
// the VIPs in held (keys: VIP strings, as verify reports them): every
// instance of host goes just below each held VIP's first candidate (the next
// host in its takeover order that is neither drained nor unreachable in
// states) and stays at or above its second.
//
// Why not straight to priority 1 (facts.DrainLow): a VRRP backup resets its
// master-down timer on every advert of its own priority or higher and
// discards lower ones (RFC 3768 6.4.2, keepalived's vrrp_state_backup). At
// priority 1 every backup discards the host's adverts, and their timers end
// only their skews apart — (256-99)/256 s against (256-97)/256 s at advert_int
// 1, 8 ms — so a loaded second backup can claim first and the VIP moves twice,
// cutting the requests in flight. Between the two, the host's own adverts keep
// every backup but the first waiting, and the first is the only one to claim.
//
// Where no single value does that for every held VIP (their priority gaps
// differ), Step is facts.DrainLow: priority 1, the race as before.
func Step(l *vrrp.Layout, host string, states []HostState, held map[string]bool) int {
	out := map[string]bool{}
	for _, s := range states {
		if s.Err != nil || facts.Drained(s.Drain) {
			out[s.Name] = true
		}
	}
	lo, hi := facts.DrainLow, -1
	found := false
	for _, in := range l.Instances {
		p := in.PriorityOf(host)
		if p == 0 || !holds(in, held) {
			continue
		}
		var cands []int // takeover order
		for _, m := range in.Members {
			if m.Host != host && !out[m.Host] {
				cands = append(cands, m.Priority)
			}
		}
		if len(cands) == 0 {
			continue // Check refuses this drain
		}
		found = true
		hi = min(hi, cands[0]-1-p)
		if len(cands) > 1 {
			lo = max(lo, cands[1]-p)
		}
		// keepalived never goes below priority 1: a first candidate at
		// 1 cannot be undercut.
		if p+hi < 1 {
			return facts.DrainLow
		}
	}
	if !found || lo > hi {
		return facts.DrainLow
	}
	// The highest such value: the farthest above every other backup.
	return hi
}

// holds reports whether any address of in is in held.
func holds(in *vrrp.Instance, held map[string]bool) bool {
	for _, a := range in.Addrs() {
		if held[a.String()] {
			return true
		}
	}
	return false
}

// Drain takes host out: its VIPs move to the next host in their takeover
// order (overlap, no gap), then host leaves every VIP as backup too. On a
// failure or timeout the drain file gets its previous value back.
func (d *Drainer) Drain(ctx context.Context, host string) (*Result, error) {
	h, hosts, err := d.cluster(host)
	if err != nil {
		return nil, err
	}
	start := d.o.Clock.Now()
	states := Read(ctx, hosts)
	prev := 0
	for _, s := range states {
		if s.Name == host {
			if s.Err != nil {
				return nil, s.Err
			}
			prev = s.Drain
		}
	}
	if err := Check(d.o.Layout, host, states); err != nil {
		return nil, err
	}
	held := d.heldBy(ctx, hosts, host)
	res := &Result{Host: host, Moved: map[string]string{}, Drained: true}
	cd, err := d.startConnsFor(ctx, hosts, drainMoves(host, held))
	if err != nil {
		return nil, fmt.Errorf("drain %s: %w", host, err)
	}
	if prev > facts.DrainOut {
		// A host left at a first step (an interrupted drain) is waited for
		// again: its VIPs may not have moved yet, and FAULT now would drop them.
		step := Step(d.layout(h.Cluster.Name), host, states, held)
		if prev < facts.InService {
			step = prev // already a first step: kept, not raised or lowered mid-move
		}
		if err := d.firstStep(ctx, h, hosts, step, prev, held, res); err != nil {
			return nil, cd.finish(ctx, nil, err)
		}
	}
	d.event("%s: drain file %d: FAULT, no longer a backup", host, facts.DrainOut)
	if err := d.write(ctx, h, facts.DrainOut); err != nil {
		return nil, cd.finish(ctx, nil, err)
	}
	if err := cd.finish(ctx, res, nil); err != nil {
		return nil, fmt.Errorf("drain %s: %w", host, err)
	}
	res.Elapsed = d.o.Clock.Now().Sub(start)
	return res, nil
}

// Undrain brings host back: it rejoins every instance at full priority and
// takes its own VIPs back by preemption, the old holder keeping them until
// then.
func (d *Drainer) Undrain(ctx context.Context, host string) (*Result, error) {
	h, hosts, err := d.cluster(host)
	if err != nil {
		return nil, err
	}
	start := d.o.Clock.Now()
	mine := func(v verify.VIPState) bool { return v.Master == host }
	cd, err := d.startConnsFor(ctx, hosts, d.undrainMoves(ctx, hosts, host))
	if err != nil {
		return nil, fmt.Errorf("undrain %s: %w", host, err)
	}
	d.event("%s: drain file %d: back in service; waiting for its VIPs to come home", host, facts.InService)
	if err := d.write(ctx, h, facts.InService); err != nil {
		return nil, cd.finish(ctx, nil, err)
	}
	res := &Result{Host: host, Moved: map[string]string{}}
	err = d.wait(ctx, hosts, mine, func(v verify.VIPState) bool {
		return !mine(v) || (len(v.Holders) == 1 && v.Holders[0] == host)
	}, res)
	if err != nil {
		return nil, cd.finish(ctx, nil, fmt.Errorf("undrain %s: %w (the host is in service; its VIPs have not come home)", host, err))
	}
	if err := cd.finish(ctx, res, nil); err != nil {
		return nil, fmt.Errorf("undrain %s: %w", host, err)
	}
	res.Elapsed = d.o.Clock.Now().Sub(start)
	return res, nil
}

// firstStep writes step to host's drain file (unless it holds it already)
// and waits for every VIP in held to leave host. A first candidate that does
// not claim (its check failing lowers it below the host) leaves the VIPs in
// place: the host then goes to priority 1 and any backup may claim. On
// failure the drain file gets prev back.
func (d *Drainer) firstStep(ctx context.Context, h *fleet.Host, hosts []*fleet.Host, step, prev int, held map[string]bool, res *Result) error {
	host := h.Host.Name
	isHeld := func(v verify.VIPState) bool { return held[v.VIP] }
	gone := func(v verify.VIPState) bool {
		return !held[v.VIP] || (len(v.Holders) == 1 && v.Holders[0] != host)
	}
	wrote := false
	for _, v := range []int{step, facts.DrainLow} {
		if v == prev && !wrote {
			d.event("%s: drain file %d already; waiting for its VIPs to move", host, v)
		} else {
			d.event("%s: drain file %d: %s; waiting for its VIPs to move", host, v, stepText(v))
			if err := d.write(ctx, h, v); err != nil {
				return d.restore(ctx, h, wrote, prev, err)
			}
			wrote = true
		}
		err := d.wait(ctx, hosts, isHeld, gone, res)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || v == facts.DrainLow {
			return d.restore(ctx, h, wrote, prev, fmt.Errorf("drain %s: %w", host, err))
		}
		d.event("%s: %v", host, err)
	}
	return nil
}

func stepText(v int) string {
	if v == facts.DrainLow {
		return "priority 1 on every instance"
	}
	return fmt.Sprintf("every instance %d lower, below the next holder of each VIP and above the rest", -v)
}

// restore puts prev back in host's drain file if the drain wrote it.
func (d *Drainer) restore(ctx context.Context, h *fleet.Host, wrote bool, prev int, err error) error {
	if !wrote {
		return err
	}
	if werr := d.write(context.WithoutCancel(ctx), h, prev); werr != nil {
		return errors.Join(err, fmt.Errorf("restore %s on %s: %w", facts.DrainFile, h.Host.Name, werr))
	}
	return fmt.Errorf("%w (drain file restored to %d)", err, prev)
}

// drainMoves are the VIPs host holds, each leaving it.
func drainMoves(host string, held map[string]bool) []Handoff {
	var moves []Handoff
	for vip := range held {
		if p, err := netip.ParsePrefix(vip); err == nil {
			moves = append(moves, Handoff{VIP: p, From: host})
		}
	}
	return moves
}

// undrainMoves is the fail-back: each of host's VIPs leaves the host that
// covers for it now, which keeps its connections (for the Settle without a
// grace period).
func (d *Drainer) undrainMoves(ctx context.Context, hosts []*fleet.Host, host string) []Handoff {
	var moves []Handoff
	for _, v := range verify.Classify(d.layout(hosts[0].Cluster.Name), verify.Observe(ctx, hosts)) {
		if p, err := netip.ParsePrefix(v.VIP); err == nil && v.Master == host && len(v.Holders) == 1 && v.Holders[0] != host {
			moves = append(moves, Handoff{VIP: p, From: v.Holders[0]})
		}
	}
	return moves
}

// ConnDrain is a connection drain run beside a drain or undrain that its
// caller steps through itself (failover-test's drain scenario writes the
// drain file and watches the VIP move meanwhile).
type ConnDrain struct{ cd *connDrain }

// StartDrainConns starts the connection drain Drain(host) would, before
// the caller writes the drain file; nil when there is nothing to drain
// (no grace, or host holds no VIP). Refused as Drain's would be.
func (d *Drainer) StartDrainConns(ctx context.Context, host string) (*ConnDrain, error) {
	_, hosts, err := d.cluster(host)
	if err != nil {
		return nil, err
	}
	cd, err := d.startConnsFor(ctx, hosts, drainMoves(host, d.heldBy(ctx, hosts, host)))
	if err != nil || cd == nil {
		return nil, err
	}
	return &ConnDrain{cd: cd}, nil
}

// StartUndrainConns starts the connection drain Undrain(host) would, before
// the caller puts host back in service; nil when there is nothing to drain.
func (d *Drainer) StartUndrainConns(ctx context.Context, host string) (*ConnDrain, error) {
	_, hosts, err := d.cluster(host)
	if err != nil {
		return nil, err
	}
	cd, err := d.startConnsFor(ctx, hosts, d.undrainMoves(ctx, hosts, host))
	if err != nil || cd == nil {
		return nil, err
	}
	return &ConnDrain{cd: cd}, nil
}

// Finish ends the connection drain (nil: none). moved says the VIPs have
// moved: then it first waits for the connections to end or the grace to
// pass and returns what was left; otherwise it only tears the drain down.
func (c *ConnDrain) Finish(ctx context.Context, moved bool) (*Conns, error) {
	if c == nil {
		return nil, nil
	}
	if !moved {
		return nil, c.cd.finish(ctx, nil, nil)
	}
	res := &Result{}
	if err := c.cd.finish(ctx, res, nil); err != nil {
		return nil, err
	}
	return res.Conns, nil
}

func (d *Drainer) cluster(host string) (*fleet.Host, []*fleet.Host, error) {
	h := d.o.Fleet.Get(host)
	if h == nil {
		return nil, nil, fmt.Errorf("host %q is not in the inventory", host)
	}
	if h.Conn == nil {
		return nil, nil, fmt.Errorf("%s: %w", host, h.Err)
	}
	var hosts []*fleet.Host
	for _, x := range d.o.Fleet.Hosts {
		if x.Cluster.Name == h.Cluster.Name {
			hosts = append(hosts, x)
		}
	}
	return h, hosts, nil
}

func (d *Drainer) layout(cluster string) *vrrp.Layout {
	return &vrrp.Layout{Instances: d.o.Layout.ForCluster(cluster)}
}

// heldBy lists the VIPs host holds now.
func (d *Drainer) heldBy(ctx context.Context, hosts []*fleet.Host, host string) map[string]bool {
	held := map[string]bool{}
	for _, v := range verify.Classify(d.layout(hosts[0].Cluster.Name), verify.Observe(ctx, hosts)) {
		for _, x := range v.Holders {
			if x == host {
				held[v.VIP] = true
			}
		}
	}
	return held
}

func (d *Drainer) write(ctx context.Context, h *fleet.Host, v int) error {
	if _, err := remote.Output(ctx, h.Conn, WriteCommand(v)); err != nil {
		return fmt.Errorf("%s: write %s: %w", h.Host.Name, facts.DrainFile, err)
	}
	return nil
}

// moveTimeout bounds a drain's or undrain's wait for its VIPs to move: a
// master-down interval and preemption three times over.
func moveTimeout(l *vrrp.Layout) time.Duration {
	var bound time.Duration
	for _, in := range l.Instances {
		bound = max(bound, in.Bounds.Crash)
	}
	return 3*bound + 5*time.Second
}

// wait polls the cluster every 100 ms until done holds for its VIPs and no
// VIP of the cluster is on two hosts, recording who holds what, for at most
// moveTimeout.
func (d *Drainer) wait(ctx context.Context, hosts []*fleet.Host, moved, done func(verify.VIPState) bool, res *Result) error {
	l := d.layout(hosts[0].Cluster.Name)
	timeout := moveTimeout(l)
	deadline := d.o.Clock.Now().Add(timeout)
	for {
		vs := verify.Classify(l, verify.Observe(ctx, hosts))
		all := true
		for _, v := range vs {
			all = all && done(v)
		}
		if all && verify.Settled(vs, hosts[0].Cluster.Name) {
			for _, v := range vs {
				if moved(v) && len(v.Holders) == 1 {
					res.Moved[v.VIP] = v.Holders[0]
				}
			}
			return nil
		}
		if d.o.Clock.Now().After(deadline) {
			return fmt.Errorf("VIPs did not move within %s: %s", timeout.Round(time.Second), verify.Problems(vs))
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.o.Clock.After(100 * time.Millisecond):
		}
	}
}
