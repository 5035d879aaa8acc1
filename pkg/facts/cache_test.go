package facts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// cacheHost is a host for the cache tests, on this machine's real shell:
// keepalived, arping and dpkg-query are scripts in bin (first on PATH) that
// log each call, dpkg's status file and journal directory are the test's
// own, and the script's cache is in cache.
type cacheHost struct {
	t                           *testing.T
	bin, status, updates, cache string
	log                         string
	uid                         string // "" = the real one
	req                         Request
}

func newCacheHost(t *testing.T) *cacheHost {
	t.Helper()
	d := t.TempDir()
	h := &cacheHost{t: t, bin: filepath.Join(d, "bin"), status: filepath.Join(d, "status"), updates: filepath.Join(d, "updates"),
		cache: filepath.Join(d, "cache"), log: filepath.Join(d, "log"), req: Request{Packages: []string{"nginx", "keepalived"}}}
	for _, dir := range []string{h.bin, h.updates} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h.tool("keepalived", "echo 'Keepalived v2.2.7 (01/16,2022)'; echo 'Copyright(C) 2001-2022 Alexandre Cassen'")
	h.tool("arping", "echo 'arping from iputils 20221126'")
	// dpkg-query -W -f=FORMAT PKG…: each PKG's line from the status file
	// (name TAB version), exit 1 when one is missing, as dpkg-query does.
	h.tool("dpkg-query", `shift 2; rc=0; for p; do l=$(grep "^$p	" `+h.status+`) && printf '%s\tinstalled\n' "$l" || rc=1; done; exit $rc`)
	h.writeStatus("nginx\t1.22.1-9\n")
	return h
}

// tool replaces bin/NAME by a new file (a new inode, as a package upgrade
// leaves it) that logs its call and runs body.
func (h *cacheHost) tool(name, body string) {
	h.t.Helper()
	p := filepath.Join(h.bin, name)
	if err := os.WriteFile(p+".new", []byte("#!/bin/sh\necho "+name+" >>"+h.log+"\n"+body+"\n"), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(p+".new", p); err != nil {
		h.t.Fatal(err)
	}
}

// writeStatus replaces dpkg's status file, as dpkg does (write, rename).
func (h *cacheHost) writeStatus(s string) {
	h.t.Helper()
	if err := os.WriteFile(h.status+".new", []byte(s), 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(h.status+".new", h.status); err != nil {
		h.t.Fatal(err)
	}
}

// run runs the script once; it returns the facts, the raw sections the
// cache answers and the tools called.
func (h *cacheHost) run() (*Facts, string, []string) {
	h.t.Helper()
	_ = os.Remove(h.log)
	req := h.req
	req.Cache = h.cache
	s := Script(req)
	for old, repl := range map[string]string{
		"PATH=/usr/sbin:":         "PATH=" + h.bin + ":/usr/sbin:",
		"/var/lib/dpkg/status ":   h.status + " ",
		"/var/lib/dpkg/updates/":  h.updates + "/",
		"/var/lib/rpm/":           h.t.TempDir() + "/",
		"command -v keepalived; ": "command -v keepalived; ",
	} {
		if !strings.Contains(s, old) && h.cache != "" {
			h.t.Fatalf("script lacks %q:\n%s", old, s)
		}
		s = strings.ReplaceAll(s, old, repl)
	}
	if h.uid != "" {
		if !strings.Contains(s, "echo @@uid;") {
			h.t.Fatalf("script lacks its uid section:\n%s", s)
		}
		s = strings.Replace(s, "echo @@uid;", "uid="+h.uid+"; echo @@uid;", 1)
	}
	out, err := exec.Command("sh", "-c", s).Output()
	if err != nil {
		h.t.Fatalf("%v\n%s", err, out)
	}
	f, err := Parse(string(out))
	if err != nil {
		h.t.Fatal(err)
	}
	var raw strings.Builder
	in := false
	for _, l := range strings.SplitAfter(string(out), "\n") {
		if strings.HasPrefix(l, "@@") {
			in = l == "@@packages\n" || l == "@@arping\n" || l == "@@keepalived\n"
		}
		if in {
			raw.WriteString(l)
		}
	}
	calls, _ := os.ReadFile(h.log)
	return f, raw.String(), strings.Fields(string(calls))
}

func asRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("the cache is root's: run as root")
	}
}

// TestCacheAnswersAsTheToolsDo: the first run asks the three tools and
// keeps their answers; the next prints the very same bytes without asking.
func TestCacheAnswersAsTheToolsDo(t *testing.T) {
	asRoot(t)
	h := newCacheHost(t)
	f1, raw1, calls := h.run()
	if strings.Join(calls, " ") != "dpkg-query arping keepalived" {
		t.Fatalf("first run called %v", calls)
	}
	if f1.KeepalivedVersion != "2.2.7" || f1.Arping != "iputils" || f1.Packages["nginx"] != "1.22.1-9" || len(f1.Packages) != 1 {
		t.Fatalf("facts %+v", f1)
	}
	want := "@@packages\nnginx\t1.22.1-9\tinstalled\n@@arping\narping from iputils 20221126\n@@keepalived\nKeepalived v2.2.7 (01/16,2022)\n"
	if raw1 != want {
		t.Errorf("raw sections %q, want %q", raw1, want)
	}
	for i := 0; i < 2; i++ {
		_, raw, calls := h.run()
		if len(calls) != 0 || raw != raw1 {
			t.Errorf("run %d: called %v, sections %q", i+2, calls, raw)
		}
	}
	if fi, err := os.Stat(h.cache); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("cache dir: %v %v", fi, err)
	}
	// The same answers without any cache.
	h.cache = ""
	if _, raw, calls := h.run(); raw != raw1 || len(calls) != 3 {
		t.Errorf("uncached: %v, %q", calls, raw)
	}
}

// TestCacheInvalidation: an upgrade of either binary (replaced by rename)
// or any change of dpkg's status file makes every answer asked again, and
// the new answer is the one printed.
func TestCacheInvalidation(t *testing.T) {
	asRoot(t)
	h := newCacheHost(t)
	h.run()
	h.tool("keepalived", "echo 'Keepalived v2.2.8 (04/04,2023)'")
	f, _, calls := h.run()
	if f.KeepalivedVersion != "2.2.8" || len(calls) != 3 {
		t.Errorf("after the keepalived upgrade: %q, called %v", f.KeepalivedVersion, calls)
	}
	h.run()
	// Habets' arping 2.23 takes -V for a VLAN: its first line is getopt's
	// complaint, then the usage with its version; that line is its answer.
	h.tool("arping", "echo \"arping: option requires an argument -- 'V'\"; echo 'ARPing 2.23, by Thomas Habets <thomas@habets.se>'")
	if f, _, calls := h.run(); f.Arping != "habets" || len(calls) != 3 {
		t.Errorf("after arping's replacement: %q, called %v", f.Arping, calls)
	}
	if f, _, calls := h.run(); f.Arping != "habets" || len(calls) != 0 {
		t.Errorf("habets' answer not kept: %q, called %v", f.Arping, calls)
	}
	h.writeStatus("nginx\t1.22.1-9\nkeepalived\t1:2.2.8-1\n")
	if f, _, calls := h.run(); f.Packages["keepalived"] != "1:2.2.8-1" || len(calls) != 3 {
		t.Errorf("after a dpkg run: %v, called %v", f.Packages, calls)
	}
	// Rewritten in place, same size: ctime (and mtime) still move on.
	if err := os.WriteFile(h.status, []byte("nginx\t1.22.1-8\nkeepalived\t1:2.2.8-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if f, _, calls := h.run(); f.Packages["nginx"] != "1.22.1-8" || len(calls) != 3 {
		t.Errorf("after an edit in place: %v, called %v", f.Packages, calls)
	}
	// Another question (another package list) is never answered from the
	// first one's file.
	h.req.Packages = []string{"nginx"}
	if f, _, calls := h.run(); len(f.Packages) != 1 || strings.Join(calls, " ") != "dpkg-query" {
		t.Errorf("another package list: %v, called %v", f.Packages, calls)
	}
}

// TestCacheNotUsed: while dpkg's journal has entries (dpkg is running or
// was interrupted) dpkg-query is asked every time; an answer that is not
// one (keepalived failing) is never kept; a user other than root neither
// reads nor writes the cache; a torn or foreign file is not an answer.
func TestCacheNotUsed(t *testing.T) {
	asRoot(t)
	h := newCacheHost(t)
	if err := os.WriteFile(filepath.Join(h.updates, "0001"), []byte("Package: nginx\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.tool("keepalived", "echo 'keepalived: error while loading shared libraries: libnl-3.so.200' >&2; exit 127")
	for i, want := range []string{"dpkg-query arping keepalived", "dpkg-query keepalived", "dpkg-query keepalived"} {
		if f, _, calls := h.run(); strings.Join(calls, " ") != want || f.KeepalivedVersion != "" {
			t.Errorf("run %d: called %v, want %s; keepalived %q", i+1, calls, want, f.KeepalivedVersion)
		}
	}
	if err := os.Remove(filepath.Join(h.updates, "0001")); err != nil {
		t.Fatal(err)
	}

	h = newCacheHost(t)
	h.uid = "1000"
	for i := 0; i < 2; i++ {
		if _, _, calls := h.run(); len(calls) != 3 {
			t.Errorf("non-root run %d called %v", i+1, calls)
		}
	}
	if _, err := os.Stat(h.cache); !os.IsNotExist(err) {
		t.Errorf("a non-root run made the cache: %v", err)
	}

	h = newCacheHost(t)
	h.run()
	file := filepath.Join(h.cache, "keepalived")
	full, err := os.ReadFile(file)
	if err != nil || !strings.HasPrefix(string(full), "keepalived --version 2>&1 | head -n 1\nv1\n") {
		t.Fatalf("cache file %q, %v", full, err)
	}
	for name, content := range map[string]string{
		"torn":    strings.TrimSuffix(string(full), "@@e\n"),
		"foreign": strings.Replace(string(full), "keepalived --version 2>&1 | head -n 1\n", "arping -V 2>&1 | head -n 1\n", 1),
		"empty":   "",
	} {
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if f, _, calls := h.run(); strings.Join(calls, " ") != "keepalived" || f.KeepalivedVersion != "2.2.7" {
			t.Errorf("%s file: called %v, keepalived %q", name, calls, f.KeepalivedVersion)
		}
	}
}

// TestBashHandsTheScriptToSh: run by bash as the login shell (sshd's
// `bash -c SCRIPT`), the script runs itself again under /bin/sh when that
// is another shell, once, and prints the same facts as under sh.
func TestBashHandsTheScriptToSh(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash here")
	}
	s := hereScript(t, Request{Services: []string{"nosuch"}}) + "\necho \"@@shell\"; if [ -n \"${BASH_VERSION:-}\" ]; then echo bash; else echo other; fi\n"
	out, err := exec.Command("bash", "-c", s).Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	viaSh, err := exec.Command("sh", "-c", s).Output()
	if err != nil {
		t.Fatal(err)
	}
	shIsBash := exec.Command("sh", "-c", `[ /bin/sh -ef "$(command -v bash)" ]`).Run() == nil
	want := "@@shell\nother\n"
	if shIsBash {
		want = "@@shell\nbash\n"
	}
	if !strings.HasSuffix(string(out), want) {
		t.Errorf("under bash, the script ended %q, want %q", out[max(0, len(out)-40):], want)
	}
	f1, err := Parse(string(out))
	if err != nil {
		t.Fatal(err)
	}
	f2, err := Parse(string(viaSh))
	if err != nil {
		t.Fatal(err)
	}
	if f1.UID != f2.UID || f1.OS != f2.OS || f1.Services["nosuch"] != f2.Services["nosuch"] || len(f1.Addrs) != len(f2.Addrs) {
		t.Errorf("bash %+v\nsh %+v", f1, f2)
	}
}
