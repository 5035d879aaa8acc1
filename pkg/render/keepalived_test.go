package render

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeepalivedConfigTest runs the real `keepalived -t` on rendered configs.
// keepalived warns about interfaces that do not exist, so each config is
// tested inside a throwaway network namespace that has the cluster's NIC, and
// /etc/keepalived is replaced by the rendered files in a private mount
// namespace (the scripts' ownership and modes are checked by
// enable_script_security). Any output or non-zero exit fails the test.
func TestKeepalivedConfigTest(t *testing.T) {
	bin, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("keepalived is not installed on this machine (apt-get install keepalived to run this test)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	lab, err := os.ReadFile("../../inventory/lab.hcl")
	if err != nil {
		t.Fatal(err)
	}
	v3 := strings.Replace(string(lab), `advert_int             = 1`, "advert_int = 0.1\n vrrp_transport = \"unicast\"", 1)
	ds, err := os.ReadFile(dualStackInventory)
	if err != nil {
		t.Fatal(err)
	}
	v6, err := os.ReadFile(ipv6Inventory)
	if err != nil {
		t.Fatal(err)
	}
	dsUnicast := strings.Replace(string(ds), `advert_int             = 1`, "advert_int = 1\n vrrp_transport = \"unicast\"", 1)
	for _, tc := range []struct {
		name  string
		src   []byte
		iface string
	}{
		{"prod", nil, "ens192"},
		{"lab-v3-unicast", []byte(v3), "eth0"},
		{"lab-dualstack", ds, "eth0"},
		{"lab-dualstack-unicast", []byte(dsUnicast), "eth0"},
		{"lab-ipv6", v6, "eth0"},
		{"lab-ipv6-unicast", ipv6Unicast(t, v6), "eth0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "../../inventory/prod.hcl"
			if tc.src != nil {
				path = tc.name + ".hcl"
			}
			inv, l := load(t, path, tc.src)
			files := renderAll(t, inv, l)
			host := files[0].Host
			ns := fmt.Sprintf("hactl-kt-%d", os.Getpid())
			run(t, "ip", "netns", "add", ns)
			t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
			run(t, "ip", "netns", "exec", ns, "ip", "link", "add", tc.iface, "type", "veth", "peer", "name", "peer0")
			run(t, "ip", "netns", "exec", ns, "ip", "link", "set", tc.iface, "up")
			// The host's own address, as on a real host (nodad: usable at once).
			if a := inv.Hosts()[0].Address; a.Is6() {
				run(t, "ip", "netns", "exec", ns, "ip", "addr", "add", a.String()+"/64", "dev", tc.iface, "nodad")
			} else {
				run(t, "ip", "netns", "exec", ns, "ip", "addr", "add", a.String()+"/24", "dev", tc.iface)
			}

			dir := t.TempDir()
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if f.Host != host || filepath.Dir(f.Path) != "/etc/keepalived" {
					continue
				}
				p := filepath.Join(dir, filepath.Base(f.Path))
				if err := os.WriteFile(p, f.Content, f.Mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, f.Mode); err != nil {
					t.Fatal(err)
				}
			}
			script := fmt.Sprintf("mount --bind %s /etc/keepalived && exec %s -t -f /etc/keepalived/keepalived.conf", dir, bin)
			out, err := exec.Command("ip", "netns", "exec", ns, "unshare", "--mount", "sh", "-c", script).CombinedOutput()
			if err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Fatalf("keepalived -t on %s's config: %v\n%s", host, err, out)
			}
		})
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}
