package ops

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/hactl/hactl/pkg/clock"
	"github.com/hactl/hactl/pkg/drain"
	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/render"
	"github.com/hactl/hactl/pkg/rollout"
	"github.com/hactl/hactl/pkg/sitecheck"
	"github.com/hactl/hactl/pkg/vrrp"
)

// splitSites takes the serving layer's step (nginx_sites) out of book when
// a selected host's cluster has sites: apply then rolls it out host by
// host after the rest of the playbook (rollout.RollSites), canary first.
// sites is that step with the book's handlers (the nginx reload); nil when
// there is nothing to split (no sites, or a playbook without the step).
func splitSites(book *playbook.Book, inv *inventory.Inventory, sel []*inventory.Host) (main, sites *playbook.Book, mod *playbook.NginxSites) {
	if !hasSites(inv, sel) {
		return book, nil, nil
	}
	main = &playbook.Book{Name: book.Name, Handlers: book.Handlers}
	for _, s := range book.Steps {
		if m, ok := s.Module.(*playbook.NginxSites); ok && mod == nil {
			mod = m
			sites = &playbook.Book{Name: book.Name, Steps: []playbook.Step{s}, Handlers: book.Handlers}
			continue
		}
		main.Steps = append(main.Steps, s)
	}
	if mod == nil {
		return book, nil, nil
	}
	return main, sites, mod
}

// withConnDrainTools adds a step that installs nftables (Debian, Ubuntu
// and EL name the package alike) before the serving layer's step when a
// selected host's cluster has sites and the book does not install it (a
// --playbook of the user's; the default one's "packages" step does): the
// sites rollout moves the canary's VIPs with a connection drain, which
// needs nft on every member, so that a request in flight at a move
// completes. The package's own service stays disabled: installing it loads
// no ruleset. Otherwise the book is returned as it is.
func withConnDrainTools(book *playbook.Book, inv *inventory.Inventory, sel []*inventory.Host) *playbook.Book {
	if !hasSites(inv, sel) || installs(book, "nftables") {
		return book
	}
	for i, s := range book.Steps {
		if _, ok := s.Module.(*playbook.NginxSites); ok {
			out := &playbook.Book{Name: book.Name, Handlers: book.Handlers}
			out.Steps = append(out.Steps, book.Steps[:i]...)
			out.Steps = append(out.Steps, playbook.Step{Name: ConnDrainStep, Module: &playbook.Package{Names: []string{"nftables"}}})
			out.Steps = append(out.Steps, book.Steps[i:]...)
			return out
		}
	}
	return book
}

// installs reports whether a package step of book installs pkg on every
// OS (the default playbook's "packages" step does).
func installs(book *playbook.Book, pkg string) bool {
	for _, s := range book.Steps {
		p, ok := s.Module.(*playbook.Package) // a conditional step is a *playbook.When
		if !ok || !slices.Contains(p.Names, pkg) {
			continue
		}
		every := true
		for _, names := range p.NamesByFamily {
			every = every && slices.Contains(names, pkg)
		}
		if every {
			return true
		}
	}
	return false
}

// ConnDrainStep names the step withConnDrainTools adds.
const ConnDrainStep = "nftables (connection draining)"

// hasSites: a selected host's cluster has sites.
func hasSites(inv *inventory.Inventory, sel []*inventory.Host) bool {
	for _, h := range sel {
		if c := inv.ClusterOf(h.Name); c != nil && !c.Serving.Empty() {
			return true
		}
	}
	return false
}

// siteHost is rollout.SiteHost on a real fleet: the nginx_sites step run
// by the playbook runner on one host at a time, pkg/sitecheck through the
// host's own address, and a private tar of the live serving layer as the
// restore point.
type siteHost struct {
	s      *Session
	r      *render.Renderer
	layout *vrrp.Layout
	fl     *fleet.Fleet
	stamp  string
	book   *playbook.Book
	mod    *playbook.NginxSites
	ev     *skipCounter
	check  sitecheck.Options
	// backupDir holds the restore point ("": playbook.BackupDir); reload
	// tests and reloads nginx after a restore ("": nginx -t, then
	// systemctl reload nginx). Tests move both.
	backupDir, reload string
}

var _ rollout.SiteHost = (*siteHost)(nil)

func (x *siteHost) dir() string {
	if x.backupDir != "" {
		return x.backupDir
	}
	return playbook.BackupDir
}

// restorePoint is the tar of a host's live serving layer while it
// changes: in the 0700 backup directory, 0600 (it holds the TLS keys).
func (x *siteHost) restorePoint() string { return path.Join(x.dir(), "sites-restore.tar") }

func (x *siteHost) run(ctx context.Context, host string, dry bool) (playbook.Result, error) {
	h := hostNamed(x.s.Inv, host)
	if h == nil {
		return playbook.Result{}, fmt.Errorf("%s: not in the inventory", host)
	}
	runner := &playbook.Runner{Book: x.book, DryRun: dry, Lock: !dry, Locker: x.s.deps.Locker, Needs: facts.Request{Cache: facts.CacheDir}}
	if !dry {
		runner.Event = x.ev.Event
	}
	res := runner.Run(ctx, x.s.hostInputs(x.r, func() *vrrp.Layout { return x.layout }, []*inventory.Host{h}, x.fl, x.stamp))
	if len(res) != 1 {
		return playbook.Result{}, fmt.Errorf("%s: not reachable", host)
	}
	return res[0], res[0].Err
}

func (x *siteHost) Changes(ctx context.Context, host string) (bool, error) {
	res, err := x.run(ctx, host, true)
	return len(res.Changes) > 0, err
}

func (x *siteHost) conn(host string) (remote.Conn, error) {
	fh := x.fl.Get(host)
	if fh == nil || fh.Err != nil {
		return nil, fmt.Errorf("%s: not connected", host)
	}
	return fh.Conn, nil
}

func (x *siteHost) sh(ctx context.Context, host, what, script string) error {
	c, err := x.conn(host)
	if err != nil {
		return err
	}
	if _, err := remote.Output(ctx, c, script); err != nil {
		return fmt.Errorf("%s: %s: %w", host, what, err)
	}
	return nil
}

// managed are the paths the restore point holds, relative to /.
func (x *siteHost) managed() []string {
	return []string{strings.TrimPrefix(x.mod.Dir, "/"), strings.TrimPrefix(x.mod.Include, "/"), strings.TrimPrefix(x.mod.MainConf, "/")}
}

func (x *siteHost) Keep(ctx context.Context, host string) error {
	q := remote.Quote
	var ps []string
	for _, p := range x.managed() {
		ps = append(ps, q(p))
	}
	script := fmt.Sprintf(`set -e; umask 077; mkdir -p %[1]s; chmod 0700 %[1]s; t=%[2]s; rm -f "$t"
set --; for p in %[3]s; do if [ -e "/$p" ]; then set -- "$@" "$p"; fi; done
tar -C / -cpf "$t" --exclude='*.hactl-*' -T /dev/null "$@"; chmod 0600 "$t"`, q(x.dir()), q(x.restorePoint()), strings.Join(ps, " "))
	return x.sh(ctx, host, "keep the live sites", script)
}

func (x *siteHost) Apply(ctx context.Context, host string) error {
	if c := x.s.Inv.ClusterOf(host); c != nil && len(c.Serving.Streams) > 0 {
		if err := x.sh(ctx, host, "install nginx's stream module", streamModuleScript); err != nil {
			return err
		}
	}
	c, err := x.conn(host)
	if err != nil {
		return err
	}
	// The reload's new workers must be the ones that answer the check:
	// right after `systemctl reload nginx` the previous workers may still
	// accept connections, and a check passed by them proves nothing.
	before, _ := remote.Output(ctx, c, nginxWorkers)
	if _, err := x.run(ctx, host, false); err != nil {
		return err
	}
	if strings.TrimSpace(before) == "" {
		return nil // nginx was not running: nothing old can answer
	}
	if _, err := remote.Output(ctx, c, waitNewWorkers(before, nginxWorkers)); err != nil {
		return fmt.Errorf("%s: after the reload: %w", host, err)
	}
	return nil
}

// nginxWorkers lists the PIDs of nginx's accepting workers (not those
// shutting down after a reload), children of the master.
const nginxWorkers = `m=$(cat /run/nginx.pid 2>/dev/null || pgrep -o -x nginx) || exit 0
ps -o pid=,args= --ppid "$m" 2>/dev/null | awk '$2 == "nginx:" && $3 == "worker" && $4 == "process" && NF == 4 {print $1}'`

// waitNewWorkers waits (10 s at most) until no worker of before accepts
// connections any more and a new one does; list prints the workers now.
func waitNewWorkers(before, list string) string {
	return fmt.Sprintf(`old=' %s '
for i in $(seq 100); do
  now=$( %s )
  stale=0; for p in $now; do case "$old" in *" $p "*) stale=1 ;; esac; done
  if [ -n "$now" ] && [ $stale = 0 ]; then exit 0; fi
  sleep 0.1
done
echo "nginx still runs workers of its previous configuration 10 s after the reload" >&2; exit 1`,
		strings.Join(strings.Fields(before), " "), list)
}

// streamModuleScript installs nginx's stream module where nginx has it as
// a package of its own (Debian, Ubuntu: libnginx-mod-stream; EL:
// nginx-mod-stream) and it is not there yet; an nginx built with it
// (nginx.org's packages) needs nothing.
const streamModuleScript = `v=$(nginx -V 2>&1) || true
case "$v" in *--with-stream=dynamic*) ;; *--with-stream*) exit 0 ;; esac
if command -v dpkg-query >/dev/null 2>&1; then
  dpkg-query -W -f='${Status}' libnginx-mod-stream 2>/dev/null | grep -q 'ok installed' && exit 0
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q -o DPkg::Lock::Timeout=300 libnginx-mod-stream >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q -o DPkg::Lock::Timeout=300 libnginx-mod-stream; }
elif command -v rpm >/dev/null 2>&1; then
  rpm -q nginx-mod-stream >/dev/null 2>&1 && exit 0
  if command -v dnf >/dev/null 2>&1; then dnf install -y -q nginx-mod-stream; else yum install -y -q nginx-mod-stream; fi
fi`

func (x *siteHost) Check(ctx context.Context, host string) error {
	h := hostNamed(x.s.Inv, host)
	c := x.s.Inv.ClusterOf(host)
	if h == nil || c == nil {
		return fmt.Errorf("%s: not in the inventory", host)
	}
	var errs []error
	for _, r := range sitecheck.CheckAll(ctx, h.Address.String(), sitecheck.Probes(c), x.check) {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return errors.Join(errs...)
}

func (x *siteHost) Restore(ctx context.Context, host string) error {
	q := remote.Quote
	inc := strings.TrimPrefix(x.mod.Include, "/")
	reload := x.reload
	if reload == "" {
		reload = "nginx -t 2>&1 && systemctl reload nginx"
	}
	script := fmt.Sprintf(`set -e; t=%[1]s; tar -tf "$t" > "$t.list"
find %[2]s \( -type f -o -type l \) ! -name '*.hactl-*' 2>/dev/null | while IFS= read -r f; do grep -qxF "${f#/}" "$t.list" || rm -f "$f"; done
if [ -e /%[3]s ] && ! grep -qxF %[3]s "$t.list"; then rm -f /%[3]s; fi
tar -C / -xpf "$t"; rm -f "$t.list"
%[4]s && rm -f "$t"`, q(x.restorePoint()), q(x.mod.Dir), q(inc), reload)
	return x.sh(ctx, host, "restore the previous sites", script)
}

func (x *siteHost) Forget(ctx context.Context, host string) error {
	return x.sh(ctx, host, "remove the restore point", "rm -f "+remote.Quote(x.restorePoint()))
}

// rollSites rolls the serving layer out over the selected hosts that the
// main run left healthy, canary first, each drained while it changes.
func (s *Session) rollSites(ctx context.Context, x *siteHost, sel []*inventory.Host, drained map[string]bool) ([]rollout.SiteResult, error) {
	var hosts []string
	for _, h := range sel {
		hosts = append(hosts, h.Name)
	}
	return rollout.RollSites(ctx, rollout.SitesOptions{
		Hosts: hosts, Step: x, Drained: drained,
		Drainer: clusterDrainer{inv: s.Inv, layout: x.layout, fl: x.fl, keep: true},
		Cut:     clusterDrainer{inv: s.Inv, layout: x.layout, fl: x.fl},
		Event:   x.ev.Event,
	})
}

// SitesGrace is how long a sites rollout keeps open connections alive at
// each of the canary's VIP moves when its cluster sets no drain_grace: a
// request in flight at the move completes on the host it started on. The
// wait ends as soon as that host has no connection left (checked every
// second), so short requests cost about a second per move; only idle
// keep-alive connections and long transfers make it wait the whole period.
const SitesGrace = 10 * time.Second

// sitesGrace is the grace period of a sites rollout's VIP moves in c: its
// drain_grace when set, else SitesGrace.
func sitesGrace(c *inventory.Cluster) time.Duration {
	if c != nil && c.DrainGrace > 0 {
		return c.DrainGrace
	}
	return SitesGrace
}

// clusterDrainer is a rollout.Drainer for hosts of any cluster: keep
// drains with a connection drain of the host's cluster's sitesGrace,
// otherwise the VIPs move without one (open connections are cut).
type clusterDrainer struct {
	inv    *inventory.Inventory
	layout *vrrp.Layout
	fl     *fleet.Fleet
	keep   bool
	clock  clock.Clock // nil: clock.Real (tests: the simulator's)
}

func (c clusterDrainer) drainer(host string) *drain.Drainer {
	o := drain.Options{Layout: c.layout, Fleet: c.fl, Clock: c.clock}
	if c.keep {
		o.Grace = sitesGrace(c.inv.ClusterOf(host))
	}
	return drain.New(o)
}

func (c clusterDrainer) Drain(ctx context.Context, host string) (*drain.Result, error) {
	return c.drainer(host).Drain(ctx, host)
}

func (c clusterDrainer) Undrain(ctx context.Context, host string) (*drain.Result, error) {
	return c.drainer(host).Undrain(ctx, host)
}

func hostNamed(inv *inventory.Inventory, name string) *inventory.Host {
	for _, h := range inv.Hosts() {
		if h.Name == name {
			return h
		}
	}
	return nil
}
