package playbook

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
	"github.com/hactl/hactl/pkg/render"
)

// fakeRollout records the runner's calls in order; each host is its own
// group unless group says otherwise.
type fakeRollout struct {
	note  func(string)
	dark  func(host string) bool
	group func(host string) string
	errs  map[string]error
}

func (f *fakeRollout) Snapshot(_ context.Context, h string) bool {
	f.note("snapshot " + h)
	return f.dark(h)
}

func (f *fakeRollout) Group(h string) string {
	if f.group == nil {
		return h
	}
	return f.group(h)
}

func (f *fakeRollout) Settle(_ context.Context, hs []string) map[string]error {
	f.note("settle " + strings.Join(hs, " "))
	return f.errs
}

// TestSnapshotOnlyWhenTheSerialPhaseActs: the rollout snapshot (one VIP
// observation of the cluster) is taken before a host's serial phase only when
// that phase will touch a daemon, and always before it does.
func TestSnapshotOnlyWhenTheSerialPhaseActs(t *testing.T) {
	for _, tc := range []struct {
		name, active string
		want         string
	}{
		{"converged", "active", ""},
		{"stopped", "inactive", "snapshot h1,start,settle h1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var order []string
			note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
			conn := &remotetest.Fake{Handler: func(cmd string, _ []byte) remote.Result {
				if strings.HasPrefix(cmd, "LC_ALL=C") {
					return remote.Result{Stdout: []byte("@@os\nID=debian\nVERSION_ID=\"12\"\n@@services\nx\t" + tc.active + "\tenabled\n@@end\n")}
				}
				if strings.Contains(cmd, "systemctl start") {
					note("start")
					return remote.Result{Stdout: []byte("started\n")}
				}
				return remote.Result{}
			}}
			r := &Runner{
				Book:     &Book{Steps: []Step{{Name: "x running", Module: &Service{Name: "x"}}}},
				Parallel: 1,
				Rollout:  &fakeRollout{note: note, dark: func(string) bool { return false }},
			}
			res := r.Run(context.Background(), []HostInput{{Target: &Target{Name: "h1", Conn: conn}}})
			if res[0].Err != nil {
				t.Fatal(res[0].Err)
			}
			if got := strings.Join(order, ","); got != tc.want {
				t.Errorf("order %q, want %q", got, tc.want)
			}
		})
	}
}

// TestDarkClusterStartsTogether: hosts of clusters that serve nothing start
// one after the other without waiting, then settle in one wait; as soon as the snapshot
// sees a VIP served, the hosts started so far settle before the next one is
// touched, and that one is snapshotted again.
func TestDarkClusterStartsTogether(t *testing.T) {
	for _, tc := range []struct {
		name string
		dark map[string][]bool // per host: what its successive snapshots return
		want string
	}{
		{"dark", map[string][]bool{"h1": {true}, "h2": {true}, "h3": {true}},
			"snapshot h1,start h1,snapshot h2,start h2,snapshot h3,start h3,settle h1 h2 h3"},
		{"serving", map[string][]bool{"h1": {false}, "h2": {false}},
			"snapshot h1,start h1,settle h1,snapshot h2,start h2,settle h2"},
		{"lights up", map[string][]bool{"h1": {true}, "h2": {false, false}},
			"snapshot h1,start h1,snapshot h2,settle h1,snapshot h2,start h2,settle h2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var order []string
			note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
			var inputs []HostInput
			for _, name := range []string{"h1", "h2", "h3"} {
				if tc.dark[name] == nil {
					continue
				}
				conn := &remotetest.Fake{Handler: func(cmd string, _ []byte) remote.Result {
					if strings.HasPrefix(cmd, "LC_ALL=C") {
						return remote.Result{Stdout: []byte("@@os\nID=debian\nVERSION_ID=\"12\"\n@@services\nx\tinactive\tenabled\n@@end\n")}
					}
					if strings.Contains(cmd, "systemctl start") {
						note("start " + name)
						return remote.Result{Stdout: []byte("started\n")}
					}
					return remote.Result{}
				}}
				inputs = append(inputs, HostInput{Target: &Target{Name: name, Conn: conn}})
			}
			r := &Runner{
				Book:     &Book{Steps: []Step{{Name: "x running", Module: &Service{Name: "x"}}}},
				Parallel: 3,
				Rollout: &fakeRollout{note: note, dark: func(h string) bool {
					d := tc.dark[h][0]
					tc.dark[h] = tc.dark[h][1:]
					return d
				}},
			}
			for _, res := range r.Run(context.Background(), inputs) {
				if res.Err != nil {
					t.Fatal(res.Err)
				}
			}
			if got := strings.Join(order, ","); got != tc.want {
				t.Errorf("order\n %s\nwant\n %s", got, tc.want)
			}
		})
	}
}

// TestDarkClusterBatch: with Group, the acting hosts of a dark cluster run
// their serial phase at once (one snapshot), then settle in one Settle;
// a host of another, serving cluster waits for them (its snapshot is taken
// again after they settled) and goes alone.
func TestDarkClusterBatch(t *testing.T) {
	var mu sync.Mutex
	var order []string
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	var inputs []HostInput
	for _, name := range []string{"a1", "a2", "b1", "a3"} {
		conn := &remotetest.Fake{Handler: func(cmd string, _ []byte) remote.Result {
			if strings.HasPrefix(cmd, "LC_ALL=C") {
				return remote.Result{Stdout: []byte("@@os\nID=debian\nVERSION_ID=\"12\"\n@@services\nx\tinactive\tenabled\n@@end\n")}
			}
			if strings.Contains(cmd, "systemctl start") {
				note("start " + name)
				return remote.Result{Stdout: []byte("started\n")}
			}
			return remote.Result{}
		}}
		inputs = append(inputs, HostInput{Target: &Target{Name: name, Conn: conn}})
	}
	r := &Runner{
		Book:     &Book{Steps: []Step{{Name: "x running", Module: &Service{Name: "x"}}}},
		Parallel: 4,
		Rollout: &fakeRollout{note: note,
			dark:  func(h string) bool { return h[0] == 'a' },
			group: func(h string) string { return h[:1] },
			errs:  map[string]error{"a2": errors.New("no VIP")},
		},
	}
	res := r.Run(context.Background(), inputs)
	got := strings.Join(order, ",")
	if !strings.HasPrefix(got, "snapshot a1,start a") || !strings.HasSuffix(got, "snapshot b1,settle a1 a2 a3,snapshot b1,start b1,settle b1") ||
		strings.Count(got, "start a") != 3 || strings.Count(got, "snapshot") != 3 {
		t.Errorf("order %s", got)
	}
	for i, want := range []bool{true, false, true, true} {
		if (res[i].Err == nil) != want {
			t.Errorf("%s: err %v", res[i].Host, res[i].Err)
		}
	}
}

// TestPendingDrift: status lists every pending handler, sorted, with when
// it was first left unhandled.
func TestPendingDrift(t *testing.T) {
	f := &facts.Facts{Pending: map[string]string{"nginx": "2026-11-24T10:00:01Z", "keepalived": "2026-11-24T10:00:00Z"}}
	got := strings.Join(PendingDrift(f), "\n")
	want := "handler keepalived pending since 2026-11-24T10:00:00Z (an interrupted run; the next apply of the playbook that defines it runs it)\n" +
		"handler nginx pending since 2026-11-24T10:00:01Z (an interrupted run; the next apply of the playbook that defines it runs it)"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if d := PendingDrift(&facts.Facts{}); len(d) != 0 {
		t.Errorf("no records: %v", d)
	}
}

// observingRollout is a fakeRollout that also takes the hosts' facts.
type observingRollout struct {
	fakeRollout
	mu   sync.Mutex
	seen map[string]string // host → OS ID its facts said
}

func (o *observingRollout) Facts(host string, f *facts.Facts) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen[host] = f.OS.ID
}

// TestRenderAfterFacts: a host's files are rendered once, from its gathered
// facts (HostInput.Render), after Check; their paths (HostInput.Paths) are
// gathered with the facts, and a FactsObserver rollout gets the facts too.
func TestRenderAfterFacts(t *testing.T) {
	const path = "/etc/hactl-test.conf"
	var gathered string
	conn := &remotetest.Fake{Handler: func(cmd string, _ []byte) remote.Result {
		if strings.HasPrefix(cmd, "LC_ALL=C") {
			gathered = cmd
			return remote.Result{Stdout: []byte("@@os\nID=debian\nVERSION_ID=\"12\"\n@@end\n")}
		}
		return remote.Result{}
	}}
	renders, checked := 0, false
	ro := &observingRollout{fakeRollout: fakeRollout{note: func(string) {}, dark: func(string) bool { return false }}, seen: map[string]string{}}
	r := &Runner{Book: &Book{Steps: []Step{{Name: "conf", Module: &Template{Path: path}}}}, Parallel: 1, DryRun: true, Rollout: ro}
	res := r.Run(context.Background(), []HostInput{{
		Target: &Target{Name: "h1", Conn: conn},
		Paths:  []string{path},
		Check:  func(*facts.Facts) error { checked = true; return nil },
		Render: func(f *facts.Facts) ([]render.File, error) {
			renders++
			if !checked {
				t.Error("rendered before Check")
			}
			return []render.File{{Host: "h1", Path: path, Mode: 0o644, Owner: "root", Group: "root", Content: []byte("os " + f.OS.ID + "\n")}}, nil
		},
	}})
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	if renders != 1 {
		t.Errorf("rendered %d times, want once", renders)
	}
	if !strings.Contains(gathered, path) {
		t.Errorf("facts did not read %s:\n%s", path, gathered)
	}
	if len(res[0].Changes) != 1 || !strings.Contains(res[0].Changes[0].Diff, "+os debian") {
		t.Errorf("plan %+v, want the file rendered from the facts", res[0].Changes)
	}
	if ro.seen["h1"] != "debian" {
		t.Errorf("rollout saw facts %v", ro.seen)
	}

	failing := &Runner{Book: r.Book, Parallel: 1, DryRun: true}
	res = failing.Run(context.Background(), []HostInput{{
		Target: &Target{Name: "h1", Conn: conn}, Paths: []string{path},
		Render: func(*facts.Facts) ([]render.File, error) { return nil, errors.New("template broke") },
	}})
	if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "template broke") {
		t.Errorf("a render error must fail the host: %v", res[0].Err)
	}
}

// TestGatheredDecidesBeforeAnythingChanges: the Gathered hook sees every
// host's facts (apply decides its layout on the records in them) before
// any host is rendered or changed; its error stops the run there, on every
// host.
func TestGatheredDecidesBeforeAnythingChanges(t *testing.T) {
	stop := errors.New("lab2 left the inventory")
	for _, tc := range []struct {
		name string
		err  error
	}{{"go on", nil}, {"stop", stop}} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var sent []string
			fake := func(name string) *remotetest.Fake {
				return &remotetest.Fake{Handler: func(cmd string, _ []byte) remote.Result {
					if strings.HasPrefix(cmd, "LC_ALL=C") {
						return remote.Result{Stdout: []byte("@@os\nID=debian\nVERSION_ID=\"12\"\n@@record\n{\"host\":\"" + name + "\"}\n@@services\nx\tinactive\tenabled\n@@end\n")}
					}
					mu.Lock()
					sent = append(sent, name+": "+cmd)
					mu.Unlock()
					return remote.Result{Stdout: []byte("started\n")}
				}}
			}
			var seen map[string]string
			rendered := 0
			in := func(name string) HostInput {
				return HostInput{Target: &Target{Name: name, Conn: fake(name)}, Render: func(*facts.Facts) ([]render.File, error) {
					mu.Lock()
					rendered++
					mu.Unlock()
					return nil, nil
				}}
			}
			r := &Runner{
				Book:     &Book{Steps: []Step{{Name: "x running", Module: &Service{Name: "x"}}}},
				Parallel: 2,
				Gathered: func(_ context.Context, f map[string]*facts.Facts) error {
					seen = map[string]string{}
					for h, x := range f {
						seen[h] = string(x.ClusterRecord)
					}
					mu.Lock()
					defer mu.Unlock()
					if len(sent) > 0 || rendered > 0 {
						t.Errorf("Gathered called after %d renders and %q", rendered, sent)
					}
					return tc.err
				},
			}
			res := r.Run(context.Background(), []HostInput{in("h1"), in("h2")})
			if seen["h1"] != "{\"host\":\"h1\"}\n" || seen["h2"] != "{\"host\":\"h2\"}\n" {
				t.Errorf("Gathered saw %q", seen)
			}
			for _, x := range res {
				if !errors.Is(x.Err, tc.err) {
					t.Errorf("%s: %v, want %v", x.Host, x.Err, tc.err)
				}
			}
			if tc.err != nil && (len(sent) > 0 || rendered > 0) {
				t.Errorf("after the refusal: %d renders, sent %q", rendered, sent)
			}
			if tc.err == nil && (len(sent) != 2 || rendered != 2) {
				t.Errorf("went on: %d renders, sent %q", rendered, sent)
			}
		})
	}
}
