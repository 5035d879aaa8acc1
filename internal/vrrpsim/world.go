// Package vrrpsim simulates keepalived balancers in virtual time for unit
// tests of the code that drives and watches them (pkg/failover, pkg/rollout):
// which host carries which VIP and what systemd says about keepalived and
// nginx, driven by the commands sent to each host's remotetest.Fake. It answers
// `ip -o -4 addr show dev IFACE`, `ip -o addr show dev IFACE` (with a
// dual-stack instance's IPv6 VIP, which moves with its IPv4 one unless
// pinned apart with Place) and the systemctl commands hactl sends
// (is-active, start, stop, restart, kill -s SIG…, mask/unmask --runtime,
// reset-failed, `;`-joined), and `hactl drain`'s read and write of the drain
// file and its connection drain's commands (pkg/drain), and nothing else: an unexpected command exits
// 127, so a test sees what it did not expect.
package vrrpsim

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hactl/hactl/pkg/drain"
	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
	"github.com/hactl/hactl/pkg/vrrp"
)

// Never disables a timing knob: the event does not happen.
const Never time.Duration = -1

// World is the simulated fleet. Set the knobs before the run (or from a
// Clock.At hook); the defaults are the lab's measured timings.
type World struct {
	Clock *Clock
	Fleet *fleet.Fleet
	Fakes map[string]*remotetest.Fake

	// Knobs.
	Takeover     time.Duration // disruption → VIP on the first backup (Never: stays away)
	KeepOnDead   time.Duration // disruption → VIP gone from the master (Never: stays)
	Failback     time.Duration // restore → VIP back on the master only (Never)
	AutoRestart  time.Duration // SIGKILL → systemd has keepalived active again (Never)
	NginxRestart time.Duration // nginx stopped → the check script restarted it (Never)
	// NginxStop is how long `systemctl stop nginx` blocks: nginx's graceful
	// stop waiting for open connections (0: at once).
	NginxStop time.Duration
	// FirstClaim: a host whose keepalived never ran claims its VIP this long
	// after its first start (no advert heard for a master-down interval).
	FirstClaim time.Duration
	// DrainMove: drain file -253 → the next host claims the VIP (its
	// master-down timer: the drained host's adverts at priority 1 are
	// ignored); the drained host keeps it for Overlap more.
	// Preempt: drain file 0 → the host takes its VIP back (overlap too).
	DrainMove, Preempt, Overlap time.Duration
	// Conns says how many connections host keeps open on the VIPs it keeps
	// during a connection drain (pkg/drain), at a virtual instant; nil: 0.
	Conns func(host string, at time.Duration) int
	// ConnMissing maps a host to what drain's connection preflight finds
	// missing there ("nft"); absent: nothing.
	ConnMissing map[string]string

	mu      sync.Mutex
	failCmd map[string]int
	ka      map[string]string
	nginx   map[string]string
	masked  map[string]bool
	down    map[string]time.Duration // master → when its VIP began to move
	back    map[string]time.Duration // master → when it was restored
	killed  map[string]time.Duration
	stopped map[string]time.Duration // nginx stop time
	cold    map[string]time.Duration // keepalived never ran: first start (Never: not yet)
	drain   map[string]drainState
	connOn  map[string]bool // a connection drain's unit runs on the host
	placed  []placement
	sent    []Sent

	inst  []*vrrp.Instance
	hosts []*inventory.Host
}

// drainState is a host's drain file: its value and when it was written;
// out is when the host left its instances (Never: still in), back when it
// came back after a drain.
type drainState struct {
	value     int
	out, back time.Duration
}

// placement pins a VIP on exactly these hosts for a span of virtual time.
type placement struct {
	vip      string
	from, to time.Duration
	holders  []string
}

// Sent is one command the code under test sent, other than the polls.
type Sent struct {
	At   time.Duration
	Host string
	Cmd  string
}

// New simulates inv's hosts with layout l, every VIP on its master and both
// services active.
func New(inv *inventory.Inventory, l *vrrp.Layout) *World {
	w := &World{
		Clock: NewClock(), Fleet: &fleet.Fleet{}, Fakes: map[string]*remotetest.Fake{},
		Takeover: 400 * time.Millisecond, Failback: 3700 * time.Millisecond,
		AutoRestart: 5 * time.Second, NginxRestart: 1200 * time.Millisecond, FirstClaim: 3600 * time.Millisecond,
		DrainMove: 3900 * time.Millisecond, Preempt: 4700 * time.Millisecond, Overlap: 50 * time.Millisecond,
		drain: map[string]drainState{}, connOn: map[string]bool{}, ConnMissing: map[string]string{},
		ka: map[string]string{}, nginx: map[string]string{}, masked: map[string]bool{},
		down: map[string]time.Duration{}, back: map[string]time.Duration{}, killed: map[string]time.Duration{},
		stopped: map[string]time.Duration{}, cold: map[string]time.Duration{}, failCmd: map[string]int{},
		inst: l.Instances, hosts: inv.Hosts(),
	}
	for _, h := range w.hosts {
		w.ka[h.Name] = "active"
		w.nginx[h.Name] = "active"
		f := &remotetest.Fake{Handler: w.handler(h)}
		w.Fakes[h.Name] = f
		w.Fleet.Hosts = append(w.Fleet.Hosts, &fleet.Host{Host: h, Cluster: inv.ClusterOf(h.Name), Conn: f})
	}
	return w
}

// Dark makes a first rollout: keepalived has never run anywhere, no host
// holds a VIP, and a backup covers for no master that never started.
func (w *World) Dark() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, h := range w.hosts {
		w.ka[h.Name] = "inactive"
		w.cold[h.Name] = Never
	}
}

// Place pins vip (as in verify.VIPState.VIP) on exactly holders from virtual
// time from until to, whatever keepalived would do.
func (w *World) Place(vip string, from, to time.Duration, holders ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.placed = append(w.placed, placement{vip: vip, from: from, to: to, holders: holders})
}

// FailCommand makes host answer cmd (exactly as sent) with exit code;
// code 0 lifts the failure.
func (w *World) FailCommand(host, cmd string, code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if code == 0 {
		delete(w.failCmd, host+" "+cmd)
		return
	}
	w.failCmd[host+" "+cmd] = code
}

// SetNginx sets what systemd says about nginx on host.
func (w *World) SetNginx(host, state string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nginx[host] = state
}

// Holders returns, per VIP, the hosts that carry it now.
func (w *World) Holders() map[string][]string {
	now := w.Clock.Elapsed()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.update(now)
	out := map[string][]string{}
	for _, in := range w.inst {
		out[in.VIP.String()] = w.holders(in, now)
		if in.VIP6.IsValid() {
			out[in.VIP6.String()] = w.holdersOf(in, in.VIP6.String(), now)
		}
	}
	return out
}

// Sent lists the commands sent so far other than the polls (ip addr,
// systemctl is-active, the drain file's read), in order.
func (w *World) Sent() []Sent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Sent(nil), w.sent...)
}

// update applies what time has done since the last command; w.mu held.
func (w *World) update(now time.Duration) {
	for h, k := range w.killed {
		if w.AutoRestart != Never && now >= k+w.AutoRestart {
			w.ka[h] = "active"
			w.back[h] = k + w.AutoRestart
			delete(w.killed, h)
		}
	}
	for h, s := range w.stopped {
		if !w.masked[h] && w.NginxRestart != Never && now >= s+w.NginxRestart {
			w.nginx[h] = "active"
			delete(w.stopped, h)
		}
	}
	for h, b := range w.back {
		if w.Failback != Never && now >= b+w.Failback {
			delete(w.back, h)
			delete(w.down, h)
		}
	}
	for h, s := range w.cold {
		if s != Never && w.FirstClaim != Never && now >= s+w.FirstClaim {
			delete(w.cold, h)
		}
	}
}

// holders of in's VIP; w.mu held.
func (w *World) holders(in *vrrp.Instance, now time.Duration) []string {
	return w.holdersOf(in, in.VIP.String(), now)
}

// holdersOf one of in's addresses: a placement pins it, else it is where
// keepalived would have the instance; w.mu held.
func (w *World) holdersOf(in *vrrp.Instance, vip string, now time.Duration) []string {
	for _, p := range w.placed {
		if p.vip == vip && now >= p.from && now < p.to {
			return p.holders
		}
	}
	m := in.Master
	if _, cold := w.cold[m]; cold {
		return nil
	}
	next := w.next(in)
	if ds, ok := w.drain[m]; ok {
		switch {
		case ds.out != Never && now < ds.out+w.DrainMove:
			return []string{m}
		case ds.out != Never && now < ds.out+w.DrainMove+w.Overlap:
			return []string{m, next}
		case ds.out != Never:
			return []string{next}
		case ds.back != Never && now < ds.back+w.Preempt:
			return []string{next}
		case ds.back != Never && now < ds.back+w.Preempt+w.Overlap:
			return []string{next, m}
		}
	}
	d, moving := w.down[m]
	if !moving {
		return []string{m}
	}
	var out []string
	if w.KeepOnDead == Never || now < d+w.KeepOnDead {
		out = append(out, m)
	}
	if w.Takeover != Never && now >= d+w.Takeover {
		out = append(out, next)
	}
	return out
}

// next is the first backup of in that is not drained; w.mu held.
func (w *World) next(in *vrrp.Instance) string {
	for _, b := range in.Backups() {
		if ds, ok := w.drain[b.Host]; !ok || ds.out == Never {
			return b.Host
		}
	}
	return in.FirstBackup().Host
}

// Drained reports host's drain file value.
func (w *World) Drain(host string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.drain[host].value
}

// writeDrain is `hactl drain`'s write; w.mu held.
func (w *World) writeDrain(host string, v int, now time.Duration) {
	ds, ok := w.drain[host]
	if !ok {
		ds = drainState{out: Never, back: Never}
	}
	ds.value = v
	switch {
	case facts.Drained(v) && ds.out == Never:
		ds.out, ds.back = now, Never
	case !facts.Drained(v) && ds.out != Never:
		ds.out, ds.back = Never, now
	}
	w.drain[host] = ds
}

func (w *World) handler(h *inventory.Host) func(string, []byte) remote.Result {
	host := h.Name
	return func(cmd string, _ []byte) remote.Result {
		if w.NginxStop > 0 && strings.Join(strings.Fields(strings.ReplaceAll(cmd, "'", "")), " ") == "systemctl stop nginx" {
			// The command blocks while nginx shuts down gracefully; virtual
			// time moves on (outside w.mu: the clock's hooks may call in).
			<-w.Clock.After(w.NginxStop)
		}
		now := w.Clock.Elapsed()
		w.mu.Lock()
		defer w.mu.Unlock()
		w.update(now)
		poll := strings.HasPrefix(cmd, "ip -o -4 addr show dev ") || strings.HasPrefix(cmd, "ip -o addr show dev ")
		if !poll && !strings.HasPrefix(cmd, "systemctl is-active") && cmd != drain.ReadCommand() {
			w.sent = append(w.sent, Sent{At: now, Host: host, Cmd: cmd})
		}
		if code, ok := w.failCmd[host+" "+cmd]; ok {
			return remote.Result{ExitCode: code, Stderr: []byte("simulated failure")}
		}
		if poll {
			return w.addrs(h, now, !strings.HasPrefix(cmd, "ip -o -4 "))
		}
		if cmd == drain.ReadCommand() {
			if ds, ok := w.drain[host]; ok {
				return remote.Result{Stdout: []byte(fmt.Sprintf("%d\n\n", ds.value))}
			}
			return remote.Result{Stdout: []byte("\n")}
		}
		if v, ok := drain.ParseWriteCommand(cmd); ok {
			w.writeDrain(host, v, now)
			return remote.Result{}
		}
		if res, ok := w.connDrain(host, cmd, now); ok {
			return res
		}
		var res remote.Result
		for _, part := range strings.Split(cmd, ";") {
			if res = w.systemctl(host, strings.TrimSpace(part), now); res.ExitCode == 127 {
				return res
			}
		}
		return res
	}
}

// connDrain answers pkg/drain's connection-drain commands; w.mu held.
func (w *World) connDrain(host, cmd string, now time.Duration) (remote.Result, bool) {
	switch {
	case cmd == drain.PreflightConnCommand(true) || cmd == drain.PreflightConnCommand(false):
		if m := w.ConnMissing[host]; m != "" {
			return remote.Result{ExitCode: 1, Stdout: []byte("missing: " + m + "\n")}, true
		}
		return remote.Result{}, true
	case cmd == drain.StopConnCommand():
		w.connOn[host] = false
		return remote.Result{}, true
	case strings.HasPrefix(cmd, "systemd-run --quiet --unit="+drain.ConnUnit+" "):
		w.connOn[host] = true
		return remote.Result{}, true
	case cmd == drain.CountConnCommand():
		n := 0
		if w.Conns != nil && w.connOn[host] {
			n = w.Conns(host, now)
		}
		return remote.Result{Stdout: []byte(fmt.Sprintf("kept %d\n", n))}, true
	}
	return remote.Result{}, false
}

// ConnActive reports whether a connection drain's unit runs on host.
func (w *World) ConnActive(host string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.connOn[host]
}

// addrs answers `ip -o -4 addr show dev`, or both families with v6; w.mu held.
func (w *World) addrs(h *inventory.Host, now time.Duration, v6 bool) remote.Result {
	var b strings.Builder
	fmt.Fprintf(&b, "2: %s    inet %s/24 brd 198.18.0.255 scope global %s\\       valid_lft forever\n", h.Interface, h.Address, h.Interface)
	line := func(in *vrrp.Instance, vip netip.Prefix) {
		fam := "inet"
		if vip.Addr().Is6() {
			if !v6 {
				return
			}
			fam = "inet6"
		}
		for _, x := range w.holdersOf(in, vip.String(), now) {
			if x == h.Name {
				fmt.Fprintf(&b, "2: %s    %s %s scope global secondary %s\\       valid_lft forever\n", h.Interface, fam, vip, h.Interface)
			}
		}
	}
	for _, in := range w.inst {
		for _, a := range in.Addrs() {
			line(in, a)
		}
	}
	return remote.Result{Stdout: []byte(b.String())}
}

// systemctl runs one `systemctl VERB [flags] UNIT…` on host; w.mu held.
func (w *World) systemctl(host, cmd string, now time.Duration) remote.Result {
	f := strings.Fields(strings.TrimSuffix(cmd, " 2>/dev/null"))
	unexpected := remote.Result{ExitCode: 127, Stderr: []byte("unexpected command " + cmd)}
	if len(f) < 3 || f[0] != "systemctl" {
		return unexpected
	}
	verb, signal, quiet := f[1], "", false
	var units []string
	for i := 2; i < len(f); i++ {
		switch {
		case f[i] == "-s" && i+1 < len(f):
			signal = strings.Trim(f[i+1], "'")
			i++
		case f[i] == "-q":
			quiet = true
		case f[i] == "--runtime", f[i] == "--no-block":
		case strings.HasPrefix(f[i], "-"):
			return unexpected
		default:
			units = append(units, strings.Trim(f[i], "'"))
		}
	}
	for _, u := range units {
		if u != "keepalived" && u != "nginx" {
			return unexpected
		}
	}
	if verb == "is-active" {
		var r remote.Result
		var out strings.Builder
		for _, u := range units {
			s := w.state(host, u)
			fmt.Fprintln(&out, s)
			if s != "active" {
				r.ExitCode = 3
			}
		}
		if !quiet {
			r.Stdout = []byte(out.String())
		}
		return r
	}
	if len(units) != 1 {
		return unexpected
	}
	switch verb + " " + signal + " " + units[0] {
	case "reset-failed  keepalived", "reset-failed  nginx":
	case "stop  keepalived":
		w.ka[host] = "inactive"
		w.down[host] = now
	case "start  keepalived":
		if w.firstStart(host, now) {
			break
		}
		delete(w.killed, host)
		if _, d := w.down[host]; d || w.ka[host] != "active" {
			w.back[host] = now
		}
		w.ka[host] = "active"
	case "restart  keepalived":
		if w.firstStart(host, now) {
			break
		}
		delete(w.killed, host)
		w.down[host], w.back[host] = now, now
		w.ka[host] = "active"
	case "kill SIGSTOP keepalived":
		w.down[host] = now
	case "kill SIGKILL keepalived":
		w.ka[host] = "activating"
		w.killed[host] = now
	case "kill SIGCONT keepalived":
		if _, k := w.killed[host]; k {
			return remote.Result{ExitCode: 1, Stderr: []byte("No main process to kill")}
		}
	case "stop  nginx":
		w.nginx[host] = "inactive"
		w.stopped[host] = now
		if w.masked[host] {
			w.down[host] = now
		}
	case "mask  nginx":
		w.masked[host] = true
	case "unmask  nginx":
		delete(w.masked, host)
		delete(w.stopped, host) // the engine starts it itself next
	case "start  nginx", "restart  nginx":
		if w.masked[host] {
			return remote.Result{ExitCode: 1, Stderr: []byte("Unit nginx.service is masked.")}
		}
		if _, d := w.down[host]; d {
			w.back[host] = now
		}
		delete(w.stopped, host)
		w.nginx[host] = "active"
	default:
		return unexpected
	}
	return remote.Result{}
}

// firstStart starts a keepalived that never ran; w.mu held.
func (w *World) firstStart(host string, now time.Duration) bool {
	s, cold := w.cold[host]
	if !cold {
		return false
	}
	if s == Never {
		w.cold[host] = now
	}
	w.ka[host] = "active"
	return true
}

func (w *World) state(host, unit string) string {
	if unit == "nginx" {
		return w.nginx[host]
	}
	return w.ka[host]
}
