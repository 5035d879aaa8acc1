package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
	"github.com/hactl/hactl/pkg/ui"
)

// TestPlanPreviewsLimitAndPlaybook: plan previews what apply with the same
// --limit and -p would run: the given playbook, on the given host only (its
// cluster's other hosts are connected to for the VIP table, nothing more).
func TestPlanPreviewsLimitAndPlaybook(t *testing.T) {
	book := filepath.Join(t.TempDir(), "x.hcl")
	if err := os.WriteFile(book, []byte("step \"x running\" {\n  service {\n    name = \"x\"\n  }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	facts := map[string]int{}
	dial := func(_ context.Context, cfg remote.Config) (remote.Conn, error) {
		return &remotetest.Fake{Handler: func(cmd string, _ []byte) remote.Result {
			if !strings.HasPrefix(cmd, "LC_ALL=C") {
				return remote.Result{}
			}
			mu.Lock()
			facts[cfg.Name]++
			mu.Unlock()
			return remote.Result{Stdout: []byte("@@os\nID=debian\nVERSION_ID=\"12\"\n@@systemd\nyes\n" +
				"@@addrs\n2: eth0    inet 198.18.0.12/24 brd 198.18.0.255 scope global eth0\n" +
				"@@services\nx\tinactive\tdisabled\n@@end\n")}
		}}, nil
	}
	io, out, errb := ui.Test()
	args := []string{"plan", "-i", lab, "--output", "json", "--limit", "lab2", "-p", book}
	if code := Main(context.Background(), args, io.WithEnv("NO_COLOR=1"), Deps{Dial: dial}); code != 0 {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	var doc applyJSON
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	one, zero := 1, 0
	wantHosts := []hostJSON{{Name: "lab2", OK: true, Result: "changed", Reachable: true, Changed: &one, Skipped: &zero}}
	wantPlan := map[string][]change{"lab2": {{Step: "x running", Summary: "enable and start"}}}
	if !reflect.DeepEqual(doc.Hosts, wantHosts) || !reflect.DeepEqual(doc.Plan, wantPlan) {
		t.Errorf("hosts %+v plan %+v\nstderr:\n%s", doc.Hosts, doc.Plan, errb.String())
	}
	if !reflect.DeepEqual(facts, map[string]int{"lab2": 1}) {
		t.Errorf("facts gathered on %v, want lab2 only", facts)
	}
}
