package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
	"github.com/hactl/hactl/pkg/ui"
)

// convergedLab dials lab1..lab3 as hosts where service x runs and each holds
// its own VIP; names in down refuse the connection.
func convergedLab(t *testing.T, down ...string) func(context.Context, remote.Config) (remote.Conn, error) {
	return labOf(t, func(n int) labHost {
		own := ownVIP(n)
		return labHost{snapshot: own, live: own, x: "active"}
	}, down...)
}

// labHost is one fake lab host: the addresses its facts show (snapshot) and
// what a later `ip -o addr` shows (live), besides its own address, and
// service x's state in its facts.
type labHost struct {
	snapshot, live, x string
	// saw, when set, is told every command the fake answers.
	saw func(cmd string)
}

// ownVIP is lab host n holding its own VIP.
func ownVIP(n int) string {
	return fmt.Sprintf("2: eth0    inet 198.18.0.20%d/24 scope global secondary eth0\n", n)
}

// labShells connects to one in-process SSH server per lab host (lab1..3),
// each with its own directory: the shells that run the hosts' locks.
func labShells(t *testing.T) map[string]remote.Conn {
	t.Helper()
	shells := map[string]remote.Conn{}
	for _, h := range []string{"lab1", "lab2", "lab3"} {
		srv := remotetest.NewServer(t, remotetest.WithDir(t.TempDir()))
		c, err := remote.Dial(context.Background(), srv.Config())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		shells[h] = c
	}
	return shells
}

// labOf dials lab1..lab3 as the hosts host(n) describes; names in down
// refuse the connection.
func labOf(t *testing.T, host func(n int) labHost, down ...string) func(context.Context, remote.Config) (remote.Conn, error) {
	// Each host's lock runs on a real shell (an in-process SSH server), as in
	// the failover tests' mini lab; everything else is the fake's.
	shells := labShells(t)
	return func(_ context.Context, cfg remote.Config) (remote.Conn, error) {
		for _, d := range down {
			if d == cfg.Name {
				return nil, fmt.Errorf("%s (127.0.0.1:1): connect: %w", cfg.Name, syscall.ECONNREFUSED)
			}
		}
		n := int(cfg.Name[len(cfg.Name)-1] - '0')
		h := host(n)
		self := fmt.Sprintf("2: eth0    inet 198.18.0.1%d/24 brd 198.18.0.255 scope global eth0\n", n)
		return lockedConn{Fake: &remotetest.Fake{Handler: func(cmd string, _ []byte) remote.Result {
			if h.saw != nil {
				h.saw(cmd)
			}
			switch {
			case strings.HasPrefix(cmd, "LC_ALL=C"):
				return remote.Result{Stdout: []byte("@@os\nID=debian\nVERSION_ID=\"12\"\n@@systemd\nyes\n" +
					"@@addrs\n" + self + h.snapshot + "@@services\nx\t" + h.x + "\tenabled\n@@end\n")}
			case strings.HasPrefix(cmd, "ip -o"):
				return remote.Result{Stdout: []byte(self + h.live)}
			case strings.HasPrefix(cmd, `c=""; `):
				// The service module's enable-and-start: systemd started x.
				return remote.Result{Stdout: []byte(" started\n")}
			}
			return remote.Result{}
		}}, shell: shells[cfg.Name]}, nil
	}
}

func xBook(t *testing.T) string {
	t.Helper()
	book := filepath.Join(t.TempDir(), "x.hcl")
	if err := os.WriteFile(book, []byte("step \"x running\" {\n  service {\n    name = \"x\"\n  }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return book
}

// TestApplyNoChangesIsShort: a converged 3-host apply prints the recap,
// "No changes." and one VIP line; -v adds every step.
func TestApplyNoChangesIsShort(t *testing.T) {
	book := xBook(t)
	r := runWith(t, Deps{Dial: convergedLab(t), Locker: miniLock}, nil, "apply", "-i", lab, "-p", book)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	all := r.out + r.err
	if n := strings.Count(all, "\n"); n > 10 {
		t.Errorf("%d lines, want ≤ 10:\n%s", n, all)
	}
	if !strings.Contains(r.out, "No changes.") || r.err != "" {
		t.Errorf("out:\n%s\nerr:\n%s", r.out, r.err)
	}
	goldenFile(t, "apply-nochange.txt", r.out)

	v := runWith(t, Deps{Dial: convergedLab(t), Locker: miniLock}, nil, "apply", "-i", lab, "-p", book, "-v")
	if v.code != 0 || strings.Count(v.err, "x running") != 3 || !strings.Contains(v.out, "VIP") {
		t.Errorf("-v: exit %d\nout:\n%s\nerr:\n%s", v.code, v.out, v.err)
	}
}

// TestPlanUnreachableIsNotConverged: a host never reached is
// "unreachable", its plan null, the error said once with a hint.
func TestPlanUnreachableIsNotConverged(t *testing.T) {
	book := xBook(t)
	r := runWith(t, Deps{Dial: convergedLab(t, "lab3"), Locker: miniLock}, nil, "plan", "-i", lab, "-p", book)
	if r.code != ExitFailed {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	for _, want := range []string{"unreachable", "is sshd running"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.out)
		}
	}
	if strings.Contains(r.out, "| lab3 | failed") || strings.Contains(r.out, "connect lab3: lab3") {
		t.Errorf("unreachable shown as failed, or the error repeats itself:\n%s", r.out)
	}
	j := runWith(t, Deps{Dial: convergedLab(t, "lab3"), Locker: miniLock}, nil, "plan", "-i", lab, "-p", book, "--output", "json")
	var doc map[string]any
	if err := json.Unmarshal([]byte(j.out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, j.out)
	}
	plan := doc["plan"].(map[string]any)
	if v, ok := plan["lab3"]; !ok || v != nil {
		t.Errorf("plan.lab3 = %v, want null", v)
	}
	if l1, ok := plan["lab1"].([]any); !ok || len(l1) != 0 {
		t.Errorf("plan.lab1 = %v, want []", plan["lab1"])
	}
	if doc["ok"] != false || doc["schema_version"] != float64(1) || doc["error"] == nil {
		t.Errorf("envelope: ok %v schema %v error %v", doc["ok"], doc["schema_version"], doc["error"])
	}
	hosts := doc["hosts"].([]any)
	h3 := hosts[2].(map[string]any)
	if h3["result"] != "unreachable" || h3["changed"] != nil || h3["reachable"] != false {
		t.Errorf("lab3: %v", h3)
	}
}

// TestJSONErrorsAreOneDocument: in JSON mode a broken inventory or a usage
// error still prints one document on stdout.
func TestJSONErrorsAreOneDocument(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.hcl")
	src, _ := os.ReadFile(prod)
	if err := os.WriteFile(bad, []byte(strings.Replace(string(src), `vip     = "10.11.7.236/24"`, `vip     = "10.11.7.235/24"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		diag bool
	}{
		{"broken inventory", []string{"validate", bad, "--output", "json"}, true},
		{"broken inventory, plan", []string{"plan", "--offline", "-i", bad, "--output=JSON"}, true},
		{"unknown flag", []string{"plan", "-i", prod, "--output", "json", "--ofline"}, false},
		{"bad --parallel", []string{"status", "-i", prod, "--output", "json", "--parallel", "0"}, false},
	} {
		r := runCLI(t, nil, tc.args...)
		if r.code != ExitUsage {
			t.Errorf("%s: exit %d, want 2\n%s", tc.name, r.code, r.err)
		}
		var doc map[string]any
		dec := json.NewDecoder(strings.NewReader(r.out))
		if err := dec.Decode(&doc); err != nil || dec.More() {
			t.Errorf("%s: stdout is not one JSON document (%v):\n%s", tc.name, err, r.out)
			continue
		}
		if doc["ok"] != false || doc["schema_version"] != float64(1) {
			t.Errorf("%s: %v", tc.name, doc)
		}
		list, isList := doc["error"].([]any)
		if tc.diag != isList {
			t.Errorf("%s: error %v", tc.name, doc["error"])
			continue
		}
		if tc.diag {
			d := list[0].(map[string]any)
			if d["file"] != bad || d["line"] == float64(0) || d["column"] == nil || d["summary"] == "" {
				t.Errorf("%s: diagnostic %v", tc.name, d)
			}
		}
	}
}

func TestUsageFriction(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"positional inventory", []string{"validate", prod}, 0, "3 host(s)"},
		{"case-insensitive --output", []string{"validate", prod, "--output", "JSON"}, 0, `"valid": true`},
		{"help nosuch", []string{"help", "nosuch"}, 2, `no help topic "nosuch"`},
		{"flag suggestion", []string{"plan", "-i", prod, "--ofline"}, 2, "Did you mean --offline?"},
		{"global flag suggestion", []string{"plan", "-i", prod, "--outptu", "json"}, 2, "Did you mean --output?"},
		{"--parallel 0", []string{"status", "-i", prod, "--parallel", "0"}, 2, "--parallel must be more than 0"},
		{"--parallel -3", []string{"apply", "-i", prod, "--parallel", "-3"}, 2, "--parallel must be more than 0"},
		{"--connect-timeout 0s", []string{"status", "-i", prod, "--connect-timeout", "0s"}, 2, "--connect-timeout must be more than 0s"},
		{"--templates missing", []string{"render", prod, "-o", "x", "--templates", "/nonexistent"}, 2, "--templates /nonexistent"},
		{"--ssh-config missing", []string{"status", "-i", prod, "--ssh-config", "/nonexistent/cfg"}, 2, "--ssh-config"},
		{"drain HOST is no inventory", []string{"drain", "-i", lab, "lab1", "--parallel", "0"}, 2, "--parallel must be more than 0"},
		{"--limit unknown", []string{"status", "-i", prod, "--limit", "nosuch"}, 2, "nosuch"},
	} {
		r := runWith(t, Deps{Dial: func(context.Context, remote.Config) (remote.Conn, error) {
			t.Errorf("%s: dialled", tc.name)
			return nil, syscall.ECONNREFUSED
		}}, nil, tc.args...)
		if r.code != tc.code || !strings.Contains(r.out+r.err, tc.want) {
			t.Errorf("%s: exit %d (want %d), lacks %q:\n%s%s", tc.name, r.code, tc.code, tc.want, r.out, r.err)
		}
	}
}

// TestTablesFitTheWidth: at 80 columns no line of plan --offline is wider,
// and a terminal gets box borders while a pipe gets ASCII ones.
func TestTablesFitTheWidth(t *testing.T) {
	io, out, _ := ui.Test()
	if code := Main(context.Background(), []string{"plan", "--offline", "-i", prod}, io.WithWidth(80), Deps{}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if w := len([]rune(line)); w > 80 {
			t.Errorf("%d columns: %s", w, line)
		}
	}
	if !strings.Contains(out.String(), "+-----") {
		t.Errorf("not ASCII borders off a terminal:\n%s", out.String())
	}
	goldenFile(t, "plan-offline-80.txt", out.String())
}

// TestStatusLimitCluster: --limit takes a cluster name; hosts outside it
// are not dialled.
func TestStatusLimitCluster(t *testing.T) {
	var mu sync.Mutex
	dialled := map[string]bool{}
	dial := convergedLab(t)
	r := runWith(t, Deps{Dial: func(ctx context.Context, cfg remote.Config) (remote.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		dialled[cfg.Name] = true
		return dial(ctx, cfg)
	}}, nil, "status", "-i", lab, "--limit", "lab", "--output", "json")
	var doc statusJSON
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatalf("%v\n%s\n%s", err, r.out, r.err)
	}
	if len(doc.Hosts) != 3 || len(dialled) != 3 || doc.SchemaVersion != 1 {
		t.Errorf("hosts %d dialled %v: %s", len(doc.Hosts), dialled, r.out)
	}
}

// TestCompletion: --mode, --output, --node and --limit complete to their
// values; hosts and clusters come from the inventory on the command line.
func TestCompletion(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "failover-test", "--mode", ""}, []string{"stop", "kill", "nginx", "nginx-dead", "all"}},
		{[]string{"__complete", "validate", "--output", ""}, []string{"text", "json"}},
		{[]string{"__complete", "failover-test", lab, "--node", ""}, []string{"lab1", "lab2", "lab3"}},
		{[]string{"__complete", "status", "-i", prod, "--limit", ""}, []string{"web", "master-node", "slave-node-1", "slave-node-2"}},
		{[]string{"__complete", "apply", "-i", prod, "--limit", ""}, []string{"web", "master-node"}},
	} {
		r := runCLI(t, nil, tc.args...)
		lines := strings.Split(r.out, "\n")
		for _, w := range tc.want {
			found := false
			for _, l := range lines {
				found = found || l == w
			}
			if !found {
				t.Errorf("%v: %q not offered:\n%s", tc.args, w, r.out)
			}
		}
	}
}

// TestApplyLimitSaysWhatItReads: --limit a says in one line that the rest
// of a's cluster is read, not changed.
func TestApplyLimitSaysWhatItReads(t *testing.T) {
	r := runWith(t, Deps{Dial: convergedLab(t), Locker: miniLock}, nil, "apply", "-i", lab, "-p", xBook(t), "--limit", "lab1")
	if r.code != 0 || strings.Count(r.err, "only read") != 1 || !strings.Contains(r.err, "2 other host(s)") {
		t.Errorf("exit %d\nout:\n%s\nerr:\n%s", r.code, r.out, r.err)
	}
}

// TestOnePassWithUnsetEnv: an unset env() variable is reported together with
// the layout's problems (priorities), not before them.
func TestOnePassWithUnsetEnv(t *testing.T) {
	src, err := os.ReadFile(prod)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(src), `auth_pass       = "1111"`, `auth_pass       = env("HACTL_NOT_SET")`, 1)
	bad = strings.Replace(bad, `priority_step   = 2`, `priority_step   = 0`, 1)
	p := filepath.Join(t.TempDir(), "inv.hcl")
	if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, nil, "validate", p)
	if r.code != ExitUsage || !strings.Contains(r.err, "HACTL_NOT_SET") || !strings.Contains(r.err, "Priorities not distinct") {
		t.Errorf("exit %d, want both problems in one run:\n%s", r.code, r.err)
	}
}
