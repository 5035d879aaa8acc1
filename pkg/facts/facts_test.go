package facts

import (
	"net/netip"
	"os"
	"os/exec"
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
	if err == nil || !strings.Contains(err.Error(), `no IPv4 interface "ens192"`) || !strings.Contains(err.Error(), "eth0, lo") {
		t.Errorf("missing interface: %v", err)
	}
	err = f.CheckInterface("lab1", "eth0", netip.MustParseAddr("198.18.0.99"))
	if err == nil || !strings.Contains(err.Error(), "does not carry") {
		t.Errorf("wrong address: %v", err)
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
	if err := f.CheckSupported("x"); err == nil || !strings.Contains(err.Error(), "Arch Linux") || !strings.Contains(err.Error(), "debian 11/12") {
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
	script := Script(Request{Paths: []string{p, dir + "/absent"}, Services: []string{"nosuch"}, Packages: []string{"dpkg", "nosuchpkg"}})
	out, err := exec.Command("sh", "-c", script).Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	f, err := Parse(string(out))
	if err != nil {
		t.Fatal(err)
	}
	fl := f.Files[p]
	// sha256 of "hello\n"
	if !fl.Exists || fl.Mode != 0o640 || fl.SHA256 != "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03" {
		t.Errorf("file %+v", fl)
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
