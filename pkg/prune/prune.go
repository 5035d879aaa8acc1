// Package prune inspects the hosts that left the inventory (pkg/ops finds
// them in the cluster records the survivors keep) and decommissions them,
// VRRP-aware: a departed host gives its VIPs away before any survivor is
// reconfigured.
package prune

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hactl/hactl/pkg/clock"
	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/render"
	"github.com/hactl/hactl/pkg/verify"
	"github.com/hactl/hactl/pkg/vrrp"
)

// DrainFile is the drain marker of `hactl drain`; it goes with the host.
const DrainFile = "/etc/keepalived/hactl-drain"

// ManagedFiles are the files hactl puts on a host, in the order they are
// removed: keepalived's first (keepalived is stopped by then), the record
// last, so an interrupted decommission is seen again on the next run.
func ManagedFiles() []string {
	return []string{render.KeepalivedConf, render.CheckScript, render.NotifyScript, render.KeepalivedDrop,
		render.EventsScript, render.EventsUnit, render.EventsConf,
		DrainFile, render.SitesInclude, render.NginxSite, render.ClusterRecord}
}

// Departed is a host that left the inventory, as the run found it.
type Departed struct {
	vrrp.Departed
	// Host is its connection (Host.Err set when it cannot be reached).
	Host *fleet.Host
	// Keepalived is its keepalived's state (systemctl is-active); "" when
	// the host cannot be reached.
	Keepalived string
}

// Running reports whether the departed host may still advertise its VIPs.
func (d *Departed) Running() bool { return d.Keepalived == "active" || d.Keepalived == "activating" }

// Where is "name (address)" for messages.
func (d *Departed) Where() string { return fmt.Sprintf("%s (%s)", d.Name, d.Address) }

// AsHosts are the departed hosts as inventory hosts, to connect to them
// with the SSH settings of a host of their old cluster that is still in
// the inventory (fl of Inspect, in the same order).
func AsHosts(inv *inventory.Inventory, deps []vrrp.Departed) []*inventory.Host {
	var hosts []*inventory.Host
	for _, d := range deps {
		hosts = append(hosts, asHost(inv, d))
	}
	return hosts
}

// Inspect reads the keepalived state of each departed host over fl, its
// connections in the order of AsHosts. Unreachable hosts are returned with
// Host.Err set.
func Inspect(ctx context.Context, inv *inventory.Inventory, deps []vrrp.Departed, fl *fleet.Fleet) []*Departed {
	out := make([]*Departed, len(deps))
	var wg sync.WaitGroup
	for i, d := range deps {
		fh := fl.Hosts[i]
		fh.Cluster = clusterLike(inv, d)
		out[i] = &Departed{Departed: d, Host: fh}
		if fh.Conn == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := facts.Gather(ctx, fh.Conn, facts.Request{Services: []string{"keepalived"}})
			if err != nil {
				fh.Err = fmt.Errorf("%s: %w", d.Name, err)
				return
			}
			out[i].Keepalived = f.Services["keepalived"].Active
		}()
	}
	wg.Wait()
	return out
}

// clusterLike is the inventory cluster the departed host belonged to, or
// the first one when that cluster is gone from the file.
func clusterLike(inv *inventory.Inventory, d vrrp.Departed) *inventory.Cluster {
	for _, c := range inv.Clusters {
		if c.Name == d.Cluster {
			return c
		}
	}
	return inv.Clusters[0]
}

// asHost is the departed host as an inventory host: its name, address, VIP
// and interface from the record, SSH settings from its old cluster's first
// host (a fleet shares one way in).
func asHost(inv *inventory.Inventory, d vrrp.Departed) *inventory.Host {
	c := clusterLike(inv, d)
	h := *c.Hosts[0]
	h.Name, h.Address, h.VIP, h.VIP6, h.VRID = d.Name, d.Address, d.VIP, d.VIP6, d.VRID
	if d.Interface != "" {
		h.Interface = d.Interface
	}
	h.Ranges = nil
	return &h
}

// Options are how a decommission runs.
type Options struct {
	Clock clock.Clock // nil: clock.Real
	Stamp string      // backup suffix of the run
	// Bound is the cluster's crash bound; the wait for the VIPs to move
	// lasts 3 × Bound + 5 s, as the rollout's waits do.
	Bound time.Duration
	Event func(playbook.Event) // nil discards
	// Restore puts the distribution's defaults back from hactl's backups
	// (destroy); a pruned host keeps nginx as it is.
	Restore bool
	// Purge removes the keepalived and nginx packages (destroy
	// --purge-packages).
	Purge bool
	// VIPs are every VIP of the cluster, old and new: the addresses a
	// stopping host may hold (its own, and those it took over as a backup).
	VIPs []netip.Prefix
}

// Decommission retires d before any survivor is reconfigured. Why this
// order serves no VIP twice and drops none:
//
//   - While d runs, the survivors still run the previous config, in which
//     d's VIP is an instance they back up, on the VRID d advertises.
//   - A graceful stop makes keepalived send a priority-0 advert for every
//     instance d is MASTER of and remove its VIPs: its first backup takes
//     over after the skew time alone, and d no longer holds the address.
//   - We wait until d holds none of the VIPs it held and each sits on
//     exactly one survivor. Only then is keepalived disabled and hactl's
//     files removed, and only after Decommission returns does apply
//     reconfigure the survivors; their new config drops d's instance (or
//     hands its VIP, by its recorded VRID, to a new host), one host at a
//     time.
//   - Had the survivors been reconfigured first, d would have kept
//     advertising its VRID while they stopped backing it up: the VIP would
//     stay on a host outside the inventory, and a survivor given that VRID
//     for another VIP would fight d for it.
//
// Removed files are kept in playbook.BackupDir. nginx keeps running as the
// user had it; only hactl's own site is removed (and nginx reloaded if it
// runs and its configuration tests clean).
func Decommission(ctx context.Context, d *Departed, survivors []*fleet.Host, o Options) error {
	if d.Host.Conn == nil {
		return fmt.Errorf("%s cannot be reached: %w", d.Where(), d.Host.Err)
	}
	td, err := PlanTeardown(ctx, d.Host.Conn, o)
	if err != nil {
		return fmt.Errorf("%s: %w", d.Where(), err)
	}
	_, err = td.Run(ctx, d.Host, survivors, o)
	return err
}

// Teardown is what retiring one host changes, decided from its facts.
type Teardown struct {
	Stop    bool // keepalived runs: stop it gracefully, wait for its VIPs to move
	Disable bool // keepalived is enabled
	// Recorder: the event recorder (hactl-events.service) runs or is
	// enabled; it is stopped and disabled after keepalived, so that it
	// records keepalived's stop.
	Recorder bool
	Remove   []string // hactl's files present on the host
	Purge    []string // packages to remove (Options.Purge)
	pkgmgr   string
}

// Changes are the teardown's steps, one line each, in the order they run.
func (t *Teardown) Changes() []string {
	var out []string
	if t.Stop {
		out = append(out, "stop keepalived gracefully (priority-0 advert: its VIPs move to the next host at once); wait until each is on exactly one other host")
	}
	if t.Disable {
		out = append(out, "disable keepalived")
	}
	if t.Recorder {
		out = append(out, "stop and disable "+recorderUnit)
	}
	for _, p := range t.Remove {
		out = append(out, "remove "+p+" (kept in "+playbook.BackupDir+")")
	}
	if len(t.Remove) > 0 {
		out = append(out, "restore distribution defaults hactl replaced, from its backups")
	}
	if len(t.Purge) > 0 {
		out = append(out, "purge packages "+strings.Join(t.Purge, " "))
	}
	return out
}

// PlanTeardown reads the host's facts and decides the teardown; a host
// already torn down plans nothing.
func PlanTeardown(ctx context.Context, c remote.Conn, o Options) (*Teardown, error) {
	f, err := facts.Gather(ctx, c, facts.Request{Paths: ManagedFiles(), Services: []string{"keepalived", recorderUnit}, Packages: purgeable})
	if err != nil {
		return nil, err
	}
	ka := f.Services["keepalived"]
	t := &Teardown{Stop: ka.Active == "active" || ka.Active == "activating", Disable: ka.Enabled == "enabled", pkgmgr: f.PackageManager}
	rec := f.Services[recorderUnit]
	t.Recorder = rec.Active == "active" || rec.Active == "activating" || rec.Active == "failed" || rec.Enabled == "enabled"
	for _, p := range ManagedFiles() {
		if f.Files[p].Exists {
			t.Remove = append(t.Remove, p)
		}
	}
	if o.Purge {
		for _, p := range purgeable {
			if f.Installed(p) {
				t.Purge = append(t.Purge, p)
			}
		}
	}
	return t, nil
}

// recorderUnit is the event recorder's service (render.EventsUnit).
const recorderUnit = "hactl-events"

// purgeable are the packages --purge-packages removes: the ones hactl
// installs for its own services (arping stays: other tools use it).
var purgeable = []string{"keepalived", "nginx"}

// Run carries out the teardown of h; others are the hosts of its cluster
// that keep running (where its VIPs go). It returns how many things it
// changed.
func (t *Teardown) Run(ctx context.Context, h *fleet.Host, others []*fleet.Host, o Options) (int, error) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	emit := func(status, summary string) {
		if o.Event != nil {
			o.Event(playbook.Event{Host: h.Name(), Step: "decommission", Status: status, Summary: summary})
		}
	}
	run := func(cmd string) error {
		_, err := remote.Output(ctx, h.Conn, cmd)
		return err
	}
	where := fmt.Sprintf("%s (%s)", h.Name(), h.Host.Address)
	changed := 0
	ka := remote.Unit("keepalived")
	if t.Stop {
		held, err := verify.Addrs(ctx, h.Conn, h.Host.Interface)
		if err != nil {
			return changed, fmt.Errorf("%s: read its addresses: %w", where, err)
		}
		want := vipsHeld(h, others, held, o.VIPs)
		if err := run(ka.Stop()); err != nil {
			return changed, fmt.Errorf("%s: stop keepalived: %w", where, err)
		}
		changed++
		if err := waitMoved(ctx, h, others, want, o); err != nil {
			return changed, err
		}
		emit("changed", "keepalived stopped gracefully; "+moved(want, others))
	}
	if t.Disable {
		if err := run(ka.Disable()); err != nil {
			return changed, fmt.Errorf("%s: disable keepalived: %w", where, err)
		}
		changed++
	}
	if t.Recorder {
		ev := remote.Unit(recorderUnit)
		if err := run(ev.Stop() + " && " + ev.Disable()); err != nil {
			return changed, fmt.Errorf("%s: stop and disable %s: %w", where, recorderUnit, err)
		}
		changed++
	}
	if len(t.Remove) > 0 {
		done, err := RemoveFiles(ctx, h.Conn, o.Stamp, o.Restore)
		if err != nil {
			return changed, fmt.Errorf("%s: %w", where, err)
		}
		changed += len(done)
		emit("changed", strings.Join(done, "; "))
	}
	if len(t.Purge) > 0 {
		cmd := "DEBIAN_FRONTEND=noninteractive apt-get -q -y purge " + remote.Join(t.Purge...)
		if t.pkgmgr != "apt-get" {
			cmd = t.pkgmgr + " -q -y remove " + remote.Join(t.Purge...)
		}
		if err := run(cmd); err != nil {
			return changed, fmt.Errorf("%s: purge packages: %w", where, err)
		}
		changed++
		emit("changed", "purged "+strings.Join(t.Purge, " "))
	}
	if changed == 0 {
		emit("ok", "nothing of hactl's left")
	} else {
		emit("ok", "keepalived stopped and disabled, hactl's files removed")
	}
	return changed, nil
}

// vipsHeld are the addresses h holds that its cluster serves: its own VIPs
// and those it took over as a backup.
func vipsHeld(h *fleet.Host, others []*fleet.Host, held, cluster []netip.Prefix) []netip.Prefix {
	vips := map[netip.Addr]bool{}
	for _, p := range cluster {
		vips[p.Addr()] = true
	}
	for _, x := range append([]*fleet.Host{h}, others...) {
		for _, p := range x.Host.VIPs() {
			vips[p.Addr()] = true
		}
	}
	var out []netip.Prefix
	for _, p := range held {
		if vips[p.Addr()] {
			out = append(out, p)
		}
	}
	return out
}

func moved(want []netip.Prefix, others []*fleet.Host) string {
	if len(want) == 0 {
		return "it held no VIP"
	}
	var s []string
	for _, p := range want {
		s = append(s, p.String())
	}
	if len(others) == 0 {
		return strings.Join(s, ", ") + " released (no other host of the cluster runs)"
	}
	return strings.Join(s, ", ") + " moved to the others"
}

// RemoveFiles moves every hactl file present on the host into
// playbook.BackupDir and, with restore, puts back what the distribution had
// before hactl (Debian's default site, EL's nginx.conf, a keepalived.conf
// hactl did not write). Then it reloads systemd when the drop-in went, and
// nginx when it runs and its configuration tests clean. It returns one line
// per thing done.
func RemoveFiles(ctx context.Context, c remote.Conn, stamp string, restore bool) ([]string, error) {
	var b strings.Builder
	b.WriteString("mkdir -p " + playbook.BackupDir + " && chmod 0700 " + playbook.BackupDir + " || exit 1\n")
	for _, p := range ManagedFiles() {
		fmt.Fprintf(&b, "if [ -e %[1]s ] || [ -L %[1]s ]; then mv -f %[1]s %[2]s || exit 1; echo removed %[1]s; fi\n",
			remote.Quote(p), remote.Quote(playbook.BackupPath(p, stamp)))
	}
	// The serving layer's directory goes whole (sites, keys, snippets),
	// into the 0700 backup directory; nginx.conf's stream include then
	// matches no file, which nginx accepts.
	fmt.Fprintf(&b, "if [ -d %[1]s ]; then mv -f %[1]s %[2]s || exit 1; echo removed %[1]s; fi\n",
		remote.Quote(render.SitesDir), remote.Quote(playbook.BackupPath(render.SitesDir, stamp)))
	if restore {
		// Backups carry the run's UTC stamp in their name: the oldest is
		// the first by name (mtimes say nothing: cp -p keeps the file's).
		site := "/etc/nginx/sites-enabled/default"
		fmt.Fprintf(&b, "if [ -d /etc/nginx/sites-enabled ] && [ ! -e %[1]s ] && [ ! -L %[1]s ]; then for o in %[2]s.hactl-[0-9]*; do if [ -e \"$o\" ] || [ -L \"$o\" ]; then cp -pP \"$o\" %[1]s && echo restored %[1]s; break; fi; done; fi\n",
			site, playbook.BackupDir+"/etc_nginx_sites-enabled_default")
		b.WriteString("if [ -e /etc/nginx/nginx.conf.hactl-orig ] && ! cmp -s /etc/nginx/nginx.conf.hactl-orig /etc/nginx/nginx.conf; then cp -p /etc/nginx/nginx.conf.hactl-orig /etc/nginx/nginx.conf && echo restored /etc/nginx/nginx.conf; fi\n")
		// What the swap kept of a file before hactl's first change
		// (PATH.hactl-orig) goes back byte for byte, then into the
		// backups: a later apply keeps whatever is there by then.
		for _, p := range ManagedFiles() {
			o := p + playbook.OriginalSuffix
			fmt.Fprintf(&b, "if [ ! -e %[1]s ] && [ -f %[2]s ]; then cp -p %[2]s %[1]s && mv -f %[2]s %[3]s && echo restored %[1]s; fi\n",
				remote.Quote(p), remote.Quote(o), remote.Quote(playbook.BackupPath(o, stamp)))
		}
		// A host changed by an older hactl has no .hactl-orig: the oldest
		// stamped backup hactl did not write is the distribution's.
		k := render.KeepalivedConf
		fmt.Fprintf(&b, "if [ ! -e %[1]s ]; then for o in %[1]s.hactl-[0-9]*; do if [ -f \"$o\" ]; then head -n 3 \"$o\" | grep -q 'Managed by hactl' || { cp -p \"$o\" %[1]s && echo restored %[1]s; }; break; fi; done; fi\n", k)
	}
	out, err := remote.Output(ctx, c, b.String())
	if err != nil {
		return nil, fmt.Errorf("remove hactl's files: %w", err)
	}
	var done []string
	reloadNginx, reloadSystemd := false, false
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		done = append(done, line)
		switch {
		case line == "removed "+render.KeepalivedDrop, line == "removed "+render.EventsUnit:
			reloadSystemd = true
		case strings.Contains(line, "/etc/nginx/"):
			reloadNginx = true
		}
	}
	if reloadSystemd {
		if _, err := remote.Output(ctx, c, "systemctl daemon-reload"); err != nil {
			return done, err
		}
	}
	if reloadNginx {
		ng := remote.Unit("nginx")
		if _, err := remote.Output(ctx, c, "if "+ng.Active()+" && nginx -t >/dev/null 2>&1; then "+ng.Reload()+"; fi"); err != nil {
			return done, err
		}
	}
	return done, nil
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "nothing"
	}
	return strings.Join(l, ", ")
}

// waitMoved polls h and the others until h holds none of want and each
// is on exactly one other host (with no other host: on none).
func waitMoved(ctx context.Context, h *fleet.Host, others []*fleet.Host, want []netip.Prefix, o Options) error {
	hosts := append([]*fleet.Host{h}, others...)
	timeout := 3*o.Bound + 5*time.Second
	deadline := o.Clock.Now().Add(timeout)
	for {
		obs := verify.Observe(ctx, hosts)
		problem := movedProblem(obs, h.Name(), want, len(others) > 0)
		if problem == "" {
			return nil
		}
		if o.Clock.Now().After(deadline) {
			return fmt.Errorf("%s (%s): its VIPs did not move within %s: %s", h.Name(), h.Host.Address, timeout.Round(time.Second), problem)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-o.Clock.After(50 * time.Millisecond):
		}
	}
}

// movedProblem says what is still wrong ("" when the VIPs have moved). With
// no survivor (the whole cluster leaves) a VIP only has to leave departed.
func movedProblem(obs []verify.Observation, departed string, want []netip.Prefix, survivors bool) string {
	for _, vip := range want {
		var holders []string
		for _, ob := range obs {
			if ob.Err != nil {
				if ob.Host == departed {
					return "cannot read " + departed + ": " + ob.Err.Error()
				}
				continue
			}
			for _, a := range ob.Addrs {
				if a.Addr() == vip.Addr() {
					holders = append(holders, ob.Host)
				}
			}
		}
		switch {
		case len(holders) == 1 && holders[0] != departed:
		case len(holders) == 0 && !survivors:
		case len(holders) == 0:
			return vip.String() + " is held by no host"
		default:
			return vip.String() + " is held by " + strings.Join(holders, ", ")
		}
	}
	return ""
}
