package playbook

import (
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
