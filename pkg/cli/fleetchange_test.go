package cli

import (
	"bytes"
	"context"
	"errors"
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

// TestApplyRefusesWhileARemovedHostRuns: lab2 left the inventory but its
// keepalived runs: plain apply exits 1 naming it, its address and the fix,
// and sends the survivors nothing but the record read.
func TestApplyRefusesWhileARemovedHostRuns(t *testing.T) {
	src, err := os.ReadFile(lab)
	if err != nil {
		t.Fatal(err)
	}
	noLab2 := regexp.MustCompile(`(?s)  host "lab2" \{.*?\n  \}\n`).ReplaceAllString(string(src), "")
	inv := filepath.Join(t.TempDir(), "no-lab2.hcl")
	if err := os.WriteFile(inv, []byte(noLab2), 0o644); err != nil {
		t.Fatal(err)
	}
	record := `{"schema_version":1,"cluster":"lab","hosts":[
 {"name":"lab1","address":"198.18.0.11","vip":"198.18.0.201/24","vrid":51,"instance":"VI_1","interface":"eth0"},
 {"name":"lab2","address":"198.18.0.12","vip":"198.18.0.202/24","vrid":52,"instance":"VI_2","interface":"eth0"},
 {"name":"lab3","address":"198.18.0.13","vip":"198.18.0.203/24","vrid":53,"instance":"VI_3","interface":"eth0"}],"retired":[]}`
	var mu sync.Mutex
	conns := map[string]*remotetest.Fake{}
	dial := func(_ context.Context, cfg remote.Config) (remote.Conn, error) {
		f := &remotetest.Fake{Handler: func(cmd string, _ []byte) remote.Result {
			switch {
			case strings.HasPrefix(cmd, "cat "+vrrp.RecordPath):
				return remote.Result{Stdout: []byte(record)}
			case strings.HasPrefix(cmd, "LC_ALL=C"):
				return remote.Result{Stdout: []byte("@@os\nID=debian\nVERSION_ID=\"12\"\n@@systemd\nyes\n@@services\nkeepalived\tactive\tenabled\n@@end\n")}
			}
			return remote.Result{}
		}}
		mu.Lock()
		conns[cfg.Name] = f
		mu.Unlock()
		return f, nil
	}
	var out, errb bytes.Buffer
	g := &Globals{IO: IO{In: strings.NewReader(""), Out: &out, Err: &errb, Env: []string{"NO_COLOR=1"}}, Dial: dial}
	root := NewRoot(context.Background(), g)
	root.SetArgs([]string{"apply", "-i", inv})
	err = root.ExecuteContext(context.Background())
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != ExitFailed {
		t.Fatalf("error %v, want exit 1\n%s", err, errb.String())
	}
	for _, want := range []string{"lab2 (198.18.0.12)", "VRID 52", "hactl apply --prune", "put it back in the inventory", "nothing was changed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if conns["lab2"] == nil {
		t.Fatal("lab2 was never contacted")
	}
	for _, n := range []string{"lab1", "lab3"} {
		for _, c := range conns[n].Calls() {
			if c.Upload || !strings.HasPrefix(c.Cmd, "cat "+vrrp.RecordPath) {
				t.Errorf("%s got %q %s before the refusal", n, c.Cmd, c.Path)
			}
		}
	}
	for _, c := range conns["lab2"].Calls() {
		if c.Upload || !strings.HasPrefix(c.Cmd, "LC_ALL=C") {
			t.Errorf("lab2 got %q %s", c.Cmd, c.Path)
		}
	}
}
