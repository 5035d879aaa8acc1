package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/hactl/hactl/pkg/failover"
	"github.com/hactl/hactl/pkg/hostlock"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
	"github.com/hactl/hactl/pkg/ui"
	"github.com/hactl/hactl/pkg/vrrp"
)

const lab = "../../inventory/lab.hcl"

// runFailoverCLI runs `hactl ARGS` through Main with the hosts of dial
// (nil: dialling is a test failure) and deps' prober and signals.
func runFailoverCLI(t *testing.T, dial func(string) remote.Conn, deps Deps, args ...string) result {
	t.Helper()
	deps.Dial = func(_ context.Context, cfg remote.Config) (remote.Conn, error) {
		if dial == nil {
			t.Errorf("dialled %s: bad usage must not connect", cfg.Name)
			return nil, errors.New("no dialling in this test")
		}
		return dial(cfg.Name), nil
	}
	return runWith(t, deps, []string{"NO_COLOR=1"}, args...)
}

func TestFailoverBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"failover-test", "-i", lab, "--mode", "reboot"},
		{"failover-test", "-i", lab, "--node", "lab9"},
		{"failover-test", "-i", lab, "--node", "lab9", "--mode", "all"},
		{"failover-test", "--mode", "stop"}, // no inventory
	} {
		r := runFailoverCLI(t, nil, Deps{}, args...)
		if r.code != ExitUsage {
			t.Errorf("%v: exit %d, want 2\n%s", args, r.code, r.err)
		}
	}
	r := runFailoverCLI(t, nil, Deps{}, "failover-test", "-i", lab, "--mode", "reboot")
	if !strings.Contains(r.err, `unknown failover mode "reboot"`) {
		t.Errorf("stderr: %s", r.err)
	}
	r = runFailoverCLI(t, nil, Deps{}, "failover-test", "-i", lab, "--node", "lab9")
	if !strings.Contains(r.err, `unknown node "lab9"`) {
		t.Errorf("stderr: %s", r.err)
	}
}

// miniLab answers like the lab's three hosts: host i holds VIP i unless its
// keepalived is stopped, then its first backup (the next host) holds it.
type miniLab struct {
	mu      sync.Mutex
	stopped map[string]bool
	nginx   string // state of every nginx
	fakes   map[string]*remotetest.Fake
	// hosts are real shells (in-process SSH servers) that hold each host's
	// lock: the lock's commands run there, the rest goes to the fake.
	hosts map[string]*remotetest.Server
	t     *testing.T
}

func newMiniLab(t *testing.T) *miniLab {
	m := &miniLab{stopped: map[string]bool{}, nginx: "active", fakes: map[string]*remotetest.Fake{}, hosts: map[string]*remotetest.Server{}, t: t}
	for _, h := range []string{"lab1", "lab2", "lab3"} {
		m.hosts[h] = remotetest.NewServer(t, remotetest.WithDir(t.TempDir()))
	}
	return m
}

// miniLock is the lock the mini lab's hosts use: relative, so each host's
// server directory holds its own.
var miniLock = hostlock.Locker{Path: "hactl.lock"}

// lockShell connects to a mini-lab host's real shell.
func (m *miniLab) lockShell(name string) remote.Conn {
	c, err := remote.Dial(context.Background(), m.hosts[name].Config())
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { _ = c.Close() })
	return c
}

// lockedConn sends the host lock's commands to a real shell.
type lockedConn struct {
	*remotetest.Fake
	shell remote.Conn
}

func (c lockedConn) Run(ctx context.Context, cmd string, stdin io.Reader) (remote.Result, error) {
	if strings.HasPrefix(cmd, "L=") || strings.Contains(cmd, "hactl.lock.owner") {
		return c.shell.Run(ctx, cmd, stdin)
	}
	return c.Fake.Run(ctx, cmd, stdin)
}

func (m *miniLab) dial(name string) remote.Conn {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := &remotetest.Fake{Handler: func(cmd string, _ []byte) remote.Result {
		m.mu.Lock()
		defer m.mu.Unlock()
		switch {
		case strings.HasPrefix(cmd, "ip -o -4 addr"):
			var b strings.Builder
			for i, h := range []string{"lab1", "lab2", "lab3"} {
				holder := h
				if m.stopped[h] {
					holder = []string{"lab2", "lab1", "lab1"}[i] // inventory backup order
				}
				if holder == name {
					fmt.Fprintf(&b, "2: eth0    inet 198.18.0.%d/24 scope global secondary eth0\n", 201+i)
				}
			}
			return remote.Result{Stdout: []byte(b.String())}
		case cmd == failover.ServicesCommand():
			ka := "active"
			if m.stopped[name] {
				ka = "inactive"
			}
			return remote.Result{Stdout: []byte(ka + "\n" + m.nginx + "\n")}
		case cmd == remote.Unit("keepalived").IsActive():
			if m.stopped[name] {
				return remote.Result{Stdout: []byte("inactive\n"), ExitCode: 3}
			}
			return remote.Result{Stdout: []byte("active\n")}
		case cmd == failover.CmdStopKeepalived():
			m.stopped[name] = true
		case cmd == failover.CmdStartKeepalived():
			m.stopped[name] = false
		}
		return remote.Result{}
	}}
	m.fakes[name] = f
	return lockedConn{Fake: f, shell: m.lockShell(name)}
}

type stubProber struct{}

func (stubProber) Probe(context.Context, string) failover.ProbeResult {
	return failover.ProbeResult{Status: 200, Node: "lab1"}
}

func TestFailoverStopJSON(t *testing.T) {
	m := newMiniLab(t)
	r := runFailoverCLI(t, m.dial, Deps{Prober: stubProber{}, Signals: make(chan os.Signal), Locker: miniLock},
		"failover-test", "-i", lab, "--node", "lab1", "--output", "json")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	var doc struct {
		Scenarios []map[string]any `json:"scenarios"`
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatal(err, r.out)
	}
	if len(doc.Scenarios) != 1 {
		t.Fatalf("%s", r.out)
	}
	s := doc.Scenarios[0]
	for _, k := range []string{"node", "mode", "vip", "moved_to", "drift_s", "bound_s", "http_requests", "http_failed", "http_gap_s", "failback_s", "restored", "pass"} {
		if _, ok := s[k]; !ok {
			t.Errorf("no %q in %v", k, s)
		}
	}
	if s["node"] != "lab1" || s["mode"] != "stop" || s["vip"] != "198.18.0.201/24" || s["moved_to"] != "lab2" ||
		s["bound_s"] != 0.61 || s["pass"] != true || s["restored"] != true {
		t.Errorf("%v", s)
	}
	if !strings.Contains(r.err, "lab1 stop: stopping keepalived, waiting for 198.18.0.201 on lab2…") {
		t.Errorf("progress:\n%s", r.err)
	}
	var sent []string
	for _, c := range m.fakes["lab1"].Runs() {
		if c.Cmd == failover.CmdStopKeepalived() || c.Cmd == failover.CmdStartKeepalived() {
			sent = append(sent, c.Cmd)
		}
	}
	if strings.Join(sent, "|") != failover.CmdStopKeepalived()+"|"+failover.CmdStartKeepalived() {
		t.Errorf("sent %q", sent)
	}
}

func TestFailoverTextTable(t *testing.T) {
	m := newMiniLab(t)
	io, out, errb := ui.Test()
	// A terminal wide enough for the whole table: narrower ones wrap cells.
	code := Main(context.Background(), []string{"failover-test", "-i", lab, "--node", "lab2"}, io.WithWidth(160),
		Deps{Prober: stubProber{}, Signals: make(chan os.Signal), Locker: miniLock, Dial: func(_ context.Context, cfg remote.Config) (remote.Conn, error) { return m.dial(cfg.Name), nil }})
	r := result{code, out.String(), errb.String()}
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	for _, want := range []string{"MOVED TO", "HTTP ERR", "MAX GAP", "lab2", "198.18.0.202/24", "lab1", "0.61s +0.50", "pass"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("table lacks %q:\n%s", want, r.out)
		}
	}
}

func TestFailoverRefusesUnhealthyFleet(t *testing.T) {
	m := newMiniLab(t)
	m.nginx = "failed"
	r := runFailoverCLI(t, m.dial, Deps{Prober: stubProber{}, Signals: make(chan os.Signal), Locker: miniLock},
		"failover-test", "-i", lab)
	if r.code != ExitFailed || !strings.Contains(r.out, "refusing:") || !strings.Contains(r.out, "lab2: keepalived active, nginx failed") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	for _, f := range m.fakes {
		for _, c := range f.Runs() {
			// Reads only: addresses, service states, the cluster record.
			if !strings.HasPrefix(c.Cmd, "ip -o") && !strings.HasPrefix(c.Cmd, "systemctl is-active") && !strings.HasPrefix(c.Cmd, "cat "+vrrp.RecordPath) {
				t.Errorf("sent %q to an unhealthy fleet", c.Cmd)
			}
		}
	}
	r = runFailoverCLI(t, m.dial, Deps{Prober: stubProber{}, Signals: make(chan os.Signal), Locker: miniLock},
		"failover-test", "-i", lab, "--output", "json")
	var doc struct {
		Scenarios []any `json:"scenarios"`
		Preflight struct {
			Hosts []struct{ Nginx string } `json:"hosts"`
		} `json:"preflight"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil || r.code != ExitFailed || doc.Scenarios == nil ||
		doc.Preflight.Hosts[0].Nginx != "failed" || !strings.Contains(doc.Error, "not healthy") {
		t.Fatalf("%v exit %d %s", err, r.code, r.out)
	}
}

func TestWatchSignals(t *testing.T) {
	sig := make(chan os.Signal)
	ctx, cancel := context.WithCancel(context.Background())
	abort := make(chan struct{})
	var told []bool
	var mu sync.Mutex
	stop := watchSignals(sig, cancel, abort, func(first bool) { mu.Lock(); told = append(told, first); mu.Unlock() })
	defer stop()
	sig <- os.Interrupt
	<-ctx.Done() // the first signal cancels the run
	select {
	case <-abort:
		t.Fatal("abort closed by the first signal")
	default:
	}
	sig <- os.Interrupt
	<-abort // the second abandons restoration
	mu.Lock()
	defer mu.Unlock()
	if len(told) != 2 || !told[0] || told[1] {
		t.Errorf("told %v", told)
	}
}

// TestFailoverTakesTheHostLock: failover-test takes apply's host lock, so
// it refuses to start while another run holds one of its hosts, names the
// holder and changes nothing; once the lock is free it runs.
func TestFailoverTakesTheHostLock(t *testing.T) {
	m := newMiniLab(t)
	other := miniLock
	other.Command = "apply"
	held, err := other.Lock(context.Background(), m.lockShell("lab2"), "lab2")
	if err != nil {
		t.Fatal(err)
	}
	r := runFailoverCLI(t, m.dial, Deps{Prober: stubProber{}, Signals: make(chan os.Signal), Locker: miniLock},
		"failover-test", "-i", lab, "--mode", "stop", "--node", "lab1")
	if r.code != ExitFailed || !strings.Contains(r.err, "lab2: another hactl run holds the lock: apply by ") || !strings.Contains(r.err, ", since ") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	for name, f := range m.fakes {
		for _, c := range f.Runs() {
			if c.Cmd == failover.CmdStopKeepalived() {
				t.Errorf("%s: keepalived stopped while another run held lab2", name)
			}
		}
	}
	held.Release()
	r = runFailoverCLI(t, m.dial, Deps{Prober: stubProber{}, Signals: make(chan os.Signal), Locker: miniLock},
		"failover-test", "-i", lab, "--mode", "stop", "--node", "lab1")
	if r.code != ExitOK {
		t.Fatalf("after release: exit %d\n%s\n%s", r.code, r.out, r.err)
	}
}
