package playbook

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	udiff "github.com/aymanbagabas/go-udiff"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/render"
)

// NginxSites puts the serving layer's files in place as one change: the
// sites, pools, certificates, keys, stream proxies and snippets hactl
// renders under Dir (which hactl owns: a file there that is no longer
// rendered is removed) and the Include file that makes nginx read them.
//
// nginx can only test its whole configuration, and a site is several files
// that must change together (a site and its new certificate), so the
// template module's one-file swap does not fit: every candidate is
// uploaded next to its place first, then one script backs up, swaps all of
// them in, runs Check (`nginx -t`) and, if it fails, puts every file back
// (exit 11), so nginx is only reloaded (the notified handler) on a
// configuration that passed. Backups follow the template module's rules:
// FILE.hactl-STAMP, the last Backups kept, 0600 for a Sensitive file.
//
// With stream proxies, the line StreamIncludeLine ("include DIR/stream/*.conf;")
// is appended to MainConf once (nginx's stream block lives in the main
// context, outside conf.d), in the same tested change.
type NginxSites struct {
	Dir      string
	Include  string
	MainConf string
	Check    string
}

func (m *NginxSites) Kind() string { return "nginx_sites" }

// Needs asks for the include file only: with no sites rendered and no
// include on the host there is nothing to look at, and no query is sent.
func (m *NginxSites) Needs() facts.Request { return facts.Request{Paths: []string{m.Include}} }

// absent is implemented by a module that has nothing at all to do with a
// host (not "up to date": not there): the runner then shows no line for its
// step, so a host without a feature sees the run it saw before the feature
// existed.
type absent interface{ Absent(t *Target) bool }

// Absent: no site is rendered for the host and none was ever installed.
func (m *NginxSites) Absent(t *Target) bool {
	return len(m.wanted(t)) == 0 && t.Facts != nil && !t.Facts.Files[m.Include].Exists
}

func (m *NginxSites) streamDir() string { return path.Join(m.Dir, "stream") }

// StreamIncludeLine is the main-context line that reads the stream files.
func (m *NginxSites) StreamIncludeLine() string { return "include " + m.streamDir() + "/*.conf;" }

// hostFile is a file of the serving layer as found on the host.
type hostFile struct {
	symlink      bool
	mode         fs.FileMode
	owner, group string
	sha          string
}

// owned reports whether p is one of the module's files.
func (m *NginxSites) owned(p string) bool {
	return p == m.Include || strings.HasPrefix(p, m.Dir+"/")
}

// wanted is every rendered file the module owns, by path.
func (m *NginxSites) wanted(t *Target) map[string]render.File {
	w := map[string]render.File{}
	for p, f := range t.Files {
		if m.owned(p) {
			w[p] = f
		}
	}
	return w
}

// queryScript lists the owned files on the host (not backups, not
// candidates): "TYPE MODE OWNER GROUP SHA256 PATH", and "main-include"
// when MainConf already reads the stream files.
func (m *NginxSites) queryScript() string {
	q := remote.Quote
	return fmt.Sprintf(`{ if [ -e %[1]s ] || [ -L %[1]s ]; then printf '%%s\n' %[1]s; fi; find %[2]s \( -type f -o -type l \) ! -name '*.hactl-*' 2>/dev/null; } | while IFS= read -r f; do
  if [ -L "$f" ]; then k=l; s=-; else k=f; s=$(sha256sum < "$f" | cut -d' ' -f1); fi
  printf '%%s %%s %%s %%s\n' "$k" "$(stat -c '%%a %%U %%G' "$f")" "$s" "$f"
done
if grep -qxF %[3]s %[4]s 2>/dev/null; then echo main-include; fi`, q(m.Include), q(m.Dir), q(m.StreamIncludeLine()), q(m.MainConf))
}

func (m *NginxSites) query(ctx context.Context, t *Target) (map[string]hostFile, bool, error) {
	out, err := run(ctx, t, m.queryScript())
	if err != nil {
		return nil, false, fmt.Errorf("list %s: %w", m.Dir, err)
	}
	files := map[string]hostFile{}
	mainInclude := false
	for _, l := range strings.Split(out, "\n") {
		if l == "" {
			continue
		}
		if l == "main-include" {
			mainInclude = true
			continue
		}
		f := strings.SplitN(l, " ", 6)
		if len(f) != 6 || !m.owned(f[5]) {
			return nil, false, fmt.Errorf("list %s: cannot read %q (a file name with blanks or control characters? remove it by hand)", m.Dir, l)
		}
		mode, perr := strconv.ParseUint(f[1], 8, 32)
		if perr != nil {
			return nil, false, fmt.Errorf("list %s: mode %q of %s: %w", m.Dir, f[1], f[5], perr)
		}
		files[f[5]] = hostFile{symlink: f[0] == "l", mode: fs.FileMode(mode), owner: f[2], group: f[3], sha: f[4]}
	}
	return files, mainInclude, nil
}

// sitesChange is what a host needs, path by path.
type sitesChange struct {
	create, replace, remove []string
	mainInclude             bool // append the stream include to MainConf
}

func (c sitesChange) empty() bool {
	return len(c.create)+len(c.replace)+len(c.remove) == 0 && !c.mainInclude
}

func (m *NginxSites) Plan(ctx context.Context, t *Target) (Plan, error) {
	want := m.wanted(t)
	if len(want) == 0 && !t.Facts.Files[m.Include].Exists {
		return Plan{Summary: "no sites"}, nil
	}
	have, mainInclude, err := m.query(ctx, t)
	if err != nil {
		return Plan{}, err
	}
	var ch sitesChange
	streams := false
	for _, p := range sortedPaths(want) {
		w := want[p]
		streams = streams || strings.HasPrefix(p, m.streamDir()+"/")
		h, ok := have[p]
		switch {
		case !ok:
			ch.create = append(ch.create, p)
		case h.symlink || h.sha != sum(w.Content) || h.mode != w.Mode || h.owner != w.Owner || h.group != w.Group:
			ch.replace = append(ch.replace, p)
		}
	}
	for _, p := range sortedPaths(have) {
		if _, ok := want[p]; !ok {
			ch.remove = append(ch.remove, p)
		}
	}
	ch.mainInclude = streams && !mainInclude
	if ch.empty() {
		return Plan{Summary: fmt.Sprintf("up to date (%d files)", len(want))}, nil
	}
	return m.swap(t, want, ch), nil
}

func sortedPaths[V any](m map[string]V) []string {
	ps := make([]string, 0, len(m))
	for p := range m {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// candidate is where a file is staged: next to its place (the rename is
// atomic), a dot name with a suffix no include pattern matches.
func candidate(p string) string { return path.Join(path.Dir(p), "."+path.Base(p)+".hactl-new") }

func (m *NginxSites) summary(ch sitesChange) string {
	rel := func(ps []string) string {
		var n []string
		for _, p := range ps {
			n = append(n, strings.TrimPrefix(strings.TrimPrefix(p, m.Dir+"/"), path.Dir(m.Include)+"/"))
		}
		if len(n) > 4 {
			return fmt.Sprintf("%d files", len(n))
		}
		return strings.Join(n, ", ")
	}
	var parts []string
	for _, x := range []struct {
		verb string
		ps   []string
	}{{"create", ch.create}, {"replace", ch.replace}, {"remove", ch.remove}} {
		if len(x.ps) > 0 {
			parts = append(parts, x.verb+" "+rel(x.ps))
		}
	}
	if ch.mainInclude {
		parts = append(parts, "include the stream proxies from "+m.MainConf)
	}
	return strings.Join(parts, "; ")
}

func (m *NginxSites) swap(t *Target, want map[string]render.File, ch sitesChange) Plan {
	backup := func(p string) string { return p + ".hactl-" + t.Stamp }
	// Directories: 0700 where a secret lives, else 0755.
	dirs := map[string]fs.FileMode{}
	for _, p := range append(append([]string{}, ch.create...), ch.replace...) {
		d := path.Dir(p)
		if want[p].Sensitive {
			dirs[d] = 0o700
		} else if _, ok := dirs[d]; !ok {
			dirs[d] = 0o755
		}
	}
	var mk []string
	for _, d := range sortedPaths(dirs) {
		if !m.owned(d) { // the include's directory is the distribution's: its mode stays
			mk = append(mk, "mkdir -p "+remote.Quote(d))
			continue
		}
		mk = append(mk, fmt.Sprintf("mkdir -p %s && chmod %04o %s", remote.Quote(d), dirs[d], remote.Quote(d)))
	}
	// Every file the swap script replaces is a Swap, for the runner's
	// restore when the reload fails. An op carries one: each upload carries
	// its file's (the executor keeps it only once the whole step
	// succeeded, and writes the pending-handler record before the first),
	// the script a removed file's, and further removals ride on no-op
	// commands (rare: a site or stream taken out of the inventory).
	ops := []Op{{Cmd: strings.Join(mk, " && "), Fail: prefix("create " + m.Dir)}}
	for _, p := range ch.create {
		w := want[p]
		ops = append(ops, Op{Upload: &Upload{Path: candidate(p), Content: w.Content, Mode: w.Mode},
			Swap: &Swap{Path: p, Service: w.Service}, Fail: prefix("upload " + p)})
	}
	for _, p := range ch.replace {
		w := want[p]
		ops = append(ops, Op{Upload: &Upload{Path: candidate(p), Content: w.Content, Mode: w.Mode},
			Swap: &Swap{Path: p, Backup: backup(p), Service: w.Service}, Fail: prefix("upload " + p)})
	}
	var swaps []*Swap
	for _, p := range ch.remove {
		swaps = append(swaps, &Swap{Path: p, Backup: backup(p), Service: "nginx"})
	}
	if ch.mainInclude {
		swaps = append(swaps, &Swap{Path: m.MainConf, Backup: backup(m.MainConf), Service: "nginx"})
	}
	failed := func(_ context.Context, err error) error {
		e, ok := remote.AsExit(err)
		if !ok {
			return fmt.Errorf("%s: %w", m.Dir, err)
		}
		switch e.Code {
		case 11:
			hint := ""
			if strings.Contains(e.Output, `unknown directive "stream"`) {
				hint = "\nThis nginx lacks the stream module that stream blocks need: install libnginx-mod-stream (Debian, Ubuntu) or nginx-mod-stream (EL)."
			}
			return fmt.Errorf("%s: `%s` failed with the new files; every file was put back, nginx still runs the previous configuration:\n%s%s", m.Dir, m.Check, e.Output, hint)
		case 12, 13:
			return fmt.Errorf("%s: staging failed (exit %d); no live file was touched:\n%s", m.Dir, e.Code, e.Output)
		}
		return fmt.Errorf("%s: swap failed; every file was put back: %w", m.Dir, err)
	}
	summary := m.summary(ch)
	script := Op{Cmd: m.swapScript(t, want, ch, backup), Fail: failed}
	if len(swaps) > 0 {
		script.Swap, swaps = swaps[0], swaps[1:]
	}
	ops = append(ops, script)
	for _, s := range swaps {
		ops = append(ops, Op{Cmd: ":", Swap: s})
	}
	check := ""
	if m.Check != "" {
		check = ", " + m.Check + " passed"
	}
	return Plan{
		Summary: summary,
		Done:    done(summary + check),
		Diff:    m.diff(t, want, ch),
		Ops:     ops,
	}
}

// swapScript is the one transaction: stage (owner and mode of every
// candidate; exit 12), back up (exit 13), swap in and remove (exit 14, all
// put back), check (exit 11, all put back), prune old backups.
func (m *NginxSites) swapScript(t *Target, want map[string]render.File, ch sitesChange, backup func(string) string) string {
	q := remote.Quote
	var b strings.Builder
	b.WriteString("set -u\n")
	changed := append(append([]string{}, ch.create...), ch.replace...)
	var cands []string
	for _, p := range changed {
		cands = append(cands, q(candidate(p)))
	}
	dropCands := "rm -f " + strings.Join(cands, " ")
	if len(cands) == 0 {
		dropCands = ":"
	}
	// restore puts back whatever the swap got to; each line is harmless
	// for a file it did not reach yet.
	b.WriteString("restore() {\n")
	for _, p := range ch.create {
		fmt.Fprintf(&b, "  rm -f %s\n", q(p))
	}
	for _, p := range append(append([]string{}, ch.replace...), ch.remove...) {
		fmt.Fprintf(&b, "  if [ -e %[2]s ]; then mv -f %[2]s %[1]s; fi\n", q(p), q(backup(p)))
	}
	if ch.mainInclude {
		fmt.Fprintf(&b, "  if [ -e %[2]s ]; then mv -f %[2]s %[1]s; fi\n", q(m.MainConf), q(backup(m.MainConf)))
	}
	fmt.Fprintf(&b, "  %s\n}\n", dropCands)
	for _, p := range changed {
		w := want[p]
		fmt.Fprintf(&b, "chown %s:%s %s && chmod %04o %s || { %s; exit 12; }\n", q(w.Owner), q(w.Group), q(candidate(p)), w.Mode, q(candidate(p)), dropCands)
	}
	for _, p := range ch.replace {
		cp := fmt.Sprintf("cp -p %s %s", q(p), q(backup(p)))
		if want[p].Sensitive {
			// Never more readable than 0600, whatever mode the live file got by hand.
			cp = fmt.Sprintf("{ rm -f %[2]s && (umask 077 && cp --preserve=ownership,timestamps %[1]s %[2]s) && chmod 0600 %[2]s; }", q(p), q(backup(p)))
		}
		fmt.Fprintf(&b, "if [ -e %s ]; then %s || { %s; exit 13; }; fi\n", q(p), cp, dropCands)
	}
	if ch.mainInclude {
		fmt.Fprintf(&b, "cp -p %s %s || { %s; exit 13; }\n", q(m.MainConf), q(backup(m.MainConf)), dropCands)
	}
	for _, p := range changed {
		fmt.Fprintf(&b, "mv -f %s %s || { restore; exit 14; }\n", q(candidate(p)), q(p))
	}
	for _, p := range ch.remove {
		// The removed file is its own backup; a key's stays 0600.
		fmt.Fprintf(&b, "mv -f %s %s || { restore; exit 14; }\n", q(p), q(backup(p)))
		if strings.HasSuffix(p, ".key") {
			fmt.Fprintf(&b, "chmod 0600 %s\n", q(backup(p)))
		}
	}
	if ch.mainInclude {
		fmt.Fprintf(&b, "printf '\\n# Added by hactl: the stream (TCP/UDP) proxies of the inventory.\\n%%s\\n' %s >> %s || { restore; exit 14; }\n",
			q(m.StreamIncludeLine()), q(m.MainConf))
	}
	if t.Facts != nil && t.Facts.SELinuxEnabled() {
		fmt.Fprintf(&b, "restorecon -R %s %s %s || echo \"warning: restorecon failed\" >&2\n", q(m.Dir), q(m.Include), q(m.MainConf))
	}
	if m.Check != "" {
		fmt.Fprintf(&b, "if ! out=$(%s 2>&1); then echo \"$out\"; restore; exit 11; fi\n", m.Check)
	}
	for _, p := range append(append([]string{}, ch.replace...), ch.remove...) {
		fmt.Fprintf(&b, "ls -1t %s.hactl-* 2>/dev/null | tail -n +%d | while read -r old; do rm -f \"$old\"; done\n", q(p), Backups+1)
	}
	b.WriteString("exit 0\n")
	return b.String()
}

// diff shows every changed file, secrets masked (render.Mask: a key as its
// public key's fingerprint, a certificate as subject, fingerprint, dates).
func (m *NginxSites) diff(t *Target, want map[string]render.File, ch sitesChange) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		var b strings.Builder
		read := func(p string) ([]byte, error) {
			out, err := run(ctx, t, "cat "+remote.Quote(p))
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", p, err)
			}
			return []byte(out), nil
		}
		for _, p := range ch.create {
			b.WriteString(udiff.Unified(p, p, "", string(render.Mask(want[p], want[p].Content))))
		}
		for _, p := range ch.replace {
			old, err := read(p)
			if err != nil {
				return "", err
			}
			b.WriteString(udiff.Unified(p, p, string(render.Mask(want[p], old)), string(render.Mask(want[p], want[p].Content))))
		}
		for _, p := range ch.remove {
			old, err := read(p)
			if err != nil {
				return "", err
			}
			// A file no longer rendered: masked as if it were one of ours,
			// and a key under any name is never shown.
			f := render.File{Path: p, Sensitive: strings.HasSuffix(p, ".key")}
			shown := render.Mask(f, old)
			if f.Sensitive && string(shown) == string(old) {
				shown = []byte("(sensitive)\n")
			}
			b.WriteString(udiff.Unified(p, p, string(shown), ""))
		}
		if ch.mainInclude {
			fmt.Fprintf(&b, "--- %[1]s\n+++ %[1]s\n@@ end of file @@\n+\n+# Added by hactl: the stream (TCP/UDP) proxies of the inventory.\n+%[2]s\n", m.MainConf, m.StreamIncludeLine())
		}
		return b.String(), nil
	}
}

type nginxSitesSchema struct {
	Dir      string `hcl:"dir"`
	Include  string `hcl:"include"`
	MainConf string `hcl:"main_conf"`
	Check    string `hcl:"check"`
}
