package failover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hactl/hactl/internal/testinv"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
	"github.com/hactl/hactl/pkg/vrrp"
)

// fakeClock is virtual time: After advances it at once and runs the hooks
// that fall due, so a test can cancel a context "3 s into the scenario".
// Only the engine's scenario goroutine calls After, which keeps runs
// deterministic; Now is read from other goroutines too, hence the lock.
type fakeClock struct {
	mu    sync.Mutex
	start time.Time
	now   time.Time
	hooks []hook
}

type hook struct {
	at   time.Duration
	fn   func()
	done bool
}

func newClock() *fakeClock {
	t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	return &fakeClock{start: t, now: t}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) elapsed() time.Duration { return c.Now().Sub(c.start) }

func (c *fakeClock) at(d time.Duration, fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hooks = append(c.hooks, hook{at: d, fn: fn})
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	var due []func()
	for i := range c.hooks {
		if !c.hooks[i].done && now.Sub(c.start) >= c.hooks[i].at {
			c.hooks[i].done = true
			due = append(due, c.hooks[i].fn)
		}
	}
	c.mu.Unlock()
	for _, fn := range due {
		fn()
	}
	ch := make(chan time.Time, 1)
	ch <- now
	return ch
}

const never = -1

// world simulates the lab's three balancers as virtual time advances: which
// host carries which VIP and what systemd says about the two services,
// driven by the commands the engine sends.
type world struct {
	clk *fakeClock

	// Knobs, set before the run.
	takeover     time.Duration // disruption → VIP on the first backup (never: stays away)
	keepOnDead   time.Duration // disruption → VIP gone from the master (never: stays)
	failback     time.Duration // restore → VIP back on the master only (never)
	autoRestart  time.Duration // SIGKILL → systemd has keepalived active again (never)
	nginxRestart time.Duration // nginx stopped → the check script restarted it (never)
	failCmd      map[string]int
	initNginx    map[string]string

	mu      sync.Mutex
	ka      map[string]string
	nginx   map[string]string
	masked  map[string]bool
	down    map[string]time.Duration // master → when its VIP began to move
	back    map[string]time.Duration // master → when it was restored
	killed  map[string]time.Duration
	stopped map[string]time.Duration // nginx stop time

	hosts  []string
	vip    map[string]string
	addr   map[string]string
	backup map[string]string
}

func newWorld(t *testing.T, l *vrrp.Layout) *world {
	w := &world{
		clk: newClock(), takeover: 400 * time.Millisecond, failback: 3700 * time.Millisecond,
		autoRestart: 5 * time.Second, nginxRestart: 1200 * time.Millisecond,
		ka: map[string]string{}, nginx: map[string]string{}, masked: map[string]bool{},
		down: map[string]time.Duration{}, back: map[string]time.Duration{}, killed: map[string]time.Duration{},
		stopped: map[string]time.Duration{}, vip: map[string]string{}, addr: map[string]string{}, backup: map[string]string{},
		failCmd: map[string]int{},
	}
	for i, in := range l.Instances {
		w.hosts = append(w.hosts, in.Master)
		w.vip[in.Master] = in.VIP.Addr().String()
		w.addr[in.Master] = fmt.Sprintf("198.18.0.%d", 11+i)
		w.backup[in.Master] = in.FirstBackup().Host
		w.ka[in.Master] = "active"
		w.nginx[in.Master] = "active"
	}
	return w
}

// update applies what time has done since the last command; w.mu held.
func (w *world) update(now time.Duration) {
	for h, k := range w.killed {
		if w.autoRestart != never && now >= k+w.autoRestart {
			w.ka[h] = "active"
			w.back[h] = k + w.autoRestart
			delete(w.killed, h)
		}
	}
	for h, s := range w.stopped {
		if !w.masked[h] && w.nginxRestart != never && now >= s+w.nginxRestart {
			w.nginx[h] = "active"
			delete(w.stopped, h)
		}
	}
	for h, b := range w.back {
		if w.failback != never && now >= b+w.failback {
			delete(w.back, h)
			delete(w.down, h)
		}
	}
}

// holders of master m's VIP; w.mu held.
func (w *world) holders(m string, now time.Duration) []string {
	d, moving := w.down[m]
	if !moving {
		return []string{m}
	}
	var out []string
	if w.keepOnDead == never || now < d+w.keepOnDead {
		out = append(out, m)
	}
	if w.takeover != never && now >= d+w.takeover {
		out = append(out, w.backup[m])
	}
	return out
}

func (w *world) handler(host string) func(string, []byte) remote.Result {
	return func(cmd string, _ []byte) remote.Result {
		now := w.clk.elapsed()
		w.mu.Lock()
		defer w.mu.Unlock()
		w.update(now)
		if code, ok := w.failCmd[host+" "+cmd]; ok {
			return remote.Result{ExitCode: code, Stderr: []byte("simulated failure")}
		}
		ok := remote.Result{}
		switch {
		case strings.HasPrefix(cmd, "ip -o -4 addr show dev "):
			var b strings.Builder
			fmt.Fprintf(&b, "2: eth0    inet %s/24 brd 198.18.0.255 scope global eth0\\       valid_lft forever\n", w.addr[host])
			for _, m := range w.hosts {
				for _, h := range w.holders(m, now) {
					if h == host {
						fmt.Fprintf(&b, "2: eth0    inet %s/24 scope global secondary eth0\\       valid_lft forever\n", w.vip[m])
					}
				}
			}
			return remote.Result{Stdout: []byte(b.String())}
		case cmd == ServicesCommand():
			r := remote.Result{Stdout: []byte(w.ka[host] + "\n" + w.nginx[host] + "\n")}
			if w.ka[host] != "active" || w.nginx[host] != "active" {
				r.ExitCode = 3
			}
			return r
		case cmd == nginxUnit.IsActive():
			return remote.Result{Stdout: []byte(w.nginx[host] + "\n")}
		case cmd == keepalivedUnit.IsActive():
			return remote.Result{Stdout: []byte(w.ka[host] + "\n")}
		case cmd == CmdStopKeepalived():
			w.ka[host] = "inactive"
			w.down[host] = now
		case cmd == CmdFreezeKeepalived():
			w.down[host] = now
		case cmd == CmdKillKeepalived():
			w.ka[host] = "activating"
			w.killed[host] = now
		case cmd == CmdThawKeepalived():
			if _, k := w.killed[host]; k {
				return remote.Result{ExitCode: 1, Stderr: []byte("No main process to kill")}
			}
		case cmd == CmdStartKeepalived():
			delete(w.killed, host)
			if _, d := w.down[host]; d || w.ka[host] != "active" {
				w.back[host] = now
			}
			w.ka[host] = "active"
		case cmd == CmdStopNginx():
			w.nginx[host] = "inactive"
			w.stopped[host] = now
			if w.masked[host] {
				w.down[host] = now
			}
		case cmd == CmdMaskNginx():
			w.masked[host] = true
		case cmd == CmdUnmaskNginx():
			delete(w.masked, host)
			delete(w.stopped, host) // the engine starts it itself next
		case cmd == CmdStartNginx():
			if w.masked[host] {
				return remote.Result{ExitCode: 1, Stderr: []byte("Unit nginx.service is masked.")}
			}
			if _, d := w.down[host]; d {
				w.back[host] = now
			}
			delete(w.stopped, host)
			w.nginx[host] = "active"
		default:
			return remote.Result{ExitCode: 127, Stderr: []byte("unexpected command " + cmd)}
		}
		return ok
	}
}

// okProber answers 200 from whoever holds... nobody in particular: the
// simulation has no network, so only request counting is checked.
type okProber struct {
	mu  sync.Mutex
	n   int
	url string
}

func (p *okProber) Probe(ctx context.Context, url string) ProbeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	p.url = url
	return ProbeResult{Status: 200, Node: "lab1"}
}

// flakyConn fails one command with a transport error, like a dropped SSH
// connection.
type flakyConn struct {
	*remotetest.Fake
	failOn string
}

func (c *flakyConn) Run(ctx context.Context, cmd string, stdin io.Reader) (remote.Result, error) {
	if cmd == c.failOn {
		_, _ = c.Fake.Run(ctx, cmd, stdin) // recorded: it was sent
		return remote.Result{}, errors.New("ssh: connection lost")
	}
	return c.Fake.Run(ctx, cmd, stdin)
}

type rig struct {
	w      *world
	fakes  map[string]*remotetest.Fake
	fleet  *fleet.Fleet
	layout *vrrp.Layout
	steps  []Step
	prober *okProber
}

func labLayout(t *testing.T) (*inventory.Inventory, *vrrp.Layout) {
	t.Helper()
	inv, l := testinv.Load(t, "lab.hcl")
	return inv, l
}

func newRig(t *testing.T) *rig {
	t.Helper()
	inv, l := labLayout(t)
	r := &rig{w: newWorld(t, l), fakes: map[string]*remotetest.Fake{}, fleet: &fleet.Fleet{}, layout: l, prober: &okProber{}}
	for _, h := range inv.Hosts() {
		f := &remotetest.Fake{Handler: r.w.handler(h.Name)}
		r.fakes[h.Name] = f
		r.fleet.Hosts = append(r.fleet.Hosts, &fleet.Host{Host: h, Cluster: inv.ClusterOf(h.Name), Conn: f})
	}
	return r
}

func (r *rig) runner(t *testing.T, abort <-chan struct{}) *Runner {
	t.Helper()
	run, err := New(Options{
		Layout: r.layout, Fleet: r.fleet, Clock: r.w.clk, Prober: r.prober, Abort: abort,
		Progress: func(s Step) { r.steps = append(r.steps, s) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// actions are the commands sent to host other than the polls.
func (r *rig) actions(host string) []string {
	out := []string{}
	for _, c := range r.fakes[host].Runs() {
		if strings.HasPrefix(c.Cmd, "ip -o -4 addr") || strings.HasPrefix(c.Cmd, "systemctl is-active") {
			continue
		}
		out = append(out, c.Cmd)
	}
	return out
}
