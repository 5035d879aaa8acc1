// Package prune finds the hosts that left the inventory (from the cluster
// records the survivors keep) and decommissions them, VRRP-aware: a departed
// host gives its VIPs away before any survivor is reconfigured.
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
		DrainFile, render.NginxSite, render.ClusterRecord}
}

// Records reads the cluster record of every reachable host (nil where a host
// has none). A record that cannot be read is an error naming the host: the
// run must not guess which hosts left or which router ids are taken.
func Records(ctx context.Context, hosts []*fleet.Host) ([]*vrrp.Record, error) {
	recs := make([]*vrrp.Record, len(hosts))
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		if h.Conn == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := facts.ReadClusterRecord(ctx, h.Conn)
			if err == nil {
				recs[i], err = vrrp.ParseRecord(b)
			}
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", h.Name(), err)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return recs, nil
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

// ConnectFunc opens connections to hosts that are not in the inventory.
type ConnectFunc func(ctx context.Context, hosts []*inventory.Host) *fleet.Fleet

// Inspect connects to each departed host, with the SSH settings of a host of
// its old cluster that is still in the inventory, and reads its keepalived
// state. Unreachable hosts are returned with Host.Err set.
func Inspect(ctx context.Context, inv *inventory.Inventory, deps []vrrp.Departed, connect ConnectFunc) []*Departed {
	var hosts []*inventory.Host
	for _, d := range deps {
		hosts = append(hosts, asHost(inv, d))
	}
	fl := connect(ctx, hosts)
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
}

// Decommission retires d before any survivor is reconfigured. Why this
// order serves no VIP twice and drops none:
//
//   - While d runs, the survivors still run the previous config, in which
//     d's VIP is an instance they back up, on the VRID d advertises.
//   - A graceful stop makes keepalived send a priority-0 advert for every
//     instance d is MASTER of and remove its VIPs: its first backup takes
//     over after the skew time alone, and d no longer holds the address.
//   - We wait until d holds none of its VIPs and each sits on exactly one
//     survivor. Only then is keepalived disabled and hactl's files removed,
//     and only after Decommission returns does apply reconfigure the
//     survivors; their new config drops d's instance (or hands its VIP, by
//     its recorded VRID, to a new host), one host at a time.
//   - Had the survivors been reconfigured first, d would have kept
//     advertising its VRID while they stopped backing it up: the VIP would
//     stay on a host outside the inventory, and a survivor given that VRID
//     for another VIP would fight d for it.
//
// Removed files are kept in playbook.BackupDir. nginx keeps running as the
// user had it; only hactl's own site is removed (and nginx reloaded if it
// runs and its configuration tests clean).
func Decommission(ctx context.Context, d *Departed, survivors []*fleet.Host, o Options) error {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	emit := func(step, status, summary string) {
		if o.Event != nil {
			o.Event(playbook.Event{Host: d.Name, Step: step, Status: status, Summary: summary})
		}
	}
	if d.Host.Conn == nil {
		return fmt.Errorf("%s cannot be reached: %w", d.Where(), d.Host.Err)
	}
	run := func(cmd string) error {
		_, err := remote.Output(ctx, d.Host.Conn, cmd)
		return err
	}
	ka := remote.Unit("keepalived")
	if d.Running() {
		if err := run(ka.Stop()); err != nil {
			return fmt.Errorf("%s: stop keepalived: %w", d.Where(), err)
		}
		if err := waitMoved(ctx, d, survivors, o); err != nil {
			return err
		}
		emit("decommission", "changed", fmt.Sprintf("keepalived stopped gracefully; %s moved off it", addrs(d)))
	}
	if err := run(ka.Disable() + " 2>/dev/null || true"); err != nil {
		return fmt.Errorf("%s: disable keepalived: %w", d.Where(), err)
	}
	removed, err := RemoveFiles(ctx, d.Host.Conn, o.Stamp)
	if err != nil {
		return fmt.Errorf("%s: %w", d.Where(), err)
	}
	emit("decommission", "changed", "keepalived stopped and disabled; removed "+orNone(removed)+" (kept in "+playbook.BackupDir+")")
	return nil
}

// RemoveFiles moves every hactl file present on the host into
// playbook.BackupDir, reloads systemd when the drop-in went, and reloads
// nginx when it runs and its configuration still tests clean without
// hactl's site. It returns the paths it removed.
func RemoveFiles(ctx context.Context, c remote.Conn, stamp string) ([]string, error) {
	var b strings.Builder
	b.WriteString("mkdir -p " + playbook.BackupDir + " && chmod 0700 " + playbook.BackupDir + " || exit 1\n")
	for _, p := range ManagedFiles() {
		fmt.Fprintf(&b, "if [ -e %[1]s ] || [ -L %[1]s ]; then mv -f %[1]s %[2]s || exit 1; echo %[1]s; fi\n",
			remote.Quote(p), remote.Quote(playbook.BackupPath(p, stamp)))
	}
	out, err := remote.Output(ctx, c, b.String())
	if err != nil {
		return nil, fmt.Errorf("remove hactl's files: %w", err)
	}
	removed := strings.Fields(out)
	for _, p := range removed {
		switch p {
		case render.KeepalivedDrop:
			if _, err := remote.Output(ctx, c, "systemctl daemon-reload"); err != nil {
				return removed, err
			}
		case render.NginxSite:
			ng := remote.Unit("nginx")
			if _, err := remote.Output(ctx, c, "if "+ng.Active()+" && nginx -t >/dev/null 2>&1; then "+ng.Reload()+"; fi"); err != nil {
				return removed, err
			}
		}
	}
	return removed, nil
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "nothing"
	}
	return strings.Join(l, ", ")
}

func addrs(d *Departed) string {
	s := d.VIP.String()
	if d.VIP6.IsValid() {
		s += " + " + d.VIP6.String()
	}
	return s
}

// waitMoved polls d and the survivors until d holds none of its VIPs and
// each is on exactly one survivor.
func waitMoved(ctx context.Context, d *Departed, survivors []*fleet.Host, o Options) error {
	hosts := append([]*fleet.Host{d.Host}, survivors...)
	want := []netip.Prefix{d.VIP}
	if d.VIP6.IsValid() {
		want = append(want, d.VIP6)
	}
	timeout := 3*o.Bound + 5*time.Second
	deadline := o.Clock.Now().Add(timeout)
	for {
		obs := verify.Observe(ctx, hosts)
		problem := movedProblem(obs, d.Name, want, len(survivors) > 0)
		if problem == "" {
			return nil
		}
		if o.Clock.Now().After(deadline) {
			return fmt.Errorf("%s: its VIPs did not move within %s: %s", d.Where(), timeout.Round(time.Second), problem)
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
