//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hactl/hactl/e2e/labkit"
)

// nftTable is the bridge-family table the test adds to drop VRRP multicast
// between the lab hosts (ports of hactl0); it is always deleted again.
const nftTable = "hactl_test"

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// blockMulticastVRRP drops VRRP adverts to 224.0.0.18 between the ports of
// hactl0 (what a cloud network or a switch without multicast does). Unicast
// VRRP, also IP protocol 112, still passes. Returns a func reading the
// rule's packet counter.
func blockMulticastVRRP(t *testing.T) func() int {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft missing: make test-deps installs nftables (as root, with apt-get)")
	}
	_ = exec.Command("nft", "delete", "table", "bridge", nftTable).Run()
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "bridge", nftTable).Run() })
	run(t, "nft", "add", "table", "bridge", nftTable)
	run(t, "nft", "add", "chain", "bridge", nftTable, "hactl_fwd", "{ type filter hook forward priority 0; }")
	run(t, "nft", "add", "rule", "bridge", nftTable, "hactl_fwd",
		// The lab hosts' bridge ports are hactl-lab<i> (this kernel has no
		// meta ibrname in the bridge family).
		"iifname", "hactl-lab*", "ip", "daddr", "224.0.0.18", "ip", "protocol", "vrrp", "counter", "drop")
	re := regexp.MustCompile(`counter packets (\d+)`)
	return func() int {
		m := re.FindStringSubmatch(run(t, "nft", "list", "table", "bridge", nftTable))
		if m == nil {
			return -1
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
}

func writeInventory(t *testing.T, src, name string, edits ...string) string {
	t.Helper()
	for i := 0; i+1 < len(edits); i += 2 {
		mod := strings.Replace(src, edits[i], edits[i+1], 1)
		if mod == src {
			t.Fatalf("inventory edit %q did not apply", edits[i])
		}
		src = mod
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type statusDoc struct {
	VIPs []struct {
		VIP     string   `json:"vip"`
		Holders []string `json:"holders"`
		Claims  []string `json:"vrrp_masters"`
		State   string   `json:"state"`
	} `json:"vips"`
	Hosts []struct {
		Name      string `json:"name"`
		Reachable bool   `json:"reachable"`
		Error     string `json:"error"`
	} `json:"hosts"`
}

// TestNetwork covers networks that are not one friendly LAN: VRRP multicast
// filtered (the all-MASTER symptom, then unicast as the fix) and hosts the
// control machine reaches only through a jump host.
func TestNetwork(t *testing.T) {
	lab := labkit.Fresh(t, 3)
	inv := lab.InventoryPath()
	src, err := os.ReadFile(inv)
	if err != nil {
		t.Fatal(err)
	}
	masters := map[string]string{labkit.VIP(1): "lab1", labkit.VIP(2): "lab2", labkit.VIP(3): "lab3"}

	t.Run("multicast blocked: split detected, unicast converges", func(t *testing.T) {
		dropped := blockMulticastVRRP(t)

		start := time.Now()
		out, errOut, code := hactl(t, "apply", "-i", inv, "--output", "json")
		t.Logf("multicast apply with VRRP multicast dropped: exit %d in %s", code, time.Since(start).Round(100*time.Millisecond))
		if code != 1 {
			t.Fatalf("apply exit %d, want 1 (VIPs cannot settle)\n%s\n%s", code, out, errOut)
		}
		if !strings.Contains(out+errOut, "multicast") || !strings.Contains(out+errOut, "unicast") {
			t.Errorf("apply does not explain multicast/unicast:\n%s\n%s", out, errOut)
		}
		var split map[string][]string
		waitFor(t, "a VIP on several hosts", 15*time.Second, func() bool {
			split = vipHolders(t, lab)
			for _, hs := range split {
				if len(hs) > 1 {
					return true
				}
			}
			return false
		})
		t.Logf("VIP holders with multicast dropped (ip addr over plain SSH): %v", split)
		if n := dropped(); n <= 0 {
			t.Errorf("the nft rule dropped %d packets: it does not do what the test assumes", n)
		}

		out, errOut, code = hactl(t, "status", "-i", inv)
		if code != 1 || !strings.Contains(out, "split") || !strings.Contains(out, "multicast") ||
			!strings.Contains(out, `vrrp_transport = "unicast"`) {
			t.Fatalf("status exit %d, want 1 with split and the multicast/unicast hint:\n%s\n%s", code, out, errOut)
		}
		out, _, _ = hactl(t, "status", "-i", inv, "--output", "json")
		var st statusDoc
		decode(t, out, &st)
		for _, v := range st.VIPs {
			t.Logf("status: %s state %s holders %v keepalived MASTER on %v", v.VIP, v.State, v.Holders, v.Claims)
			if v.State != "split" || len(v.Claims) != 3 {
				t.Errorf("%s: state %s claims %v, want split claimed by all 3", v.VIP, v.State, v.Claims)
			}
		}

		uni := writeInventory(t, string(src), "unicast.hcl",
			"  advert_int             = 1\n", "  advert_int             = 1\n  vrrp_transport         = \"unicast\"\n")
		start = time.Now()
		out, errOut, code = hactl(t, "apply", "-i", uni, "--output", "json")
		t.Logf("unicast apply on the split cluster: exit %d in %s", code, time.Since(start).Round(100*time.Millisecond))
		// A transport switch cannot be rolled out host by host (hosts on
		// different transports cannot hear each other): hactl says so, does
		// not wait per host, and verifies the whole cluster at the end.
		if code != 0 || !strings.Contains(errOut, "switches VRRP transport multicast → unicast") {
			t.Fatalf("unicast apply exit %d, want 0 with the transport-switch note\n%s\n%s", code, out, errOut)
		}
		holders := vipHolders(t, lab)
		for vip, m := range masters {
			if got := holders[vip]; len(got) != 1 || got[0] != m {
				t.Errorf("unicast: VIP %s on %v, want only %s", vip, got, m)
			}
		}
		if got := ssh(t, lab, "lab2", "grep -c unicast_src_ip /etc/keepalived/keepalived.conf"); got != "3" {
			t.Errorf("lab2 keepalived.conf has %s unicast_src_ip lines", got)
		}
		if out, errOut, code := hactl(t, "status", "-i", uni); code != 0 {
			t.Errorf("status on unicast exit %d\n%s\n%s", code, out, errOut)
		}

		out, errOut, code = hactl(t, "failover-test", "-i", uni, "--mode", "stop", "--output", "json")
		var ft struct {
			Scenarios []struct {
				Node, VIP      string
				MovedTo        string  `json:"moved_to"`
				Drift          float64 `json:"drift_s"`
				Bound          float64 `json:"bound_s"`
				Failed         int     `json:"http_failed"`
				Requests       int     `json:"http_requests"`
				Failback       float64 `json:"failback_s"`
				Pass, Restored bool
				Error          string
			} `json:"scenarios"`
		}
		decode(t, out, &ft)
		for _, s := range ft.Scenarios {
			t.Logf("unicast stop %s: %s moved to %s drift %.2fs (bound %.2fs) http %d/%d failed, failback %.2fs pass=%v %s",
				s.Node, s.VIP, s.MovedTo, s.Drift, s.Bound, s.Failed, s.Requests, s.Failback, s.Pass, s.Error)
		}
		if code != 0 || len(ft.Scenarios) != 3 {
			t.Fatalf("failover-test exit %d, %d scenarios\n%s", code, len(ft.Scenarios), errOut)
		}
		before := dropped()
		time.Sleep(2 * time.Second)
		if after := dropped(); after != before {
			t.Errorf("unicast cluster still sends multicast adverts (%d -> %d dropped)", before, after)
		}
		run(t, "nft", "delete", "table", "bridge", nftTable)
	})

	t.Run("lab2 and lab3 only through lab1 as jump host", func(t *testing.T) {
		for _, h := range []string{"lab2", "lab3"} {
			run(t, "ip", "netns", "exec", lab.Netns(h), "ip", "route", "add", "blackhole", "198.18.0.1/32")
			t.Cleanup(func() {
				_ = exec.Command("ip", "netns", "exec", lab.Netns(h), "ip", "route", "del", "blackhole", "198.18.0.1/32").Run()
			})
		}
		h2, _ := lab.Host("lab2")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := lab.SSH(ctx, h2, "true")
		cancel()
		if err == nil {
			t.Fatal("lab2 still answers the control machine directly: the test proves nothing")
		}
		// An empty ssh_config keeps the machine's own ~/.ssh/config out.
		empty := filepath.Join(t.TempDir(), "ssh_config")
		if err := os.WriteFile(empty, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		jump := "\n    ssh {\n      jump_host = \"root@198.18.0.11:22\"\n    }"
		// Same transport as the previous subtest (unicast), a changed check
		// interval so that every host has work to do.
		jinv := writeInventory(t, string(src), "jump.hcl",
			"  advert_int             = 1\n", "  advert_int             = 1\n  vrrp_transport         = \"unicast\"\n",
			"interval = 2", "interval = 3",
			`    address = "198.18.0.12"`, `    address = "198.18.0.12"`+jump,
			`    address = "198.18.0.13"`, `    address = "198.18.0.13"`+jump)
		start := time.Now()
		out, errOut, code := hactl(t, "apply", "-i", jinv, "--output", "json", "--ssh-config", empty)
		t.Logf("apply (check interval 2 -> 3) with lab2/lab3 through the jump host: exit %d in %s", code, time.Since(start).Round(100*time.Millisecond))
		if code != 0 {
			t.Fatalf("apply through the jump host exit %d\n%s\n%s", code, out, errOut)
		}
		var doc applyDoc
		decode(t, out, &doc)
		for _, h := range doc.Hosts {
			if !h.OK || h.Changed == 0 {
				t.Errorf("host %+v: want converged with changes", h)
			}
		}
		for _, v := range doc.VIPs {
			if v.State != "ok" {
				t.Errorf("VIP %+v", v)
			}
		}

		// ProxyJump from an ssh_config works the same (inventory silent).
		cfg := filepath.Join(t.TempDir(), "ssh_config")
		if err := os.WriteFile(cfg, []byte("Host lab2 198.18.0.13\n  ProxyJump root@198.18.0.11\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, errOut, code := hactl(t, "status", "-i", inv, "--ssh-config", cfg); code != 0 {
			t.Errorf("status with ProxyJump from ssh_config: exit %d\n%s\n%s", code, out, errOut)
		}

		// The bastion's key is verified like any other: without its line in
		// known_hosts, lab2 and lab3 are refused (and lab1 too, directly).
		kh, err := os.ReadFile(lab.KnownHostsPath())
		if err != nil {
			t.Fatal(err)
		}
		var keep []string
		for _, l := range strings.Split(string(kh), "\n") {
			if !strings.HasPrefix(l, "198.18.0.11 ") {
				keep = append(keep, l)
			}
		}
		nokh := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(nokh, []byte(strings.Join(keep, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		bad := writeInventory(t, readFile(t, jinv), "nokh.hcl", lab.KnownHostsPath(), nokh)
		out, errOut, code = hactl(t, "status", "-i", bad, "--output", "json", "--ssh-config", empty)
		var st statusDoc
		decode(t, out, &st)
		if code != 1 {
			t.Errorf("status with the bastion's key unknown: exit %d, want 1", code)
		}
		for _, h := range st.Hosts {
			if h.Reachable || !strings.Contains(h.Error, "host key not in") {
				t.Errorf("%s reachable=%v error %q: want refused for the unknown key", h.Name, h.Reachable, h.Error)
			}
			if h.Name != "lab1" && !strings.Contains(h.Error, "jump host 198.18.0.11") {
				t.Errorf("%s: error does not name the jump host: %s", h.Name, h.Error)
			}
		}
		if b, _ := os.ReadFile(nokh); strings.Contains(string(b), "198.18.0.11 ") {
			t.Errorf("the bastion's key was recorded without --accept-new-host-keys")
		}
	})
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
