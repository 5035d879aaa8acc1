package cli

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hactl/hactl/internal/golden"
	"github.com/hactl/hactl/pkg/ui"
)

var update = flag.Bool("update", false, "rewrite golden files")

type result struct {
	code     int
	out, err string
}

func runCLI(t testing.TB, env []string, args ...string) result {
	t.Helper()
	return runWith(t, Deps{}, env, args...)
}

// runWith runs Main as main does, with fixed IO (no terminal, no colour)
// and deps.
func runWith(t testing.TB, deps Deps, env []string, args ...string) result {
	t.Helper()
	io, out, errb := ui.Test()
	code := Main(context.Background(), args, io.WithEnv(env...), deps)
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

// TestValidateWarnings: an inventory that loads with a warning is valid,
// and both outputs carry the warning with its place.
func TestValidateWarnings(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cross.hcl")
	src, _ := os.ReadFile(prod)
	warn := strings.Replace(string(src), "  advert_int             = 1\n",
		"  advert_int             = 1\n  vrrp_transport = \"unicast\"\n  allow_cross_subnet = true\n", 1)
	warn = strings.Replace(warn, `    address = "10.11.7.232"`, `    address = "10.128.2.106"`, 1)
	if err := os.WriteFile(p, []byte(warn), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, []string{"NO_COLOR=1"}, "validate", p)
	if r.code != 0 || !strings.Contains(r.out, "1 warning(s) above") || !strings.Contains(r.err, "Host address outside the VIPs' subnet") {
		t.Fatalf("text: %+v", r)
	}
	r = runCLI(t, nil, "validate", p, "--output", "json")
	var doc struct {
		OK       bool `json:"ok"`
		Warnings []struct {
			Severity, Summary, File string
			Line                    int
		} `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil || r.code != 0 || !doc.OK {
		t.Fatalf("json: %v %+v", err, r)
	}
	if len(doc.Warnings) != 1 || doc.Warnings[0].Severity != "warning" || doc.Warnings[0].File != p || doc.Warnings[0].Line != 43 {
		t.Errorf("warnings = %+v", doc.Warnings)
	}
	r = runCLI(t, nil, "validate", prod, "--output", "json")
	if !strings.Contains(r.out, `"warnings": []`) {
		t.Errorf("no warnings must be [], got:\n%s", r.out)
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

// TestSecretsMaskedInSnippets: whatever form auth_pass takes, a diagnostic
// on it shows its place but not its value.
func TestSecretsMaskedInSnippets(t *testing.T) {
	src, err := os.ReadFile(prod)
	if err != nil {
		t.Fatal(err)
	}
	const orig = `auth_pass       = "1111"`
	for _, tc := range []struct{ name, value, secret string }{
		{"heredoc", "<<EOT\nSecr3tTailLong\nEOT", "Secr3tTail"},
		{"escaped quote", `"ab\"Secr3tTail"`, "Secr3tTail"},
		{"interpolation", `"${"x"}toolongSecr3t"`, "toolongSecr3t"},
		{"list", `["Secr3tTail", "Other5ecret"]`, "Secr3tTail"},
		{"unterminated", `"Secr3tTail`, "Secr3tTail"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(string(src), orig) {
				t.Fatalf("%s has no %s", prod, orig)
			}
			p := filepath.Join(t.TempDir(), "inv.hcl")
			bad := strings.Replace(string(src), orig, "auth_pass = "+tc.value, 1)
			if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
				t.Fatal(err)
			}
			r := runCLI(t, []string{"NO_COLOR=1"}, "validate", "-i", p)
			if r.code != ExitUsage {
				t.Fatalf("exit %d, want 2: %+v", r.code, r)
			}
			if !strings.Contains(r.err, "auth_pass = ") {
				t.Fatalf("no snippet of the auth_pass line:\n%s", r.err)
			}
			for _, s := range []string{tc.secret, "Other5ecret", "Secr3t"} {
				if strings.Contains(r.err, s) {
					t.Errorf("secret fragment %q printed:\n%s", s, r.err)
				}
			}
		})
	}
}

func TestMaskSecretsKeepsLayout(t *testing.T) {
	src := "a = 1\nauth_pass = <<EOT\nabc\nEOT\nb = [\"x\"] # auth_pass = \"y\"\nc { auth_pass = [\"p\",\n \"q\"] }\n"
	got := string(maskSecrets([]byte(src), "x.hcl"))
	want := "a = 1\nauth_pass = <<EOT\n***\nEOT\nb = [\"x\"] # auth_pass = \"y\"\nc { auth_pass = *\"*\"*\n \"*\"* }\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestRenderReplacesNeverWritesThrough: a symlink planted where a secret
// goes and a pre-existing world-writable file are replaced, not written
// through; a symlinked directory leading out of DIR is refused.
func TestRenderReplacesNeverWritesThrough(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	const conf = "master-node/etc/keepalived/keepalived.conf"
	const site = "slave-node-1/etc/nginx/conf.d/hactl.conf"
	for _, d := range []string{filepath.Dir(conf), filepath.Dir(site)} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	target := filepath.Join(outside, "stolen")
	if err := os.WriteFile(target, []byte("before\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, conf)); err != nil {
		t.Fatal(err)
	}
	// A pre-existing 0666 file, and a hard link that sees every write to it.
	old := filepath.Join(dir, "slave-node-2/etc/keepalived/keepalived.conf")
	if err := os.MkdirAll(filepath.Dir(old), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old, []byte("old\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(old, 0o666); err != nil {
		t.Fatal(err)
	}
	watcher := filepath.Join(outside, "watcher")
	if err := os.Link(old, watcher); err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, nil, "render", "-i", prod, "-o", dir)
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	if b, _ := os.ReadFile(target); string(b) != "before\n" {
		t.Errorf("written through the planted symlink: %q", b)
	}
	if b, _ := os.ReadFile(watcher); string(b) != "old\n" {
		t.Errorf("the pre-existing file was written in place: %q", b)
	}
	for _, p := range []string{conf, "slave-node-2/etc/keepalived/keepalived.conf"} {
		st, err := os.Lstat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, want a regular 0600 file", p, st.Mode())
		}
	}
	for _, d := range []string{"master-node", "master-node/etc", "master-node/etc/keepalived", "slave-node-1/etc/nginx/conf.d"} {
		if st, err := os.Stat(filepath.Join(dir, d)); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want a 0700 directory", d, st.Mode(), err)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*/etc/keepalived/.*"))
	if len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}

	// A symlinked directory that leads out of DIR: refused, nothing written there.
	dir2 := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir2, "master-node"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir2, "master-node", "etc")); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, nil, "render", "-i", prod, "-o", dir2)
	if r.code != ExitFailed || !strings.Contains(r.err, "master-node/etc") {
		t.Errorf("symlinked directory: exit %d, want 1 naming it: %s", r.code, r.err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 2 {
		t.Errorf("something was written outside DIR: %v", ents)
	}
}
