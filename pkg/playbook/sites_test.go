package playbook

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hactl/hactl/internal/tlstest"
	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
	"github.com/hactl/hactl/pkg/render"
	"github.com/hactl/hactl/pkg/vrrp"
)

// sitesHost is a host's /etc/nginx under a temporary root, reached over the
// in-process SSH server, with a stand-in for `nginx -t` that fails on the
// word BROKEN and logs each test with whether the files were in place.
type sitesHost struct {
	root string
	conn *movedConn
	mod  *NginxSites
	log  string
}

// movedConn runs commands with hactl's host-wide paths (the pending
// handler records) moved under the test's root, and records uploads.
type movedConn struct {
	remote.Conn
	pending string
	mu      sync.Mutex
	uploads map[string]fs.FileMode
}

func (c *movedConn) Run(ctx context.Context, cmd string, stdin io.Reader) (remote.Result, error) {
	return c.Conn.Run(ctx, strings.ReplaceAll(cmd, facts.PendingDir, c.pending), stdin)
}

func (c *movedConn) Upload(ctx context.Context, p string, content []byte, mode fs.FileMode) error {
	c.mu.Lock()
	c.uploads[p] = mode
	c.mu.Unlock()
	return c.Conn.Upload(ctx, p, content, mode)
}

func newSitesHost(t *testing.T) *sitesHost {
	t.Helper()
	s := remotetest.NewServer(t)
	c, err := remote.Dial(context.Background(), s.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	root := t.TempDir()
	h := &sitesHost{root: root, log: filepath.Join(root, "log"),
		conn: &movedConn{Conn: c, pending: filepath.Join(root, "pending"), uploads: map[string]fs.FileMode{}}}
	etc := filepath.Join(root, "etc", "nginx")
	writeTestFile(t, filepath.Join(etc, "nginx.conf"), "events {}\nhttp {\n    include "+etc+"/conf.d/*.conf;\n}\n", 0o644)
	check := filepath.Join(root, "nginx-t")
	writeTestFile(t, check, `#!/bin/sh
d=`+etc+`/hactl
if grep -rqs BROKEN "$d" `+etc+`/conf.d; then echo 'nginx: [emerg] unknown directive "BROKEN"'; exit 1; fi
if [ -e `+root+`/no-stream-module ] && [ -e "$d/stream/stream.conf" ]; then echo 'nginx: [emerg] unknown directive "stream" in '"$d"'/stream/stream.conf:3'; exit 1; fi
n=$(find "$d" -name '*.hactl-new' | wc -l)
echo "nginx -t: $(ls "$d/http" | grep -c '^site-') sites in place, $n candidates" >> `+h.log+`
`, 0o755)
	h.mod = &NginxSites{Dir: etc + "/hactl", Include: etc + "/conf.d/hactl-sites.conf", MainConf: etc + "/nginx.conf", Check: check}
	return h
}

func writeTestFile(t *testing.T, p, s string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
}

// sitesFiles renders the example inventory/sites.hcl for lab1 and moves
// the serving layer's files under the host's root, owned by the test's
// user.
func (h *sitesHost) sitesFiles(t *testing.T) map[string]render.File {
	t.Helper()
	path, _ := tlstest.SitesExample(t)
	inv, d := inventory.NewLoader(inventory.Options{LookupEnv: func(string) (string, bool) { return "labpass1", true }}).LoadFile(path)
	if d.HasErrors() {
		t.Fatal(d)
	}
	lay, d := vrrp.Build(inv)
	if d.HasErrors() {
		t.Fatal(d)
	}
	r, err := render.New()
	if err != nil {
		t.Fatal(err)
	}
	files, err := r.Host(inv, lay, "lab1")
	if err != nil {
		t.Fatal(err)
	}
	owner, group := testOwner(t)
	out := map[string]render.File{}
	for _, f := range files {
		if !strings.HasPrefix(f.Path, render.SitesDir) && f.Path != render.SitesInclude {
			continue
		}
		f.Path = filepath.Join(h.root, f.Path)
		f.Owner, f.Group = owner, group
		out[f.Path] = f
	}
	return out
}

// testOwner is the user and group the test runs as: the owner its
// "remote" files get.
func testOwner(t *testing.T) (string, string) {
	t.Helper()
	me, grp := whoAmI(t)
	return me.Username, grp.Name
}

func (h *sitesHost) target(files map[string]render.File) *Target {
	_, err := os.Stat(h.mod.Include)
	return &Target{Name: "lab1", Conn: h.conn, Stamp: "20261206T000000Z", Files: files,
		Facts: &facts.Facts{Files: map[string]facts.File{h.mod.Include: {Exists: err == nil}}}}
}

// book is a playbook with the nginx_sites step and an nginx handler that
// runs handler (a stand-in for the reload).
func (h *sitesHost) book(t *testing.T, handler string) *Book {
	t.Helper()
	src := `step "nginx sites" {
  nginx_sites {
    dir       = "` + h.mod.Dir + `"
    include   = "` + h.mod.Include + `"
    main_conf = "` + h.mod.MainConf + `"
    check     = "` + h.mod.Check + `"
  }
  notify = ["nginx"]
}
handler "nginx" {
  command {
    run = "` + handler + `"
  }
}
`
	book, _, diags := Parse("sites.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return book
}

func (h *sitesHost) run(book *Book, files map[string]render.File) Result {
	r := &Runner{Book: book, Parallel: 1, Rollout: &fakeRollout{dark: func(string) bool { return false }, note: func(string) {}}}
	return r.Run(context.Background(), []HostInput{{Target: &Target{Name: "lab1", Conn: h.conn, Files: files, Stamp: "20261206T000000Z"}}})[0]
}

func (h *sitesHost) p(rel string) string { return filepath.Join(h.root, rel) }

func mode(t *testing.T, p string) fs.FileMode {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// snapshot is every file under dir (backups and candidates included) with
// its mode and content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		m[p] = st.Mode().Perm().String() + " " + string(b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestNginxSitesOnRealShell runs the nginx_sites module's plan, uploads and
// swap script over the in-process SSH server on real files: a first run
// creates every file (keys 0600 in a 0700 directory, uploaded 0600 too),
// tests the configuration once with every file in place and no candidate
// left, and adds the stream include to nginx.conf; a second run has
// nothing to do; a change that fails the test puts every file back, a site
// removed from the inventory included; a good change keeps 0600 backups of
// a key whatever its live mode; an inventory without sites removes them all.
func TestNginxSitesOnRealShell(t *testing.T) {
	h := newSitesHost(t)
	files := h.sitesFiles(t)
	key, crt := h.p(render.KeyFile("shop")), h.p(render.CertFile("shop"))
	shop := h.p(render.SiteConf("shop"))

	o, err := converge(h.mod, h.target(files))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Swaps) != len(files)+1 { // and nginx.conf
		t.Errorf("%d swaps for %d files and nginx.conf", len(o.Swaps), len(files))
	}
	for p, f := range files {
		if got := readFile(t, p); got != string(f.Content) {
			t.Errorf("%s differs", p)
		}
		if m := mode(t, p); m != f.Mode {
			t.Errorf("%s mode %04o, want %04o", p, m, f.Mode)
		}
		if up := h.conn.uploads[candidate(p)]; up != f.Mode {
			t.Errorf("%s uploaded with mode %04o, want %04o", candidate(p), up, f.Mode)
		}
	}
	if mode(t, key) != 0o600 || mode(t, filepath.Dir(key)) != 0o700 || mode(t, crt) != 0o644 || mode(t, shop) != 0o644 {
		t.Errorf("modes: key %04o, tls dir %04o, cert %04o, site %04o", mode(t, key), mode(t, filepath.Dir(key)), mode(t, crt), mode(t, shop))
	}
	if got := readFile(t, h.log); got != "nginx -t: 3 sites in place, 0 candidates\n" {
		t.Errorf("check log %q", got)
	}
	if c := strings.Count(readFile(t, h.mod.MainConf), h.mod.StreamIncludeLine()+"\n"); c != 1 {
		t.Errorf("nginx.conf has the stream include %d times", c)
	}

	// Converged: no ops, no test.
	p, err := h.mod.Plan(context.Background(), h.target(files))
	if err != nil || len(p.Ops) != 0 || !strings.HasPrefix(p.Summary, "up to date (") {
		t.Fatalf("second plan: %+v, %v", p, err)
	}

	// A change nginx -t refuses, with a site taken out: nothing changes.
	before := snapshot(t, filepath.Join(h.root, "etc"))
	bad := map[string]render.File{}
	for p, f := range files {
		if strings.Contains(p, "site-api") || strings.HasSuffix(p, "/api.crt") || strings.HasSuffix(p, "/api.key") {
			continue
		}
		if p == shop {
			f.Content = append(bytes.Clone(f.Content), []byte("BROKEN;\n")...)
		}
		bad[p] = f
	}
	_, err = converge(h.mod, h.target(bad))
	if err == nil || !strings.Contains(err.Error(), "every file was put back") || !strings.Contains(err.Error(), `unknown directive "BROKEN"`) {
		t.Fatalf("bad change: %v", err)
	}
	after := snapshot(t, filepath.Join(h.root, "etc"))
	for p, v := range before {
		if after[p] != v {
			t.Errorf("%s changed by a refused change", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s left behind by a refused change", p)
		}
	}

	// An nginx without the stream module: refused, with the package to install.
	if err := os.Remove(filepath.Join(h.mod.Dir, "stream", "stream.conf")); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(h.root, "no-stream-module"), "", 0o644)
	_, err = converge(h.mod, h.target(files))
	if err == nil || !strings.Contains(err.Error(), "install libnginx-mod-stream (Debian, Ubuntu) or nginx-mod-stream (EL)") {
		t.Fatalf("no stream module: %v", err)
	}
	if _, serr := os.Stat(filepath.Join(h.mod.Dir, "stream", "stream.conf")); serr == nil {
		t.Errorf("stream.conf left in place after a refused change")
	}
	if err := os.Remove(filepath.Join(h.root, "no-stream-module")); err != nil {
		t.Fatal(err)
	}
	if _, err := converge(h.mod, h.target(files)); err != nil {
		t.Fatal(err)
	}

	// A renewed key while the live one was made world-readable by hand.
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	renewed := map[string]render.File{}
	for p, f := range files {
		renewed[p] = f
	}
	k := renewed[key]
	k.Content = []byte("-----BEGIN PRIVATE KEY-----\nrenewed\n-----END PRIVATE KEY-----\n")
	renewed[key] = k
	o, err = converge(h.mod, h.target(renewed))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Swaps) != 1 || o.Swaps[0].Path != key || o.Swaps[0].Backup != key+".hactl-20261206T000000Z" {
		t.Fatalf("swaps %+v", o.Swaps)
	}
	if mode(t, key) != 0o600 || mode(t, o.Swaps[0].Backup) != 0o600 || readFile(t, o.Swaps[0].Backup) != string(files[key].Content) {
		t.Errorf("key %04o, backup %04o", mode(t, key), mode(t, o.Swaps[0].Backup))
	}

	// No sites any more: every file goes (kept as a backup), the key's 0600.
	o, err = converge(h.mod, h.target(map[string]render.File{}))
	if err != nil {
		t.Fatal(err)
	}
	for p := range files {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s still there", p)
		}
	}
	if m := mode(t, key+".hactl-20261206T000000Z"); m != 0o600 {
		t.Errorf("removed key kept with mode %04o", m)
	}
	p, err = h.mod.Plan(context.Background(), h.target(map[string]render.File{}))
	if err != nil || len(p.Ops) != 0 || p.Summary != "no sites" || !h.mod.Absent(h.target(nil)) {
		t.Errorf("after removal: %+v, %v", p, err)
	}
}

// TestNginxSitesApplyReloads runs a playbook with the nginx_sites step and
// an nginx handler through the runner, facts gathered by the real facts
// script: the files go in, the configuration is tested with them in
// place, then (and only then) the handler reloads; a second run changes
// nothing and reloads nothing; the plan masks the keys and shows
// certificates by fingerprint.
func TestNginxSitesApplyReloads(t *testing.T) {
	h := newSitesHost(t)
	files := h.sitesFiles(t)
	book := h.book(t, "echo reload >> "+h.log)
	run := func(dry bool) (Result, []Event) {
		var events []Event
		var mu sync.Mutex
		r := &Runner{Book: book, Parallel: 1, DryRun: dry,
			Event:   func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() },
			Rollout: &fakeRollout{dark: func(string) bool { return false }, note: func(string) {}}}
		res := r.Run(context.Background(), []HostInput{{Target: &Target{Name: "lab1", Conn: h.conn, Files: files, Stamp: "20261206T000000Z"}}})
		return res[0], events
	}

	res, events := run(true)
	if res.Err != nil || len(res.Changes) != 2 || res.Changes[0].Step != "nginx sites" || res.Changes[1].Step != "handler nginx" {
		t.Fatalf("plan: %+v", res)
	}
	diff := res.Changes[0].Diff
	for p, f := range files {
		if f.Sensitive && strings.Contains(diff, strings.Split(string(f.Content), "\n")[1]) {
			t.Errorf("plan shows the key %s", p)
		}
	}
	if strings.Contains(diff, "BEGIN") || !strings.Contains(diff, "+(sensitive) private key; public key SHA-256 ") || !strings.Contains(diff, "+  sha256:  ") ||
		!strings.Contains(diff, "+    server_name shop.example.test;") {
		t.Errorf("plan diff:\n%s", diff)
	}
	if _, err := os.Stat(h.mod.Include); err == nil {
		t.Fatal("a plan changed the host")
	}
	_ = events

	res, _ = run(false)
	if res.Err != nil || res.Changed != 2 { // the step and its handler
		t.Fatalf("apply: %+v", res)
	}
	if got := readFile(t, h.log); got != "nginx -t: 3 sites in place, 0 candidates\nreload\n" {
		t.Errorf("log %q: want the test with every file in place, then one reload", got)
	}
	if mode(t, h.p(render.KeyFile("api"))) != 0o600 {
		t.Errorf("api key mode %04o", mode(t, h.p(render.KeyFile("api"))))
	}
	res, events = run(false)
	if res.Err != nil || res.Changed != 0 {
		t.Fatalf("second apply: %+v", res)
	}
	if got := readFile(t, h.log); strings.Count(got, "reload") != 1 {
		t.Errorf("second apply reloaded: %q", got)
	}
	if len(events) == 0 || !strings.HasPrefix(events[len(events)-1].Summary, "up to date") {
		t.Errorf("events %+v", events)
	}
}

// TestNginxSitesFailedReloadRestores: a change that passes the test but
// whose reload fails is put back file by file by the runner (a new file
// removed, a replaced one restored), and the handler runs again on the
// previous files.
func TestNginxSitesFailedReloadRestores(t *testing.T) {
	h := newSitesHost(t)
	files := h.sitesFiles(t)
	if res := h.run(h.book(t, "echo reload >> "+h.log), files); res.Err != nil {
		t.Fatal(res.Err)
	}
	shop := h.p(render.SiteConf("shop"))
	old := readFile(t, shop)
	changed := map[string]render.File{}
	for p, f := range files {
		changed[p] = f
	}
	f := changed[shop]
	f.Content = append(bytes.Clone(f.Content), []byte("# RELOAD-FAILS\n")...)
	changed[shop] = f
	extra := h.p(render.SitesHTTPDir + "/extra.conf")
	changed[extra] = render.File{Path: extra, Mode: 0o644, Owner: f.Owner, Group: f.Group, Content: []byte("# new\n"), Service: "nginx"}
	res := h.run(h.book(t, "if grep -q RELOAD-FAILS "+shop+"; then echo reload refused; exit 1; fi; echo reload >> "+h.log), changed)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "and it is running again on the previous files") {
		t.Fatalf("want a restored failure, got %v", res.Err)
	}
	if got := readFile(t, shop); got != old {
		t.Errorf("site not restored:\n%s", got)
	}
	if _, err := os.Stat(extra); err == nil {
		t.Errorf("new file %s left in place", extra)
	}
	if got := readFile(t, h.log); strings.Count(got, "reload\n") != 2 {
		t.Errorf("log %q: want the first reload and the one on the restored files", got)
	}
}
