package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hactl/hactl/internal/testinv"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
)

// fakeLab answers for lab1..lab3 of inventory/lab.hcl: each holds its own
// VIP, runs keepalived of the version given (lab1 1.3.5, the others 2.2.8)
// and keeps the record given ("" none). It counts the fact scripts each
// host ran.
type fakeLab struct {
	mu      sync.Mutex
	records map[string]string
	facts   map[string]int
}

func newFakeLab() *fakeLab { return &fakeLab{records: map[string]string{}, facts: map[string]int{}} }

func (l *fakeLab) dial(_ context.Context, cfg remote.Config) (remote.Conn, error) {
	n := cfg.Name[len(cfg.Name)-1] - '0'
	addrs := fmt.Sprintf("2: eth0    inet 198.18.0.1%d/24 brd 198.18.0.255 scope global eth0\n"+
		"2: eth0    inet 198.18.0.20%d/24 scope global secondary eth0\n", n, n)
	ka := "Keepalived v2.2.8 (01/01,2023)"
	if cfg.Name == "lab1" {
		ka = "Keepalived v1.3.5 (03/19,2017)"
	}
	return &remotetest.Fake{Handler: func(cmd string, _ []byte) remote.Result {
		switch {
		case strings.HasPrefix(cmd, "LC_ALL=C"):
			l.mu.Lock()
			l.facts[cfg.Name]++
			rec := l.records[cfg.Name]
			l.mu.Unlock()
			// The facts carry the record, as the real script's @@record does.
			return remote.Result{Stdout: []byte("@@os\nID=debian\nVERSION_ID=\"12\"\n@@systemd\nyes\n@@keepalived\n" + ka + "\n" +
				"@@addrs\n" + addrs + "@@record\n" + rec + "\n@@services\nkeepalived\tactive\tenabled\n@@end\n")}
		case strings.HasPrefix(cmd, "cat /etc/keepalived/hactl-cluster.json"):
			l.mu.Lock()
			defer l.mu.Unlock()
			return remote.Result{Stdout: []byte(l.records[cfg.Name])}
		case strings.HasPrefix(cmd, "ip -o"):
			return remote.Result{Stdout: []byte(addrs)}
		}
		return remote.Result{}
	}}, nil
}

// eventLog records what a verb reports.
type eventLog struct {
	mu       sync.Mutex
	list     []playbook.Event
	live     []string
	readOnly int
}

func (e *eventLog) Event(x playbook.Event) { e.mu.Lock(); e.list = append(e.list, x); e.mu.Unlock() }

func (e *eventLog) Live(hosts []string, doing string) func() {
	e.mu.Lock()
	e.live = append(e.live, doing+" "+strings.Join(hosts, ","))
	e.mu.Unlock()
	return func() {}
}

func (e *eventLog) ReadOnly(n int) { e.readOnly = n }

func session(t *testing.T, lab *fakeLab) *Session {
	t.Helper()
	s, _, err := Load(context.Background(), testinv.Path("lab.hcl"), Deps{Dial: lab.dial,
		LookupEnv: func(k string) (string, bool) {
			if k == "HOME" {
				return t.TempDir(), true
			}
			return "", false
		}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func templateBook(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "conf.hcl")
	if err := os.WriteFile(p, []byte("step \"conf\" {\n  template {\n    path = \"/etc/keepalived/keepalived.conf\"\n  }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var conn = ConnOptions{Parallel: 10, Timeout: 5e9}

// TestPlanRendersForEachHostsKeepalived: plan renders each host's files
// once, after its facts: lab1 (keepalived 1.3.5) gets the polling scripts,
// the others track_file; one fact script per host; the VIPs are verified;
// a --limit says how many more hosts are only read.
func TestPlanRendersForEachHostsKeepalived(t *testing.T) {
	lab := newFakeLab()
	s := session(t, lab)
	ev := &eventLog{}
	res, err := Apply(context.Background(), s, ApplyOptions{Conn: conn, Playbook: templateBook(t), Dry: true}, ev)
	if err != nil {
		t.Fatal(err)
	}
	if res.Err != nil || len(res.Hosts) != 3 || len(res.VIPs) != 3 {
		t.Fatalf("result %+v", res)
	}
	for _, h := range res.Hosts {
		if !h.Known || len(h.Changes) != 1 || h.Result != ResultChanged {
			t.Fatalf("%s: %+v", h.Name, h)
		}
		legacy := strings.Contains(h.Changes[0].Diff, "has no track_file")
		if legacy != (h.Name == "lab1") {
			t.Errorf("%s: rendered for the wrong keepalived:\n%s", h.Name, h.Changes[0].Diff)
		}
		if lab.facts[h.Name] != 1 {
			t.Errorf("%s: %d fact scripts, want 1", h.Name, lab.facts[h.Name])
		}
	}
	for _, v := range res.VIPs {
		if !v.OK() {
			t.Errorf("VIP %+v", v)
		}
	}
	if ev.readOnly != 0 || len(ev.live) != 2 || !strings.HasPrefix(ev.live[0], "connecting lab1,lab2,lab3") {
		t.Errorf("events: read-only %d, live %q", ev.readOnly, ev.live)
	}

	ev = &eventLog{}
	res, err = Apply(context.Background(), s, ApplyOptions{Conn: conn, Playbook: templateBook(t), Dry: true, Limit: []string{"lab2"}}, ev)
	if err != nil || len(res.Hosts) != 1 || res.Hosts[0].Name != "lab2" || ev.readOnly != 2 {
		t.Errorf("--limit lab2: %+v %v, read-only %d", res, err, ev.readOnly)
	}
}

// TestRecordsDecideTheLayout: the router ids recorded on the hosts win over
// the inventory's allocation, for apply and for the verbs that only look.
func TestRecordsDecideTheLayout(t *testing.T) {
	lab := newFakeLab()
	rec := `{"schema_version":1,"cluster":"lab","hosts":[
 {"name":"lab1","address":"198.18.0.11","vip":"198.18.0.201/24","vrid":61,"instance":"VI_1","interface":"eth0"},
 {"name":"lab2","address":"198.18.0.12","vip":"198.18.0.202/24","vrid":62,"instance":"VI_2","interface":"eth0"},
 {"name":"lab3","address":"198.18.0.13","vip":"198.18.0.203/24","vrid":63,"instance":"VI_3","interface":"eth0"}],"retired":[]}`
	for _, h := range []string{"lab1", "lab2", "lab3"} {
		lab.records[h] = rec
	}
	s := session(t, lab)
	if s.Layout.Instances[0].VRID == 61 {
		t.Fatal("the inventory alone already gives 61: the test proves nothing")
	}
	res, err := Apply(context.Background(), s, ApplyOptions{Conn: conn, Playbook: templateBook(t), Dry: true}, &eventLog{})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Layout.Instances[0].VRID; got != 61 {
		t.Errorf("apply's layout: VRID %d, want the recorded 61", got)
	}
	fl, err := s.connect(context.Background(), conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	l, err := s.recordedLayout(context.Background(), fl, nil)
	if err != nil || l.Instances[1].VRID != 62 {
		t.Errorf("recorded layout %+v %v", l, err)
	}
}

// TestReadRecordsNameTheHost: an unreadable record stops the run, naming
// the host; a host without one reads as nil.
func TestReadRecordsNameTheHost(t *testing.T) {
	lab := newFakeLab()
	lab.records["lab1"] = `{"schema_version":1,"cluster":"lab","hosts":[]}`
	lab.records["lab2"] = "not json"
	s := session(t, lab)
	fl, err := s.connect(context.Background(), conn, []string{"lab1", "lab2"})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	if _, err := readRecords(context.Background(), fl.Hosts, nil); err == nil || !strings.HasPrefix(err.Error(), "lab2: ") {
		t.Fatalf("err %v", err)
	}
	lab.records["lab2"] = ""
	recs, err := readRecords(context.Background(), fl.Hosts, nil)
	if err != nil || recs[0] == nil || recs[0].Cluster != "lab" || recs[1] != nil {
		t.Fatalf("records %+v %v", recs, err)
	}
	if _, err := s.recordedLayout(context.Background(), &fleet.Fleet{Hosts: fl.Hosts[:1]}, nil); err != nil {
		t.Errorf("an empty record is no clash: %v", err)
	}
}

// TestErrorKinds: bad input is Usage (a DiagError listing every problem for
// an invalid inventory), an unknown --limit name is Usage, and an error
// without a kind is Failed.
func TestErrorKinds(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.hcl")
	if err := os.WriteFile(bad, []byte("cluster \"x\" {\n  nosuch = 1\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, in, err := Load(context.Background(), bad, Deps{})
	var de *DiagError
	if s != nil || KindOf(err) != Usage || !errors.As(err, &de) || !de.Listed || len(de.Diags) == 0 || len(in.Diags) != len(de.Diags) {
		t.Errorf("invalid inventory: %v %v", s, err)
	}
	if _, _, err := Load(context.Background(), "", Deps{}); KindOf(err) != Usage {
		t.Errorf("no inventory: %v", err)
	}
	ok := session(t, newFakeLab())
	if _, err := SelectHosts(ok.Inv, []string{"lab", "nosuch"}); KindOf(err) != Usage || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("unknown name: %v", err)
	}
	sel, err := SelectHosts(ok.Inv, []string{"lab"})
	if err != nil || len(sel) != 3 {
		t.Errorf("a cluster name selects its hosts: %v %v", sel, err)
	}
	if KindOf(errors.New("x")) != Failed {
		t.Error("an error without a kind must be Failed")
	}
	if _, err := Status(context.Background(), ok, StatusOptions{Conn: ConnOptions{Parallel: 0, Timeout: 1}}); KindOf(err) != Usage {
		t.Errorf("--parallel 0: %v", err)
	}
}
