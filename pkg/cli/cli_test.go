package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hactl/hactl/internal/golden"
)

var update = flag.Bool("update", false, "rewrite golden files")

type result struct {
	code     int
	out, err string
}

func runCLI(t *testing.T, env []string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, IO{In: strings.NewReader(""), Out: &out, Err: &errb, Env: env})
	return result{code, out.String(), errb.String()}
}

func goldenFile(t *testing.T, name, got string) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name), []byte(got), *update)
}

const prod = "../../inventory/prod.hcl"

func TestValidateOK(t *testing.T) {
	r := runCLI(t, nil, "validate", "-i", prod)
	if r.code != 0 || !strings.Contains(r.out, "3 host(s), 3 VIP(s)") || r.err != "" {
		t.Fatalf("%+v", r)
	}
}

func TestValidateBad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.hcl")
	src, _ := os.ReadFile(prod)
	bad := strings.Replace(string(src), `vip     = "10.11.7.236/24"`, `vip     = "10.11.7.235/24"`, 1)
	bad = strings.Replace(bad, `auth_pass       = "1111"`, `auth_pass       = "123456789"`, 1)
	if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, []string{"NO_COLOR=1"}, "validate", "-i", p)
	if r.code != ExitUsage {
		t.Fatalf("exit %d, want 2: %+v", r.code, r)
	}
	for _, want := range []string{p + ":20,", "auth_pass too long", p + ":42,", "Duplicate VIP", "2 error(s)"} {
		if !strings.Contains(r.err, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.err)
		}
	}
	if strings.Contains(r.err, "123456789") || !strings.Contains(r.err, `auth_pass       = "*********"`) {
		t.Errorf("secret printed in a snippet:\n%s", r.err)
	}
	if strings.Contains(r.err, "\x1b[") {
		t.Errorf("colour escapes with NO_COLOR / not a terminal")
	}
	if r.out != "" {
		t.Errorf("stdout not empty: %q", r.out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"validate"},
		{"validate", "-i", prod, "--output", "yaml"},
		{"render", "-i", prod},
		{"nosuchcommand"},
		{"validate", "-i", "/nonexistent.hcl"},
	} {
		if r := runCLI(t, nil, args...); r.code != ExitUsage {
			t.Errorf("%v: exit %d, want 2 (%s)", args, r.code, r.err)
		}
	}
}

// TestPlanOfflineDualStack: the dual-stack lab's table has a VIP6 column and
// its JSON a vip6 per VIP and the cluster's gateway6; the IPv6-only lab's
// table has none.
func TestPlanOfflineDualStack(t *testing.T) {
	ds := filepath.Join("..", "inventory", "testdata", "lab-dualstack.hcl")
	r := runCLI(t, []string{"NO_COLOR=1"}, "plan", "--offline", "-i", ds)
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	goldenFile(t, "plan-offline-dualstack.txt", r.out)
	r = runCLI(t, nil, "plan", "--offline", "-i", ds, "--output", "json")
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	goldenFile(t, "plan-offline-dualstack.json", r.out)
	var doc struct {
		Clusters []struct {
			Gateway6 string `json:"gateway6"`
		} `json:"clusters"`
		VIPs []struct{ VIP, VIP6 string } `json:"vips"`
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Clusters[0].Gateway6 != "2001:db8:18::1" || len(doc.VIPs) != 3 || doc.VIPs[0].VIP != "198.18.0.201/24" || doc.VIPs[0].VIP6 != "2001:db8:18::201/64" {
		t.Errorf("json: %+v", doc)
	}
	r = runCLI(t, []string{"NO_COLOR=1"}, "plan", "--offline", "-i", filepath.Join("..", "inventory", "testdata", "lab-ipv6.hcl"))
	if r.code != 0 || strings.Contains(r.out, "VIP6") || !strings.Contains(r.out, "2001:db8:18::201/64") {
		t.Errorf("IPv6-only plan:\n%s", r.out)
	}
}

func TestPlanOfflineGolden(t *testing.T) {
	r := runCLI(t, []string{"NO_COLOR=1"}, "plan", "--offline", "-i", prod)
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	goldenFile(t, "plan-offline.txt", r.out)
	r = runCLI(t, nil, "plan", "--offline", "-i", prod, "--output", "json")
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	goldenFile(t, "plan-offline.json", r.out)
	var doc struct {
		Clusters []struct {
			AuthPass string `json:"auth_pass"`
		} `json:"clusters"`
		VIPs []struct {
			VIP, Master string
			CrashS      float64 `json:"crash_s"`
		} `json:"vips"`
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Clusters[0].AuthPass != "(sensitive)" || len(doc.VIPs) != 3 || doc.VIPs[2].Master != "slave-node-2" || doc.VIPs[0].CrashS != 3.61 {
		t.Errorf("json: %+v", doc)
	}
	if strings.Contains(r.out, "1111") {
		t.Errorf("secret in plan output")
	}
}

func TestRenderTree(t *testing.T) {
	dir := t.TempDir()
	r := runCLI(t, nil, "render", "-i", prod, "-o", dir)
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	for path, mode := range map[string]os.FileMode{
		"master-node/etc/keepalived/keepalived.conf":                     0o600,
		"slave-node-2/etc/keepalived/check_nginx.sh":                     0o755,
		"slave-node-1/etc/nginx/conf.d/hactl.conf":                       0o644,
		"master-node/etc/systemd/system/keepalived.service.d/hactl.conf": 0o644,
	} {
		st, err := os.Stat(filepath.Join(dir, path))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %o, want %o", path, st.Mode().Perm(), mode)
		}
	}
	if strings.Contains(r.out, "1111") {
		t.Errorf("secret in output")
	}
}

func TestVersion(t *testing.T) {
	if r := runCLI(t, nil, "--version"); r.code != 0 || !strings.Contains(r.out, "hactl version") {
		t.Fatalf("%+v", r)
	}
}
