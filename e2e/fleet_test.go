//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hactl/hactl/e2e/labkit"
)

// fleetInv writes an inventory of the lab's hosts named (lab<i> at
// 198.18.0.1<i>, VIP .20<i>) and returns its path.
func fleetInv(t *testing.T, lab *labkit.Lab, name string, hosts ...int) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "ssh {\n  user = \"root\"\n  private_key_file = %q\n  known_hosts_file = %q\n}\n\n", lab.KeyPath(), lab.KnownHostsPath())
	b.WriteString("cluster \"lab\" {\n  interface = \"eth0\"\n  gateway = \"198.18.0.1\"\n  advert_int = 1\n  virtual_router_id_base = 51\n  auth_pass = \"labpass1\"\n  nginx {\n    listen = 80\n  }\n")
	for _, i := range hosts {
		fmt.Fprintf(&b, "  host \"lab%d\" {\n    address = \"198.18.0.%d\"\n    vip = \"%s/24\"\n  }\n", i, 10+i, labkit.VIP(i))
	}
	b.WriteString("}\n")
	p := filepath.Join(t.TempDir(), name+".hcl")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var vridLine = regexp.MustCompile(`(?s)virtual_router_id (\d+).*?virtual_ipaddress \{\s*(\S+)`)

// vridsOn reads keepalived.conf over plain SSH: VIP → VRID ("" when the
// file is gone).
func vridsOn(t *testing.T, lab *labkit.Lab, host string) map[string]string {
	t.Helper()
	conf := ssh(t, lab, host, "cat /etc/keepalived/keepalived.conf 2>/dev/null || true")
	out := map[string]string{}
	for _, inst := range strings.Split(conf, "vrrp_instance ")[1:] {
		if m := vridLine.FindStringSubmatch(inst); m != nil {
			out[strings.TrimSuffix(m[2], "/24")] = m[1]
		}
	}
	return out
}

// checkVRIDs: every host that runs keepalived agrees on one VRID per VIP,
// no VRID carries two VIPs anywhere, and want (VIP → VRID) holds.
func checkVRIDs(t *testing.T, lab *labkit.Lab, want map[string]string) {
	t.Helper()
	byVIP, byVRID := map[string]string{}, map[string]string{}
	for _, h := range lab.Hosts {
		if ssh(t, lab, h.Name, "systemctl is-active keepalived || true") != "active" {
			continue
		}
		for vip, vrid := range vridsOn(t, lab, h.Name) {
			if v, ok := byVIP[vip]; ok && v != vrid {
				t.Errorf("%s: VIP %s on VRID %s here, %s elsewhere", h.Name, vip, vrid, v)
			}
			if v, ok := byVRID[vrid]; ok && v != vip {
				t.Errorf("%s: VRID %s carries %s here, %s elsewhere", h.Name, vrid, vip, v)
			}
			byVIP[vip], byVRID[vrid] = vrid, vip
		}
	}
	for vip, vrid := range want {
		if byVIP[vip] != vrid {
			t.Errorf("VIP %s on VRID %q, want %s (all: %v)", vip, byVIP[vip], vrid, byVIP)
		}
	}
	if len(byVIP) != len(want) {
		t.Errorf("VIPs configured %v, want %v", byVIP, want)
	}
}

// checkPlacement: each VIP of masters on its master only (plain ssh), and
// no other lab VIP anywhere.
func checkPlacement(t *testing.T, lab *labkit.Lab, masters map[string]string) {
	t.Helper()
	waitFor(t, "VIPs on their masters", 20*time.Second, func() bool {
		h := vipHolders(t, lab)
		for vip, m := range masters {
			if got := h[vip]; len(got) != 1 || got[0] != m {
				return false
			}
		}
		return len(h) == len(masters)
	})
}

// TestFleet: remove a host (plain apply refuses, --prune decommissions it),
// add a 4th host (existing VRIDs kept, its VIP on it), destroy (twice:
// the second is a no-op; then apply converges).
func TestFleet(t *testing.T) {
	lab := labkit.Fresh(t, 4)
	three := fleetInv(t, lab, "three", 1, 2, 3)
	noLab2 := fleetInv(t, lab, "no-lab2", 1, 3)
	withLab4 := fleetInv(t, lab, "with-lab4", 1, 3, 4)

	t.Run("apply three hosts", func(t *testing.T) {
		out, errOut, code := hactl(t, "apply", "-i", three)
		if code != 0 {
			t.Fatalf("apply exit %d\n%s\n%s", code, out, errOut)
		}
		checkPlacement(t, lab, map[string]string{labkit.VIP(1): "lab1", labkit.VIP(2): "lab2", labkit.VIP(3): "lab3"})
		checkVRIDs(t, lab, map[string]string{labkit.VIP(1): "51", labkit.VIP(2): "52", labkit.VIP(3): "53"})
		rec := ssh(t, lab, "lab3", "stat -c '%a %U' /etc/keepalived/hactl-cluster.json; cat /etc/keepalived/hactl-cluster.json")
		if !strings.HasPrefix(rec, "644 root") || !strings.Contains(rec, `"vrid": 52`) || strings.Contains(rec, "labpass1") {
			t.Errorf("record on lab3:\n%s", rec)
		}
	})

	t.Run("plan names the removed host", func(t *testing.T) {
		out, errOut, code := hactl(t, "plan", "-i", noLab2)
		t.Logf("plan without lab2 (exit %d):\n%s\n%s", code, out, errOut)
		if code != 0 || !strings.Contains(errOut, "lab2 (198.18.0.12) left the inventory") || !strings.Contains(out, "recorded") {
			t.Errorf("plan does not name lab2 or the recorded VRIDs")
		}
	})

	t.Run("plain apply refuses", func(t *testing.T) {
		before := ssh(t, lab, "lab3", "sha256sum /etc/keepalived/keepalived.conf")
		out, errOut, code := hactl(t, "apply", "-i", noLab2)
		t.Logf("apply without lab2 (exit %d):\n%s\n%s", code, out, errOut)
		if code != 1 || !strings.Contains(errOut, "lab2 (198.18.0.12)") || !strings.Contains(errOut, "hactl apply --prune") {
			t.Errorf("exit %d; want 1 naming lab2 and the fix", code)
		}
		if after := ssh(t, lab, "lab3", "sha256sum /etc/keepalived/keepalived.conf"); after != before {
			t.Error("the refused apply changed lab3's keepalived.conf")
		}
		if got := ssh(t, lab, "lab2", "systemctl is-active keepalived || true"); got != "active" {
			t.Errorf("lab2 keepalived %s after a refused apply", got)
		}
	})

	t.Run("apply --prune decommissions lab2", func(t *testing.T) {
		out, errOut, code := hactl(t, "apply", "-i", noLab2, "--prune")
		t.Logf("apply --prune (exit %d):\n%s\n%s", code, out, errOut)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		if got := ssh(t, lab, "lab2", "systemctl is-active keepalived; systemctl is-enabled keepalived; true"); got != "inactive\ndisabled" {
			t.Errorf("lab2 keepalived %q, want inactive and disabled", got)
		}
		if got := ssh(t, lab, "lab2", "ls /etc/keepalived/ /var/backups/hactl/ | tr '\\n' ' '"); strings.Contains(got, "keepalived.conf ") || !strings.Contains(got, "keepalived.conf.hactl-") {
			t.Errorf("lab2 files: %s", got)
		}
		checkPlacement(t, lab, map[string]string{labkit.VIP(1): "lab1", labkit.VIP(3): "lab3"})
		checkVRIDs(t, lab, map[string]string{labkit.VIP(1): "51", labkit.VIP(3): "53"})
		if _, _, code := hactl(t, "apply", "-i", noLab2); code != 0 {
			t.Errorf("apply after the prune: exit %d", code)
		}
		// status judges the recorded layout: lab3 on VRID 53, no drift.
		out, errOut, code = hactl(t, "status", "-i", noLab2, "--output", "json")
		var st struct {
			Hosts []struct {
				Name  string   `json:"name"`
				Drift []string `json:"drift"`
			} `json:"hosts"`
		}
		decode(t, out, &st)
		if code != 0 || len(st.Hosts) != 2 {
			t.Errorf("status after the prune: exit %d\n%s\n%s", code, out, errOut)
		}
		for _, h := range st.Hosts {
			if len(h.Drift) != 0 {
				t.Errorf("status after the prune: %s drifts: %v", h.Name, h.Drift)
			}
		}
	})

	t.Run("add a 4th host", func(t *testing.T) {
		out, errOut, code := hactl(t, "apply", "-i", withLab4)
		t.Logf("apply with lab4 (exit %d):\n%s\n%s", code, out, errOut)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		checkPlacement(t, lab, map[string]string{labkit.VIP(1): "lab1", labkit.VIP(3): "lab3", labkit.VIP(4): "lab4"})
		// 51 and 53 stay; lab2's 52 is free again after the prune.
		checkVRIDs(t, lab, map[string]string{labkit.VIP(1): "51", labkit.VIP(3): "53", labkit.VIP(4): "52"})
	})

	t.Run("destroy, destroy again, apply", func(t *testing.T) {
		if help, _, _ := hactl(t, "--help"); !strings.Contains(help, "destroy") {
			t.Skip("this build has no destroy command")
		}
		out, errOut, code := hactl(t, "plan", "-i", withLab4, "--destroy")
		t.Logf("plan --destroy (exit %d):\n%s\n%s", code, out, errOut)
		out, errOut, code = hactl(t, "destroy", "-i", withLab4)
		t.Logf("destroy (exit %d):\n%s\n%s", code, out, errOut)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		managed := "/etc/keepalived/keepalived.conf /etc/keepalived/check_nginx.sh /etc/keepalived/clean_arp.sh /etc/keepalived/hactl-cluster.json /etc/nginx/conf.d/hactl.conf /etc/systemd/system/keepalived.service.d/hactl.conf" +
			" /etc/keepalived/hactl_events.sh /etc/systemd/system/hactl-events.service /etc/hactl/events.conf"
		for _, h := range []string{"lab1", "lab3", "lab4"} {
			// The event recorder goes too: stopped, its unit file gone.
			if got := ssh(t, lab, h, "systemctl is-active keepalived; systemctl is-enabled keepalived; systemctl is-active hactl-events; for f in "+managed+"; do [ -e $f ] && echo $f; done; true"); got != "inactive\ndisabled\ninactive" {
				t.Errorf("%s after destroy: %q", h, got)
			}
		}
		if h := vipHolders(t, lab); len(h) != 0 {
			t.Errorf("VIPs still held after destroy: %v", h)
		}
		out, errOut, code = hactl(t, "destroy", "-i", withLab4, "--output", "json")
		var doc applyDoc
		decode(t, out, &doc)
		for _, h := range doc.Hosts {
			if !h.OK || h.Changed != 0 {
				t.Errorf("second destroy: %+v", h)
			}
		}
		if code != 0 {
			t.Errorf("second destroy exit %d: %s", code, errOut)
		}
		if out, errOut, code := hactl(t, "apply", "-i", withLab4); code != 0 {
			t.Fatalf("apply after destroy: exit %d\n%s\n%s", code, out, errOut)
		}
		checkPlacement(t, lab, map[string]string{labkit.VIP(1): "lab1", labkit.VIP(3): "lab3", labkit.VIP(4): "lab4"})
		// Destroyed, the cluster is new again: base + position.
		checkVRIDs(t, lab, map[string]string{labkit.VIP(1): "51", labkit.VIP(3): "52", labkit.VIP(4): "53"})
	})
}
