package playbook

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// ipv6Vars are what pkg/cli sets for lab1 of a cluster with IPv6 VIPs:
// dual-stack (IPv4 instances) or IPv6-only (IPv6 instances).
func ipv6Vars(ipv6Instances bool) map[string]string {
	v := labVars()
	v[VarIPv6] = "yes"
	v[VarVRRPIPv6] = map[bool]string{true: "yes", false: "no"}[ipv6Instances]
	return v
}

// TestIPv6Cluster runs the default book for lab1 of the dual-stack lab
// inventory on a fresh host of a Debian, an Ubuntu (ufw) and an EL
// (firewalld) release: ndisc6 is installed on Debian and Ubuntu and skipped
// on EL (EPEL only), ufw's IPv6 rules are checked first, firewalld's VRRP
// rich rule (no family) covers both. The transcripts are golden files
// (testdata/<release>-ipv6-first-apply.golden).
func TestIPv6Cluster(t *testing.T) {
	files := filesOf(t, filepath.Join("..", "inventory", "testdata", "lab-dualstack.hcl"))
	for _, name := range []string{"debian12", "ubuntu2204", "rocky9"} {
		t.Run(name, func(t *testing.T) {
			fx := fixtureNamed(t, name)
			h := newHost(fx)
			r := runBookWith(t, h, false, files, ipv6Vars(false))
			if err := r.results[0].Err; err != nil {
				t.Fatal(err)
			}
			tr := transcript(r.conn.Calls())
			steps := eventLog(r.events)
			goldenFile(t, name+"-ipv6-first-apply", tr+"\n"+steps)
			el := fx.PkgMgr != "apt-get"
			has := func(want bool, what, s, in string) {
				t.Helper()
				if strings.Contains(in, s) != want {
					t.Errorf("%s: want %v for %q", what, want, s)
				}
			}
			has(!el, "ndisc6 installed", "install 'ndisc6'", tr)
			has(!el, "ndisc6 step changed", "changed  ndisc6: installed ndisc6", steps)
			has(el, "ndisc6 skipped on EL without EPEL", "ndisc6: skipped: needs epel-release, which is not installed", steps)
			has(fx.Firewall == "ufw", "ufw IPv6 check", "RUN "+UfwIPv6Check+"\n", tr)
			has(fx.Firewall == "ufw", "ufw vrrp (IPv4 instances)", "RUN ufw allow to 224.0.0.18\n", tr)
			has(fx.Firewall == "firewalld", "firewalld rich rule", `--add-rich-rule='rule protocol value="vrrp" accept'`, tr)
			// The files are the dual-stack ones: nginx on [::] as well.
			if !strings.Contains(string(files["/etc/nginx/conf.d/hactl.conf"].Content), "[::]:80") {
				t.Error("dual-stack nginx site without [::]:80")
			}
			// The converged host plans nothing, ndisc6 included.
			h.mu.Lock()
			for p, f := range files {
				h.modes[p] = fmt.Sprintf("%o root root", f.Mode)
			}
			h.mu.Unlock()
			if p := runBookWith(t, h, true, files, ipv6Vars(false)); p.results[0].Err != nil || len(p.results[0].Changes) != 0 {
				t.Errorf("the converged host plans %+v (%v)", p.results[0].Changes, p.results[0].Err)
			}
		})
	}
}

// TestIPv6ELWithEPEL: where EPEL is configured (epel-release installed),
// ndisc6 comes from it; the package manager is asked only for ndisc6.
func TestIPv6ELWithEPEL(t *testing.T) {
	files := filesOf(t, filepath.Join("..", "inventory", "testdata", "lab-dualstack.hcl"))
	fx := fixtureNamed(t, "rocky9")
	// Not a real version: the fake only echoes it back.
	fx.Repo = map[string]string{"ndisc6": "epel-build", "epel-release": "9-7.el9"}
	for k, v := range fixtureNamed(t, "rocky9").Repo {
		fx.Repo[k] = v
	}
	fx.NeedsEPEL = append(fx.NeedsEPEL, "ndisc6")
	h := newHost(fx)
	h.pkgs["epel-release"] = "9-7.el9"
	r := runBookWith(t, h, false, files, ipv6Vars(false))
	if err := r.results[0].Err; err != nil {
		t.Fatal(err)
	}
	tr, steps := transcript(r.conn.Calls()), eventLog(r.events)
	if !strings.Contains(tr, "RUN dnf -q -y install 'ndisc6'\n") || !strings.Contains(steps, "changed  ndisc6: installed ndisc6") {
		t.Errorf("ndisc6 not installed from EPEL:\n%s\n%s", tr, steps)
	}
}

// TestUfwIPv6Instances: an IPv6-only cluster's VRRPv3 adverts go to
// ff02::12, and that is what ufw is told to admit.
func TestUfwIPv6Instances(t *testing.T) {
	files := filesOf(t, filepath.Join("..", "inventory", "testdata", "lab-ipv6.hcl"))
	h := newHost(fixtureNamed(t, "ubuntu2204"))
	r := runBookWith(t, h, false, files, ipv6Vars(true))
	if err := r.results[0].Err; err != nil {
		t.Fatal(err)
	}
	tr := transcript(r.conn.Calls())
	if !strings.Contains(tr, "RUN ufw allow to ff02::12\n") || strings.Contains(tr, "224.0.0.18") {
		t.Errorf("ufw rules for IPv6 instances:\n%s", tr)
	}
}

// TestUfwIPv6Off: ufw with IPV6=no would write IPv4 rules only; an IPv6
// cluster is refused before anything is added, with the fix.
func TestUfwIPv6Off(t *testing.T) {
	files := filesOf(t, filepath.Join("..", "inventory", "testdata", "lab-dualstack.hcl"))
	h := newHost(fixtureNamed(t, "ubuntu2204"))
	h.fail = map[string]int{"/etc/default/ufw": 1}
	r := runBookWith(t, h, false, files, ipv6Vars(false))
	err := r.results[0].Err
	if err == nil || !strings.Contains(err.Error(), "IPV6=yes") || !strings.Contains(err.Error(), "ufw reload") {
		t.Fatalf("want the IPV6=no refusal, got %v", err)
	}
	for _, c := range r.conn.Calls() {
		if strings.HasPrefix(c.Cmd, "ufw allow") {
			t.Errorf("a rule was added: %s", c.Cmd)
		}
	}
	// An IPv4-only cluster does not care.
	h2 := newHost(fixtureNamed(t, "ubuntu2204"))
	h2.fail = map[string]int{"/etc/default/ufw": 1}
	if r := runBook(t, h2, false); r.results[0].Err != nil {
		t.Errorf("IPv4 cluster refused: %v", r.results[0].Err)
	}
}
