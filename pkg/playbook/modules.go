package playbook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strings"

	udiff "github.com/aymanbagabas/go-udiff"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/render"
)

// Target is one host as the modules see it.
type Target struct {
	Name   string
	Conn   remote.Conn
	Facts  *facts.Facts
	Files  map[string]render.File // the files hactl renders for this host, by path
	Stamp  string                 // backup suffix shared by the whole run (UTC time)
	DryRun bool                   // report what would change; change nothing
	// Touched is set once anything changed on the host in this run: facts
	// gathered before may then be stale for modules that read them.
	Touched bool
}

// Swap records a replaced file so a failed restart can put it back.
type Swap struct {
	Path    string
	Backup  string // "" when there was no previous file
	Service string
}

// Outcome is what a module did (or, in a dry run, would do).
type Outcome struct {
	Changed bool
	Summary string
	Diff    string // unified diff for plans; secrets masked
	Swaps   []Swap
	// Refresh asks the runner to gather facts again (packages changed what
	// later steps decide on, e.g. keepalived's version).
	Refresh bool
}

// Module is one idempotent operation.
type Module interface {
	// Kind names the module ("package", "template", …).
	Kind() string
	// Needs lists the facts the module decides on, so the runner gathers all
	// of them in one round trip.
	Needs() facts.Request
	// Run converges the host, or with t.DryRun only reports.
	Run(ctx context.Context, t *Target) (Outcome, error)
}

// serial is implemented by modules that touch running daemons: the runner
// runs them one host at a time, never in the parallel phase.
type serial interface{ Serial() bool }

// run runs a command and turns a non-zero exit into an error with its output.
func run(ctx context.Context, t *Target, cmd string) (string, error) {
	res, err := t.Conn.Run(ctx, cmd, nil)
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		return string(res.Stdout), &ExitErr{Cmd: cmd, Code: res.ExitCode, Output: strings.TrimSpace(string(res.Stderr) + "\n" + string(res.Stdout))}
	}
	return string(res.Stdout), nil
}

// ExitErr is a remote command that exited non-zero.
type ExitErr struct {
	Cmd    string
	Code   int
	Output string
}

func (e *ExitErr) Error() string {
	out := e.Output
	if len(out) > 2000 {
		out = "…" + out[len(out)-2000:]
	}
	return fmt.Sprintf("exit %d: %s", e.Code, strings.TrimSpace(out))
}

// --- package ------------------------------------------------------------------

// Package makes sure packages are installed. "a|b" is satisfied by either and
// installs a when neither is there.
type Package struct{ Names []string }

func (p *Package) Kind() string { return "package" }

func (p *Package) Needs() facts.Request {
	var all []string
	for _, n := range p.Names {
		all = append(all, strings.Split(n, "|")...)
	}
	return facts.Request{Packages: all}
}

func (p *Package) missing(f *facts.Facts) []string {
	var miss []string
outer:
	for _, n := range p.Names {
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
	case "dnf", "yum":
		return pm + " -q -y install " + list, nil
	}
	return "", fmt.Errorf("no supported package manager (apt-get, dnf, yum)")
}

func (p *Package) Run(ctx context.Context, t *Target) (Outcome, error) {
	miss := p.missing(t.Facts)
	if len(miss) == 0 {
		return Outcome{Summary: "installed"}, nil
	}
	o := Outcome{Changed: true, Summary: "install " + strings.Join(miss, " "), Refresh: true}
	if t.DryRun {
		return o, nil
	}
	cmd, err := InstallCommand(t.Facts.PackageManager, miss)
	if err != nil {
		return Outcome{}, err
	}
	if _, err := run(ctx, t, cmd); err != nil {
		return Outcome{}, fmt.Errorf("install %s: %w", strings.Join(miss, " "), err)
	}
	o.Summary = "installed " + strings.Join(miss, " ")
	return o, nil
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

// Backups keeps the last few replaced versions of every file.
const Backups = 5

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func (m *Template) Run(ctx context.Context, t *Target) (Outcome, error) {
	want, ok := t.Files[m.Path]
	if !ok {
		return Outcome{}, fmt.Errorf("template %s: hactl renders no such file for this host", m.Path)
	}
	cur := t.Facts.Files[m.Path]
	sameContent := cur.Exists && !cur.Symlink && cur.SHA256 == sum(want.Content)
	sameMeta := cur.Mode == want.Mode && cur.Owner == want.Owner && cur.Group == want.Group
	switch {
	case sameContent && sameMeta:
		return Outcome{Summary: "up to date"}, nil
	case sameContent:
		o := Outcome{Changed: true, Summary: fmt.Sprintf("owner/mode %s:%s %04o → %s:%s %04o", cur.Owner, cur.Group, cur.Mode, want.Owner, want.Group, want.Mode)}
		if t.DryRun {
			return o, nil
		}
		_, err := run(ctx, t, fmt.Sprintf("chown %s:%s %s && chmod %04o %s",
			remote.Quote(want.Owner), remote.Quote(want.Group), remote.Quote(m.Path), want.Mode, remote.Quote(m.Path)))
		return o, err
	}
	if t.DryRun {
		return m.plan(ctx, t, want, cur)
	}
	return m.swap(ctx, t, want, cur)
}

func (m *Template) plan(ctx context.Context, t *Target, want render.File, cur facts.File) (Outcome, error) {
	var old []byte
	if cur.Exists && !cur.Symlink {
		out, err := run(ctx, t, "cat "+remote.Quote(m.Path))
		if err != nil {
			return Outcome{}, fmt.Errorf("read %s: %w", m.Path, err)
		}
		old = []byte(out)
	}
	old, neu := render.Mask(want, old), render.Mask(want, want.Content)
	summary := "create"
	if cur.Exists {
		summary = "replace"
	}
	return Outcome{Changed: true, Summary: summary, Diff: udiff.Unified(m.Path, m.Path, string(old), string(neu))}, nil
}

func (m *Template) swap(ctx context.Context, t *Target, want render.File, cur facts.File) (Outcome, error) {
	dir, base := path.Dir(m.Path), path.Base(m.Path)
	// Same directory, so the rename is atomic; a leading dot and a suffix
	// that matches no include pattern (*.conf) keep daemons from reading it.
	cand := path.Join(dir, "."+base+".hactl-new")
	backup := ""
	if cur.Exists {
		backup = m.Path + ".hactl-" + t.Stamp
	}
	if _, err := run(ctx, t, "mkdir -p "+remote.Quote(dir)); err != nil {
		return Outcome{}, fmt.Errorf("%s: %w", m.Path, err)
	}
	if err := t.Conn.Upload(ctx, cand, want.Content, want.Mode); err != nil {
		return Outcome{}, fmt.Errorf("upload %s: %w", m.Path, err)
	}
	validate, skipped := "", ""
	if m.Validate != "" {
		if cond := condition(m.ValidateIf); cond == nil || cond(t.Facts) {
			validate = fmt.Sprintf(m.Validate, remote.Quote(cand))
		} else {
			skipped = fmt.Sprintf(" (validation skipped: %s does not hold on this host)", m.ValidateIf)
		}
	}
	script := swapScript(m.Path, cand, backup, want, validate, m.Check)
	res, err := t.Conn.Run(ctx, script, nil)
	if err != nil {
		return Outcome{}, fmt.Errorf("%s: %w", m.Path, err)
	}
	out := strings.TrimSpace(string(res.Stdout) + string(res.Stderr))
	switch res.ExitCode {
	case 0:
	case 10:
		return Outcome{}, fmt.Errorf("%s: the new file failed validation (%s); the live file was not touched:\n%s", m.Path, validate, out)
	case 11:
		return Outcome{}, fmt.Errorf("%s: `%s` failed after the swap; the previous file was restored:\n%s", m.Path, m.Check, out)
	default:
		return Outcome{}, fmt.Errorf("%s: swap failed: exit %d: %s", m.Path, res.ExitCode, out)
	}
	summary := "created"
	if cur.Exists {
		summary = "replaced (backup " + path.Base(backup) + ")"
	}
	return Outcome{Changed: true, Summary: summary + skipped, Swaps: []Swap{{Path: m.Path, Backup: backup, Service: want.Service}}}, nil
}

// swapScript validates the candidate, backs the live file up, renames the
// candidate into place, prunes old backups and runs the post-swap check.
// Exit 10: validation failed (candidate removed, live file untouched).
// Exit 11: the check failed and the previous file (or none) was restored.
func swapScript(p, cand, backup string, f render.File, validate, check string) string {
	q := remote.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "set -u\nP=%s; C=%s; B=%s\n", q(p), q(cand), q(backup))
	fmt.Fprintf(&b, "chown %s:%s \"$C\" && chmod %04o \"$C\" || { rm -f \"$C\"; exit 12; }\n", q(f.Owner), q(f.Group), f.Mode)
	if validate != "" {
		fmt.Fprintf(&b, "if ! out=$(%s 2>&1); then echo \"$out\"; rm -f \"$C\"; exit 10; fi\n", validate)
	}
	b.WriteString("if [ -n \"$B\" ] && [ -e \"$P\" ]; then cp -p \"$P\" \"$B\" || { rm -f \"$C\"; exit 13; }; fi\n")
	b.WriteString("mv -f \"$C\" \"$P\" || exit 14\n")
	fmt.Fprintf(&b, "ls -1t \"$P\".hactl-* 2>/dev/null | tail -n +%d | while read -r old; do rm -f \"$old\"; done\n", Backups+1)
	if check != "" {
		fmt.Fprintf(&b, "if ! out=$(%s 2>&1); then echo \"$out\"; if [ -n \"$B\" ]; then mv -f \"$B\" \"$P\"; else rm -f \"$P\"; fi; exit 11; fi\n", check)
	}
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

// condition returns the named fact test, or nil for an unknown name.
func condition(name string) func(*facts.Facts) bool {
	switch name {
	case "keepalived_config_test":
		return (*facts.Facts).KeepalivedConfigTest
	}
	return nil
}

func conditionNames() string { return "keepalived_config_test" }

// --- file (absent) ------------------------------------------------------------

// Absent removes a file or symlink, keeping a copy outside any directory a
// daemon includes (a backup left in sites-enabled/ would be loaded by nginx).
type Absent struct{ Path string }

// BackupDir holds the copies of files hactl removed.
const BackupDir = "/var/backups/hactl"

func (m *Absent) Kind() string         { return "file" }
func (m *Absent) Needs() facts.Request { return facts.Request{Paths: []string{m.Path}} }

func (m *Absent) Run(ctx context.Context, t *Target) (Outcome, error) {
	if !t.Facts.Files[m.Path].Exists {
		return Outcome{Summary: "absent"}, nil
	}
	dst := path.Join(BackupDir, strings.ReplaceAll(strings.TrimPrefix(m.Path, "/"), "/", "_")+".hactl-"+t.Stamp)
	o := Outcome{Changed: true, Summary: "remove (kept as " + dst + ")", Swaps: []Swap{{Path: m.Path, Backup: dst}}}
	if t.DryRun {
		return o, nil
	}
	_, err := run(ctx, t, fmt.Sprintf("mkdir -p %s && chmod 0700 %s && mv -f %s %s",
		BackupDir, BackupDir, remote.Quote(m.Path), remote.Quote(dst)))
	if err != nil {
		return Outcome{}, fmt.Errorf("remove %s: %w", m.Path, err)
	}
	o.Summary = "removed (kept as " + dst + ")"
	return o, nil
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

func (m *Service) Run(ctx context.Context, t *Target) (Outcome, error) {
	n := remote.Quote(m.Name)
	switch m.Action {
	case "reload":
		if t.DryRun {
			return Outcome{Changed: true, Summary: "reload or start " + m.Name}, nil
		}
		out, err := run(ctx, t, fmt.Sprintf("if systemctl is-active -q %s; then systemctl reload %s && echo reloaded; else systemctl restart %s && echo started; fi", n, n, n))
		if err != nil {
			return Outcome{}, m.failed(ctx, t, err)
		}
		return Outcome{Changed: true, Summary: strings.TrimSpace(out)}, nil
	case "restart":
		if t.DryRun {
			return Outcome{Changed: true, Summary: "restart " + m.Name}, nil
		}
		if _, err := run(ctx, t, "systemctl restart "+n); err != nil {
			return Outcome{}, m.failed(ctx, t, err)
		}
		return Outcome{Changed: true, Summary: "restarted"}, nil
	}
	if s := t.Facts.Services[m.Name]; !t.Touched && s.Enabled == "enabled" && s.Active == "active" {
		// Nothing changed since the facts were read: no round trip needed.
		return Outcome{Summary: "running"}, nil
	}
	if t.DryRun {
		s := t.Facts.Services[m.Name]
		var todo []string
		if s.Enabled != "enabled" {
			todo = append(todo, "enable")
		}
		if s.Active != "active" {
			todo = append(todo, "start")
		}
		if len(todo) == 0 {
			return Outcome{Summary: "running"}, nil
		}
		return Outcome{Changed: true, Summary: strings.Join(todo, " and ")}, nil
	}
	// Asked at run time, not from facts: package installs and handlers
	// earlier in this run may have changed the unit's state.
	out, err := run(ctx, t, fmt.Sprintf(`c=""; systemctl is-enabled -q %s || { systemctl enable -q %s || exit 3; c="$c enabled"; }; `+
		`systemctl is-active -q %s || { systemctl start %s || exit 4; c="$c started"; }; echo "$c"`, n, n, n, n))
	if err != nil {
		return Outcome{}, m.failed(ctx, t, err)
	}
	if s := strings.TrimSpace(out); s != "" {
		return Outcome{Changed: true, Summary: s}, nil
	}
	return Outcome{Summary: "running"}, nil
}

// failed adds the unit's last journal lines: "failed to start" alone never
// tells an operator why.
func (m *Service) failed(ctx context.Context, t *Target, err error) error {
	res, jerr := t.Conn.Run(ctx, "journalctl -u "+remote.Quote(m.Name)+" -n 8 --no-pager -o cat 2>/dev/null", nil)
	if jerr == nil && len(bytes.TrimSpace(res.Stdout)) > 0 {
		return fmt.Errorf("%s %s: %w\njournal:\n%s", m.Action, m.Name, err, strings.TrimSpace(string(res.Stdout)))
	}
	return fmt.Errorf("%s %s: %w", m.Action, m.Name, err)
}

// --- command ------------------------------------------------------------------

// Command runs a shell command; with Unless, only when that command fails.
type Command struct {
	Cmd    string
	Unless string
}

func (m *Command) Kind() string         { return "command" }
func (m *Command) Needs() facts.Request { return facts.Request{} }

func (m *Command) Run(ctx context.Context, t *Target) (Outcome, error) {
	if m.Unless != "" {
		res, err := t.Conn.Run(ctx, m.Unless, nil)
		if err != nil {
			return Outcome{}, err
		}
		if res.ExitCode == 0 {
			return Outcome{Summary: "not needed"}, nil
		}
	}
	if t.DryRun {
		return Outcome{Changed: true, Summary: "run: " + m.Cmd}, nil
	}
	if _, err := run(ctx, t, m.Cmd); err != nil {
		return Outcome{}, fmt.Errorf("%s: %w", m.Cmd, err)
	}
	return Outcome{Changed: true, Summary: "ran " + m.Cmd}, nil
}
