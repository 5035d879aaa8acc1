package facts

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// debian12Fresh is the output of Script on a fresh Debian 12 lab host before
// hactl installed anything.
const debian12Fresh = `@@os
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
ID=debian
@@uid
0
@@systemd
yes
@@pkgmgr
apt-get
@@aptlists
0
@@packages
@@arping
@@keepalived
@@addrs
1: lo    inet 127.0.0.1/8 scope host lo\       valid_lft forever preferred_lft forever
2: eth0    inet 198.18.0.11/24 brd 198.18.0.255 scope global eth0\       valid_lft forever preferred_lft forever
1: lo    inet6 ::1/128 scope host noprefixroute \       valid_lft forever preferred_lft forever
2: eth0    inet6 2001:db8:18::11/64 scope global nodad \       valid_lft forever preferred_lft forever
2: eth0    inet6 2001:db8:18::99/64 scope global dadfailed tentative \       valid_lft forever preferred_lft forever
2: eth0    inet6 fe80::1c2d:3eff:fe4f:5a6b/64 scope link \       valid_lft forever preferred_lft forever
@@services
nginx	inactive	not-found
keepalived	inactive	not-found
@@files
/etc/keepalived/keepalived.conf	absent
/etc/nginx/sites-enabled/default	absent
@@end
`

const debian12Done = `@@os
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
VERSION_ID="12"
ID=debian
@@uid
0
@@systemd
yes
@@pkgmgr
apt-get
@@aptlists
3
@@packages
arping	2.23-1	installed
keepalived	1:2.2.7-1+b2	installed
nginx	1.22.1-9+deb12u1	installed
iputils-arping	3:20221126-1	config-files
@@arping
ARPing 2.23, by Thomas Habets <thomas@habets.se>
@@keepalived
Keepalived v2.2.7 (01/16,2022)
@@addrs
2: eth0@if7    inet 198.18.0.11/24 brd 198.18.0.255 scope global eth0\       valid_lft forever preferred_lft forever
2: eth0@if7    inet 198.18.0.201/24 scope global secondary eth0\       valid_lft forever preferred_lft forever
@@services
nginx	active	enabled
keepalived	active	enabled
@@files
/etc/keepalived/keepalived.conf	file	600 root root	0f3c5e8f6a2a9c0b1d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0
/etc/nginx/sites-enabled/default	link
@@end
`

func TestParseFresh(t *testing.T) {
	f, err := Parse(debian12Fresh)
	if err != nil {
		t.Fatal(err)
	}
	if f.OS.Family != "debian" || f.OS.VersionID != "12" || !f.Systemd || f.PackageManager != "apt-get" || !f.AptListsEmpty {
		t.Errorf("%+v", f)
	}
	if len(f.Packages) != 0 || f.Arping != "" || f.KeepalivedVersion != "" || f.KeepalivedConfigTest() {
		t.Errorf("fresh host has packages: %+v", f)
	}
	if err := f.CheckSupported("lab1"); err != nil {
		t.Error(err)
	}
	if err := f.CheckInterface("lab1", "eth0", netip.MustParseAddr("198.18.0.11")); err != nil {
		t.Error(err)
	}
	err = f.CheckInterface("lab1", "ens192", netip.MustParseAddr("198.18.0.11"))
	if err == nil || !strings.Contains(err.Error(), `no interface "ens192" with an address`) || !strings.Contains(err.Error(), "eth0, lo") {
		t.Errorf("missing interface: %v", err)
	}
	err = f.CheckInterface("lab1", "eth0", netip.MustParseAddr("198.18.0.99"))
	if err == nil || !strings.Contains(err.Error(), "does not carry") {
		t.Errorf("wrong address: %v", err)
	}
	// An IPv6 `address` is found like an IPv4 one; one that failed DAD is
	// not held.
	if err := f.CheckInterface("lab1", "eth0", netip.MustParseAddr("2001:db8:18::11")); err != nil {
		t.Error(err)
	}
	if err := f.CheckInterface("lab1", "eth0", netip.MustParseAddr("2001:db8:18::99")); err == nil || !strings.Contains(err.Error(), "does not carry") {
		t.Errorf("dadfailed address counted: %v", err)
	}
	if fl := f.Files["/etc/keepalived/keepalived.conf"]; fl.Exists {
		t.Error("absent file exists")
	}
}

func TestParseConverged(t *testing.T) {
	f, err := Parse(debian12Done)
	if err != nil {
		t.Fatal(err)
	}
	if f.Packages["nginx"] != "1.22.1-9+deb12u1" || f.Installed("iputils-arping") || !f.Installed("arping") {
		t.Errorf("packages %v", f.Packages)
	}
	if f.Arping != "habets" || f.KeepalivedVersion != "2.2.7" || !f.KeepalivedConfigTest() || f.AptListsEmpty {
		t.Errorf("%+v", f)
	}
	if len(f.Addrs["eth0"]) != 2 {
		t.Errorf("addrs %v", f.Addrs)
	}
	if s := f.Services["keepalived"]; s.Active != "active" || s.Enabled != "enabled" {
		t.Errorf("services %v", f.Services)
	}
	kc := f.Files["/etc/keepalived/keepalived.conf"]
	if !kc.Exists || kc.Mode != 0o600 || kc.Owner != "root" || len(kc.SHA256) != 64 {
		t.Errorf("file %+v", kc)
	}
	if !f.Files["/etc/nginx/sites-enabled/default"].Symlink {
		t.Error("symlink not seen")
	}
}

func TestParseTruncated(t *testing.T) {
	if _, err := Parse(strings.TrimSuffix(debian12Done, "@@end\n")); err == nil {
		t.Fatal("truncated output accepted")
	}
}

func TestUnsupported(t *testing.T) {
	f, _ := Parse("@@os\nID=arch\nPRETTY_NAME=\"Arch Linux\"\n@@systemd\nyes\n@@end\n")
	if err := f.CheckSupported("x"); err == nil || !strings.Contains(err.Error(), "Arch Linux") || !strings.Contains(err.Error(), "debian 11/12") && strings.Contains(err.Error(), "rocky 8/9") {
		t.Errorf("%v", err)
	}
}

func TestVersionAtLeast(t *testing.T) {
	for v, want := range map[string]bool{"1.3.5": false, "2.0.3": false, "2.0.4": true, "2.0.10": true, "2.2.7": true, "10.0.0": true} {
		if versionAtLeast(v, 2, 0, 4) != want {
			t.Errorf("%s: want %v", v, want)
		}
	}
}

// TestScriptRunsHere runs the real script under /bin/sh on this machine:
// the generated shell must be valid and its output parseable.
func TestScriptRunsHere(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/a file"
	if err := os.WriteFile(p, []byte("hello\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	// sha256sum escapes this name, and puts a backslash before its hash.
	odd := dir + "/back\\slash"
	if err := os.WriteFile(odd, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := runHere(t, hereScript(t, Request{Paths: []string{p, odd, dir + "/absent"}, Services: []string{"nosuch"}, Packages: []string{"dpkg", "nosuchpkg"}}))
	// sha256 of "hello\n"
	const hello = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
	if fl := f.Files[p]; !fl.Exists || fl.Mode != 0o640 || fl.SHA256 != hello {
		t.Errorf("file %+v", fl)
	}
	if fl := f.Files[odd]; !fl.Exists || fl.Mode != 0o600 || fl.SHA256 != hello {
		t.Errorf("file %q: %+v", odd, fl)
	}
	if f.UID != os.Geteuid() {
		t.Errorf("uid %d, want %d", f.UID, os.Geteuid())
	}
	if f.Files[dir+"/absent"].Exists {
		t.Error("absent exists")
	}
	if _, ok := f.Packages["dpkg"]; !ok && f.PackageManager == "apt-get" {
		t.Errorf("dpkg not seen: %v", f.Packages)
	}
	if f.Addrs["lo"] == nil {
		t.Errorf("no lo address: %v", f.Addrs)
	}
}

// TestServicesFromOneSystemctl: firewalld's and each service's state come
// from one `systemctl show` (a function shadows systemctl here); a unit
// systemd does not know reads as unknown, as before.
func TestServicesFromOneSystemctl(t *testing.T) {
	fake := `systemctl() { echo "$*" >>"$LOG"; printf 'ActiveState=active\nUnitFileState=enabled\n\nUnitFileState=disabled\nActiveState=inactive\n\nActiveState=activating\nUnitFileState=\n'; }` + "\n"
	log := filepath.Join(t.TempDir(), "log")
	cmd := exec.Command("sh", "-c", fake+hereScript(t, Request{Services: []string{"keepalived", "nginx", "gone"}}))
	cmd.Env = append(os.Environ(), "LOG="+log)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	f, err := Parse(string(out))
	if err != nil {
		t.Fatal(err)
	}
	if f.Firewall != "firewalld" {
		t.Errorf("firewall %q", f.Firewall)
	}
	want := map[string]Service{"keepalived": {"inactive", "disabled"}, "nginx": {"activating", "unknown"}, "gone": {"unknown", "unknown"}}
	for n, w := range want {
		if f.Services[n] != w {
			t.Errorf("%s: %+v, want %+v", n, f.Services[n], w)
		}
	}
	calls, _ := os.ReadFile(log)
	if n := strings.Count(string(calls), "\n"); n != 1 {
		t.Errorf("%d systemctl calls, want 1:\n%s", n, calls)
	}
}

// TestOSRelease parses each release's /etc/os-release (as shipped) and
// checks the support decision; the test names carry the release.
func TestOSRelease(t *testing.T) {
	for _, tc := range []struct {
		name, osRelease, family, major string
		keys                           []string
		ok                             bool
	}{
		{"debian11", "PRETTY_NAME=\"Debian GNU/Linux 11 (bullseye)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"11\"\nVERSION=\"11 (bullseye)\"\nID=debian\n", "debian", "11", []string{"debian11", "debian"}, true},
		{"debian12", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=debian\n", "debian", "12", []string{"debian12", "debian"}, true},
		{"ubuntu2004", "NAME=\"Ubuntu\"\nVERSION=\"20.04.6 LTS (Focal Fossa)\"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME=\"Ubuntu 20.04.6 LTS\"\nVERSION_ID=\"20.04\"\n", "debian", "20", []string{"ubuntu20.04", "debian"}, true},
		{"ubuntu2204", "PRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nID=ubuntu\nID_LIKE=debian\n", "debian", "22", []string{"ubuntu22.04", "debian"}, true},
		{"ubuntu2404", "PRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nVERSION_ID=\"24.04\"\nID=ubuntu\nID_LIKE=debian\n", "debian", "24", []string{"ubuntu24.04", "debian"}, true},
		{"centos7", "NAME=\"CentOS Linux\"\nVERSION=\"7 (Core)\"\nID=\"centos\"\nID_LIKE=\"rhel fedora\"\nVERSION_ID=\"7\"\nPRETTY_NAME=\"CentOS Linux 7 (Core)\"\nCPE_NAME=\"cpe:/o:centos:centos:7\"\n", "el", "7", []string{"el7", "el"}, true},
		{"rocky8", "NAME=\"Rocky Linux\"\nVERSION=\"8.9 (Green Obsidian)\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"8.9\"\nPRETTY_NAME=\"Rocky Linux 8.9 (Green Obsidian)\"\n", "el", "8", []string{"el8", "el"}, true},
		{"rocky9", "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\nPRETTY_NAME=\"Rocky Linux 9.3 (Blue Onyx)\"\n", "el", "9", []string{"el9", "el"}, true},
		{"rhel9", "NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"9.4\"\nPRETTY_NAME=\"Red Hat Enterprise Linux 9.4 (Plow)\"\n", "el", "9", []string{"el9", "el"}, true},
		{"almalinux8", "NAME=\"AlmaLinux\"\nID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"8.10\"\nPRETTY_NAME=\"AlmaLinux 8.10 (Cerulean Leopard)\"\n", "el", "8", []string{"el8", "el"}, true},
		{"almalinux9", "NAME=\"AlmaLinux\"\nID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\nPRETTY_NAME=\"AlmaLinux 9.3 (Shamrock Pampas Cat)\"\n", "el", "9", []string{"el9", "el"}, true},
		{"centos-stream9", "NAME=\"CentOS Stream\"\nVERSION=\"9\"\nID=\"centos\"\nID_LIKE=\"rhel fedora\"\nVERSION_ID=\"9\"\nPRETTY_NAME=\"CentOS Stream 9\"\n", "el", "9", []string{"el9", "el"}, true},
		// Refused: end-of-life or untested releases, and look-alikes.
		{"centos-stream8", "NAME=\"CentOS Stream\"\nID=\"centos\"\nID_LIKE=\"rhel fedora\"\nVERSION_ID=\"8\"\nPRETTY_NAME=\"CentOS Stream 8\"\n", "el", "8", []string{"el8", "el"}, false},
		{"rhel7", "NAME=\"Red Hat Enterprise Linux Server\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"7.9\"\nPRETTY_NAME=\"Red Hat Enterprise Linux Server 7.9 (Maipo)\"\n", "el", "7", []string{"el7", "el"}, false},
		{"debian10", "PRETTY_NAME=\"Debian GNU/Linux 10 (buster)\"\nVERSION_ID=\"10\"\nID=debian\n", "debian", "10", []string{"debian10", "debian"}, false},
		{"debian-sid", "PRETTY_NAME=\"Debian GNU/Linux trixie/sid\"\nID=debian\n", "debian", "", []string{"debian", "debian"}, false},
		{"ubuntu1804", "PRETTY_NAME=\"Ubuntu 18.04.6 LTS\"\nVERSION_ID=\"18.04\"\nID=ubuntu\nID_LIKE=debian\n", "debian", "18", []string{"ubuntu18.04", "debian"}, false},
		{"fedora39", "NAME=\"Fedora Linux\"\nVERSION_ID=39\nID=fedora\nPRETTY_NAME=\"Fedora Linux 39 (Server Edition)\"\n", "", "39", nil, false},
		{"linuxmint21", "NAME=\"Linux Mint\"\nID=linuxmint\nID_LIKE=\"ubuntu debian\"\nVERSION_ID=\"21.3\"\nPRETTY_NAME=\"Linux Mint 21.3\"\n", "debian", "21", []string{"debian21", "debian"}, false},
		{"centos6", "", "", "", nil, false}, // CentOS 6 has no /etc/os-release
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("@@os\n" + tc.osRelease + "@@systemd\nyes\n@@end\n")
			if err != nil {
				t.Fatal(err)
			}
			if f.OS.Family != tc.family || f.OS.Major != tc.major || strings.Join(f.OS.Keys(), ",") != strings.Join(tc.keys, ",") {
				t.Errorf("family %q major %q keys %v", f.OS.Family, f.OS.Major, f.OS.Keys())
			}
			err = f.CheckSupported("h1")
			if (err == nil) != tc.ok {
				t.Fatalf("supported = %v, want %v (%v)", err == nil, tc.ok, err)
			}
			if err != nil && (!strings.Contains(err.Error(), "host h1") || !strings.Contains(err.Error(), "centos 7, centos stream 9") || !strings.Contains(err.Error(), "ubuntu 20.04/22.04/24.04")) {
				t.Errorf("message does not name the host and what is supported: %v", err)
			}
		})
	}
}

func TestFirewallAndSELinuxFacts(t *testing.T) {
	for _, tc := range []struct{ fw, se, wantFw, wantSe string }{
		{"firewalld", "Enforcing", "firewalld", "enforcing"},
		{"ufw", "", "ufw", ""},
		{"", "Disabled", "", "disabled"},
		{"iptables", "Permissive", "", "permissive"},
	} {
		f, err := Parse("@@os\nID=rocky\nVERSION_ID=9.3\n@@firewall\n" + tc.fw + "\n@@selinux\n" + tc.se + "\n@@end\n")
		if err != nil {
			t.Fatal(err)
		}
		if f.Firewall != tc.wantFw || f.SELinux != tc.wantSe || f.SELinuxEnabled() != (tc.wantSe == "enforcing" || tc.wantSe == "permissive") {
			t.Errorf("%+v: firewall %q selinux %q", tc, f.Firewall, f.SELinux)
		}
	}
}

func TestDrainFact(t *testing.T) {
	for out, want := range map[string]int{
		"@@drain\n\n@@end\n":        0, // no file
		"@@drain\n-254\n\n@@end\n":  -254,
		"@@drain\n-253 x\n@@end\n":  -253,
		"@@drain\n0\n@@end\n":       0,
		"@@drain\ngarbage\n@@end\n": 0,
	} {
		f, err := Parse(out)
		if err != nil {
			t.Fatal(err)
		}
		if f.Drain != want || f.Drained() != (want <= DrainLow) {
			t.Errorf("%q: drain %d drained %v, want %d", out, f.Drain, f.Drained(), want)
		}
	}
}

// TestDrainReadAsHeadDid: the drain file read by the shell gives the value
// `head -c 32 FILE; echo` gave, whatever the file holds.
func TestDrainReadAsHeadDid(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "hactl-drain")
	for _, content := range []string{"", "-254\n", "-253", "-253 x\n0\n", "  -254\n", "0\n", "garbage\n",
		"-25" + strings.Repeat("3", 40) + "\n", strings.Repeat(" ", 30) + "-254\n", strings.Repeat(" ", 31) + "12\n", "7\\n8\n", "absent"} {
		_ = os.Remove(file)
		if content != "absent" {
			if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		s := strings.ReplaceAll(hereScript(t, Request{}), DrainFile, file)
		got := runHere(t, s)
		head, err := exec.Command("sh", "-c", "head -c 32 "+file+" 2>/dev/null; echo").Output()
		if err != nil {
			t.Fatal(err)
		}
		want, err := Parse("@@drain\n" + string(head) + "@@end\n")
		if err != nil {
			t.Fatal(err)
		}
		if got.Drain != want.Drain {
			t.Errorf("%q: drain %d, head -c 32 read %d", content, got.Drain, want.Drain)
		}
	}
}

// TestClusterRecord: the record section is the file's content, byte for
// byte up to the trailing newline; no file is no record.
func TestClusterRecord(t *testing.T) {
	rec := "{\n  \"schema_version\": 1,\n  \"cluster\": \"lab\"\n}\n"
	f, err := Parse("@@record\n" + rec + "\n@@end\n")
	if err != nil {
		t.Fatal(err)
	}
	if string(f.ClusterRecord) != rec {
		t.Errorf("record %q", f.ClusterRecord)
	}
	f, _ = Parse("@@record\n\n@@end\n")
	if f.ClusterRecord != nil {
		t.Errorf("no file, but record %q", f.ClusterRecord)
	}
	if !strings.Contains(Script(Request{}), "cat "+ClusterRecordPath) {
		t.Error("the script does not read the record")
	}
}

// TestPendingRecords: a pending handler's record file name is its name with
// unsafe bytes escaped, and facts give the name back with the record's time.
func TestPendingRecords(t *testing.T) {
	name := "keepalived reload/../x"
	file := PendingFile(name)
	if strings.Count(file, "/") != strings.Count(PendingDir, "/")+1 || strings.Contains(file[len(PendingDir):], ".") {
		t.Fatalf("PendingFile(%q) = %q", name, file)
	}
	out := "@@pending\n" + file[len(PendingDir)+1:] + "\t2026-11-24T10:00:00Z\nsystemd\t2026-11-24T09:00:00Z\n@@end\n"
	f, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if f.Pending[name] != "2026-11-24T10:00:00Z" || f.Pending["systemd"] != "2026-11-24T09:00:00Z" || len(f.Pending) != 2 {
		t.Errorf("pending %v", f.Pending)
	}
}

// TestDescribedUnit: status learns what a running connection drain does in
// the facts' own round trip (no session of its own): the script asks
// systemctl for the unit only when it is wanted, and the section comes back
// as printed.
func TestDescribedUnit(t *testing.T) {
	if s := Script(Request{}); strings.Contains(s, "@@described") {
		t.Errorf("script without Described asks for it:\n%s", s)
	}
	if s := Script(Request{Described: "hactl-conndrain.service"}); !strings.Contains(s, "systemctl show -p ActiveState -p Description 'hactl-conndrain.service'") {
		t.Errorf("script does not describe the unit:\n%s", s)
	}
	f, err := Parse("@@described\nActiveState=active\nDescription=hactl connection drain: keeps 198.18.0.201\n@@end\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "ActiveState=active\nDescription=hactl connection drain: keeps 198.18.0.201"; f.Described != want {
		t.Errorf("described %q, want %q", f.Described, want)
	}
}

// TestVRRPRaw: Request.VRRP's command runs in the facts' shell, right after
// the addresses (one snapshot of the VIPs), and its output comes back as
// printed; without it the script asks nothing more.
func TestVRRPRaw(t *testing.T) {
	if s := Script(Request{}); strings.Contains(s, "echo @@vrrp;") {
		t.Errorf("script without VRRP asks for it:\n%s", s)
	}
	s := hereScript(t, Request{VRRP: "printf '(VI_1) Entering MASTER STATE\\nStopping\\n'"})
	if a, v := strings.Index(s, "echo @@addrs;"), strings.Index(s, "echo @@vrrp;"); a < 0 || v < a || strings.Count(s[a:v], "\n") != 1 {
		t.Errorf("the VRRP read is not the line after the addresses:\n%s", s)
	}
	f := runHere(t, s)
	if want := "(VI_1) Entering MASTER STATE\nStopping\n"; f.VRRP != want {
		t.Errorf("VRRP %q, want %q", f.VRRP, want)
	}
}

// hereScript is Script with its cache in the test's own directory: a test
// run as root must not leave answers in this machine's CacheDir.
func hereScript(t *testing.T, req Request) string {
	req.Cache = filepath.Join(t.TempDir(), "cache")
	return Script(req)
}

// runHere runs a facts script on this machine and parses what it printed.
func runHere(t *testing.T, script string) *Facts {
	t.Helper()
	out, err := exec.Command("sh", "-c", script).Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	f, err := Parse(string(out))
	if err != nil {
		t.Fatal(err)
	}
	return f
}
