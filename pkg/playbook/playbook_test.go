package playbook

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/hactl/hactl/internal/golden"
	"github.com/hactl/hactl/internal/testinv"
	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
	"github.com/hactl/hactl/pkg/render"
	"github.com/hactl/hactl/pkg/vrrp"
	"github.com/hactl/hactl/playbooks"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fixture is one distribution release as the playbook sees it: what
// /etc/os-release says, what is installed before hactl, what the package
// manager installs, which firewall and SELinux mode are on, and whether the
// distribution's nginx.conf claims default_server. Versions are the ones
// those releases ship (or shipped last).
type fixture struct {
	Name      string            `json:"-"`          // the file's name: testdata/releases/<name>.json
	OSRelease []string          `json:"os_release"` // /etc/os-release, one line each
	PkgMgr    string            `json:"package_manager"`
	Preinst   map[string]string `json:"preinstalled"`         // installed before hactl
	Repo      map[string]string `json:"repository"`           // what the package manager can install → version
	NeedsEPEL []string          `json:"needs_epel,omitempty"` // packages only installable once epel-release is
	// KeepalivedLine is `keepalived --version` once installed.
	KeepalivedLine string `json:"keepalived_version_line"`
	// ArpingLine is `arping -V`'s first line once installed ("" until then on Debian).
	ArpingLine string `json:"arping_version_line"`
	Firewall   string `json:"firewall"` // "firewalld", "ufw" or ""
	SELinux    string `json:"selinux"`  // `getenforce`, "" when absent
	// debian: packages start their services; EL: installed units are
	// disabled and stopped until enabled.
	StartsOnInstall bool   `json:"starts_on_install"`
	DefaultSite     bool   `json:"default_site"`        // Debian's sites-enabled/default link appears with nginx
	ConfDefault     bool   `json:"conf_default_server"` // nginx.conf has `listen 80 default_server` once nginx is installed
	Expect          expect `json:"expect"`
}

// expect is what the playbook must decide for the release: the plan of a
// fresh host, one "step: summary" line per change (-update rewrites it).
type expect struct {
	FreshPlan []string `json:"fresh_plan"`
}

const releasesDir = "testdata/releases"

// fixtures reads every release's data file: a new release or case is a new
// file, not new code.
func fixtures(t *testing.T) []fixture {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(releasesDir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no release fixtures in %s: %v", releasesDir, err)
	}
	var out []fixture
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var f fixture
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		f.Name = strings.TrimSuffix(filepath.Base(p), ".json")
		out = append(out, f)
	}
	return out
}

func fixtureNamed(t *testing.T, name string) fixture {
	t.Helper()
	for _, f := range fixtures(t) {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no fixture %s", name)
	return fixture{}
}

type svc struct{ active, enabled bool }

// host is a fake host for "facts in, commands out" tests: the facts script
// answers from its state, other commands are recorded and answered by
// rules, and the state changes as a real host's would.
type host struct {
	fx          fixture
	mu          sync.Mutex
	pkgs        map[string]string
	files       map[string]string // path → sha256 of what the swap put there
	modes       map[string]string // path → "644 root root"; default "600 root root"
	fail        map[string]int    // command substring → exit code
	services    map[string]svc
	fwRules     map[string]bool // firewalld "port='80/tcp'" / ufw "80/tcp"
	reloads     int             // firewall-cmd --reload
	confDefault bool            // nginx.conf has default_server now
	siteRemoved bool
	record      []byte            // the cluster record's content, as the swap left it
	pending     map[string]string // pending-handler record file → its line
}

func newHost(fx fixture) *host {
	h := &host{fx: fx, pkgs: map[string]string{}, files: map[string]string{}, modes: map[string]string{},
		services: map[string]svc{}, fwRules: map[string]bool{}, pending: map[string]string{}}
	for p, v := range fx.Preinst {
		h.pkgs[p] = v
	}
	return h
}

// converged installs everything as a first apply would, without the files.
func (h *host) preinstall() {
	for _, p := range []string{"epel-release", "nginx", "keepalived", "arping"} {
		if v, ok := h.fx.Repo[p]; ok {
			h.pkgs[p] = v
		}
	}
	h.installed()
	h.services["nginx"], h.services["keepalived"] = svc{true, true}, svc{true, true}
}

// installed applies what installing nginx does to the host's files.
func (h *host) installed() {
	if _, ok := h.pkgs["nginx"]; ok && h.fx.ConfDefault {
		h.confDefault = true
	}
}

func (h *host) factsOutput() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "@@os\n%s@@uid\n0\n@@systemd\nyes\n@@pkgmgr\n%s\n@@aptlists\n0\n@@packages\n", strings.Join(h.fx.OSRelease, "\n")+"\n", h.fx.PkgMgr)
	names := make([]string, 0, len(h.pkgs))
	for p := range h.pkgs {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		fmt.Fprintf(&b, "%s\t%s\tinstalled\n", p, h.pkgs[p])
	}
	b.WriteString("@@arping\n")
	if _, ok := h.pkgs["arping"]; ok || h.pkgs["iputils"] != "" {
		b.WriteString(h.fx.ArpingLine + "\n")
	}
	b.WriteString("@@keepalived\n")
	if _, ok := h.pkgs["keepalived"]; ok {
		b.WriteString(h.fx.KeepalivedLine + "\n")
	}
	fmt.Fprintf(&b, "@@record\n%s\n", h.record)
	// `ip -o addr show`: both families, as the facts script asks.
	b.WriteString("@@addrs\n2: eth0    inet 198.18.0.11/24 brd 198.18.0.255 scope global eth0\n" +
		"2: eth0    inet6 2001:db8:18::11/64 scope global nodad \\       valid_lft forever preferred_lft forever\n")
	fmt.Fprintf(&b, "@@firewall\n%s\n@@selinux\n%s\n@@services\n", h.fx.Firewall, h.fx.SELinux)
	for _, n := range []string{"nginx", "keepalived", "hactl-events"} {
		s, ok := h.services[n]
		switch {
		case !ok:
			fmt.Fprintf(&b, "%s\tinactive\tnot-found\n", n)
		default:
			fmt.Fprintf(&b, "%s\t%s\t%s\n", n, map[bool]string{true: "active", false: "inactive"}[s.active], map[bool]string{true: "enabled", false: "disabled"}[s.enabled])
		}
	}
	b.WriteString("@@files\n")
	for _, p := range []string{render.KeepalivedConf, render.CheckScript, render.NotifyScript, render.NginxSite, render.KeepalivedDrop, render.NginxDrop, render.TrackScript, render.ClusterRecord,
		render.EventsScript, render.EventsUnit, render.EventsConf, "/etc/nginx/sites-enabled/default"} {
		_, nginx := h.pkgs["nginx"]
		if sum, ok := h.files[p]; ok {
			mode := h.modes[p]
			if mode == "" {
				mode = "600 root root"
			}
			fmt.Fprintf(&b, "%s\tfile\t%s\t%s\n", p, mode, sum)
		} else if p == "/etc/nginx/sites-enabled/default" && nginx && h.fx.DefaultSite && !h.siteRemoved {
			fmt.Fprintf(&b, "%s\tlink\n", p)
		} else {
			fmt.Fprintf(&b, "%s\tabsent\n", p)
		}
	}
	b.WriteString("@@pending\n")
	for _, f := range slices.Sorted(maps.Keys(h.pending)) {
		fmt.Fprintf(&b, "%s\t%s\n", filepath.Base(f), h.pending[f])
	}
	b.WriteString("@@end\n")
	return b.String()
}

var (
	quoted        = regexp.MustCompile(`'([^']+)'`)
	fwdQuery      = regexp.MustCompile(`--query-([a-z-]+='[^']*') >/dev/null 2>&1 \|\| echo 'missing (\d+)'`)
	fwdAdd        = regexp.MustCompile(`--add-([a-z-]+='[^']*')`)
	ufwQuery      = regexp.MustCompile(`ufw --dry-run allow (.+?) 2>&1 \| grep -q '[^']*' \|\| echo 'missing (\d+)'`)
	pendingRecord = regexp.MustCompile(`\[ -e '([^']+)' \]`)
	unitQuote     = regexp.MustCompile(`systemctl (?:restart|start) '([^']+)'`)
)

func (h *host) handler(uploads map[string][]byte) func(cmd string, stdin []byte) remote.Result {
	return func(cmd string, _ []byte) remote.Result {
		if strings.HasPrefix(cmd, "LC_ALL=C") {
			return remote.Result{Stdout: []byte(h.factsOutput())}
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		for sub, code := range h.fail {
			if strings.Contains(cmd, sub) {
				return remote.Result{ExitCode: code, Stderr: []byte("simulated failure of " + sub)}
			}
		}
		ok := func(s string) remote.Result { return remote.Result{Stdout: []byte(s)} }
		switch {
		case strings.HasPrefix(cmd, "mkdir -p '"+facts.PendingDir+"'"):
			for _, m := range pendingRecord.FindAllStringSubmatch(cmd, -1) {
				if _, ok := h.pending[m[1]]; !ok {
					h.pending[m[1]] = "2026-11-24T00:00:00Z"
				}
			}
		case strings.HasPrefix(cmd, "rm -f '"+facts.PendingDir+"/"):
			delete(h.pending, strings.Trim(strings.TrimPrefix(cmd, "rm -f "), "'"))
		case strings.Contains(cmd, " install ") && (strings.Contains(cmd, "apt-get") || strings.HasPrefix(cmd, "yum ") || strings.HasPrefix(cmd, "dnf ")):
			_, list, _ := strings.Cut(cmd[strings.LastIndex(cmd, " install "):], " install ")
			for _, m := range quoted.FindAllStringSubmatch(list, -1) {
				v, known := h.fx.Repo[m[1]]
				epel := false
				for _, e := range h.fx.NeedsEPEL {
					epel = epel || e == m[1]
				}
				if !known || (epel && h.pkgs["epel-release"] == "") {
					return remote.Result{ExitCode: 1, Stderr: []byte("No package " + m[1] + " available.\nError: Nothing to do")}
				}
				h.pkgs[m[1]] = v
				if h.fx.StartsOnInstall && (m[1] == "nginx" || m[1] == "keepalived") {
					h.services[m[1]] = svc{true, true}
				} else if m[1] == "nginx" || m[1] == "keepalived" {
					h.services[m[1]] = svc{}
				}
			}
			h.installed()
		case strings.HasPrefix(cmd, "set -u\nP="):
			// a swap: the candidate's content becomes the file's
			p := strings.Trim(strings.Fields(strings.TrimPrefix(cmd, "set -u\nP="))[0], "';")
			for up, content := range uploads {
				if filepath.Dir(up) == filepath.Dir(p) && strings.Contains(up, filepath.Base(p)) {
					h.files[p] = sum(content)
					if p == render.ClusterRecord {
						h.record = content
					}
				}
			}
		case strings.Contains(cmd, "mv -f '/etc/nginx/sites-enabled/default'"):
			h.siteRemoved = true
		case strings.HasPrefix(cmd, "! grep -Eq"):
			if h.confDefault {
				return remote.Result{ExitCode: 1}
			}
		case strings.HasPrefix(cmd, "f=/etc/nginx/nginx.conf;"):
			h.confDefault = false
		case strings.Contains(cmd, "--query-"):
			out := "zone public\n"
			for _, m := range fwdQuery.FindAllStringSubmatch(cmd, -1) {
				if !h.fwRules[m[1]] {
					out += "missing " + m[2] + "\n"
				}
			}
			return ok(out)
		case strings.HasPrefix(cmd, "firewall-cmd -q --permanent"):
			for _, m := range fwdAdd.FindAllStringSubmatch(cmd, -1) {
				h.fwRules[m[1]] = true
			}
			if strings.Contains(cmd, "--reload") {
				h.reloads++
			}
		case strings.HasPrefix(cmd, "ufw --dry-run"):
			out := ""
			for _, m := range ufwQuery.FindAllStringSubmatch(cmd, -1) {
				if !h.fwRules[m[1]] {
					out += "missing " + m[2] + "\n"
				}
			}
			return ok(out)
		case strings.HasPrefix(cmd, "ufw allow "):
			r := strings.TrimPrefix(cmd, "ufw allow ")
			if h.fwRules[r] {
				return ok("Skipping adding existing rule\nSkipping adding existing rule (v6)\n")
			}
			h.fwRules[r] = true
			return ok("Rule added\nRule added (v6)\n")
		case strings.HasPrefix(cmd, `c=""; systemctl is-enabled`):
			n := quoted.FindStringSubmatch(cmd)[1]
			s, c := h.services[n], ""
			if !s.enabled {
				c += " enabled"
			}
			if !s.active {
				c += " started"
			}
			h.services[n] = svc{true, true}
			return ok(c + "\n")
		case strings.Contains(cmd, "then systemctl reload"):
			n := quoted.FindStringSubmatch(cmd)[1]
			if h.services[n].active {
				return ok("reloaded\n")
			}
			s := h.services[n]
			s.active = true
			h.services[n] = s
			return ok("started\n")
		case unitQuote.MatchString(cmd):
			n := unitQuote.FindStringSubmatch(cmd)[1]
			s := h.services[n]
			s.active = true
			h.services[n] = s
		}
		return remote.Result{}
	}
}

// uploadRecorder wraps Fake so uploads are visible to the handler.
type uploadRecorder struct {
	*remotetest.Fake
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
	return filesOf(t, testinv.Path("lab.hcl"))
}

// filesOf renders lab1's files from the inventory at path.
func filesOf(t *testing.T, path string) map[string]render.File {
	t.Helper()
	inv, l := testinv.LoadFile(t, path)
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

// labVars are what pkg/cli sets for lab1 of inventory/lab.hcl.
func labVars() map[string]string {
	return map[string]string{"nginx_listen": "80", "interface": "eth0", "vrrp_transport": "multicast"}
}

func runBook(t *testing.T, h *host, dry bool) bookRun {
	t.Helper()
	return runBookWith(t, h, dry, labFiles(t), labVars())
}

// runBookWith runs the default book on h for lab1 with these files and vars.
func runBookWith(t *testing.T, h *host, dry bool, files map[string]render.File, vars map[string]string) bookRun {
	t.Helper()
	conn := &uploadRecorder{Fake: &remotetest.Fake{}, uploads: map[string][]byte{}}
	conn.Fake.Handler = h.handler(conn.uploads)
	var out bookRun
	var mu sync.Mutex
	r := &Runner{
		Book: defaultBook(t), Parallel: 4, DryRun: dry,
		Event: func(e Event) { mu.Lock(); out.events = append(out.events, e); mu.Unlock() },
		Rollout: &fakeRollout{dark: func(string) bool { return false }, note: func(call string) {
			if host, ok := strings.CutPrefix(call, "settle "); ok {
				out.settled = append(out.settled, host)
			}
		}},
	}
	out.conn = conn
	out.results = r.Run(context.Background(), []HostInput{{
		Target: &Target{Name: "lab1", Conn: conn, Files: files, Stamp: "20261124T000000Z", Vars: vars},
		Check:  func(f *facts.Facts) error { return f.CheckSupported("lab1") },
	}})
	return out
}

// transcript is the ordered list of commands and uploads, with the facts
// script shortened (it is tested in pkg/facts).
func transcript(calls []remotetest.FakeCall) string {
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

// eventLog is the step outputs, in order (the runner emits them in order
// for a single host).
func eventLog(evs []Event) string {
	var b strings.Builder
	for _, e := range evs {
		if e.Step == "facts" {
			continue
		}
		fmt.Fprintf(&b, "%-8s %s: %s\n", e.Status, e.Step, e.Summary)
	}
	return b.String()
}

func goldenFile(t *testing.T, name, got string) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name+".golden"), []byte(got), *update)
}

// TestFirstApplyThenNoChange plans, then runs, the default playbook on a
// fresh host of every supported release (testdata/releases/<release>.json),
// then plans and runs it again on the converged host: the fresh plan is in
// the release's file, the complete command transcripts are golden files
// (testdata/<release>-*.golden; the step outputs are in
// <release>-first-apply-steps.golden), and the converged host plans nothing.
func TestFirstApplyThenNoChange(t *testing.T) {
	for _, fx := range fixtures(t) {
		t.Run(fx.Name, func(t *testing.T) {
			checkFreshPlan(t, fx)
			h := newHost(fx)
			first := runBook(t, h, false)
			if err := first.results[0].Err; err != nil {
				t.Fatal(err)
			}
			goldenFile(t, fx.Name+"-first-apply", transcript(first.conn.Calls()))
			if fx.Name != "debian12" {
				goldenFile(t, fx.Name+"-first-apply-steps", eventLog(first.events))
			}
			if first.results[0].Changed == 0 || len(first.settled) != 1 {
				t.Errorf("first apply: changed=%d settled=%v", first.results[0].Changed, first.settled)
			}

			// The swaps put the rendered content in place; modes must match
			// too for a clean second run.
			h.mu.Lock()
			for p, f := range labFiles(t) {
				if h.files[p] != sum(f.Content) {
					t.Errorf("%s: the swap did not install the rendered content", p)
				}
				h.modes[p] = fmt.Sprintf("%o root root", f.Mode)
			}
			for _, n := range []string{"nginx", "keepalived"} {
				if s := h.services[n]; !s.active || !s.enabled {
					t.Errorf("%s not enabled and running after the first apply: %+v", n, s)
				}
			}
			if h.confDefault {
				t.Error("nginx.conf still claims default_server")
			}
			checkRecord(t, h)
			if fx.Firewall != "" && len(h.fwRules) != 2 {
				t.Errorf("firewall rules %v", h.fwRules)
			}
			if fx.Firewall == "" && len(h.fwRules) != 0 {
				t.Errorf("no firewall is active, but rules were added: %v", h.fwRules)
			}
			h.mu.Unlock()

			if p := runBook(t, h, true); p.results[0].Err != nil || len(p.results[0].Changes) != 0 {
				t.Errorf("the converged host plans %+v (%v)", p.results[0].Changes, p.results[0].Err)
			}
			second := runBook(t, h, false)
			if err := second.results[0].Err; err != nil {
				t.Fatal(err)
			}
			if n := second.results[0].Changed; n != 0 {
				t.Errorf("no-change apply changed %d things:\n%s", n, eventLog(second.events))
			}
			if len(second.settled) != 0 {
				t.Errorf("no-change apply restarted something: %v", second.settled)
			}
			goldenFile(t, fx.Name+"-no-change", transcript(second.conn.Calls()))
			for _, c := range second.conn.Calls() {
				if strings.HasPrefix(c.Cmd, "LC_ALL=C") {
					continue
				}
				if c.Upload || strings.Contains(c.Cmd, " install ") || strings.Contains(c.Cmd, "reload") || strings.Contains(c.Cmd, "restart") ||
					strings.Contains(c.Cmd, "--add-") || strings.HasPrefix(c.Cmd, "ufw allow") || strings.HasPrefix(c.Cmd, "f=") {
					t.Errorf("no-change apply ran %q", c.Cmd+c.Path)
				}
			}
		})
	}
}

// TestELRules checks the EL-specific decisions in the transcripts, so a
// golden rewritten with -update cannot silently lose them.
func TestELRules(t *testing.T) {
	for _, fx := range fixtures(t) {
		t.Run(fx.Name, func(t *testing.T) {
			h := newHost(fx)
			r := runBook(t, h, false)
			if err := r.results[0].Err; err != nil {
				t.Fatal(err)
			}
			tr := transcript(r.conn.Calls())
			steps := eventLog(r.events)
			el := fx.PkgMgr != "apt-get"
			has := func(s string) bool { return strings.Contains(tr, s) }
			check := func(want bool, what, s string) {
				t.Helper()
				if has(s) != want {
					t.Errorf("%s: want %v for %q", what, want, s)
				}
			}
			check(fx.Name == "centos7", "EPEL first on EL 7", "RUN yum -q -y --setopt=skip_missing_names_on_install=False install 'epel-release'\n")
			check(fx.Name == "centos7", "yum on EL 7", "skip_missing_names_on_install=False install 'nginx' 'keepalived'") // + 'nftables' where not preinstalled
			check(el && fx.Name != "centos7", "dnf on EL 8+", "RUN dnf -q -y install 'nginx' 'keepalived'")
			check(!el, "arping on Debian", "'arping'")
			check(el && fx.SELinux != "", "restorecon with SELinux", `restorecon "$P"`)
			check(fx.Firewall == "firewalld", "firewalld rules", `--add-rich-rule='rule protocol value="vrrp" accept' && firewall-cmd -q --permanent --zone='public' --add-port='80/tcp' && firewall-cmd -q --reload`)
			check(fx.Firewall == "ufw", "ufw vrrp", "RUN ufw allow to 224.0.0.18\n")
			check(fx.Firewall == "ufw", "ufw port", "RUN ufw allow 80/tcp\n")
			check(fx.ConfDefault, "nginx.conf default_server removed", "RUN f=/etc/nginx/nginx.conf;")
			check(fx.Name != "centos7", "keepalived config test", "keepalived -t -f")
			if fx.Name == "centos7" && !strings.Contains(steps, "validation skipped: keepalived 1.3.5 has no config test") {
				t.Errorf("the skipped config test is not reported:\n%s", steps)
			}
			if el && !strings.Contains(steps, "nginx -t") && fx.ConfDefault {
				t.Errorf("nginx.conf edit not shown:\n%s", steps)
			}
			if !el && !strings.Contains(steps, "skipped: only for el") {
				t.Errorf("EL step not skipped on %s:\n%s", fx.Name, steps)
			}
		})
	}
}

// TestPlanShowsFirewall: `hactl plan` (the dry run) reports the firewall
// rules it would add, and adds none.
func TestPlanShowsFirewall(t *testing.T) {
	for _, name := range []string{"rocky9", "ubuntu2204"} {
		t.Run(name, func(t *testing.T) {
			h := newHost(fixtureNamed(t, name))
			r := runBook(t, h, true)
			if err := r.results[0].Err; err != nil {
				t.Fatal(err)
			}
			var got string
			for _, c := range r.results[0].Changes {
				if c.Step == "firewall" {
					got = c.Summary
				}
			}
			want := map[string]string{"rocky9": "allow vrrp, 80/tcp in zone public (permanent) and reload", "ubuntu2204": "allow vrrp (to 224.0.0.18), 80/tcp"}[name]
			if got != want {
				t.Errorf("firewall plan %q, want %q", got, want)
			}
			if len(h.fwRules) != 0 || h.reloads != 0 {
				t.Errorf("the plan changed the firewall: %v", h.fwRules)
			}
		})
	}
}

// TestUfwReportsOnlyAdded: a rule ufw already has ("Skipping adding existing
// rule") is not a change even when the query missed it.
func TestUfwReportsOnlyAdded(t *testing.T) {
	h := newHost(fixtureNamed(t, "ubuntu2204"))
	h.preinstall()
	h.fwRules["80/tcp"] = true
	conn := &uploadRecorder{Fake: &remotetest.Fake{}, uploads: map[string][]byte{}}
	conn.Fake.Handler = func(cmd string, stdin []byte) remote.Result {
		if strings.HasPrefix(cmd, "ufw --dry-run") {
			return remote.Result{Stdout: []byte("missing 0\nmissing 1\n")} // a query that missed both
		}
		return h.handler(conn.uploads)(cmd, stdin)
	}
	f, err := factsFor(h)
	if err != nil {
		t.Fatal(err)
	}
	o, err := converge(&Firewall{VRRP: true, Ports: []string{"{nginx_listen}/tcp"}},
		&Target{Name: "lab1", Conn: conn, Facts: f, Vars: labVars()})
	if err != nil {
		t.Fatal(err)
	}
	if !o.Changed || o.Summary != "allowed vrrp (to 224.0.0.18)" {
		t.Errorf("%+v", o)
	}
}

func TestFirewallBadVar(t *testing.T) {
	h := newHost(fixtureNamed(t, "rocky9"))
	f, err := factsFor(h)
	if err != nil {
		t.Fatal(err)
	}
	_, err = converge(&Firewall{Ports: []string{"{nope}/tcp"}}, &Target{Name: "x", Conn: &remotetest.Fake{}, Facts: f})
	if err == nil || !strings.Contains(err.Error(), "{nope}") {
		t.Errorf("err = %v", err)
	}
}

// converge decides and runs one module, as an apply does.
func converge(m Module, t *Target) (Outcome, error) {
	ctx := context.Background()
	p, err := m.Plan(ctx, t)
	if err != nil {
		return Outcome{}, err
	}
	return execute(ctx, t, p, nil)
}

func factsFor(h *host) (*facts.Facts, error) { return facts.Parse(h.factsOutput()) }

// TestSELinuxDenialHint: a failed start on an SELinux host shows the
// recent AVC denials of the unit's process.
func TestSELinuxDenialHint(t *testing.T) {
	h := newHost(fixtureNamed(t, "rocky9"))
	h.preinstall()
	h.services["keepalived"] = svc{}
	conn := &remotetest.Fake{Handler: func(cmd string, stdin []byte) remote.Result {
		switch {
		case strings.Contains(cmd, "systemctl start 'keepalived'"):
			return remote.Result{ExitCode: 4}
		case strings.HasPrefix(cmd, "journalctl"):
			return remote.Result{Stdout: []byte("Keepalived_vrrp: cannot execute /etc/keepalived/check_nginx.sh\n")}
		case strings.Contains(cmd, "ausearch -m avc -ts recent -c 'keepalived'"):
			return remote.Result{Stdout: []byte("type=AVC msg=audit(1700000000.1:42): avc:  denied  { execute } for comm=\"keepalived\" scontext=system_u:system_r:keepalived_t:s0 tcontext=unconfined_u:object_r:user_tmp_t:s0\n")}
		}
		return h.handler(nil)(cmd, stdin)
	}}
	f, err := factsFor(h)
	if err != nil {
		t.Fatal(err)
	}
	_, err = converge(&Service{Name: "keepalived", Action: "started"}, &Target{Name: "x", Conn: conn, Facts: f, Touched: true})
	if err == nil || !strings.Contains(err.Error(), "SELinux denied keepalived") || !strings.Contains(err.Error(), "user_tmp_t") {
		t.Errorf("err = %v", err)
	}
	// Debian: no SELinux, no ausearch round trip.
	d := newHost(fixtureNamed(t, "debian12"))
	df, _ := factsFor(d)
	conn2 := &remotetest.Fake{Handler: func(string, []byte) remote.Result { return remote.Result{ExitCode: 4} }}
	_, _ = converge(&Service{Name: "keepalived", Action: "started"}, &Target{Name: "x", Conn: conn2, Facts: df, Touched: true})
	for _, c := range conn2.Runs() {
		if strings.Contains(c.Cmd, "ausearch") {
			t.Error("ausearch ran on Debian")
		}
	}
}

func TestUnsupportedFailsBeforeChanges(t *testing.T) {
	fx := fixtureNamed(t, "debian12")
	fx.OSRelease = []string{`PRETTY_NAME="Debian GNU/Linux 10 (buster)"`, `VERSION_ID="10"`, "ID=debian"}
	h := newHost(fx)
	r := runBook(t, h, false)
	err := r.results[0].Err
	if err == nil || !strings.Contains(err.Error(), "Debian GNU/Linux 10") || !strings.Contains(err.Error(), "rocky 8/9") {
		t.Fatalf("err = %v", err)
	}
	for _, c := range r.conn.Calls() {
		if !strings.HasPrefix(c.Cmd, "LC_ALL=C") {
			t.Errorf("ran %q on an unsupported host", c.Cmd+c.Path)
		}
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	for _, name := range []string{"debian12", "centos7", "rocky9"} {
		t.Run(name, func(t *testing.T) {
			h := newHost(fixtureNamed(t, name))
			r := runBook(t, h, true)
			if err := r.results[0].Err; err != nil {
				t.Fatal(err)
			}
			for _, c := range r.conn.Calls() {
				if c.Upload || (!strings.HasPrefix(c.Cmd, "LC_ALL=C") && !strings.HasPrefix(c.Cmd, "cat ") &&
					!strings.HasPrefix(c.Cmd, "! grep") && !strings.Contains(c.Cmd, "--query-") && !strings.HasPrefix(c.Cmd, "ufw --dry-run")) {
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
			if len(diffs) != len(labFiles(t)) {
				t.Errorf("want a diff per rendered file, got %v", diffs)
			}
		})
	}
}

func TestValidationFailureKeepsLiveFile(t *testing.T) {
	// The swap script exits 10 when the candidate fails validation.
	h := newHost(fixtureNamed(t, "debian12"))
	h.preinstall()
	h.fail = map[string]int{"P='/etc/keepalived/keepalived.conf'": 10}
	r := runBook(t, h, false)
	err := r.results[0].Err
	if err == nil || !strings.Contains(err.Error(), "failed validation") || !strings.Contains(err.Error(), "live file was not touched") {
		t.Fatalf("err = %v", err)
	}
	for _, c := range r.conn.Calls() {
		if strings.Contains(c.Cmd, "systemctl reload") || strings.Contains(c.Cmd, "systemctl restart") || strings.Contains(strings.ReplaceAll(c.Cmd, "nginx.service.d", ""), "nginx.service") {
			t.Errorf("a service was touched after a failed validation: %q", c.Cmd)
		}
	}
	if len(r.settled) != 0 {
		t.Error("settle ran for a failed host")
	}
}

func TestHandlerFailureRestores(t *testing.T) {
	h := newHost(fixtureNamed(t, "debian12"))
	h.preinstall()
	h.fail = map[string]int{"then systemctl reload 'nginx'": 1}
	r := runBook(t, h, false)
	err := r.results[0].Err
	if err == nil || !strings.Contains(err.Error(), `handler "nginx"`) || !strings.Contains(err.Error(), "restored") {
		t.Fatalf("err = %v", err)
	}
	var restores []string
	for _, c := range r.conn.Runs() {
		if (strings.HasPrefix(c.Cmd, "rm -f ") || strings.HasPrefix(c.Cmd, "cp -a ")) && !strings.Contains(c.Cmd, facts.PendingDir) {
			restores = append(restores, c.Cmd)
		}
	}
	// nginx still fails after the restore and keepalived's handler never
	// ran: both stay pending for the next run; systemd's ran and is cleared.
	if got := strings.Join(slices.Sorted(maps.Keys(h.pending)), " "); got != facts.PendingFile("keepalived")+" "+facts.PendingFile("nginx") {
		t.Errorf("pending records after the failed handler: %s", got)
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
		"bad when":        `step "a" { when = "os:" command { run = "true" } }`,
		"unknown module":  `step "a" { copy { src = "x" } }`,
		"empty":           ``,
	} {
		if _, _, d := Parse("t.hcl", []byte(src)); !d.HasErrors() {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestHeredocCommand: the EL nginx.conf edit reaches the shell verbatim
// (HCL heredocs interpret no backslash escapes).
func TestHeredocCommand(t *testing.T) {
	for _, s := range defaultBook(t).Steps {
		w, ok := s.Module.(*When)
		if !ok || w.Cond != "os:el" {
			continue
		}
		c := w.Module.(*Command)
		if !strings.Contains(c.Cmd, `default_server/\1/'`) {
			t.Errorf("sed back-reference mangled: %s", c.Cmd)
		}
		return
	}
	t.Fatal("no os:el command step")
}

// TestDrift: the one rule for "this file differs", used by the template
// module and by `hactl status`; a symlink is never the rendered file.
func TestDrift(t *testing.T) {
	want := render.File{Path: "/etc/x", Content: []byte("x\n"), Mode: 0o644, Owner: "root", Group: "root"}
	same := facts.File{Exists: true, Mode: 0o644, Owner: "root", Group: "root", SHA256: sum(want.Content)}
	for name, tc := range map[string]struct {
		have facts.File
		want string
	}{
		"same":    {same, DriftNone},
		"missing": {facts.File{}, DriftMissing},
		"content": {func() facts.File { f := same; f.SHA256 = sum([]byte("y")); return f }(), DriftContent},
		"symlink": {facts.File{Exists: true, Symlink: true}, DriftContent},
		"mode":    {func() facts.File { f := same; f.Mode = 0o600; return f }(), DriftOwnerMode},
		"owner":   {func() facts.File { f := same; f.Owner = "nobody"; return f }(), DriftOwnerMode},
	} {
		if got := Drift(want, tc.have); got != tc.want {
			t.Errorf("%s: Drift = %q, want %q", name, got, tc.want)
		}
		p, err := (&Template{Path: want.Path}).Plan(context.Background(),
			&Target{Facts: &facts.Facts{Files: map[string]facts.File{want.Path: tc.have}}, Files: map[string]render.File{want.Path: want}})
		if err != nil || (len(p.Ops) > 0) != (tc.want != DriftNone) {
			t.Errorf("%s: template plan %d ops (%v), drift %q", name, len(p.Ops), err, tc.want)
		}
	}
}

// checkFreshPlan: facts in, operations out. The plan of a fresh host of
// the release is its data file's expect.fresh_plan (-update rewrites it).
func checkFreshPlan(t *testing.T, fx fixture) {
	t.Helper()
	plan := runBook(t, newHost(fx), true)
	if err := plan.results[0].Err; err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, c := range plan.results[0].Changes {
		got = append(got, c.Step+": "+c.Summary)
	}
	if !*update {
		if strings.Join(got, "\n") != strings.Join(fx.Expect.FreshPlan, "\n") {
			t.Errorf("fresh plan:\n%s\nwant (%s):\n%s", strings.Join(got, "\n"), releasesDir, strings.Join(fx.Expect.FreshPlan, "\n"))
		}
		return
	}
	fx.Expect.FreshPlan = got
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(fx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(releasesDir, fx.Name+".json"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkRecord: after an apply the host's facts carry the cluster record the
// apply wrote, and it reads back as the lab's membership and router ids.
func checkRecord(t *testing.T, h *host) {
	t.Helper()
	// The caller holds h.mu; factsOutput takes it itself.
	h.mu.Unlock()
	out := h.factsOutput()
	h.mu.Lock()
	f, err := facts.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	want := labFiles(t)[render.ClusterRecord].Content
	if !bytes.Equal(f.ClusterRecord, want) {
		t.Fatalf("facts read the record\n%s\nwant\n%s", f.ClusterRecord, want)
	}
	r, err := vrrp.ParseRecord(f.ClusterRecord)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range r.Hosts {
		got = append(got, fmt.Sprintf("%s %s %s %d", m.Name, m.Address, m.VIP, m.VRID))
	}
	if w := "lab1 198.18.0.11 198.18.0.201/24 51,lab2 198.18.0.12 198.18.0.202/24 52,lab3 198.18.0.13 198.18.0.203/24 53"; strings.Join(got, ",") != w {
		t.Errorf("record %v", got)
	}
}

// TestSwapThenFailureRunsHandlerNextTime is issue 12's reproduction: run 1
// replaces keepalived.conf, then `nginx -t` fails at the site step, so the
// run ends before its handlers. keepalived never loaded the new file; the
// next plan says so, and run 2, which finds keepalived.conf up to date, still
// reloads keepalived (and runs daemon-reload for the drop-in), then clears
// the records: a third run does nothing.
func TestSwapThenFailureRunsHandlerNextTime(t *testing.T) {
	h := newHost(fixtureNamed(t, "debian12"))
	h.preinstall()
	h.fail = map[string]int{"nginx -t": 11}
	r1 := runBook(t, h, false)
	if err := r1.results[0].Err; err == nil || !strings.Contains(err.Error(), "nginx site") {
		t.Fatalf("run 1: err = %v", err)
	}
	for _, c := range r1.conn.Runs() {
		if strings.Contains(c.Cmd, "systemctl reload 'keepalived'") {
			t.Fatal("run 1 reloaded keepalived although it failed before its handlers")
		}
	}
	if _, ok := h.pending[facts.PendingFile("keepalived")]; !ok {
		t.Fatalf("no pending record for keepalived after run 1: %v", h.pending)
	}
	h.fail = nil

	plan := runBook(t, h, true)
	var lines []string
	for _, c := range plan.results[0].Changes {
		lines = append(lines, c.Step+": "+c.Summary)
	}
	got := strings.Join(lines, "\n")
	for _, want := range []string{
		"handler keepalived: would run handler keepalived: pending since 2026-11-24T00:00:00Z from an interrupted run",
		"handler systemd: would run handler systemd: pending since 2026-11-24T00:00:00Z from an interrupted run",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("plan lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "keepalived config:") {
		t.Errorf("plan wants to change keepalived.conf again:\n%s", got)
	}

	r2 := runBook(t, h, false)
	if err := r2.results[0].Err; err != nil {
		t.Fatalf("run 2: %v", err)
	}
	for p, f := range labFiles(t) { // modes as the swaps set them
		h.modes[p] = fmt.Sprintf("%o root root", f.Mode)
	}
	log := eventLog(r2.events)
	for _, want := range []string{"ok       keepalived config: up to date", "changed  handler keepalived: reloaded (pending since 2026-11-24T00:00:00Z from an interrupted run)", "changed  handler systemd:"} {
		if !strings.Contains(log, want) {
			t.Errorf("run 2 lacks %q:\n%s", want, log)
		}
	}
	if len(h.pending) != 0 {
		t.Errorf("records left after run 2: %v", h.pending)
	}
	if r3 := runBook(t, h, false); r3.results[0].Changed != 0 {
		t.Errorf("run 3 changed %d things:\n%s", r3.results[0].Changed, eventLog(r3.events))
	}
}

// TestPendingRecordOfAnotherPlaybook: a record whose handler this playbook
// does not define is neither run nor cleared; apply warns, naming the file.
func TestPendingRecordOfAnotherPlaybook(t *testing.T) {
	h := newHost(fixtureNamed(t, "debian12"))
	h.preinstall()
	rec := facts.PendingFile("haproxy")
	h.pending[rec] = "2026-11-20T08:00:00Z"
	r := runBook(t, h, false)
	if err := r.results[0].Err; err != nil {
		t.Fatal(err)
	}
	var warned []string
	for _, e := range r.events {
		if e.Status == "warning" {
			warned = append(warned, e.Step+": "+e.Summary)
		}
	}
	want := `handler haproxy: pending since 2026-11-20T08:00:00Z, but this playbook has no handler "haproxy": ` +
		"apply the playbook that recorded it, or do what it does by hand and remove " + rec
	if len(warned) != 1 || warned[0] != want {
		t.Errorf("warnings:\n%s\nwant\n%s", strings.Join(warned, "\n"), want)
	}
	if _, ok := h.pending[rec]; !ok {
		t.Error("the other playbook's record was removed")
	}
	for _, c := range r.conn.Runs() {
		if strings.Contains(c.Cmd, "haproxy") && !strings.Contains(c.Cmd, "<facts") && strings.Contains(c.Cmd, "rm -f") {
			t.Errorf("sent %q", c.Cmd)
		}
	}
}
