// Package facts learns what a host is and holds — OS family, package manager,
// installed packages, arping flavour, keepalived version, services, managed
// files, addresses — in one SSH round trip: a single POSIX shell script whose
// sectioned output is parsed here.
package facts

import (
	"bufio"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/hactl/hactl/pkg/remote"
)

// Request says what to look at besides the fixed facts.
type Request struct {
	Paths    []string // files whose state (mode, owner, sha256) is wanted
	Services []string // systemd units whose active/enabled state is wanted
	Packages []string // package names whose installed version is wanted
	// Described is a unit whose state and description are wanted raw
	// (status: a running connection drain says what it keeps or forwards).
	Described string
	// VRRP is a command whose output is wanted raw as Facts.VRRP (apply,
	// plan and status: verify.VRRPCommand, keepalived's journal states), so
	// that the facts are a whole snapshot of the VIPs and no second round
	// trip is needed to judge them.
	VRRP string
	// Cache is where the script keeps the answers it may reuse (CacheDir;
	// "" = none: every answer asked of the host anew). See Script.
	Cache string
}

// Merge adds o's items to r, without duplicates, keeping order.
func (r Request) Merge(o Request) Request {
	return Request{
		Paths:     union(r.Paths, o.Paths),
		Services:  union(r.Services, o.Services),
		Packages:  union(r.Packages, o.Packages),
		Described: cmp.Or(r.Described, o.Described),
		VRRP:      cmp.Or(r.VRRP, o.VRRP),
		Cache:     cmp.Or(r.Cache, o.Cache),
	}
}

func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string{}, a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// OS identifies the distribution from /etc/os-release.
type OS struct {
	ID, IDLike, VersionID, PrettyName string
	Family                            string // "debian" or "el"; "" when unknown
	Major                             string // VERSION_ID's major ("7", "9", "22"); "" when none
}

// Keys are the names playbooks select per-OS values by, most specific first:
// e.g. "el7", "el" on CentOS 7, "ubuntu22.04", "debian" on Ubuntu 22.04,
// "debian12", "debian" on Debian 12.
func (o OS) Keys() []string {
	switch o.Family {
	case "el":
		return []string{"el" + o.Major, "el"}
	case "debian":
		if o.ID == "ubuntu" {
			return []string{"ubuntu" + o.VersionID, "debian"}
		}
		return []string{"debian" + o.Major, "debian"}
	}
	return nil
}

// supported lists, per os-release ID, the VERSION_ID majors (or full
// VERSION_IDs for Ubuntu) hactl is tested for. CentOS 9 is CentOS Stream 9;
// CentOS Linux 8 and Stream 8 are end of life and not listed.
type release struct {
	id       string
	versions []string
	label    string
}

func supportedReleases() []release {
	return []release{
		{"debian", []string{"11", "12"}, "debian 11/12"},
		{"ubuntu", []string{"20.04", "22.04", "24.04"}, "ubuntu 20.04/22.04/24.04"},
		{"centos", []string{"7", "9"}, "centos 7, centos stream 9"},
		{"rhel", []string{"8", "9"}, "rhel 8/9"},
		{"rocky", []string{"8", "9"}, "rocky 8/9"},
		{"almalinux", []string{"8", "9"}, "almalinux 8/9"},
	}
}

// LiveKeepalivedConf is where keepalived reads its configuration on every
// supported family.
const LiveKeepalivedConf = "/etc/keepalived/keepalived.conf"

// Supported returns the list of supported systems for messages.
func Supported() string {
	var l []string
	for _, s := range supportedReleases() {
		l = append(l, s.label)
	}
	return strings.Join(l, ", ")
}

// IsSupported reports whether hactl supports this exact OS release. The
// decision is by ID (and VERSION_ID), never by ID_LIKE: a derivative that
// merely claims likeness (e.g. Linux Mint, Amazon Linux) has different
// package sets and is refused with a clear message instead of half-working.
func (o OS) IsSupported() bool {
	for _, s := range supportedReleases() {
		if s.id != o.ID {
			continue
		}
		v := o.Major
		if o.ID == "ubuntu" {
			v = o.VersionID
		}
		for _, want := range s.versions {
			if v == want {
				return true
			}
		}
	}
	return false
}

// File is the state of one path on the host.
type File struct {
	Exists  bool
	Symlink bool
	Mode    fs.FileMode
	Owner   string
	Group   string
	SHA256  string
}

// Service is a unit's state as systemctl reports it.
type Service struct {
	Active  string // active, inactive, failed, activating, unknown …
	Enabled string // enabled, disabled, masked, static, not-found …
}

// Facts are everything the playbook decides on.
type Facts struct {
	OS                OS
	UID               int
	Systemd           bool
	PackageManager    string            // apt-get, dnf or yum
	Packages          map[string]string // installed package → version
	AptListsEmpty     bool              // apt-get update never ran (fresh image)
	Arping            string            // "iputils", "habets" or "" (none installed)
	KeepalivedVersion string            // e.g. "2.2.7"; "" when not installed
	// VRRPTransport is what the live keepalived.conf uses: "unicast",
	// "multicast", or "" when there is none. Hosts on different transports
	// cannot hear each other, so a switch cannot be rolled out host by host.
	VRRPTransport string
	Firewall      string // "firewalld" or "ufw" when one is active; "" otherwise
	SELinux       string // "enforcing", "permissive", "disabled" or "" (no SELinux tools)
	Addrs         map[string][]netip.Prefix
	Services      map[string]Service
	Files         map[string]File
	// Drain is the value of `hactl drain`'s file (DrainFile); 0 when there
	// is none or it holds no number.
	Drain int
	// ClusterRecord is the content of ClusterRecordPath as the last apply
	// wrote it (the cluster's membership and router ids); nil when absent.
	ClusterRecord []byte
	// Pending are handlers an earlier run notified but never ran (it failed,
	// was interrupted or lost the host between a swap and the handler):
	// handler name → when the first such run recorded it (UTC, RFC 3339).
	Pending map[string]string
	// Described is `systemctl show -p ActiveState -p Description` of
	// Request.Described, as printed.
	Described string
	// VRRP is Request.VRRP's output, as printed; "" when not asked.
	VRRP string
}

// PendingDir holds one file per pending handler (see playbook's executor):
// under /var/lib, so a reboot between the swap and the reload keeps it.
const PendingDir = "/var/lib/hactl/pending"

// PendingFile is a handler's record: its name with every byte outside
// [A-Za-z0-9_-] as %XX, so any handler name is one safe file name.
func PendingFile(handler string) string {
	var b strings.Builder
	for i := 0; i < len(handler); i++ {
		c := handler[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return PendingDir + "/" + b.String()
}

func pendingName(file string) (string, bool) {
	s, err := url.PathUnescape(file)
	return s, err == nil && s != ""
}

// DrainFile is tracked by keepalived (track_file weight 1): its value is
// added to every instance's priority; below -253 is FAULT. hactl writes
// only 0 and negative values: a drain's first step (pkg/drain.Step, -1 to
// -253), then DrainOut.
const DrainFile = "/etc/keepalived/hactl-drain"

// Drain file values.
const (
	DrainLow  = -253 // every instance at priority 1: the lowest first step
	DrainOut  = -254 // FAULT: holds nothing, not a backup either
	InService = 0
)

// Drained reports whether `hactl drain` took the host out (either step).
func (f *Facts) Drained() bool { return Drained(f.Drain) }

// Drained reports whether a drain file value takes the host out: any
// negative value is a drain's step (an interrupted drain's too).
func Drained(v int) bool { return v < InService }

// ClusterRecordPath is where apply leaves the record of the cluster a host
// belongs to (vrrp.RecordPath; the two are tested equal in pkg/cli).
const ClusterRecordPath = "/etc/keepalived/hactl-cluster.json"

// SELinuxEnabled reports whether files need their SELinux labels restored
// (enforcing or permissive: a permissive host may be switched to enforcing).
func (f *Facts) SELinuxEnabled() bool {
	return f.SELinux == "enforcing" || f.SELinux == "permissive"
}

// KeepalivedConfigTest reports whether `keepalived -t` exists (2.0.4 and later).
func (f *Facts) KeepalivedConfigTest() bool {
	return f.KeepalivedVersion != "" && versionAtLeast(f.KeepalivedVersion, 2, 0, 4)
}

// KeepalivedTrackFile reports whether keepalived has track_file (2.0 and
// later). Before keepalived is installed, the OS decides: EL 7 ships 1.3.5,
// every other supported release 2.0 or later.
func (f *Facts) KeepalivedTrackFile() bool {
	if f.KeepalivedVersion != "" {
		return versionAtLeast(f.KeepalivedVersion, 2, 0, 0)
	}
	return !(f.OS.Family == "el" && f.OS.Major == "7")
}

// Installed reports whether pkg is installed.
func (f *Facts) Installed(pkg string) bool { _, ok := f.Packages[pkg]; return ok }

// CacheDir is where hactl's commands let the facts script keep answers
// (Request.Cache; root only, mode 0700, under /run so a reboot empties
// it): those of the three commands that cost the most host CPU on a
// converged host and change only when packages do (`keepalived --version`,
// `arping -V`, dpkg-query; about 15 ms of the script's ~48 ms per run on a
// lab host).
const CacheDir = "/run/hactl/facts"

// Script is the one-round-trip fact gatherer. Every section starts with a
// marker line; a missing tool yields an empty section, never an error.
//
// The host's CPU per run is what bounds a no-change run on many hosts (30
// lab hosts share 2 cores), so the script forks as little as it can: shell
// builtins where they give the same bytes, and three cached answers when
// req.Cache is set.
//
// The cache is sound because each answer is a function of files whose
// identity is its key: keepalived's and arping's first line of --version
// are compiled into the binary that `command -v` finds; dpkg-query's
// answer is /var/lib/dpkg/status (while dpkg's journal, updates/, is empty;
// otherwise it is asked every time). The key is one stat of the package
// databases and of both binaries: path, device, inode, size, mtime and
// ctime to the nanosecond. A package upgrade replaces the binary by rename
// (a new inode and ctime) and rewrites the database (the same), and any
// write in place changes ctime, which no user can set back; so any install,
// removal or edit invalidates every answer, and a stale one is never read.
// An answer is kept only when it looks like one (a version, an arping
// banner, dpkg-query exiting 0 or 1), never a transient failure; only root
// uses the cache (the directory is root's, 0700), and the file is replaced
// by rename, so a concurrent plan or status never reads half of it.
func Script(req Request) string {
	var b strings.Builder
	w := func(s string) { b.WriteString(s); b.WriteByte('\n') }
	// Where the login shell bash runs the script itself (plan and status;
	// apply's lock runs it with sh), it hands it to /bin/sh when that is
	// another shell: on a Debian host, bash's forks made the same script
	// cost ~10 ms more per run than dash's. BASH_EXECUTION_STRING is the
	// script as sshd gave it; HACTL_FACTS_SH keeps it from looping.
	w(`LC_ALL=C; export LC_ALL; if [ -n "${BASH_EXECUTION_STRING:-}" ] && [ -z "${HACTL_FACTS_SH:-}" ] && [ -x /bin/sh ] && ! [ /bin/sh -ef "${BASH:-/bin/bash}" ]; then HACTL_FACTS_SH=1 exec /bin/sh -c "$BASH_EXECUTION_STRING"; fi`)
	w(`PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH; nl='` + "\n" + `'`)
	w(`echo @@os; cat /etc/os-release 2>/dev/null`)
	// The effective uid (what id -u prints) from the shell's own status;
	// id only where /proc is not there.
	w(`uid=; while read -r k r e x; do if [ "$k" = Uid: ]; then uid=$e; break; fi; done 2>/dev/null </proc/self/status; [ -n "$uid" ] || uid=$(id -u); echo @@uid; echo "$uid"`)
	w(`echo @@systemd; if [ -d /run/systemd/system ]; then echo yes; else echo no; fi`)
	w(`echo @@pkgmgr; for p in apt-get dnf yum; do if command -v $p >/dev/null 2>&1; then echo $p; break; fi; done`)
	// The lists' names that carry _Packages, counted by a glob (ls | grep
	// cost two processes).
	w(`echo @@aptlists; n=0; for x in /var/lib/apt/lists/*_Packages*; do if [ -e "$x" ] || [ -L "$x" ]; then n=$((n+1)); fi; done; echo $n`)
	w(cacheFuncs(req.Cache))
	pk := remote.Join(req.Packages...)
	if len(req.Packages) > 0 {
		dpkg := `dpkg-query -W -f='${Package}\t${Version}\t${db:Status-Status}\n' ` + pk + ` 2>/dev/null`
		w(`echo @@packages`)
		// dpkg-query exits 1 when a package is not installed: a true answer.
		w(`if command -v dpkg-query >/dev/null 2>&1; then set -- /var/lib/dpkg/updates/*;` +
			` if [ -e "$1" ]; then ` + dpkg + `; else ` + cachedCall(cacheName(dpkg), `[ $rc -le 1 ]`, dpkg) + `; fi;` +
			` elif command -v rpm >/dev/null 2>&1; then for p in ` + pk + `; do rpm -q --qf '%{NAME}\t%{VERSION}-%{RELEASE}\tinstalled\n' "$p" 2>/dev/null | grep "	installed$"; done; fi`)
	}
	w(`echo @@arping; if command -v arping >/dev/null 2>&1; then ` + cachedCall("arping", `case $v in *iputils*|ARPing*|"arping: option requires an argument -- 'V'") true;; *) false;; esac`, `arping -V 2>&1 | head -n 1`) + `; fi`)
	w(`echo @@keepalived; if command -v keepalived >/dev/null 2>&1; then ` + cachedCall("keepalived", `case $v in "Keepalived v"[0-9]*) true;; *) false;; esac`, `keepalived --version 2>&1 | head -n 1`) + `; fi`)
	w(`echo @@vrrptransport; if [ -s ` + LiveKeepalivedConf + ` ]; then if grep -q unicast_peer ` + LiveKeepalivedConf + `; then echo unicast; else echo multicast; fi; fi`)
	// Both families: a host's `address` may be IPv6.
	w(`echo @@addrs; ip -o addr show 2>/dev/null`)
	if req.VRRP != "" {
		// Right after the addresses, in the same shell: the addresses and
		// keepalived's states are one snapshot of the VIPs.
		w(`echo @@vrrp; ` + req.VRRP)
	}
	// The first line, cut at 32 bytes: the part of head -c 32 that Parse
	// reads.
	w(`echo @@drain; d=; { IFS= read -r d <` + DrainFile + `; } 2>/dev/null; case $d in ` + strings.Repeat("?", 32) + `*) d=${d%"${d#` + strings.Repeat("?", 32) + `}"};; esac; printf '%s\n' "$d"`)
	w(`echo @@record; cat ` + ClusterRecordPath + ` 2>/dev/null; echo`)
	// firewalld first: it is the EL default; ufw's status needs root and
	// prints "Status: active" only when its rules are loaded.
	// firewalld's and every service's state from ONE systemctl (each
	// systemctl is a round trip to PID 1; five of them, and a stat, a
	// sha256sum and a cut per file, made the facts the slowest session of
	// every command: ~1 s of status's 1.3 s on the lab). Blocks of
	// KEY=value lines, one per unit in the order asked, blank-line apart,
	// read once into a$i and e$i (unit i's ActiveState, UnitFileState; a
	// unit systemctl did not answer for has neither).
	units := append([]string{"firewalld"}, req.Services...)
	w(`units=$(systemctl show -p ActiveState -p UnitFileState ` + remote.Join(units...) + ` 2>/dev/null)`)
	w(`i=0; a=; e=; while IFS='=' read -r k v; do case $k in ActiveState) a=$v;; UnitFileState) e=$v;; '') eval "a$i=\$a e$i=\$e"; i=$((i+1)); a=; e=;; esac; done <<EOF` + "\n$units\n\nEOF")
	w(`echo @@firewall; if [ "${a0:-}" = active ]; then echo firewalld; elif command -v ufw >/dev/null 2>&1 && ufw status 2>/dev/null | grep -q '^Status: active'; then echo ufw; fi`)
	w(`echo @@selinux; if command -v getenforce >/dev/null 2>&1; then getenforce 2>/dev/null; fi`)
	if len(req.Services) > 0 {
		w(`echo @@services`)
		for i, n := range req.Services {
			u := strconv.Itoa(i + 1)
			w(`printf '%s\t%s\t%s\n' ` + remote.Quote(n) + ` "${a` + u + `:-}" "${e` + u + `:-}"`)
		}
	}
	if len(req.Paths) > 0 {
		// One stat and one sha256sum for all regular files, not three
		// processes per file; sha256sum's lines are cut here (its hash is
		// the first word, with a backslash before it when the name needed
		// escaping), not by two more processes.
		w(`echo @@files; set --; for f in ` + remote.Join(req.Paths...) + `; do` +
			` if [ -L "$f" ]; then printf '%s\tlink\n' "$f";` +
			` elif [ -f "$f" ]; then set -- "$@" "$f";` +
			` elif [ -e "$f" ]; then printf '%s\tother\n' "$f";` +
			` else printf '%s\tabsent\n' "$f"; fi; done`)
		w(`if [ $# -gt 0 ]; then st=$(stat -c '%a %U %G' -- "$@"); sm=$(sha256sum -- "$@"); for f; do` +
			` h=${sm%%"$nl"*}; h=${h%% *}; printf '%s\tfile\t%s\t%s\n' "$f" "${st%%"$nl"*}" "${h#\\}"; st=${st#*"$nl"}; sm=${sm#*"$nl"}; done; fi`)
	}
	if req.Described != "" {
		w(`echo @@described; systemctl show -p ActiveState -p Description ` + remote.Quote(req.Described) + ` 2>/dev/null`)
	}
	w(`echo @@pending; for f in ` + PendingDir + `/*; do [ -f "$f" ] && printf '%s\t%s\n' "${f##*/}" "$(head -n 1 "$f")"; done`)
	w(`echo @@end`)
	return b.String()
}

// cacheFuncs defines the script's cache (see Script): cdir is the
// directory when it can be used (root, the directory root's own), ckey the
// key (the stat lines; a stat that fails turns the cache off), and
//
//	cached FILE NAME TEST CMD
//
// prints CMD's output: the cached one when FILE holds an answer to NAME
// under the current key, else CMD's own (run by eval; its output is v, its
// exit status rc), which is stored when TEST (eval'd) says it is a real
// answer (cachedCall makes NAME the command itself). A file is the key's
// lines (NAME first), @@v, the answer's lines, @@e; one without its @@e is
// no answer.
func cacheFuncs(dir string) string {
	q := remote.Quote
	var b strings.Builder
	b.WriteString(`cdir=; ckey=`)
	if dir != "" {
		b.WriteString(`; if [ "$uid" = 0 ] && { [ -d ` + q(dir) + ` ] || mkdir -p -m 700 ` + q(dir) + ` 2>/dev/null; } && [ ! -L ` + q(dir) + ` ] && [ -O ` + q(dir) + ` ]; then` +
			` set --; for p in /var/lib/dpkg/status /var/lib/rpm/rpmdb.sqlite /var/lib/rpm/rpmdb.sqlite-wal /var/lib/rpm/Packages; do if [ -e "$p" ]; then set -- "$@" "$p"; fi; done;` +
			` bins=$(command -v keepalived; command -v arping); oi=$IFS; IFS=$nl; set -f; for p in $bins; do set -- "$@" "$p"; done; IFS=$oi; set +f;` +
			` if [ $# -gt 0 ] && ckey=$(stat -L -c '%n %d %i %s %y %z' -- "$@" 2>/dev/null); then cdir=` + q(dir) + `; ckey="v1$nl$bins$nl$ckey"; fi; fi`)
	}
	b.WriteString("\n")
	b.WriteString(`cached() { cf=$cdir/$1; cwant="$2$nl$ckey$nl"; cgot=; v=; cs=0;` +
		` if [ -n "$cdir" ] && [ -f "$cf" ]; then while IFS= read -r cl; do case $cs$cl in 0@@v) cs=1;; 0*) cgot=$cgot$cl$nl;; 1@@e) cs=2; break;; 1*) v=$v$cl$nl;; esac; done <"$cf"; fi;` +
		` if [ $cs = 2 ] && [ "$cgot" = "$cwant" ]; then printf %s "$v"; return; fi;` +
		` v=$(eval "$4"); rc=$?; if [ -n "$v" ]; then printf '%s\n' "$v"; fi;` +
		` if [ -n "$cdir" ] && eval "$3"; then printf '%s@@v\n%s@@e\n' "$cwant" "${v:+$v$nl}" >"$cf.$$" 2>/dev/null && mv -f "$cf.$$" "$cf" 2>/dev/null; fi; }`)
	return b.String()
}

// cachedCall is the script's call of cached: the question is the command
// itself, so a later hactl that asks another command never takes this
// one's answer.
func cachedCall(file, test, cmd string) string {
	return "cached " + file + " " + remote.Quote(cmd) + " " + remote.Quote(test) + " " + remote.Quote(cmd)
}

// cacheName is the cache file of one question: a name that cannot clash.
func cacheName(question string) string {
	sum := sha256.Sum256([]byte(question))
	return hex.EncodeToString(sum[:8])
}

// Gather runs Script on c and parses its output.
func Gather(ctx context.Context, c remote.Conn, req Request) (*Facts, error) {
	out, err := remote.Output(ctx, c, Script(req))
	if err != nil {
		return nil, fmt.Errorf("gather facts: %w", err)
	}
	return Parse(out)
}

var leadingInt = regexp.MustCompile(`^\s*-?\d+`)

var kaVersion = regexp.MustCompile(`v(\d+\.\d+\.\d+)`)

// Parse reads Script's output.
func Parse(out string) (*Facts, error) {
	f := &Facts{
		Packages: map[string]string{},
		Addrs:    map[string][]netip.Prefix{},
		Services: map[string]Service{},
		Files:    map[string]File{},
		Pending:  map[string]string{},
	}
	sections := map[string][]string{}
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "@@") {
			cur = strings.TrimPrefix(line, "@@")
			sections[cur] = nil
			continue
		}
		sections[cur] = append(sections[cur], line)
	}
	if _, ok := sections["end"]; !ok {
		return nil, fmt.Errorf("gather facts: output truncated (no end marker)")
	}
	f.OS = parseOSRelease(sections["os"])
	if l := sections["uid"]; len(l) > 0 {
		f.UID, _ = strconv.Atoi(strings.TrimSpace(l[0]))
	}
	f.Systemd = first(sections["systemd"]) == "yes"
	f.PackageManager = first(sections["pkgmgr"])
	f.AptListsEmpty = f.PackageManager == "apt-get" && first(sections["aptlists"]) == "0"
	for _, l := range sections["packages"] {
		p := strings.Split(l, "\t")
		if len(p) == 3 && p[2] == "installed" {
			f.Packages[p[0]] = p[1]
		}
	}
	if a := first(sections["arping"]); a != "" {
		f.Arping = "habets"
		if strings.Contains(a, "iputils") {
			f.Arping = "iputils"
		}
	}
	if m := kaVersion.FindStringSubmatch(first(sections["keepalived"])); m != nil {
		f.KeepalivedVersion = m[1]
	}
	f.VRRPTransport = first(sections["vrrptransport"])
	// keepalived reads the leading integer; so does this.
	if m := leadingInt.FindString(first(sections["drain"])); m != "" {
		f.Drain, _ = strconv.Atoi(m)
	}
	switch fw := first(sections["firewall"]); fw {
	case "firewalld", "ufw":
		f.Firewall = fw
	}
	f.SELinux = strings.ToLower(first(sections["selinux"]))
	if rec := strings.TrimSpace(strings.Join(sections["record"], "\n")); rec != "" {
		f.ClusterRecord = []byte(rec + "\n")
	}
	for _, l := range sections["addrs"] {
		fs := strings.Fields(l)
		if len(fs) < 4 || (fs[2] != "inet" && fs[2] != "inet6") {
			continue
		}
		// An IPv6 address that failed duplicate address detection is
		// unusable: the kernel neither answers for it nor sends from it.
		if p, err := netip.ParsePrefix(fs[3]); err == nil && !DADFailed(fs[4:]) {
			dev, _, _ := strings.Cut(strings.TrimSuffix(fs[1], ":"), "@")
			f.Addrs[dev] = append(f.Addrs[dev], p)
		}
	}
	for _, l := range sections["services"] {
		p := strings.Split(l, "\t")
		if len(p) == 3 {
			f.Services[p[0]] = Service{Active: orUnknown(p[1]), Enabled: orUnknown(p[2])}
		}
	}
	f.Described = strings.Join(sections["described"], "\n")
	if l := sections["vrrp"]; len(l) > 0 {
		f.VRRP = strings.Join(l, "\n") + "\n"
	}
	for _, l := range sections["pending"] {
		file, since, _ := strings.Cut(l, "\t")
		if name, ok := pendingName(file); ok {
			f.Pending[name] = strings.TrimSpace(since)
		}
	}
	for _, l := range sections["files"] {
		p := strings.Split(l, "\t")
		if len(p) < 2 {
			continue
		}
		switch p[1] {
		case "absent":
			f.Files[p[0]] = File{}
		case "link":
			f.Files[p[0]] = File{Exists: true, Symlink: true}
		case "other":
			f.Files[p[0]] = File{Exists: true}
		case "file":
			if len(p) != 4 {
				return nil, fmt.Errorf("gather facts: bad file line %q", l)
			}
			meta := strings.Fields(p[2])
			if len(meta) != 3 {
				return nil, fmt.Errorf("gather facts: bad stat output %q", p[2])
			}
			mode, err := strconv.ParseUint(meta[0], 8, 32)
			if err != nil {
				return nil, fmt.Errorf("gather facts: bad mode %q: %w", meta[0], err)
			}
			f.Files[p[0]] = File{Exists: true, Mode: fs.FileMode(mode), Owner: meta[1], Group: meta[2], SHA256: strings.TrimSpace(p[3])}
		}
	}
	return f, nil
}

// DADFailed looks for the dadfailed flag among the words after an `ip -o
// addr` line's address, up to the continuation marker or the lifetimes.
func DADFailed(words []string) bool {
	for _, w := range words {
		if w == "\\" || strings.HasPrefix(w, "valid_lft") {
			return false
		}
		if w == "dadfailed" {
			return true
		}
	}
	return false
}

func first(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return strings.TrimSpace(l[0])
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orUnknown(s string) string {
	if s = strings.TrimSpace(s); s == "" {
		return "unknown"
	}
	return s
}

func parseOSRelease(lines []string) OS {
	kv := map[string]string{}
	for _, l := range lines {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		kv[k] = strings.Trim(v, `"'`)
	}
	o := OS{ID: kv["ID"], IDLike: kv["ID_LIKE"], VersionID: kv["VERSION_ID"], PrettyName: kv["PRETTY_NAME"]}
	o.Major, _, _ = strings.Cut(o.VersionID, ".")
	ids := append([]string{o.ID}, strings.Fields(o.IDLike)...)
	for _, id := range ids {
		switch id {
		case "debian", "ubuntu":
			o.Family = "debian"
		case "rhel", "centos", "rocky", "almalinux":
			o.Family = "el"
		}
		if o.Family != "" {
			break
		}
	}
	return o
}

// CheckSupported fails early, naming the host and what is supported.
func (f *Facts) CheckSupported(host string) error {
	if !f.OS.IsSupported() {
		name := f.OS.PrettyName
		switch {
		case name == "" && f.OS.ID == "":
			name = "an unknown OS (no /etc/os-release)"
		case name == "":
			name = strings.TrimSpace(f.OS.ID + " " + f.OS.VersionID)
		}
		return fmt.Errorf("host %s runs %s (ID=%s VERSION_ID=%s), which hactl does not support; supported: %s",
			host, name, orDash(f.OS.ID), orDash(f.OS.VersionID), Supported())
	}
	if !f.Systemd {
		return fmt.Errorf("host %s does not run systemd; hactl manages keepalived and nginx as systemd units", host)
	}
	return nil
}

// CheckInterface verifies that iface exists on the host and carries addr.
func (f *Facts) CheckInterface(host, iface string, addr netip.Addr) error {
	ps, ok := f.Addrs[iface]
	if !ok {
		var have []string
		for dev := range f.Addrs {
			have = append(have, dev)
		}
		sort.Strings(have)
		return fmt.Errorf("host %s has no interface %q with an address (interfaces with addresses: %s); fix `interface` in the inventory", host, iface, strings.Join(have, ", "))
	}
	for _, p := range ps {
		if p.Addr() == addr {
			return nil
		}
	}
	return fmt.Errorf("host %s: interface %s does not carry the inventory address %s; the VIPs must share the host's subnet and NIC", host, iface, addr)
}

func versionAtLeast(v string, maj, min, patch int) bool {
	parts := strings.Split(v, ".")
	want := []int{maj, min, patch}
	for i := 0; i < 3; i++ {
		n := 0
		if i < len(parts) {
			n, _ = strconv.Atoi(parts[i])
		}
		if n != want[i] {
			return n > want[i]
		}
	}
	return true
}

// ReadClusterRecord reads only the cluster record (nil when absent): what a
// run needs from every host of a cluster before it decides its layout,
// without gathering the full facts of hosts it will not change.
func ReadClusterRecord(ctx context.Context, c remote.Conn) ([]byte, error) {
	out, err := remote.Output(ctx, c, "cat "+ClusterRecordPath+" 2>/dev/null || true")
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ClusterRecordPath, err)
	}
	if strings.TrimSpace(out) == "" {
		return nil, nil
	}
	return []byte(out), nil
}
