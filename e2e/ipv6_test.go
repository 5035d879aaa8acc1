//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hactl/hactl/e2e/labkit"
)

// The lab's IPv6 addresses (lab.sh): host i = 2001:db8:18::1i, its VIP ::20i.
func addr6(i int) string { return fmt.Sprintf("2001:db8:18::1%d", i) }
func vip6(i int) string  { return fmt.Sprintf("2001:db8:18::20%d", i) }

// holdersBy reads `ip -4|-6 -o addr show dev eth0` on every host over plain
// SSH (not through hactl) and returns, for each of vips, the hosts holding it.
func holdersBy(t *testing.T, lab *labkit.Lab, family string, vips []string) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[string][]string{}
	for _, h := range lab.Hosts {
		s, err := lab.SSH(ctx, h, "ip "+family+" -o addr show dev eth0")
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		for _, v := range vips {
			if strings.Contains(s, " "+v+"/") {
				out[v] = append(out[v], h.Name)
			}
		}
	}
	return out
}

// onMastersOnly checks that VIP i of each list is on lab<i> and nowhere else.
func onMastersOnly(t *testing.T, lab *labkit.Lab, when, family string, vips []string) {
	t.Helper()
	got := holdersBy(t, lab, family, vips)
	for i, v := range vips {
		if h := got[v]; len(h) != 1 || h[0] != fmt.Sprintf("lab%d", i+1) {
			t.Errorf("%s: %s on %v, want only lab%d (ip %s addr)", when, v, h, i+1, family)
		}
	}
}

// curlNode asks url with curl -g (brackets are an IPv6 literal, not a glob)
// from this machine and returns the X-Hactl-Node header.
func curlNode(t *testing.T, url string) string {
	t.Helper()
	out, err := exec.Command("curl", "-g", "-sS", "--noproxy", "*", "-m", "3", "-o", "/dev/null", "-D", "-", url).CombinedOutput()
	if err != nil {
		t.Fatalf("curl -g %s: %v\n%s", url, err, out)
	}
	m := regexp.MustCompile(`(?im)^X-Hactl-Node:\s*(\S+)`).FindStringSubmatch(string(out))
	if m == nil || !strings.HasPrefix(string(out), "HTTP/1.1 200") {
		t.Fatalf("curl -g %s: no 200 with X-Hactl-Node:\n%s", url, out)
	}
	return m[1]
}

// failoverTest runs failover-test with mode on every node and checks that
// every scenario passed (failoverPassing); n scenarios are expected, and a
// dual-stack run reports both addresses of every pair.
func failoverTest(t *testing.T, inv, mode string, n int, dual bool) {
	t.Helper()
	for _, s := range failoverPassing(t, inv, mode, n) {
		if s.Requests == 0 || (dual && s.VIP6 == "") {
			t.Errorf("%s %s: %v", s.Node, s.Mode, s)
		}
	}
}

func applyOK(t *testing.T, inv string) {
	t.Helper()
	start := time.Now()
	out, errOut, code := hactl(t, "apply", "-i", inv, "--output", "json")
	if code != 0 {
		t.Fatalf("apply exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("cold apply of 3 hosts: %s", time.Since(start).Round(10*time.Millisecond))
	var doc applyDoc
	decode(t, out, &doc)
	for _, h := range doc.Hosts {
		if !h.OK || h.Changed == 0 {
			t.Errorf("host %+v", h)
		}
	}
}

// TestIPv6DualStack: a dual-stack cluster (vip 198.18.0.20i/24 + vip6
// 2001:db8:18::20i/64) on a 3-host lab: TestHactl's, handed on applied
// (labkit.Reuse), or a fresh one. The IPv4 instances stay VRRPv2 (the IPv6
// VIP rides along as an excluded address), so the apply that adds the
// IPv6 VIPs to an applied lab never has hosts on two VRRP versions.
func TestIPv6DualStack(t *testing.T) {
	lab := labkit.Reuse(t, 3)
	inv := filepath.Join(lab.Dir, "lab-dualstack.hcl")
	v4 := []string{labkit.VIP(1), labkit.VIP(2), labkit.VIP(3)}
	v6 := []string{vip6(1), vip6(2), vip6(3)}

	t.Run("lab IPv6 network", func(t *testing.T) {
		// What lab.sh sets up: the sysctls in the host's netns, the address
		// without DAD, no route out of the lab, host keys for both addresses.
		want := "0 0 1"
		if got := ssh(t, lab, "lab2", "cd /proc/sys/net/ipv6/conf/eth0 && echo $(cat accept_dad accept_ra keep_addr_on_down)"); got != want {
			t.Errorf("lab2 eth0 accept_dad accept_ra keep_addr_on_down = %q, want %q", got, want)
		}
		if got := ssh(t, lab, "lab2", "ip -6 -o addr show dev eth0 scope global"); !strings.Contains(got, addr6(2)+"/64") || strings.Contains(got, "tentative") {
			t.Errorf("lab2 IPv6 address: %q", got)
		}
		if got := ssh(t, lab, "lab2", "ip -6 route show default; ip -6 route show | grep -v -e '^2001:db8:18::/64 ' -e '^fe80::/64 ' || true"); got != "" {
			t.Errorf("lab2 has IPv6 routes out of the lab: %q", got)
		}
		kh := readFile(t, lab.KnownHostsPath())
		for i := 1; i <= 3; i++ {
			if !strings.Contains(kh, "\n"+addr6(i)+" ssh-ed25519 ") && !strings.HasPrefix(kh, addr6(i)+" ") {
				t.Errorf("known_hosts has no line for %s", addr6(i))
			}
		}
	})

	t.Run("apply places every address on its master only", func(t *testing.T) {
		applyOK(t, inv)
		onMastersOnly(t, lab, "after apply", "-4", v4)
		onMastersOnly(t, lab, "after apply", "-6", v6)
		for i := range v6 {
			url := "http://[" + v6[i] + "]/"
			if got := curlNode(t, url); got != fmt.Sprintf("lab%d", i+1) {
				t.Errorf("%s answered from %s, want lab%d", url, got, i+1)
			}
		}
		t.Logf("lab1 keepalived.conf:\n%s", ssh(t, lab, "lab1", "cat /etc/keepalived/keepalived.conf"))
		status, _, code := hactl(t, "status", "-i", inv)
		t.Logf("hactl status (exit %d):\n%s", code, status)
		if code != 0 {
			t.Errorf("status exit %d", code)
		}
	})

	t.Run("failover-test all modes moves each pair together", func(t *testing.T) {
		failoverTest(t, inv, "all", 15, true)
		onMastersOnly(t, lab, "after the failover test", "-4", v4)
		onMastersOnly(t, lab, "after the failover test", "-6", v6)
	})
}

// TestIPv6Only: a cluster whose addresses and VIPs are all IPv6 (SSH over
// IPv6, VRRPv3) on a fresh 3-host lab.
func TestIPv6Only(t *testing.T) {
	lab := labkit.Fresh(t, 3)
	inv := filepath.Join(lab.Dir, "lab-ipv6.hcl")
	v6 := []string{vip6(1), vip6(2), vip6(3)}

	t.Run("apply over IPv6", func(t *testing.T) {
		applyOK(t, inv)
		onMastersOnly(t, lab, "after apply", "-6", v6)
		if got := curlNode(t, "http://["+v6[0]+"]/"); got != "lab1" {
			t.Errorf("VIP6 1 answered from %s", got)
		}
		// The lab's SSH over IPv6 with the known_hosts lab.sh wrote.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := lab.SSH(ctx, labkit.Host{Name: "lab1", Addr: addr6(1)}, "hostname"); err != nil || strings.TrimSpace(out) != "lab1" {
			t.Errorf("ssh over IPv6: %q %v", out, err)
		}
		conf := ssh(t, lab, "lab1", "cat /etc/keepalived/keepalived.conf")
		t.Logf("lab1 keepalived.conf:\n%s", conf)
		if !strings.Contains(conf, "vrrp_version 3") {
			t.Error("an IPv6 instance without vrrp_version 3")
		}
	})

	t.Run("failover-test stop", func(t *testing.T) {
		failoverTest(t, inv, "stop", 3, false)
		onMastersOnly(t, lab, "after the failover test", "-6", v6)
	})
}
