package render

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hactl/hactl/internal/golden"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/vrrp"
)

var update = flag.Bool("update", false, "rewrite golden files")

func load(t *testing.T, path string, src []byte) (*inventory.Inventory, *vrrp.Layout) {
	t.Helper()
	l := inventory.NewLoader(inventory.Options{LookupEnv: func(string) (string, bool) { return "", false }})
	var inv *inventory.Inventory
	if src == nil {
		i, d := l.LoadFile(path)
		if d.HasErrors() {
			t.Fatalf("load %s: %v", path, d)
		}
		inv = i
	} else {
		i, d := l.Load(path, src)
		if d.HasErrors() {
			t.Fatalf("load %s: %v", path, d)
		}
		inv = i
	}
	lay, d := vrrp.Build(inv)
	if d.HasErrors() {
		t.Fatalf("layout: %v", d)
	}
	return inv, lay
}

func renderAll(t *testing.T, inv *inventory.Inventory, l *vrrp.Layout) []File {
	t.Helper()
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	files, err := r.All(inv, l)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func goldenTree(t *testing.T, dir string, files []File) {
	t.Helper()
	for _, f := range files {
		golden.Check(t, filepath.Join("testdata", dir, f.Host, f.Path+".golden"), f.Content, *update)
	}
}

func TestGoldenProd(t *testing.T) {
	inv, l := load(t, "../../inventory/prod.hcl", nil)
	files := renderAll(t, inv, l)
	if len(files) != 15 {
		t.Fatalf("want 5 files × 3 hosts, got %d", len(files))
	}
	goldenTree(t, "prod", files)
}

func TestGoldenVariants(t *testing.T) {
	src, err := os.ReadFile("../../inventory/lab.hcl")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, old, new string }{
		{"lab-unicast-ring-v3", `advert_int             = 1`, "advert_int = 0.1\n  vrrp_transport = \"unicast\"\n  backup_order = \"ring\""},
		// The e2e's unicast cluster: the lab as shipped, VRRPv2, PASS auth.
		{"lab-unicast", `advert_int             = 1`, "advert_int             = 1\n  vrrp_transport         = \"unicast\""},
		{"lab-upstream", `listen = 80`, "listen = 8080\n    upstream = [\"198.18.0.50:8080\", \"app.internal:9000\"]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mod := strings.Replace(string(src), tc.old, tc.new, 1)
			if mod == string(src) {
				t.Fatalf("replacement %q did not apply", tc.old)
			}
			inv, l := load(t, tc.name+".hcl", []byte(mod))
			goldenTree(t, tc.name, renderAll(t, inv, l))
		})
	}
}

// TestSeedSemantics compares, VIP by VIP, the rendered keepalived.conf of each
// seed host with the seed's own three configs (testdata/seed, copied verbatim
// from the article).
func TestSeedSemantics(t *testing.T) {
	inv, l := load(t, "../../inventory/prod.hcl", nil)
	for _, f := range renderAll(t, inv, l) {
		if f.Path != KeepalivedConf {
			continue
		}
		t.Run(f.Host, func(t *testing.T) {
			seedSrc, err := os.ReadFile(filepath.Join("testdata/seed", f.Host+".conf"))
			if err != nil {
				t.Fatal(err)
			}
			want, wantScripts := semantics(t, string(seedSrc))
			got, gotScripts := semantics(t, string(f.Content))
			if len(want) != 3 {
				t.Fatalf("seed config parsed into %d instances", len(want))
			}
			for vip, w := range want {
				g, ok := got[vip]
				if !ok {
					t.Errorf("VIP %s missing from rendered config", vip)
					continue
				}
				if g != w {
					t.Errorf("VIP %s:\n seed     %+v\n rendered %+v", vip, w, g)
				}
			}
			if len(got) != len(want) {
				t.Errorf("rendered %d instances, seed has %d", len(got), len(want))
			}
			if fmt.Sprint(gotScripts) != fmt.Sprint(wantScripts) {
				t.Errorf("vrrp_script: seed %+v, rendered %+v", wantScripts, gotScripts)
			}
			root := parseKeepalived(t, string(f.Content))
			// The seed copy-pastes "router_id slave-node" onto two hosts; hactl uses the host name.
			if got := root.child("global_defs").arg("router_id"); got != f.Host {
				t.Errorf("router_id = %q, want %q", got, f.Host)
			}
		})
	}
}

func TestModesAndOwners(t *testing.T) {
	inv, l := load(t, "../../inventory/prod.hcl", nil)
	want := map[string]os.FileMode{
		KeepalivedConf: 0o600, CheckScript: 0o755, NotifyScript: 0o755, NginxSite: 0o644, KeepalivedDrop: 0o644,
	}
	for _, f := range renderAll(t, inv, l) {
		if f.Mode != want[f.Path] || f.Owner != "root" || f.Group != "root" {
			t.Errorf("%s %s: mode %o owner %s:%s", f.Host, f.Path, f.Mode, f.Owner, f.Group)
		}
		if f.Sensitive != (f.Path == KeepalivedConf) {
			t.Errorf("%s: sensitive=%v", f.Path, f.Sensitive)
		}
		if f.Path != KeepalivedConf && bytes.Contains(f.Content, []byte("1111")) {
			t.Errorf("%s contains the auth_pass", f.Path)
		}
	}
}

func TestMask(t *testing.T) {
	inv, l := load(t, "../../inventory/prod.hcl", nil)
	for _, f := range renderAll(t, inv, l) {
		if f.Path != KeepalivedConf {
			continue
		}
		m := string(Mask(f, f.Content))
		if strings.Contains(m, "auth_pass 1111") || !strings.Contains(m, "auth_pass (sensitive)") {
			t.Fatalf("masking failed:\n%s", m)
		}
		if strings.Count(m, "(sensitive)") != 3 {
			t.Fatalf("want 3 masked lines")
		}
	}
}

func TestNotifyInterfaceMatchesVIP(t *testing.T) {
	inv, l := load(t, "../../inventory/prod.hcl", nil)
	for _, f := range renderAll(t, inv, l) {
		switch f.Path {
		case NotifyScript:
			if !strings.Contains(string(f.Content), "\nIFACE=ens192\n") {
				t.Errorf("%s: clean_arp.sh does not use the VIP's interface", f.Host)
			}
		case CheckScript:
			s := string(f.Content)
			if !strings.Contains(s, "pgrep -x nginx") || strings.Contains(s, "\npidof") || strings.Contains(s, " pidof ") {
				t.Errorf("%s: check script must use pgrep -x, not pidof", f.Host)
			}
		case KeepalivedDrop:
			for _, vip := range []string{"10.11.7.235/24", "10.11.7.236/24", "10.11.7.237/24"} {
				if !strings.Contains(string(f.Content), "ExecStopPost=-/sbin/ip -4 addr del "+vip+" dev ens192") {
					t.Errorf("%s: drop-in does not clean %s", f.Host, vip)
				}
			}
		}
	}
}

// TestScriptsSyntax runs sh -n on the rendered scripts: a syntax error would
// only show on a real takeover.
func TestScriptsSyntax(t *testing.T) {
	inv, l := load(t, "../../inventory/prod.hcl", nil)
	for _, f := range renderAll(t, inv, l) {
		if !strings.HasSuffix(f.Path, ".sh") {
			continue
		}
		cmd := exec.Command("sh", "-n")
		cmd.Stdin = bytes.NewReader(f.Content)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s %s: %v\n%s", f.Host, f.Path, err, out)
		}
	}
}
