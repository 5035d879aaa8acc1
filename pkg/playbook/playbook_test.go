package playbook

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/hactl/hactl/internal/golden"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/render"
	"github.com/hactl/hactl/pkg/vrrp"
	"github.com/hactl/hactl/playbooks"
)

var update = flag.Bool("update", false, "rewrite golden files")

// host is a fake Debian host for "facts in, commands out" tests: the facts
// script answers from its state, other commands are recorded and answered by
// rules, and the state changes as a real host's would.
type host struct {
	mu        sync.Mutex
	installed bool
	files     map[string]string // path → sha256 of what the swap put there
	modes     map[string]string // path → "644 root root"; default "600 root root"
	fail      map[string]int    // command substring → exit code
}

func (h *host) factsOutput(req string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	b.WriteString("@@os\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=debian\n@@uid\n0\n@@systemd\nyes\n@@pkgmgr\napt-get\n@@aptlists\n0\n@@packages\n")
	if h.installed {
		b.WriteString("nginx\t1.22.1-9\tinstalled\nkeepalived\t1:2.2.7-1\tinstalled\narping\t2.23-1\tinstalled\n@@arping\nARPing 2.23\n@@keepalived\nKeepalived v2.2.7 (01/16,2022)\n")
	} else {
		b.WriteString("@@arping\n@@keepalived\n")
	}
	b.WriteString("@@addrs\n2: eth0    inet 198.18.0.11/24 brd 198.18.0.255 scope global eth0\n@@services\n")
	st := "inactive\tnot-found"
	if h.installed {
		st = "active\tenabled"
	}
	b.WriteString("nginx\t" + st + "\nkeepalived\t" + st + "\n@@files\n")
	for _, p := range []string{render.KeepalivedConf, render.CheckScript, render.NotifyScript, render.NginxSite, render.KeepalivedDrop, "/etc/nginx/sites-enabled/default"} {
		if sum, ok := h.files[p]; ok {
			mode := h.modes[p]
			if mode == "" {
				mode = "600 root root"
			}
			fmt.Fprintf(&b, "%s\tfile\t%s\t%s\n", p, mode, sum)
		} else if p == "/etc/nginx/sites-enabled/default" && h.installed && h.files["default-removed"] == "" {
			fmt.Fprintf(&b, "%s\tlink\n", p)
		} else {
			fmt.Fprintf(&b, "%s\tabsent\n", p)
		}
	}
	b.WriteString("@@end\n")
	return b.String()
}

func (h *host) handler(uploads map[string][]byte) func(cmd string, stdin []byte) remote.Result {
	return func(cmd string, _ []byte) remote.Result {
		if strings.HasPrefix(cmd, "LC_ALL=C") {
			return remote.Result{Stdout: []byte(h.factsOutput(cmd))}
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		for sub, code := range h.fail {
			if strings.Contains(cmd, sub) {
				return remote.Result{ExitCode: code, Stderr: []byte("simulated failure of " + sub)}
			}
		}
		switch {
		case strings.Contains(cmd, "apt-get") && strings.Contains(cmd, "install"):
			h.installed = true
		case strings.HasPrefix(cmd, "set -u\nP="):
			// a swap: the candidate's content becomes the file's
			p := strings.Trim(strings.Fields(strings.TrimPrefix(cmd, "set -u\nP="))[0], "';")
			for up, content := range uploads {
				if filepath.Dir(up) == filepath.Dir(p) && strings.Contains(up, filepath.Base(p)) {
					h.files[p] = sum(content)
				}
			}
		case strings.Contains(cmd, "mv -f '/etc/nginx/sites-enabled/default'"):
			h.files["default-removed"] = "yes"
		case strings.HasPrefix(cmd, `c=""; systemctl is-enabled`):
			return remote.Result{Stdout: []byte("\n")}
		case strings.Contains(cmd, "then systemctl reload"):
			return remote.Result{Stdout: []byte("reloaded\n")}
		}
		return remote.Result{}
	}
}

// uploadRecorder wraps Fake so uploads are visible to the handler.
type uploadRecorder struct {
	*remote.Fake
	mu      sync.Mutex
	uploads map[string][]byte
}

func (u *uploadRecorder) Upload(ctx context.Context, path string, content []byte, mode os.FileMode) error {
	u.mu.Lock()
	u.uploads[path] = content
	u.mu.Unlock()
	return u.Fake.Upload(ctx, path, content, mode)
}

func labFiles(t *testing.T) map[string]render.File {
	t.Helper()
	inv, d := inventory.NewLoader(inventory.Options{}).LoadFile("../../inventory/lab.hcl")
	if d.HasErrors() {
		t.Fatal(d)
	}
	l, d := vrrp.Build(inv)
	if d.HasErrors() {
		t.Fatal(d)
	}
	r, err := render.New()
	if err != nil {
		t.Fatal(err)
	}
	files, err := r.Host(inv, l, "lab1")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]render.File{}
	for _, f := range files {
		m[f.Path] = f
	}
	return m
}

func defaultBook(t *testing.T) *Book {
	t.Helper()
	b, _, d := Parse(playbooks.HANginxName, playbooks.HANginx)
	if d.HasErrors() {
		t.Fatal(d)
	}
	return b
}

type bookRun struct {
	results []Result
	events  []Event
	conn    *uploadRecorder
	settled []string
}

func runBook(t *testing.T, h *host, dry bool) bookRun {
	t.Helper()
	conn := &uploadRecorder{Fake: &remote.Fake{}, uploads: map[string][]byte{}}
	conn.Fake.Handler = h.handler(conn.uploads)
	var out bookRun
	var mu sync.Mutex
	r := &Runner{
		Book: defaultBook(t), Parallel: 4, DryRun: dry,
		Event:  func(e Event) { mu.Lock(); out.events = append(out.events, e); mu.Unlock() },
		Settle: func(_ context.Context, host string) error { out.settled = append(out.settled, host); return nil },
	}
	out.conn = conn
	out.results = r.Run(context.Background(), []HostInput{{
		Target: &Target{Name: "lab1", Conn: conn, Files: labFiles(t), Stamp: "20261124T000000Z"},
	}})
	return out
}

// transcript is the ordered list of commands and uploads, with the facts
// script shortened (it is tested in pkg/facts).
func transcript(calls []remote.FakeCall) string {
	var b strings.Builder
	for _, c := range calls {
		switch {
		case c.Upload:
			fmt.Fprintf(&b, "UPLOAD %s mode %04o (%d bytes)\n", c.Path, c.Mode, len(c.Content))
		case strings.HasPrefix(c.Cmd, "LC_ALL=C"):
			b.WriteString("RUN <facts script>\n")
		default:
			fmt.Fprintf(&b, "RUN %s\n", c.Cmd)
		}
	}
	return b.String()
}

func goldenFile(t *testing.T, name, got string) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name+".golden"), []byte(got), *update)
}

func TestDebian12FirstApplyThenNoChange(t *testing.T) {
	h := &host{files: map[string]string{}, modes: map[string]string{}}
	first := runBook(t, h, false)
	if err := first.results[0].Err; err != nil {
		t.Fatal(err)
	}
	goldenFile(t, "debian12-first-apply", transcript(first.conn.Calls()))
	if first.results[0].Changed == 0 || len(first.settled) != 1 {
		t.Errorf("first apply: changed=%d settled=%v", first.results[0].Changed, first.settled)
	}

	// The swaps put the rendered content in place; modes must match too for
	// a clean second run.
	h.mu.Lock()
	for p, f := range labFiles(t) {
		if h.files[p] != sum(f.Content) {
			t.Errorf("%s: the swap did not install the rendered content", p)
		}
		h.modes[p] = fmt.Sprintf("%o root root", f.Mode)
	}
	h.mu.Unlock()
	second := runBook(t, h, false)
	if err := second.results[0].Err; err != nil {
		t.Fatal(err)
	}
	if n := second.results[0].Changed; n != 0 {
		t.Errorf("no-change apply changed %d things: %+v", n, second.events)
	}
	if len(second.settled) != 0 {
		t.Errorf("no-change apply restarted something: %v", second.settled)
	}
	goldenFile(t, "debian12-no-change", transcript(second.conn.Calls()))
	for _, c := range second.conn.Calls() {
		if strings.HasPrefix(c.Cmd, "LC_ALL=C") {
			continue
		}
		if c.Upload || strings.Contains(c.Cmd, "apt-get") || strings.Contains(c.Cmd, "reload") || strings.Contains(c.Cmd, "restart") {
			t.Errorf("no-change apply ran %q", c.Cmd+c.Path)
		}
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	h := &host{files: map[string]string{}, modes: map[string]string{}}
	r := runBook(t, h, true)
	if err := r.results[0].Err; err != nil {
		t.Fatal(err)
	}
	for _, c := range r.conn.Calls() {
		if c.Upload || (!strings.HasPrefix(c.Cmd, "LC_ALL=C") && !strings.HasPrefix(c.Cmd, "cat ")) {
			t.Errorf("dry run sent %q %s", c.Cmd, c.Path)
		}
	}
	var diffs []string
	for _, c := range r.results[0].Changes {
		if c.Diff != "" {
			diffs = append(diffs, c.Step)
		}
		if strings.Contains(c.Diff, "labpass1") {
			t.Errorf("secret in plan diff of %s", c.Step)
		}
	}
	sort.Strings(diffs)
	if len(diffs) != 5 {
		t.Errorf("want a diff per rendered file, got %v", diffs)
	}
}

func TestValidationFailureKeepsLiveFile(t *testing.T) {
	// The swap script exits 10 when the candidate fails validation.
	h := &host{files: map[string]string{}, modes: map[string]string{}, installed: true,
		fail: map[string]int{"P='/etc/keepalived/keepalived.conf'": 10}}
	r := runBook(t, h, false)
	err := r.results[0].Err
	if err == nil || !strings.Contains(err.Error(), "failed validation") || !strings.Contains(err.Error(), "live file was not touched") {
		t.Fatalf("err = %v", err)
	}
	for _, c := range r.conn.Calls() {
		if strings.Contains(c.Cmd, "systemctl reload") || strings.Contains(c.Cmd, "systemctl restart") || strings.Contains(c.Cmd, "nginx.service") {
			t.Errorf("a service was touched after a failed validation: %q", c.Cmd)
		}
	}
	if len(r.settled) != 0 {
		t.Error("settle ran for a failed host")
	}
}

func TestHandlerFailureRestores(t *testing.T) {
	h := &host{files: map[string]string{}, modes: map[string]string{}, installed: true,
		fail: map[string]int{"then systemctl reload 'nginx'": 1}}
	r := runBook(t, h, false)
	err := r.results[0].Err
	if err == nil || !strings.Contains(err.Error(), `handler "nginx"`) || !strings.Contains(err.Error(), "restored") {
		t.Fatalf("err = %v", err)
	}
	var restores []string
	for _, c := range r.conn.Runs() {
		if strings.HasPrefix(c.Cmd, "rm -f ") || strings.HasPrefix(c.Cmd, "cp -a ") {
			restores = append(restores, c.Cmd)
		}
	}
	want := []string{"rm -f '/etc/nginx/conf.d/hactl.conf'", "cp -a '/var/backups/hactl/etc_nginx_sites-enabled_default.hactl-20261124T000000Z' '/etc/nginx/sites-enabled/default'"}
	sort.Strings(restores)
	sort.Strings(want)
	if strings.Join(restores, "\n") != strings.Join(want, "\n") {
		t.Errorf("restores:\n%s\nwant:\n%s", strings.Join(restores, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseErrors(t *testing.T) {
	for name, src := range map[string]string{
		"unknown handler": `step "a" { command { run = "true" } notify = ["nope"] }`,
		"two modules":     `step "a" { command { run = "true" } package { names = ["x"] } }`,
		"no module":       `step "a" { }`,
		"bad state":       `step "a" { file { path = "/x" state = "present" } }`,
		"bad validate":    `step "a" { template { path = "/x" validate = "check" } }`,
		"bad condition":   `step "a" { template { path = "/x" validate_if = "sunny" } }`,
		"unknown module":  `step "a" { copy { src = "x" } }`,
		"empty":           ``,
	} {
		if _, _, d := Parse("t.hcl", []byte(src)); !d.HasErrors() {
			t.Errorf("%s: accepted", name)
		}
	}
}
