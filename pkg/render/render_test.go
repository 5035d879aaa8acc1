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
	if len(files) != 33 {
		t.Fatalf("want 11 files × 3 hosts, got %d", len(files))
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

// TestGoldenIPv6 renders the dual-stack and IPv6-only lab inventories
// (pkg/inventory/testdata), and the IPv6-only one with unicast VRRP.
func TestGoldenIPv6(t *testing.T) {
	v6, err := os.ReadFile(ipv6Inventory)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		src        []byte
	}{
		{"lab-dualstack", dualStackInventory, nil},
		{"lab-ipv6", ipv6Inventory, nil},
		{"lab-ipv6-unicast", "lab-ipv6-unicast.hcl", ipv6Unicast(t, v6)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv, l := load(t, tc.path, tc.src)
			goldenTree(t, tc.name, renderAll(t, inv, l))
		})
	}
}

const (
	dualStackInventory = "../inventory/testdata/lab-dualstack.hcl"
	ipv6Inventory      = "../inventory/testdata/lab-ipv6.hcl"
)

func ipv6Unicast(t *testing.T, src []byte) []byte {
	t.Helper()
	mod := strings.Replace(string(src), `advert_int             = 1`, "advert_int             = 1\n  vrrp_transport         = \"unicast\"", 1)
	if mod == string(src) {
		t.Fatal("lab-ipv6.hcl: advert_int line not found")
	}
	return []byte(mod)
}

// TestIPv6Semantics: what the goldens show, stated once: one instance per
// host pair with the IPv6 VIP excluded (dual-stack, VRRPv2 with PASS auth),
// VRRPv3 without authentication for IPv6 instances, unicast peers of the
// instance's family, and nginx on [::] only where the cluster has IPv6.
func TestIPv6Semantics(t *testing.T) {
	v6src, err := os.ReadFile(ipv6Inventory)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		src        []byte
		check      func(t *testing.T, host string, conf *node, files map[string]string)
	}{
		{"dual-stack", dualStackInventory, nil, func(t *testing.T, host string, conf *node, files map[string]string) {
			if v := conf.child("global_defs").arg("vrrp_version"); v != "" {
				t.Errorf("dual-stack sets vrrp_version %s; its instances are IPv4 (VRRPv2)", v)
			}
			insts := conf.all("vrrp_instance")
			if len(insts) != 3 {
				t.Fatalf("%d instances, want one per host pair", len(insts))
			}
			for i, in := range insts {
				n := fmt.Sprint(201 + i)
				if got := in.child("virtual_ipaddress").Children[0].Key; got != "198.18.0."+n+"/24" {
					t.Errorf("%s: virtual_ipaddress %s", in.Args[0], got)
				}
				ex := in.child("virtual_ipaddress_excluded")
				if ex == nil || len(ex.Children) != 1 || ex.Children[0].Key != "2001:db8:18::"+n+"/64" {
					t.Errorf("%s: virtual_ipaddress_excluded %+v", in.Args[0], ex)
				}
				if in.child("authentication") == nil {
					t.Errorf("%s: VRRPv2 instance without PASS auth", in.Args[0])
				}
				want := "/etc/keepalived/clean_arp.sh 198.18.0." + n + " 198.18.0.1 2001:db8:18::" + n + " 2001:db8:18::1"
				if got := in.arg("notify_master"); got != want {
					t.Errorf("%s: notify_master %q, want %q", in.Args[0], got, want)
				}
			}
			if !strings.Contains(files[NginxSite], "listen 80 default_server;") || !strings.Contains(files[NginxSite], "listen [::]:80 default_server;") {
				t.Errorf("nginx site does not listen on both families:\n%s", files[NginxSite])
			}
			if !strings.Contains(files[KeepalivedDrop], "ExecStopPost=-/sbin/ip -6 addr del 2001:db8:18::203/64 dev eth0") ||
				!strings.Contains(files[KeepalivedDrop], "ExecStopPost=-/sbin/ip -4 addr del 198.18.0.203/24 dev eth0") {
				t.Errorf("drop-in does not remove both families:\n%s", files[KeepalivedDrop])
			}
		}},
		{"IPv6 unicast", "lab-ipv6-unicast.hcl", ipv6Unicast(t, v6src), func(t *testing.T, host string, conf *node, files map[string]string) {
			if v := conf.child("global_defs").arg("vrrp_version"); v != "3" {
				t.Errorf("IPv6 cluster: vrrp_version %q, want 3", v)
			}
			for _, in := range conf.all("vrrp_instance") {
				if in.child("authentication") != nil {
					t.Errorf("%s: VRRPv3 has no authentication; keepalived ignores the block with an error", in.Args[0])
				}
				if in.child("virtual_ipaddress_excluded") != nil {
					t.Errorf("%s: IPv6-only has nothing to exclude", in.Args[0])
				}
				src := in.arg("unicast_src_ip")
				peers := in.child("unicast_peer")
				if !strings.HasPrefix(src, "2001:db8:18::1") || peers == nil || len(peers.Children) != 2 {
					t.Fatalf("%s: unicast_src_ip %q peers %+v", in.Args[0], src, peers)
				}
				for _, p := range peers.Children {
					if !strings.HasPrefix(p.Key, "2001:db8:18::1") || p.Key == src {
						t.Errorf("%s: peer %s", in.Args[0], p.Key)
					}
				}
				if n := in.arg("notify_master"); !strings.HasSuffix(n, " 2001:db8:18::1") || strings.Count(n, " ") != 2 {
					t.Errorf("%s: notify_master %q", in.Args[0], n)
				}
			}
			if !strings.Contains(files[NginxSite], "listen [::]:80 default_server;") {
				t.Errorf("nginx site without [::]")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv, l := load(t, tc.path, tc.src)
			byHost := map[string]map[string]string{}
			for _, f := range renderAll(t, inv, l) {
				if byHost[f.Host] == nil {
					byHost[f.Host] = map[string]string{}
				}
				byHost[f.Host][f.Path] = string(f.Content)
			}
			for host, files := range byHost {
				t.Run(host, func(t *testing.T) { tc.check(t, host, parseKeepalived(t, files[KeepalivedConf]), files) })
			}
		})
	}
	// An IPv4-only cluster keeps the seed's nginx site: no [::] socket.
	inv, l := load(t, "../../inventory/prod.hcl", nil)
	for _, f := range renderAll(t, inv, l) {
		if f.Path == NginxSite && strings.Contains(string(f.Content), "[::]") {
			t.Errorf("%s: IPv4-only site listens on [::]", f.Host)
		}
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
		NginxDrop: 0o644, TrackScript: 0o755, ClusterRecord: 0o644,
		EventsScript: 0o755, EventsUnit: 0o644, EventsConf: 0o600,
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
	var files []File
	for _, p := range []string{"../../inventory/prod.hcl", dualStackInventory, ipv6Inventory} {
		inv, l := load(t, p, nil)
		files = append(files, renderAll(t, inv, l)...)
	}
	for _, f := range files {
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

// TestWebhookSecret: the webhook's secret header reaches only the 0600
// events.conf, and plans/diffs mask it.
func TestWebhookSecret(t *testing.T) {
	inv, l := load(t, "../../inventory/prod.hcl", nil)
	inv.Webhook = &inventory.Webhook{URL: "https://hooks.example.com/x", Header: "X-Token", Secret: inventory.NewSecret("t0ps3cret")}
	for _, f := range renderAll(t, inv, l) {
		has := bytes.Contains(f.Content, []byte("t0ps3cret"))
		if f.Path != EventsConf {
			if has {
				t.Errorf("%s holds the webhook secret", f.Path)
			}
			continue
		}
		if !has || f.Mode != 0o600 || !f.Sensitive {
			t.Errorf("events.conf: secret present=%v mode=%o sensitive=%v", has, f.Mode, f.Sensitive)
		}
		m := string(Mask(f, f.Content))
		if strings.Contains(m, "t0ps3cret") || !strings.Contains(m, "WEBHOOK_HEADER='X-Token: (sensitive)'") ||
			!strings.Contains(m, "WEBHOOK_URL='https://hooks.example.com/x'") {
			t.Errorf("masked events.conf:\n%s", m)
		}
	}
}
