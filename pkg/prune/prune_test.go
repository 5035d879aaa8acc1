package prune

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
	"github.com/hactl/hactl/pkg/render"
	"github.com/hactl/hactl/pkg/vrrp"
)

// world is a few lab hosts whose keepalived hands a stopped host's VIPs to
// the first other host still running, as a graceful stop does.
type world struct {
	mu    sync.Mutex
	order []string
	hosts map[string]*simHost
	log   []string // "host: what", in order
}

type simHost struct {
	active, enabled bool
	recorder        bool     // hactl-events.service runs and is enabled
	vips            []string // held now
	files           map[string]bool
	record          string
}

func newWorld(names ...string) *world {
	w := &world{hosts: map[string]*simHost{}, order: names}
	for i, n := range names {
		files := map[string]bool{}
		for _, p := range ManagedFiles() {
			files[p] = p != DrainFile
		}
		w.hosts[n] = &simHost{active: true, enabled: true, recorder: true, vips: []string{fmt.Sprintf("198.18.0.%d", 201+i)}, files: files}
	}
	return w
}

func (w *world) conn(name string) *remotetest.Fake {
	return &remotetest.Fake{Handler: func(cmd string, _ []byte) remote.Result {
		w.mu.Lock()
		defer w.mu.Unlock()
		h := w.hosts[name]
		ok := func(s string) remote.Result { return remote.Result{Stdout: []byte(s)} }
		switch {
		case strings.HasPrefix(cmd, "cat "+vrrp.RecordPath):
			return ok(h.record)
		case strings.HasPrefix(cmd, "LC_ALL=C"):
			var b strings.Builder
			b.WriteString("@@os\nID=debian\nVERSION_ID=\"12\"\n@@systemd\nyes\n@@pkgmgr\napt-get\n@@services\n")
			fmt.Fprintf(&b, "keepalived\t%s\t%s\n", map[bool]string{true: "active", false: "inactive"}[h.active], map[bool]string{true: "enabled", false: "disabled"}[h.enabled])
			fmt.Fprintf(&b, "hactl-events\t%s\t%s\n", map[bool]string{true: "active", false: "inactive"}[h.recorder], map[bool]string{true: "enabled", false: "disabled"}[h.recorder])
			b.WriteString("@@files\n")
			for _, p := range ManagedFiles() {
				if h.files[p] {
					fmt.Fprintf(&b, "%s\tfile\t644 root root\t%s\n", p, strings.Repeat("0", 64))
				} else {
					fmt.Fprintf(&b, "%s\tabsent\n", p)
				}
			}
			b.WriteString("@@end\n")
			return ok(b.String())
		case strings.HasPrefix(cmd, "ip -o"):
			var b strings.Builder
			for _, v := range h.vips {
				fmt.Fprintf(&b, "2: eth0    inet %s/24 scope global secondary eth0\n", v)
			}
			return ok(b.String())
		case cmd == remote.Unit("keepalived").Stop():
			w.log = append(w.log, name+": stop")
			h.active = false
			for _, n := range w.order {
				if o := w.hosts[n]; n != name && o.active {
					o.vips = append(o.vips, h.vips...)
					break
				}
			}
			h.vips = nil
		case cmd == remote.Unit("hactl-events").Stop()+" && "+remote.Unit("hactl-events").Disable():
			w.log = append(w.log, name+": recorder")
			h.recorder = false
		case cmd == remote.Unit("keepalived").Disable():
			w.log = append(w.log, name+": disable")
			h.enabled = false
		case strings.HasPrefix(cmd, "mkdir -p "+playbook.BackupDir):
			var b strings.Builder
			for _, p := range ManagedFiles() {
				if h.files[p] {
					fmt.Fprintf(&b, "removed %s\n", p)
					h.files[p] = false
				}
			}
			w.log = append(w.log, name+": remove files")
			return ok(b.String())
		}
		return remote.Result{}
	}}
}

func (w *world) fleetHost(t *testing.T, name string, i int, conn remote.Conn) *fleet.Host {
	t.Helper()
	return &fleet.Host{
		Host: &inventory.Host{Name: name, Address: netip.MustParseAddr(fmt.Sprintf("198.18.0.%d", 11+i)),
			VIP: netip.MustParsePrefix(fmt.Sprintf("198.18.0.%d/24", 201+i)), Interface: "eth0"},
		Cluster: &inventory.Cluster{Name: "lab"},
		Conn:    conn,
	}
}

// TestDecommissionOrder: the departed host is stopped first, its VIP is on
// exactly one survivor before anything else happens, then keepalived is
// disabled, the event recorder stopped and disabled (after keepalived, so
// it records the stop) and hactl's files are removed, the recorder's
// among them; a second run changes nothing.
func TestDecommissionOrder(t *testing.T) {
	w := newWorld("lab1", "lab2", "lab3")
	fh := map[string]*fleet.Host{}
	for i, n := range w.order {
		fh[n] = w.fleetHost(t, n, i, w.conn(n))
	}
	d := &Departed{Departed: vrrp.Departed{Cluster: "lab", RecordHost: vrrp.RecordHost{Name: "lab2",
		Address: fh["lab2"].Host.Address, VIP: fh["lab2"].Host.VIP}}, Host: fh["lab2"], Keepalived: "active"}
	var events []string
	o := Options{Stamp: "20260101T000000Z", Bound: time.Second, Event: func(e playbook.Event) { events = append(events, e.Summary) }}
	if err := Decommission(context.Background(), d, []*fleet.Host{fh["lab1"], fh["lab3"]}, o); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(w.log, ", "); got != "lab2: stop, lab2: disable, lab2: recorder, lab2: remove files" {
		t.Errorf("order: %s", got)
	}
	for _, p := range []string{render.EventsScript, render.EventsUnit, render.EventsConf} {
		if h := w.hosts["lab2"]; h.files[p] || h.recorder {
			t.Errorf("the recorder is left: %s present %v, running %v", p, h.files[p], h.recorder)
		}
	}
	if v := w.hosts["lab1"].vips; len(v) != 2 || v[1] != "198.18.0.202" || len(w.hosts["lab2"].vips) != 0 {
		t.Errorf("VIPs: lab1 %v lab2 %v", v, w.hosts["lab2"].vips)
	}
	if !strings.Contains(strings.Join(events, "\n"), "198.18.0.202/24 moved to the others") {
		t.Errorf("events: %q", events)
	}
	td, err := PlanTeardown(context.Background(), fh["lab2"].Conn, o)
	if err != nil || len(td.Changes()) != 0 {
		t.Errorf("a decommissioned host plans %v (%v)", td.Changes(), err)
	}
}

// TestDecommissionWaitsForTheVIP: when no survivor takes the VIP the
// decommission fails naming the host, before disabling anything.
func TestDecommissionWaitsForTheVIP(t *testing.T) {
	w := newWorld("lab1", "lab2")
	w.hosts["lab1"].active = false // nobody left to take lab2's VIP
	lab1 := w.fleetHost(t, "lab1", 0, w.conn("lab1"))
	lab2 := w.fleetHost(t, "lab2", 1, w.conn("lab2"))
	d := &Departed{Departed: vrrp.Departed{Cluster: "lab", RecordHost: vrrp.RecordHost{Name: "lab2", Address: lab2.Host.Address, VIP: lab2.Host.VIP}},
		Host: lab2, Keepalived: "active"}
	err := Decommission(context.Background(), d, []*fleet.Host{lab1}, Options{Bound: 0, Clock: &jumpClock{}})
	if err == nil || !strings.Contains(err.Error(), "lab2 (198.18.0.12)") || !strings.Contains(err.Error(), "held by no host") {
		t.Fatalf("err %v", err)
	}
	if strings.Contains(strings.Join(w.log, ","), "disable") {
		t.Errorf("went on after the VIP was lost: %v", w.log)
	}
}

// TestRemoveFilesScript: every managed path is moved, quoted, into the
// backup directory, and the script is valid shell (sh -n).
func TestRemoveFilesScript(t *testing.T) {
	f := &remotetest.Fake{}
	if _, err := RemoveFiles(context.Background(), f, "S", true); err != nil {
		t.Fatal(err)
	}
	script := f.Runs()[0].Cmd
	for _, p := range ManagedFiles() {
		if !strings.Contains(script, "mv -f '"+p+"' '"+playbook.BackupPath(p, "S")+"'") {
			t.Errorf("%s not moved into the backups:\n%s", p, script)
		}
	}
	if out, err := exec.Command("sh", "-n", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("sh -n: %v\n%s\n%s", err, out, script)
	}
}

// jumpClock moves a second on every reading and never waits.
type jumpClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *jumpClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func (c *jumpClock) After(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- c.Now()
	return ch
}

// TestTeardownOneAtATime is destroy's order: each host's VIPs, including
// those it took over from a host torn down before it, move to the hosts
// still running; the last host releases everything.
func TestTeardownOneAtATime(t *testing.T) {
	w := newWorld("lab1", "lab2", "lab3")
	var hosts []*fleet.Host
	var all []netip.Prefix
	for i, n := range w.order {
		hosts = append(hosts, w.fleetHost(t, n, i, w.conn(n)))
		all = append(all, hosts[i].Host.VIP)
	}
	var events []string
	o := Options{Stamp: "S", Bound: time.Second, VIPs: all, Restore: true,
		Event: func(e playbook.Event) { events = append(events, e.Host+": "+e.Summary) }}
	for i, h := range hosts {
		td, err := PlanTeardown(context.Background(), h.Conn, o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := td.Run(context.Background(), h, hosts[i+1:], o); err != nil {
			t.Fatal(err)
		}
	}
	got := strings.Join(events, "\n")
	for _, want := range []string{
		"lab1: keepalived stopped gracefully; 198.18.0.201/24 moved to the others",
		"lab2: keepalived stopped gracefully; 198.18.0.202/24, 198.18.0.201/24 moved to the others",
		"lab3: keepalived stopped gracefully; 198.18.0.203/24, 198.18.0.202/24, 198.18.0.201/24 released (no other host of the cluster runs)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	for _, n := range w.order {
		if h := w.hosts[n]; h.active || h.enabled || len(h.vips) != 0 {
			t.Errorf("%s after destroy: %+v", n, h)
		}
	}
}
