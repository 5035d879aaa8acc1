package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
	"github.com/hactl/hactl/pkg/vrrp"
)

func TestRecordPathsAgree(t *testing.T) {
	if facts.ClusterRecordPath != vrrp.RecordPath {
		t.Fatalf("facts reads %s, apply writes %s", facts.ClusterRecordPath, vrrp.RecordPath)
	}
}

// fleetLab is the lab inventory without lab2, on fake hosts that all keep
// the 3-host record and run keepalived; down hosts cannot be dialled.
type fleetLab struct {
	inv   string
	down  map[string]bool
	mu    sync.Mutex
	conns map[string]*remotetest.Fake
	// shells run each host's lock (an in-process SSH server), as in
	// convergedLab: apply decides on the records under the lock.
	shells map[string]remote.Conn
}

const threeHostRecord = `{"schema_version":1,"cluster":"lab","hosts":[
 {"name":"lab1","address":"198.18.0.11","vip":"198.18.0.201/24","vrid":51,"instance":"VI_1","interface":"eth0"},
 {"name":"lab2","address":"198.18.0.12","vip":"198.18.0.202/24","vrid":52,"instance":"VI_2","interface":"eth0"},
 {"name":"lab3","address":"198.18.0.13","vip":"198.18.0.203/24","vrid":53,"instance":"VI_3","interface":"eth0"}],"retired":[]}`

func newFleetLab(t *testing.T, down ...string) *fleetLab {
	t.Helper()
	src, err := os.ReadFile(lab)
	if err != nil {
		t.Fatal(err)
	}
	noLab2 := regexp.MustCompile(`(?s)  host "lab2" \{.*?\n  \}\n`).ReplaceAllString(string(src), "")
	fl := &fleetLab{inv: filepath.Join(t.TempDir(), "no-lab2.hcl"), down: map[string]bool{}, conns: map[string]*remotetest.Fake{}, shells: labShells(t)}
	for _, d := range down {
		fl.down[d] = true
	}
	if err := os.WriteFile(fl.inv, []byte(noLab2), 0o644); err != nil {
		t.Fatal(err)
	}
	return fl
}

func (fl *fleetLab) dial(_ context.Context, cfg remote.Config) (remote.Conn, error) {
	if fl.down[cfg.Name] {
		return nil, fmt.Errorf("dial %s: connection refused", cfg.Address)
	}
	f := &remotetest.Fake{Handler: func(cmd string, _ []byte) remote.Result {
		switch {
		case strings.HasPrefix(cmd, "cat "+vrrp.RecordPath):
			return remote.Result{Stdout: []byte(threeHostRecord)}
		case strings.HasPrefix(cmd, "LC_ALL=C"):
			// The facts carry the record (the script's @@record).
			return remote.Result{Stdout: []byte("@@os\nID=debian\nVERSION_ID=\"12\"\n@@systemd\nyes\n@@record\n" + threeHostRecord +
				"\n@@services\nkeepalived\tactive\tenabled\n@@end\n")}
		}
		return remote.Result{}
	}}
	fl.mu.Lock()
	fl.conns[cfg.Name] = f
	fl.mu.Unlock()
	return lockedConn{Fake: f, shell: fl.shells[cfg.Name]}, nil
}

func (fl *fleetLab) run(t *testing.T, args ...string) result {
	t.Helper()
	return runWith(t, Deps{Dial: fl.dial, Locker: miniLock}, []string{"NO_COLOR=1"}, append(args, "-i", fl.inv)...)
}

// TestApplyRefusesWhileARemovedHostRuns: lab2 left the inventory but its
// keepalived runs: plain apply exits 1 naming it, its address and the fix,
// and sends the survivors nothing but the facts read under their lock
// (which carries the record the refusal rests on).
func TestApplyRefusesWhileARemovedHostRuns(t *testing.T) {
	fl := newFleetLab(t)
	r := fl.run(t, "apply")
	if r.code != ExitFailed {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.err)
	}
	for _, want := range []string{"hactl: lab2 (198.18.0.12) still runs keepalived", "VRID 52", "hactl apply --prune", "put it back in the inventory", "nothing was changed"} {
		if !strings.Contains(r.err, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.err)
		}
	}
	if fl.conns["lab2"] == nil {
		t.Fatal("lab2 was never contacted")
	}
	for _, n := range []string{"lab1", "lab3"} {
		for _, c := range fl.conns[n].Calls() {
			if c.Upload || !strings.HasPrefix(c.Cmd, "LC_ALL=C") {
				t.Errorf("%s got %q %s before the refusal", n, c.Cmd, c.Path)
			}
		}
	}
	for _, c := range fl.conns["lab2"].Calls() {
		if c.Upload || !strings.HasPrefix(c.Cmd, "LC_ALL=C") {
			t.Errorf("lab2 got %q %s", c.Cmd, c.Path)
		}
	}
	// The refusal gave every lock back: the same apply again meets the
	// same refusal, not a held lock.
	if again := fl.run(t, "apply"); again.code != ExitFailed || !strings.Contains(again.err, "still runs keepalived") {
		t.Errorf("again: exit %d\n%s", again.code, again.err)
	}
}

// TestUnreachableRemovedHostStaysReserved: plan reports a removed host that
// cannot be reached by name and address, keeps the survivors' recorded
// VRIDs, and lists the host as departed with its VRID reserved.
func TestUnreachableRemovedHostStaysReserved(t *testing.T) {
	fl := newFleetLab(t, "lab2")
	r := fl.run(t, "plan", "--output", "json")
	stdout, stderr := r.out, r.err
	if !strings.Contains(stderr, "lab2 (198.18.0.12) left the inventory") || !strings.Contains(stderr, "VRID 52 stays reserved") {
		t.Errorf("stderr:\n%s", stderr)
	}
	var doc applyJSON
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(doc.Departed) != 1 || doc.Departed[0].Name != "lab2" || doc.Departed[0].Action != "reserved" ||
		doc.Departed[0].Reachable || doc.Departed[0].Keepalived != nil {
		t.Errorf("departed %+v", doc.Departed)
	}
}

// TestPlanPrunePreviews: plan --prune says it would decommission lab2 and
// sends lab2 nothing but the facts read.
func TestPlanPrunePreviews(t *testing.T) {
	fl := newFleetLab(t)
	r := fl.run(t, "plan", "--prune", "--output", "json")
	stdout, stderr := r.out, r.err
	var doc applyJSON
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(doc.Departed) != 1 || doc.Departed[0].Action != "would decommission" || doc.Departed[0].Keepalived == nil || *doc.Departed[0].Keepalived != "active" {
		t.Errorf("departed %+v\n%s", doc.Departed, stderr)
	}
	for _, c := range fl.conns["lab2"].Calls() {
		if c.Upload || !strings.HasPrefix(c.Cmd, "LC_ALL=C") {
			t.Errorf("plan sent lab2 %q %s", c.Cmd, c.Path)
		}
	}
}
