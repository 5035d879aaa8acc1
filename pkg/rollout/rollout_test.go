package rollout

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hactl/hactl/internal/testinv"
	"github.com/hactl/hactl/internal/vrrpsim"
	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
	"github.com/hactl/hactl/pkg/verify"
	"github.com/hactl/hactl/pkg/vrrp"
)

func TestRolledOut(t *testing.T) {
	vip := func(v, master string, holders ...string) verify.VIPState {
		return verify.VIPState{VIP: v, Cluster: "c", Master: master, Holders: holders}
	}
	served := map[string]bool{"v1": true, "v3": true}
	for _, tc := range []struct {
		name  string
		vs    []verify.VIPState
		held  map[string]bool
		known bool
		want  bool
	}{
		{"first host of a dark cluster: others may stay unheld", []verify.VIPState{vip("v1", "h1", "h1"), vip("v2", "h2"), vip("v3", "h3")}, map[string]bool{}, true, true},
		{"own VIP not held yet", []verify.VIPState{vip("v1", "h1"), vip("v2", "h2")}, map[string]bool{}, true, false},
		{"own VIP still on a backup", []verify.VIPState{vip("v1", "h1", "h2"), vip("v2", "h2", "h2")}, served, true, false},
		{"a VIP on two hosts", []verify.VIPState{vip("v1", "h1", "h1"), vip("v2", "h2", "h1", "h2")}, map[string]bool{}, true, false},
		{"a served VIP dropped by the restart", []verify.VIPState{vip("v1", "h1", "h1"), vip("v3", "h3")}, served, true, false},
		{"served VIP back, on a backup", []verify.VIPState{vip("v1", "h1", "h1"), vip("v3", "h3", "h2")}, served, true, true},
		{"no snapshot: every VIP must be held", []verify.VIPState{vip("v1", "h1", "h1"), vip("v2", "h2")}, nil, false, false},
		{"a drained master's VIP must reach h1, its next host", []verify.VIPState{{VIP: "v2", Cluster: "c", Master: "h2", Want: "h1", Holders: []string{"h2"}}}, served, true, false},
		{"h1 drained: its VIP on the next host", []verify.VIPState{{VIP: "v1", Cluster: "c", Master: "h1", Want: "h2", Holders: []string{"h2"}}}, served, true, true},
		{"other clusters do not count", []verify.VIPState{vip("v1", "h1", "h1"), {VIP: "x", Cluster: "d", Master: "y"}}, nil, false, true},
	} {
		if got := rolledOut(tc.vs, "c", "h1", tc.held, tc.known); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// lab is inventory/lab.hcl's three balancers simulated in virtual time, with
// a rollout over them.
type lab struct {
	w      *vrrpsim.World
	ro     *Rollout
	layout *vrrp.Layout
	mu     sync.Mutex
	events []playbook.Event
}

func newLab(t *testing.T) *lab {
	t.Helper()
	inv, l := testinv.Load(t, "lab.hcl")
	lb := &lab{w: vrrpsim.New(inv, l), layout: l}
	lb.ro = New(Options{Layout: l, Fleet: lb.w.Fleet, Clock: lb.w.Clock, Event: lb.event})
	return lb
}

func (lb *lab) event(e playbook.Event) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.events = append(lb.events, e)
}

// factsConn answers the playbook's fact script for the simulator, which
// knows only ip addr and systemctl.
type factsConn struct{ *remotetest.Fake }

func (c factsConn) Run(ctx context.Context, cmd string, stdin io.Reader) (remote.Result, error) {
	if strings.HasPrefix(cmd, "LC_ALL=C") {
		return remote.Result{Stdout: []byte("@@os\nID=debian\nVERSION_ID=\"12\"\n@@systemd\nyes\n@@services\nkeepalived\tactive\tenabled\n@@end\n")}, nil
	}
	return c.Fake.Run(ctx, cmd, stdin)
}

// apply runs the real playbook runner with this rollout on hosts: one serial
// step that restarts keepalived (a changed keepalived.conf does the same).
// check, when set, runs on each host's facts as apply's does.
func (lb *lab) apply(t *testing.T, check func(host string), hosts ...string) []playbook.Result {
	t.Helper()
	var in []playbook.HostInput
	for _, h := range hosts {
		in = append(in, playbook.HostInput{
			Target: &playbook.Target{Name: h, Conn: factsConn{lb.w.Fakes[h]}},
			Check: func(*facts.Facts) error {
				if check != nil {
					check(h)
				}
				return nil
			},
		})
	}
	r := &playbook.Runner{
		Book:     &playbook.Book{Steps: []playbook.Step{{Name: "keepalived", Module: &playbook.Service{Name: "keepalived", Action: "restart"}}}},
		Parallel: len(hosts), Rollout: lb.ro, Event: lb.event,
	}
	return r.Run(context.Background(), in)
}

// restarts returns, per host, the virtual time its keepalived was restarted.
func (lb *lab) restarts() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, s := range lb.w.Sent() {
		if strings.HasSuffix(strings.ReplaceAll(s.Cmd, "'", ""), "systemctl restart keepalived") {
			out[s.Host] = s.At
		}
	}
	return out
}

func noErrors(t *testing.T, res []playbook.Result) {
	t.Helper()
	for _, r := range res {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Host, r.Err)
		}
	}
}

func (lb *lab) wantConverged(t *testing.T) {
	t.Helper()
	for vip, hs := range lb.w.Holders() {
		if len(hs) != 1 {
			t.Errorf("%s on %v", vip, hs)
		}
	}
}

// TestServingClusterOneHostAtATime: in a cluster that serves its VIPs, a host
// is restarted only once the one before it holds its VIP again: the sim
// brings a restarted master's VIP home 3.7 s after the restart, and the
// first 50 ms poll that sees it lets the next host go.
func TestServingClusterOneHostAtATime(t *testing.T) {
	lb := newLab(t)
	noErrors(t, lb.apply(t, nil, "lab1", "lab2", "lab3"))
	got := lb.restarts()
	want := map[string]time.Duration{"lab1": 0, "lab2": 3700 * time.Millisecond, "lab3": 7400 * time.Millisecond}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("restarted at %v, want %v", got, want)
	}
	if el := lb.w.Clock.Elapsed(); el != 11100*time.Millisecond {
		t.Errorf("rollout ended after %s, want 11.1s", el)
	}
	settled := 0
	for _, e := range lb.events {
		if e.Status == "settled" {
			settled++
		}
	}
	if settled != 3 {
		t.Errorf("%d settled events, want 3: %+v", settled, lb.events)
	}
	lb.wantConverged(t)
}

// TestDarkClusterBatchStart: when keepalived runs nowhere yet, every host of
// the cluster starts at once and the cluster is waited for once (one
// master-down interval), not one host after the other.
func TestDarkClusterBatchStart(t *testing.T) {
	lb := newLab(t)
	lb.w.Dark()
	if !lb.ro.Snapshot(context.Background(), "lab2") {
		t.Fatal("a cluster where nobody holds a VIP is not dark")
	}
	noErrors(t, lb.apply(t, nil, "lab1", "lab2", "lab3"))
	want := map[string]time.Duration{"lab1": 0, "lab2": 0, "lab3": 0}
	if got := lb.restarts(); !reflect.DeepEqual(got, want) {
		t.Errorf("started at %v, want all at once", got)
	}
	if el := lb.w.Clock.Elapsed(); el != lb.w.FirstClaim {
		t.Errorf("settled after %s, want one master-down interval (%s)", el, lb.w.FirstClaim)
	}
	lb.wantConverged(t)
}

// TestTransportSwitchWaitsOnceAtTheEnd: while a cluster switches VRRP
// transport, its hosts cannot hear each other (every VIP on every host): no
// host is waited for, the switch is announced once, and WaitConverged waits
// for the whole cluster at the end.
func TestTransportSwitchWaitsOnceAtTheEnd(t *testing.T) {
	lb := newLab(t)
	for _, in := range lb.layout.Instances {
		lb.w.Place(in.VIP.String(), 0, 5*time.Second, "lab1", "lab2", "lab3")
	}
	noErrors(t, lb.apply(t, func(h string) { lb.ro.NoteTransport(h, "unicast") }, "lab1", "lab2", "lab3"))
	want := map[string]time.Duration{"lab1": 0, "lab2": 0, "lab3": 0}
	if got := lb.restarts(); !reflect.DeepEqual(got, want) {
		t.Errorf("restarted at %v, want one after the other without waiting", got)
	}
	var announced []string
	for _, e := range lb.events {
		if e.Step == "vrrp" && e.Status == "changed" {
			announced = append(announced, e.Summary)
		}
	}
	if len(announced) != 1 || !strings.Contains(announced[0], "cluster lab switches VRRP transport unicast → multicast") {
		t.Errorf("announcements %q", announced)
	}
	if err := lb.ro.WaitConverged(context.Background()); err != nil {
		t.Fatal(err)
	}
	if el := lb.w.Clock.Elapsed(); el != 5*time.Second {
		t.Errorf("converged after %s, want 5s (the split's end)", el)
	}
	lb.wantConverged(t)
}

// TestNoteTransportSameOrUnknown: a host on the inventory's transport, a host
// whose keepalived has no config yet, or a host not in the fleet switch
// nothing.
func TestNoteTransportSameOrUnknown(t *testing.T) {
	lb := newLab(t)
	lb.ro.NoteTransport("lab1", "multicast")
	lb.ro.NoteTransport("lab2", "")
	lb.ro.NoteTransport("nope", "unicast")
	if len(lb.events) != 0 || lb.ro.isSwitching("lab") {
		t.Errorf("events %+v, switching %v", lb.events, lb.ro.isSwitching("lab"))
	}
	if g := lb.ro.Group("nope"); g != "nope" {
		t.Errorf("a host outside the fleet is in group %q", g)
	}
}

// TestVIPNeverComesBack: a restarted master whose VIP stays on the backup
// fails after the cluster's timeout (three crash bounds plus 5 s) with an
// error naming the cluster and the VIP.
func TestVIPNeverComesBack(t *testing.T) {
	lb := newLab(t)
	lb.w.Failback = vrrpsim.Never
	res := lb.apply(t, nil, "lab1")
	err := res[0].Err
	if !errors.Is(err, ErrUnsettled) {
		t.Fatalf("lab1: %v, want ErrUnsettled", err)
	}
	for _, want := range []string{"cluster lab: VIPs did not settle within 16s", "198.18.0.201/24 is moved (holders: lab2; master lab1)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	var bound time.Duration
	for _, in := range lb.layout.Instances {
		bound = max(bound, in.Bounds.Crash)
	}
	timeout := 3*bound + 5*time.Second
	if el := lb.w.Clock.Elapsed(); el < timeout || el > timeout+50*time.Millisecond {
		t.Errorf("gave up after %s, want the %s timeout", el, timeout)
	}
	if err := lb.ro.WaitConverged(context.Background()); !errors.Is(err, ErrUnsettled) {
		t.Errorf("WaitConverged: %v, want ErrUnsettled", err)
	}
}

// TestSplitBlocksSettle: a VIP on two hosts during the rollout holds the
// next host back even though the restarted host's own VIP is home.
func TestSplitBlocksSettle(t *testing.T) {
	lb := newLab(t)
	lb.w.Place("198.18.0.202/24", 0, 6*time.Second, "lab2", "lab3")
	noErrors(t, lb.apply(t, nil, "lab1", "lab2"))
	want := map[string]time.Duration{"lab1": 0, "lab2": 6 * time.Second}
	if got := lb.restarts(); !reflect.DeepEqual(got, want) {
		t.Errorf("restarted at %v, want %v (lab1's VIP home at 3.7s, the split over at 6s)", got, want)
	}
}

// TestUnreachableHost: when a host of the cluster cannot be asked, the
// cluster is not dark, nothing is recorded, and settle holds only for what
// it can see: the restarted host's VIP home, no VIP on two hosts.
func TestUnreachableHost(t *testing.T) {
	lb := newLab(t)
	lb.w.Dark()
	lab3 := lb.w.Fleet.Get("lab3")
	lab3.Conn, lab3.Err = nil, errors.New("connect lab3: no route to host")
	ctx := context.Background()
	if lb.ro.Snapshot(ctx, "lab1") {
		t.Error("dark although lab3 could not be observed")
	}
	if _, ok := lb.ro.held["lab1"]; ok {
		t.Error("a snapshot was recorded without seeing every host")
	}
	if _, err := lb.w.Fakes["lab1"].Run(ctx, "systemctl restart keepalived", nil); err != nil {
		t.Fatal(err)
	}
	if errs := lb.ro.Settle(ctx, []string{"lab1"}); len(errs) != 0 {
		t.Fatal(errs)
	}
	if el := lb.w.Clock.Elapsed(); el != lb.w.FirstClaim {
		t.Errorf("settled after %s, want %s", el, lb.w.FirstClaim)
	}
}

// TestSettleCancelled: Ctrl-C during a wait ends it with the context's error.
func TestSettleCancelled(t *testing.T) {
	lb := newLab(t)
	lb.w.Failback = vrrpsim.Never
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lb.w.Clock.At(time.Second, cancel)
	if _, err := lb.w.Fakes["lab1"].Run(ctx, "systemctl restart keepalived", nil); err != nil {
		t.Fatal(err)
	}
	lb.ro.Snapshot(ctx, "lab1")
	errs := lb.ro.Settle(ctx, []string{"lab1"})
	if !errors.Is(errs["lab1"], context.Canceled) {
		t.Errorf("%v, want context.Canceled", errs)
	}
	if el := lb.w.Clock.Elapsed(); el > time.Second+50*time.Millisecond {
		t.Errorf("went on for %s after the cancel", el)
	}
}

// TestFactsNoteTransportAndDrain: the facts the runner hands over decide
// the transport switch and the drained hosts, and a drained host is
// announced once, naming how to bring it back.
func TestFactsNoteTransportAndDrain(t *testing.T) {
	lb := newLab(t)
	lb.ro.Facts("lab1", &facts.Facts{VRRPTransport: "unicast", Drain: facts.DrainLow})
	lb.ro.Facts("lab2", &facts.Facts{VRRPTransport: "multicast"})
	if !lb.ro.isSwitching("lab") {
		t.Error("lab1 on unicast: the cluster must be switching")
	}
	if d := lb.ro.Drained(); !d["lab1"] || d["lab2"] {
		t.Errorf("drained %v, want lab1 only", d)
	}
	var drained []string
	for _, e := range lb.events {
		if e.Step == "drain" {
			drained = append(drained, e.Host+": "+e.Summary)
		}
	}
	if len(drained) != 1 || !strings.Contains(drained[0], "lab1: drained") || !strings.Contains(drained[0], "hactl undrain lab1") {
		t.Errorf("drain announcements %q", drained)
	}
}
