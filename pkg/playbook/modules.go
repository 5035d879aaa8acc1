package playbook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	udiff "github.com/aymanbagabas/go-udiff"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/render"
)

// Target is one host as the modules see it.
type Target struct {
	Name  string
	Conn  remote.Conn
	Facts *facts.Facts
	Files map[string]render.File // the files hactl renders for this host, by path
	Stamp string                 // backup suffix shared by the whole run (UTC time)
	// Vars are per-host values from the inventory that module attributes
	// may name as "{name}" (e.g. "{nginx_listen}/tcp"): the playbook is
	// parsed once, the values differ per cluster and host.
	Vars map[string]string
	// Touched is set once an operation changed the host in this run: facts
	// gathered before may then be stale for modules that read them. A plan
	// never sets it (nothing ran).
	Touched bool
}

// Swap records a replaced file so a failed restart can put it back.
type Swap struct {
	Path    string
	Backup  string // "" when there was no previous file
	Service string
}

// Outcome is what a step did (or, in a plan, would do).
type Outcome struct {
	Changed bool
	Summary string
	Diff    string // unified diff for plans; secrets masked
	Swaps   []Swap
	// Refresh asks the runner to gather facts again (packages changed what
	// later steps decide on, e.g. keepalived's version).
	Refresh bool
	// Recorded: the executor wrote the step's pending-handler records, so
	// its handlers run even when the ops found nothing left to change.
	Recorded bool
}

// Module is one idempotent operation.
type Module interface {
	// Kind names the module ("package", "template", …).
	Kind() string
	// Needs lists the facts the module decides on, so the runner gathers all
	// of them in one round trip.
	Needs() facts.Request
	// Plan decides, from the facts and read-only queries, what the host
	// needs. It changes nothing: an empty Plan.Ops means "converged".
	Plan(ctx context.Context, t *Target) (Plan, error)
}

// serial is implemented by modules that touch running daemons: the runner
// runs them one host at a time, never in the parallel phase.
type serial interface{ Serial() bool }

// run runs a read-only query (or a restore) on the target; a non-zero exit
// is a *remote.ExitError. Everything that changes a host is an Op.
func run(ctx context.Context, t *Target, cmd string) (string, error) {
	return remote.Output(ctx, t.Conn, cmd)
}

// --- package ------------------------------------------------------------------

// Package makes sure packages are installed. "a|b" is satisfied by either and
// installs a when neither is there. NamesByFamily replaces Names on the OS
// whose key (facts.OS.Keys: "el7", "el", "debian12", "ubuntu22.04", "debian")
// matches first, most specific key first; an empty list means "nothing to
// install here". UnlessInstalled: nothing to do when any of these is
// installed (e.g. a repository package that is only needed to get nginx).
// RequiresByFamily: on the OS whose key matches first, the step installs
// nothing unless these are installed (e.g. epel-release for a package only
// EPEL has); hactl does not add a repository for an optional tool.
type Package struct {
	Names            []string
	NamesByFamily    map[string][]string
	UnlessInstalled  []string
	RequiresByFamily map[string][]string
}

func (p *Package) Kind() string { return "package" }

// Needs asks for every name of every OS: the OS is not known before the
// facts are in, and asking rpm or dpkg about an unknown name costs nothing.
func (p *Package) Needs() facts.Request {
	var all []string
	lists := [][]string{p.Names, p.UnlessInstalled}
	for _, m := range []map[string][]string{p.NamesByFamily, p.RequiresByFamily} {
		for _, k := range sortedKeys(m) {
			lists = append(lists, m[k])
		}
	}
	for _, l := range lists {
		for _, n := range l {
			all = append(all, strings.Split(n, "|")...)
		}
	}
	return facts.Request{Packages: all}
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// names is the list that applies to the host's OS.
func (p *Package) names(f *facts.Facts) []string {
	return byOS(f, p.NamesByFamily, p.Names)
}

// byOS is m's list for the host's most specific OS key, else def.
func byOS(f *facts.Facts, m map[string][]string, def []string) []string {
	for _, k := range f.OS.Keys() {
		if l, ok := m[k]; ok {
			return l
		}
	}
	return def
}

func (p *Package) missing(f *facts.Facts) []string {
	var miss []string
outer:
	for _, n := range p.names(f) {
		alts := strings.Split(n, "|")
		for _, a := range alts {
			if f.Installed(a) {
				continue outer
			}
		}
		miss = append(miss, alts[0])
	}
	return miss
}

// InstallCommand is the package manager's non-interactive install. apt-get
// update runs only here, i.e. only when something must be installed: a
// converged host never pays for it.
func InstallCommand(pm string, pkgs []string) (string, error) {
	list := remote.Join(pkgs...)
	switch pm {
	case "apt-get":
		return "export DEBIAN_FRONTEND=noninteractive; " +
			"apt-get -q -o DPkg::Lock::Timeout=300 update && " +
			"apt-get -q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install " + list, nil
	case "yum":
		// yum 3 (EL 7) exits 0 when some names do not exist; this option
		// (yum >= 3.4.3-161, CentOS 7.7) makes a missing package an error.
		return "yum -q -y --setopt=skip_missing_names_on_install=False install " + list, nil
	case "dnf":
		// dnf fails on a missing name by default (strict=True).
		return "dnf -q -y install " + list, nil
	}
	return "", fmt.Errorf("no supported package manager (apt-get, dnf, yum)")
}

func (p *Package) Plan(_ context.Context, t *Target) (Plan, error) {
	for _, u := range p.UnlessInstalled {
		if t.Facts.Installed(u) {
			return Plan{Summary: "not needed (" + u + " is installed)"}, nil
		}
	}
	if len(p.names(t.Facts)) == 0 {
		return Plan{Summary: "nothing to install on " + t.Facts.OS.PrettyName}, nil
	}
	for _, r := range byOS(t.Facts, p.RequiresByFamily, nil) {
		if !t.Facts.Installed(r) {
			return Plan{Summary: "skipped: needs " + r + ", which is not installed"}, nil
		}
	}
	miss := p.missing(t.Facts)
	if len(miss) == 0 {
		return Plan{Summary: "installed"}, nil
	}
	list := strings.Join(miss, " ")
	cmd, err := InstallCommand(t.Facts.PackageManager, miss)
	if err != nil {
		return Plan{}, err
	}
	return Plan{
		Summary: "install " + list, Done: done("installed " + list), Refresh: true,
		Ops: []Op{{Cmd: cmd, Fail: prefix("install " + list)}},
	}, nil
}

// --- template -----------------------------------------------------------------

// Template puts a rendered file in place: compared by checksum, owner and
// mode; uploaded next to the target, validated, backed up, renamed into
// place, checked, and restored if the check fails.
type Template struct {
	Path       string
	Validate   string // command run on the candidate before the swap (%s = its path)
	ValidateIf string // condition (fact) under which Validate applies
	Check      string // command run after the swap; failure restores the backup
}

func (m *Template) Kind() string { return "template" }

func (m *Template) Needs() facts.Request { return facts.Request{Paths: []string{m.Path}} }

// Backups keeps the last few replaced versions of every file: the swap
// prunes the stamped backups ("PATH.hactl-<UTC stamp>") by name, never by
// mtime, and only after the post-swap check passed.
const Backups = 5

// StampFormat is the UTC time format of a run's stamp, the suffix of every
// backup it takes. Milliseconds: two runs in one second (an apply of one host
// takes less) must not share a backup name, or the second backup would
// overwrite the first; and names still sort by time.
const StampFormat = "20060102T150405.000Z"

// OriginalSuffix names the copy of the file hactl found before its first
// change ("PATH.hactl-orig"): never pruned, put back by destroy.
const OriginalSuffix = ".hactl-orig"

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// Drift says how a host's file differs from the rendered one: DriftNone,
// or why it must be replaced or fixed. The template module and `hactl
// status` both decide with it, so "this file differs" means one thing.
func Drift(want render.File, have facts.File) string {
	switch {
	case !have.Exists:
		return DriftMissing
	case have.Symlink || have.SHA256 != sum(want.Content):
		return DriftContent
	case have.Mode != want.Mode || have.Owner != want.Owner || have.Group != want.Group:
		return DriftOwnerMode
	}
	return DriftNone
}

// Drift verdicts.
const (
	DriftNone      = ""
	DriftMissing   = "missing"
	DriftContent   = "content"
	DriftOwnerMode = "owner/mode"
)

func (m *Template) Plan(ctx context.Context, t *Target) (Plan, error) {
	want, ok := t.Files[m.Path]
	if !ok {
		return Plan{}, fmt.Errorf("template %s: hactl renders no such file for this host", m.Path)
	}
	cur := t.Facts.Files[m.Path]
	switch Drift(want, cur) {
	case DriftNone:
		return Plan{Summary: "up to date"}, nil
	case DriftOwnerMode:
		return Plan{
			Summary: fmt.Sprintf("owner/mode %s:%s %04o → %s:%s %04o", cur.Owner, cur.Group, cur.Mode, want.Owner, want.Group, want.Mode),
			Ops: []Op{{Cmd: fmt.Sprintf("chown %s:%s %s && chmod %04o %s",
				remote.Quote(want.Owner), remote.Quote(want.Group), remote.Quote(m.Path), want.Mode, remote.Quote(m.Path)),
				Fail: prefix(m.Path)}},
		}, nil
	}
	return m.swap(t, want, cur), nil
}

// skipNote says, in the step's output, that the validation does not run on
// this host and why: a silently skipped test would look like a passed one.
func (m *Template) skipNote(t *Target) string {
	if m.Validate == "" || m.ValidateIf == "" {
		return ""
	}
	c := condition(m.ValidateIf)
	if c == nil || c.test(t) {
		return ""
	}
	return " (validation skipped: " + c.why(t) + ")"
}

// diff reads the live file for a plan's diff, secrets masked.
func (m *Template) diff(t *Target, want render.File, cur facts.File) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		var old []byte
		if cur.Exists && !cur.Symlink {
			out, err := run(ctx, t, "cat "+remote.Quote(m.Path))
			if err != nil {
				return "", fmt.Errorf("read %s: %w", m.Path, err)
			}
			old = []byte(out)
		}
		old, neu := render.Mask(want, old), render.Mask(want, want.Content)
		return udiff.Unified(m.Path, m.Path, string(old), string(neu)), nil
	}
}

// swap is the safe replacement: the candidate is uploaded next to the live
// file, then one script validates it, backs the live file up, renames the
// candidate into place and runs the check.
func (m *Template) swap(t *Target, want render.File, cur facts.File) Plan {
	dir, base := path.Dir(m.Path), path.Base(m.Path)
	// Same directory, so the rename is atomic; a leading dot and a suffix
	// that matches no include pattern (*.conf) keep daemons from reading it.
	cand := path.Join(dir, "."+base+".hactl-new")
	backup := ""
	if cur.Exists {
		backup = m.Path + ".hactl-" + t.Stamp
	}
	validate, skipped := "", m.skipNote(t)
	if m.Validate != "" && skipped == "" {
		validate = fmt.Sprintf(m.Validate, remote.Quote(cand))
	}
	summary, doneSummary := "create", "created"
	if cur.Exists {
		summary, doneSummary = "replace", "replaced (backup "+path.Base(backup)+")"
	}
	swapFailed := func(_ context.Context, err error) error {
		e, ok := remote.AsExit(err)
		if !ok {
			return fmt.Errorf("%s: %w", m.Path, err)
		}
		switch e.Code {
		case 10:
			return fmt.Errorf("%s: the new file failed validation (%s); the live file was not touched:\n%s", m.Path, validate, e.Output)
		case 11:
			return fmt.Errorf("%s: `%s` failed after the swap; the previous file was restored:\n%s", m.Path, m.Check, e.Output)
		case 15:
			return fmt.Errorf("%s: `%s` failed after the swap and the previous file was NOT restored (the new one is live; backups: %s.hactl-*):\n%s", m.Path, m.Check, m.Path, e.Output)
		}
		return fmt.Errorf("%s: swap failed: %w", m.Path, err)
	}
	return Plan{
		Summary: summary + skipped,
		Done:    done(doneSummary + skipped),
		Diff:    m.diff(t, want, cur),
		Ops: []Op{
			{Cmd: "mkdir -p " + remote.Quote(dir), Fail: prefix(m.Path)},
			{Upload: &Upload{Path: cand, Content: want.Content, Mode: want.Mode}, Fail: prefix("upload " + m.Path)},
			{
				Cmd:  swapScript(m.Path, cand, backup, want, validate, m.Check, t.Facts.SELinuxEnabled()),
				Swap: &Swap{Path: m.Path, Backup: backup, Service: want.Service},
				Fail: swapFailed,
			},
		},
	}
}

// swapScript validates the candidate, backs the live file up (0600 for a
// Sensitive file), renames the candidate into place, runs the post-swap
// check and, only once it passed, prunes old backups.
// Exit 10: validation failed (candidate removed, live file untouched).
// Exit 11: the check failed and the previous file (or none) was restored.
// Exit 15: the check failed and the previous file could NOT be restored.
// The first time hactl replaces a file it did not write, that file is also
// kept as PATH.hactl-orig (OriginalSuffix): never pruned, for destroy.
// Retention is by name (the UTC stamp sorts) and never touches the backup
// this run took: mtimes say nothing (cp -p keeps the live file's, which an
// operator's `cp -a` or a clock that was ahead can put before the others).
// With relabel (SELinux enabled) the file gets its policy label back after
// the rename: an uploaded file carries the label of where it was created,
// and keepalived or nginx may be denied a file labelled wrongly.
func swapScript(p, cand, backup string, f render.File, validate, check string, relabel bool) string {
	q := remote.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "set -u\nP=%s; C=%s; B=%s; O=\"$P\"%s; K=0\n", q(p), q(cand), q(backup), OriginalSuffix)
	fmt.Fprintf(&b, "chown %s:%s \"$C\" && chmod %04o \"$C\" || { rm -f \"$C\"; exit 12; }\n", q(f.Owner), q(f.Group), f.Mode)
	if validate != "" {
		fmt.Fprintf(&b, "if ! out=$(%s 2>&1); then echo \"$out\"; rm -f \"$C\"; exit 10; fi\n", validate)
	}
	// A secret's backup is never more readable than 0600, whatever mode
	// someone gave the live file by hand: it is created under umask 077
	// (no moment with the old mode) and keeps only owner and timestamps.
	cp := func(dst string) string {
		if f.Sensitive {
			return fmt.Sprintf(`{ rm -f %[1]s && (umask 077 && cp --preserve=ownership,timestamps "$P" %[1]s) && chmod 0600 %[1]s; }`, dst)
		}
		return `cp -p "$P" ` + dst
	}
	// The original: a file hactl did not write (no marker, not named after
	// hactl), met for the first time. A file named hactl* is hactl's own.
	if !strings.HasPrefix(path.Base(p), "hactl") {
		fmt.Fprintf(&b, "if [ -n \"$B\" ] && [ -f \"$P\" ] && [ ! -e \"$O\" ] && ! head -n 3 \"$P\" | grep -q 'Managed by hactl'; then %s || { rm -f \"$C\"; exit 13; }; fi\n", cp(`"$O"`))
	}
	// A backup is never overwritten: that would lose the version it holds.
	fmt.Fprintf(&b, "if [ -n \"$B\" ] && [ -e \"$P\" ]; then { [ ! -e \"$B\" ] && [ ! -L \"$B\" ] || { echo \"backup $B exists already\"; false; }; } && %s || { rm -f \"$C\"; exit 13; }; K=1; fi\n", cp(`"$B"`))
	b.WriteString("mv -f \"$C\" \"$P\" || exit 14\n")
	if relabel {
		b.WriteString("restorecon \"$P\" || echo \"warning: restorecon $P failed\" >&2\n")
	}
	if check != "" {
		// Report a restore only when the mv or rm really happened.
		fmt.Fprintf(&b, "if ! out=$(%s 2>&1); then echo \"$out\"; if [ \"$K\" = 1 ]; then mv -f \"$B\" \"$P\" && exit 11; else rm -f \"$P\" && exit 11; fi; exit 15; fi\n", check)
	}
	fmt.Fprintf(&b, "for o in \"$P\".hactl-[0-9]*; do [ -e \"$o\" ] && [ \"$o\" != \"$B\" ] && echo \"$o\"; done | LC_ALL=C sort -r | tail -n +%d | while read -r o; do rm -f \"$o\"; done\n", Backups)
	b.WriteString("exit 0\n")
	return b.String()
}

// RestoreCommand puts a swapped file back (or removes a created one).
func RestoreCommand(s Swap) string {
	if s.Backup == "" {
		return "rm -f " + remote.Quote(s.Path)
	}
	return "cp -a " + remote.Quote(s.Backup) + " " + remote.Quote(s.Path)
}

// cond is a named fact test for validate_if and a step's when.
type cond struct {
	test func(*Target) bool
	why  func(*Target) string // why it does not hold, for the step output
}

// VarIPv6 is the Target variable that says whether the host's cluster has
// IPv6 VIPs ("yes" or "no"); VarVRRPIPv6 whether its VRRP instances are
// IPv6 (VRRPv3 adverts to ff02::12) rather than IPv4.
const (
	VarIPv6     = "ipv6"
	VarVRRPIPv6 = "vrrp_ipv6"
)

// condition returns the named fact test, or nil for an unknown name:
// "keepalived_config_test" (keepalived >= 2.0.4 has -t), or "os:KEY", true
// when KEY is one of the host's facts.OS.Keys ("os:el", "os:el7",
// "os:debian", "os:ubuntu22.04" …).
func condition(name string) *cond {
	if key, ok := strings.CutPrefix(name, "os:"); ok && key != "" {
		return &cond{
			test: func(t *Target) bool { return slices.Contains(t.Facts.OS.Keys(), key) },
			why: func(t *Target) string {
				return fmt.Sprintf("only for %s; this host runs %s", key, orName(t.Facts.OS.PrettyName, t.Facts.OS.ID))
			},
		}
	}
	switch name {
	case "ipv6":
		return &cond{
			test: func(t *Target) bool { return t.Vars[VarIPv6] == "yes" },
			why:  func(*Target) string { return "only for clusters with IPv6 VIPs" },
		}
	case "keepalived_config_test":
		return &cond{
			test: func(t *Target) bool { return t.Facts.KeepalivedConfigTest() },
			why: func(t *Target) string {
				f := t.Facts
				if f.KeepalivedVersion == "" {
					return "keepalived is not installed, so it cannot test the file"
				}
				return "keepalived " + f.KeepalivedVersion + " has no config test (-t needs 2.0.4 or later); the file is installed untested"
			},
		}
	}
	return nil
}

func orName(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func conditionNames() string {
	return `ipv6, keepalived_config_test, os:KEY (e.g. "os:el", "os:el7", "os:debian")`
}

// When runs its module only when the condition holds on the host; else the
// step reports why it was skipped and touches nothing.
type When struct {
	Cond   string
	Module Module
}

func (w *When) Kind() string         { return w.Module.Kind() }
func (w *When) Needs() facts.Request { return w.Module.Needs() }

// Serial keeps the wrapped module's phase.
func (w *When) Serial() bool { s, ok := w.Module.(serial); return ok && s.Serial() }

func (w *When) Plan(ctx context.Context, t *Target) (Plan, error) {
	c := condition(w.Cond)
	if c == nil {
		return Plan{}, fmt.Errorf("unknown condition %q", w.Cond)
	}
	if !c.test(t) {
		return Plan{Summary: "skipped: " + c.why(t)}, nil
	}
	return w.Module.Plan(ctx, t)
}

// --- file (absent) ------------------------------------------------------------

// Absent removes a file or symlink, keeping a copy outside any directory a
// daemon includes (a backup left in sites-enabled/ would be loaded by nginx).
type Absent struct{ Path string }

// BackupDir holds the copies of files hactl removed.
const BackupDir = "/var/backups/hactl"

// BackupPath is where a file hactl removes is kept: in BackupDir, named
// after its path and the run's stamp.
func BackupPath(p, stamp string) string {
	return path.Join(BackupDir, strings.ReplaceAll(strings.TrimPrefix(p, "/"), "/", "_")+".hactl-"+stamp)
}

func (m *Absent) Kind() string         { return "file" }
func (m *Absent) Needs() facts.Request { return facts.Request{Paths: []string{m.Path}} }

func (m *Absent) Plan(_ context.Context, t *Target) (Plan, error) {
	if !t.Facts.Files[m.Path].Exists {
		return Plan{Summary: "absent"}, nil
	}
	dst := BackupPath(m.Path, t.Stamp)
	return Plan{
		Summary: "remove (kept as " + dst + ")",
		Done:    done("removed (kept as " + dst + ")"),
		Ops: []Op{{
			Cmd: fmt.Sprintf("mkdir -p %s && chmod 0700 %s && mv -f %s %s",
				BackupDir, BackupDir, remote.Quote(m.Path), remote.Quote(dst)),
			Swap: &Swap{Path: m.Path, Backup: dst},
			Fail: prefix("remove " + m.Path),
		}},
	}, nil
}

// --- service ------------------------------------------------------------------

// Service manages a systemd unit: "started" (enabled and running),
// "reload" (reload when running, else start: a first start is a restart), or
// "restart".
type Service struct {
	Name   string
	Action string
}

func (m *Service) Kind() string         { return "service" }
func (m *Service) Serial() bool         { return true }
func (m *Service) Needs() facts.Request { return facts.Request{Services: []string{m.Name}} }

func (m *Service) Plan(_ context.Context, t *Target) (Plan, error) {
	u := remote.Unit(m.Name)
	switch m.Action {
	case "reload":
		return Plan{
			Summary: "reload or start " + m.Name,
			Done:    func(outs []string) (string, bool) { return strings.TrimSpace(outs[0]), true },
			Ops: []Op{{
				Cmd:  "if " + u.Active() + "; then " + u.Reload() + " && echo reloaded; else " + u.ResetFailed() + "; " + u.Restart() + " && echo started; fi",
				Fail: m.failed(t),
			}},
		}, nil
	case "restart":
		return Plan{
			Summary: "restart " + m.Name, Done: done("restarted"),
			Ops: []Op{{Cmd: u.ResetFailed() + "; " + u.Restart(), Fail: m.failed(t)}},
		}, nil
	}
	s := t.Facts.Services[m.Name]
	var todo []string
	if s.Enabled != "enabled" {
		todo = append(todo, "enable")
	}
	if s.Active != "active" {
		todo = append(todo, "start")
	}
	if len(todo) == 0 && !t.Touched {
		return Plan{Summary: "running"}, nil
	}
	// The command asks systemd again when it runs: package installs and
	// handlers earlier in this run may have changed the unit's state since
	// the facts were read, so it may find nothing left to do.
	return Plan{
		Summary: strings.Join(todo, " and "),
		Done: func(outs []string) (string, bool) {
			if s := strings.TrimSpace(outs[0]); s != "" {
				return s, true
			}
			return "running", false
		},
		Ops: []Op{{
			Cmd: `c=""; ` + u.Enabled() + ` || { ` + u.Enable() + ` || exit 3; c="$c enabled"; }; ` +
				u.Active() + ` || { ` + u.ResetFailed() + `; ` + u.Start() + ` || exit 4; c="$c started"; }; echo "$c"`,
			Fail: m.failed(t),
		}},
	}, nil
}

// failed adds the unit's last journal lines: "failed to start" alone never
// tells an operator why.
func (m *Service) failed(t *Target) func(context.Context, error) error {
	return func(ctx context.Context, err error) error { return m.journal(ctx, t, err) }
}

func (m *Service) journal(ctx context.Context, t *Target, err error) error {
	res, jerr := t.Conn.Run(ctx, "journalctl -u "+remote.Quote(m.Name)+" -n 8 --no-pager -o cat 2>/dev/null", nil)
	detail := ""
	if jerr == nil && len(bytes.TrimSpace(res.Stdout)) > 0 {
		detail = "\njournal:\n" + strings.TrimSpace(string(res.Stdout))
	}
	if t.Facts != nil && t.Facts.SELinuxEnabled() {
		detail += avcHint(ctx, t, m.Name)
	}
	return fmt.Errorf("%s %s: %w%s", m.Action, m.Name, err, detail)
}

// avcHint looks for recent SELinux denials of the unit's process (cheap,
// optional: ausearch comes with audit, which EL installs by default). hactl
// never relaxes SELinux; it shows the denial so the operator can fix labels.
func avcHint(ctx context.Context, t *Target, comm string) string {
	res, err := t.Conn.Run(ctx, "command -v ausearch >/dev/null 2>&1 && ausearch -m avc -ts recent -c "+remote.Quote(comm)+" 2>/dev/null | grep -m 3 'avc:'", nil)
	if err != nil || len(bytes.TrimSpace(res.Stdout)) == 0 {
		return ""
	}
	return "\nSELinux denied " + comm + " something (ausearch -m avc -ts recent -c " + comm + "); check the labels with `ls -Z` and `restorecon -v`:\n" +
		strings.TrimSpace(string(res.Stdout))
}

// --- command ------------------------------------------------------------------

// Command runs a shell command; with Unless, only when that command fails.
// Summary, when set, replaces the command text in the step output (long
// scripts make unreadable progress lines).
type Command struct {
	Cmd     string
	Unless  string
	Summary string
}

func (m *Command) Kind() string         { return "command" }
func (m *Command) Needs() facts.Request { return facts.Request{} }

func (m *Command) Plan(ctx context.Context, t *Target) (Plan, error) {
	if m.Unless != "" {
		res, err := t.Conn.Run(ctx, m.Unless, nil)
		if err != nil {
			return Plan{}, err
		}
		if res.ExitCode == 0 {
			return Plan{Summary: "not needed"}, nil
		}
	}
	what := m.Cmd
	if m.Summary != "" {
		what = m.Summary
	}
	return Plan{Summary: "run: " + what, Done: done("ran " + what), Ops: []Op{{Cmd: m.Cmd, Fail: prefix(what)}}}, nil
}

// --- firewall -----------------------------------------------------------------

// Firewall opens what the cluster needs in the host's active firewall:
// VRRP (IP protocol 112) and the listed ports ("80/tcp"; "{var}" names a
// Target var). firewalld: permanent rules in the zone of Interface (the
// default zone when the interface has none), queried first, then one
// --reload only when something was added. ufw: rules queried with
// --dry-run, added with `ufw allow` (live at once). No active firewall:
// nothing is changed — hactl never enables a firewall.
type Firewall struct {
	VRRP      bool
	Interface string
	Ports     []string
}

// VRRPRichRule is firewalld's rule for VRRP (Red Hat's keepalived guide).
const VRRPRichRule = `rule protocol value="vrrp" accept`

// VRRPGroup is VRRP's multicast group (RFC 5798); VRRPGroup6 its IPv6 one.
const (
	VRRPGroup  = "224.0.0.18"
	VRRPGroup6 = "ff02::12"
)

// UfwIPv6Check succeeds when ufw also writes IPv6 rules (IPV6=yes, the
// default): with IPV6=no every `ufw allow` covers IPv4 only, and clients of
// an IPv6 VIP are refused although the plan said the port is open.
const UfwIPv6Check = "grep -Eqs '^[[:space:]]*IPV6=\"?yes' /etc/default/ufw"

func (m *Firewall) Kind() string         { return "firewall" }
func (m *Firewall) Needs() facts.Request { return facts.Request{} }

// fwRule is one thing to allow, in the backend's own words.
type fwRule struct {
	label string // for summaries: "vrrp", "80/tcp"
	arg   string // firewalld: "--add-port=80/tcp" minus "--add-"; ufw: the allow arguments
}

func expand(s string, vars map[string]string) (string, error) {
	var err error
	out := varRef.ReplaceAllStringFunc(s, func(ref string) string {
		v, ok := vars[ref[1:len(ref)-1]]
		if !ok && err == nil {
			err = fmt.Errorf("%q names %s, which this host does not define", s, ref)
		}
		return v
	})
	return out, err
}

var varRef = regexp.MustCompile(`\{[a-z_][a-z0-9_]*\}`)

func (m *Firewall) ports(t *Target) ([]string, error) {
	var out []string
	for _, p := range m.Ports {
		v, err := expand(p, t.Vars)
		if err != nil {
			return nil, err
		}
		if !portSpec.MatchString(v) {
			return nil, fmt.Errorf("port %q: want PORT/tcp or PORT/udp", v)
		}
		out = append(out, v)
	}
	return out, nil
}

var portSpec = regexp.MustCompile(`^[0-9]{1,5}/(tcp|udp)$`)

func (m *Firewall) Plan(ctx context.Context, t *Target) (Plan, error) {
	ports, err := m.ports(t)
	if err != nil {
		return Plan{}, err
	}
	switch t.Facts.Firewall {
	case "firewalld":
		return m.firewalld(ctx, t, ports)
	case "ufw":
		return m.ufw(ctx, t, ports)
	}
	return Plan{Summary: "no active firewall (firewalld, ufw): nothing to open"}, nil
}

// missing runs a read-only query script that prints "missing N" for every
// rule N not in place (and, for firewalld, "zone Z" first).
func missing(ctx context.Context, t *Target, script string, rules []fwRule) (zone string, miss []fwRule, err error) {
	out, err := run(ctx, t, script)
	if err != nil {
		return "", nil, fmt.Errorf("query firewall: %w", err)
	}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 2 && f[0] == "zone":
			zone = f[1]
		case len(f) == 2 && f[0] == "missing":
			var i int
			if _, err := fmt.Sscan(f[1], &i); err == nil && i >= 0 && i < len(rules) {
				miss = append(miss, rules[i])
			}
		}
	}
	return zone, miss, nil
}

func labels(rs []fwRule) string {
	var l []string
	for _, r := range rs {
		l = append(l, r.label)
	}
	return strings.Join(l, ", ")
}

func (m *Firewall) firewalld(ctx context.Context, t *Target, ports []string) (Plan, error) {
	q := remote.Quote
	var rules []fwRule
	if m.VRRP {
		rules = append(rules, fwRule{"vrrp", "rich-rule=" + q(VRRPRichRule)})
	}
	for _, p := range ports {
		rules = append(rules, fwRule{p, "port=" + q(p)})
	}
	if len(rules) == 0 {
		return Plan{Summary: "nothing to open"}, nil
	}
	var b strings.Builder
	// The zone that filters the VRRP interface; firewall-cmd exits non-zero
	// ("no zone") when the interface is bound to none: the default zone applies.
	zoneOf := "z=$(firewall-cmd --get-default-zone) || exit 3"
	if iface, err := expand(m.Interface, t.Vars); err != nil {
		return Plan{}, err
	} else if iface != "" {
		zoneOf = "z=$(firewall-cmd --get-zone-of-interface=" + q(iface) + " 2>/dev/null) || " + zoneOf
	}
	fmt.Fprintf(&b, "%s; echo \"zone $z\"", zoneOf)
	for i, r := range rules {
		fmt.Fprintf(&b, "; firewall-cmd --permanent --zone=\"$z\" --query-%s >/dev/null 2>&1 || echo 'missing %d'", r.arg, i)
	}
	zone, miss, err := missing(ctx, t, b.String(), rules)
	if err != nil {
		return Plan{}, err
	}
	if len(miss) == 0 {
		return Plan{Summary: "open in zone " + zone + ": " + labels(rules)}, nil
	}
	var cmds []string
	for _, r := range miss {
		cmds = append(cmds, "firewall-cmd -q --permanent --zone="+q(zone)+" --add-"+r.arg)
	}
	// --reload makes the permanent configuration the runtime one; it runs
	// only when a rule was added, so a converged host's firewall is never
	// reloaded.
	cmds = append(cmds, "firewall-cmd -q --reload")
	return Plan{
		Summary: fmt.Sprintf("allow %s in zone %s (permanent) and reload", labels(miss), zone),
		Done:    done(fmt.Sprintf("allowed %s in zone %s (permanent), reloaded", labels(miss), zone)),
		Ops:     []Op{{Cmd: strings.Join(cmds, " && "), Fail: prefix("firewalld")}},
	}, nil
}

// ufwSkip is what `ufw allow` prints for a rule it already has.
const ufwSkip = "Skipping adding existing rule"

func (m *Firewall) ufw(ctx context.Context, t *Target, ports []string) (Plan, error) {
	var rules []fwRule
	note := ""
	if t.Vars[VarIPv6] == "yes" {
		if _, err := run(ctx, t, UfwIPv6Check); err != nil {
			if _, ok := remote.AsExit(err); !ok {
				return Plan{}, fmt.Errorf("query ufw: %w", err)
			}
			return Plan{}, fmt.Errorf("ufw is active with IPv6 rules off (no IPV6=yes in /etc/default/ufw): the cluster's IPv6 VIPs would get no rules; set IPV6=yes and run `ufw reload`")
		}
	}
	if m.VRRP {
		// ufw's proto list has no vrrp before 0.36.2; allowing everything to
		// VRRP's multicast group admits exactly the adverts. Unicast adverts
		// go to the host's own address and cannot be singled out this way.
		// IPv6 instances (VRRPv3) advertise to ff02::12; a dual-stack
		// instance is an IPv4 one.
		group := VRRPGroup
		if t.Vars[VarVRRPIPv6] == "yes" {
			group = VRRPGroup6
		}
		rules = append(rules, fwRule{"vrrp (to " + group + ")", "to " + group})
		if t.Vars["vrrp_transport"] == "unicast" {
			note = "; note: ufw cannot match unicast VRRP by protocol, allow the peers' protocol 112 in /etc/ufw/before.rules"
		}
	}
	for _, p := range ports {
		rules = append(rules, fwRule{p, p})
	}
	if len(rules) == 0 {
		return Plan{Summary: "nothing to open"}, nil
	}
	var b strings.Builder
	for i, r := range rules {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "ufw --dry-run allow %s 2>&1 | grep -q '%s' || echo 'missing %d'", r.arg, ufwSkip, i)
	}
	_, miss, err := missing(ctx, t, b.String(), rules)
	if err != nil {
		return Plan{}, err
	}
	if len(miss) == 0 {
		return Plan{Summary: "open: " + labels(rules) + note}, nil
	}
	var ops []Op
	for _, r := range miss {
		ops = append(ops, Op{Cmd: "ufw allow " + r.arg, Fail: prefix("ufw allow " + r.arg)})
	}
	// ufw says when it already had a rule the query missed: only the
	// rules it really added are a change.
	added := func(outs []string) (string, bool) {
		var got []fwRule
		for i, r := range miss {
			if !strings.Contains(outs[i], ufwSkip) {
				got = append(got, r)
			}
		}
		if len(got) == 0 {
			return "open: " + labels(rules) + note, false
		}
		return "allowed " + labels(got) + note, true
	}
	return Plan{Summary: "allow " + labels(miss) + note, Done: added, Ops: ops}, nil
}
