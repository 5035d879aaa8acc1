package cli

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/prune"
	"github.com/hactl/hactl/pkg/vrrp"
)

// departedJSON is a host that left the inventory, in apply's and plan's JSON.
type departedJSON struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	Cluster   string `json:"cluster"`
	VIP       string `json:"vip"`
	VRID      int    `json:"vrid"`
	Reachable bool   `json:"reachable"`
	// Keepalived is its keepalived state; null when it cannot be reached.
	Keepalived *string `json:"keepalived"`
	// Action: "refused" (plain apply, keepalived runs), "decommissioned",
	// "would refuse", "would decommission", "reserved" (its VRID stays
	// reserved: unreachable, or not running and not pruned).
	Action string `json:"action"`
}

// membership is what the cluster records say about this run.
type membership struct {
	loaded   *Loaded // the inventory with the layout built on the records
	departed []departedJSON
}

// fleetChange reads the cluster records of the connected hosts, finds the
// hosts that left the inventory, and either refuses (plain apply while one
// still runs keepalived), decommissions them first (--prune), or only
// reports (plan). It returns the layout to apply: recorded router ids kept.
func (g *Globals) fleetChange(ctx context.Context, o *ApplyOptions, l *Loaded, fl *fleet.Fleet, dry bool,
	pr *progress, stamp string) (*membership, error) {
	recs, err := prune.Records(ctx, fl.Reachable())
	if err != nil {
		return nil, &ExitError{Code: ExitFailed, Err: fmt.Errorf("read the cluster record: %w; nothing was changed", err)}
	}
	m := &membership{}
	var gone []string
	var refuse []string
	if deps := vrrp.Removed(l.Inv, recs); len(deps) > 0 {
		hosts := prune.AsHosts(l.Inv, deps)
		f, err := g.connectHosts(ctx, l.Inv, hosts, o.Conn)
		if err != nil {
			// Only bad --ssh-config gets here, and connect already
			// read it successfully for the inventory's hosts.
			f = &fleet.Fleet{}
			for _, h := range hosts {
				f.Hosts = append(f.Hosts, &fleet.Host{Host: h, Err: err})
			}
		}
		found := prune.Inspect(ctx, l.Inv, deps, f)
		defer func() {
			for _, d := range found {
				if d.Host.Conn != nil {
					_ = d.Host.Conn.Close()
				}
			}
		}()
		for _, d := range found {
			dj := departedJSON{Name: d.Name, Address: d.Address.String(), Cluster: d.Cluster, VIP: d.VIP.String(),
				VRID: d.VRID, Reachable: d.Host.Conn != nil && d.Host.Err == nil}
			status := "found"
			summary := fmt.Sprintf("%s left the inventory (cluster %s, VIP %s, VRID %d)", d.Where(), d.Cluster, d.VIP, d.VRID)
			switch {
			case !dj.Reachable:
				dj.Action = "reserved"
				status = "failed"
				summary += fmt.Sprintf(": cannot be reached (%v); VRID %d stays reserved and no survivor takes it", d.Host.Err, d.VRID)
			case d.Running() && !o.Run.Prune:
				dj.Action = "refused"
				if dry {
					dj.Action = "would refuse"
				}
				refuse = append(refuse, fmt.Sprintf("%s still runs keepalived (VIP %s, VRID %d)", d.Where(), d.VIP, d.VRID))
				summary += ": keepalived " + d.Keepalived + "; apply refuses until it is pruned (hactl apply --prune) or put back"
			case o.Run.Prune && dry:
				dj.Action = "would decommission"
				summary += ": keepalived " + d.Keepalived + "; apply --prune decommissions it first"
			case o.Run.Prune:
				pr.event(playbook.Event{Host: d.Name, Step: "left the inventory", Status: "found", Summary: summary + ": decommissioning"})
				err := prune.Decommission(ctx, d, survivors(fl, d.Cluster), prune.Options{
					Stamp: stamp, Bound: crashBound(l.Layout, d.Cluster), Event: pr.event,
					VIPs: append(clusterVIPs(l.Layout, d.Cluster), recordedVIPs(recs, d.Cluster)...),
				})
				if err != nil {
					pr.event(playbook.Event{Host: d.Name, Step: "decommission", Status: "failed", Summary: err.Error()})
					return nil, &ExitError{Code: ExitFailed, Err: fmt.Errorf("decommission %s: %w; the survivors were not reconfigured", d.Where(), err)}
				}
				dj.Action = "decommissioned"
				gone = append(gone, d.Name)
				ka := d.Keepalived
				dj.Keepalived = &ka
				m.departed = append(m.departed, dj)
				continue
			default:
				dj.Action = "reserved"
				summary += ": keepalived " + d.Keepalived + "; VRID " + fmt.Sprint(d.VRID) + " stays reserved (hactl apply --prune frees it)"
			}
			if dj.Reachable {
				ka := d.Keepalived
				dj.Keepalived = &ka
			}
			m.departed = append(m.departed, dj)
			pr.event(playbook.Event{Host: d.Name, Step: "left the inventory", Status: status, Summary: summary})
		}
	}
	if len(refuse) > 0 && !dry {
		return m, &ExitError{Code: ExitFailed, Err: fmt.Errorf("%s: it left the inventory, and reconfiguring the others now would leave its VIP on a host hactl no longer manages; run `hactl apply --prune` to decommission it first, or put it back in the inventory; nothing was changed",
			strings.Join(refuse, "; "))}
	}
	layout, diags := vrrp.BuildWith(l.Inv, vrrp.Options{Records: recs, Decommissioned: gone})
	if diags.HasErrors() {
		g.printDiags(nil, diags)
		return m, &ExitError{Code: ExitUsage, Err: errors.New("the inventory clashes with the router ids recorded on the hosts; nothing was changed")}
	}
	m.loaded = &Loaded{Inv: l.Inv, Layout: layout}
	return m, nil
}

// survivors are the reachable hosts of cluster in the inventory.
func survivors(fl *fleet.Fleet, cluster string) []*fleet.Host {
	var out []*fleet.Host
	for _, h := range fl.Reachable() {
		if h.Cluster != nil && h.Cluster.Name == cluster {
			out = append(out, h)
		}
	}
	return out
}

func crashBound(l *vrrp.Layout, cluster string) time.Duration {
	b := 4 * time.Second
	for _, in := range l.ForCluster(cluster) {
		b = max(b, in.Bounds.Crash)
	}
	return b
}

// clusterVIPs are the addresses the layout gives cluster.
func clusterVIPs(l *vrrp.Layout, cluster string) []netip.Prefix {
	var out []netip.Prefix
	for _, in := range l.ForCluster(cluster) {
		out = append(out, in.Addrs()...)
	}
	return out
}

// recordedVIPs are the addresses the records give cluster.
func recordedVIPs(recs []*vrrp.Record, cluster string) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range recs {
		if r == nil || r.Cluster != cluster {
			continue
		}
		for _, h := range r.Members() {
			out = append(out, h.VIP)
			if h.VIP6.IsValid() {
				out = append(out, h.VIP6)
			}
		}
	}
	return out
}

// recordedLayout is the layout as the last apply left it, for commands that
// look at the fleet without changing its membership (status,
// failover-test): recorded router ids and instance names, and the departed
// hosts the records keep as retired (no others: what was pruned is gone).
func recordedLayout(ctx context.Context, g *Globals, l *Loaded, fl *fleet.Fleet) (*Loaded, error) {
	recs, err := prune.Records(ctx, fl.Reachable())
	if err != nil {
		return nil, &ExitError{Code: ExitFailed, Err: fmt.Errorf("read the cluster record: %w", err)}
	}
	retired := map[string]bool{}
	for _, r := range recs {
		if r == nil {
			continue
		}
		for _, h := range r.Retired {
			retired[h.Name] = true
		}
	}
	var gone []string
	for _, d := range vrrp.Removed(l.Inv, recs) {
		if !retired[d.Name] {
			gone = append(gone, d.Name)
		}
	}
	layout, diags := vrrp.BuildWith(l.Inv, vrrp.Options{Records: recs, Decommissioned: gone})
	if diags.HasErrors() {
		g.printDiags(nil, diags)
		return nil, &ExitError{Code: ExitUsage, Err: errors.New("the inventory clashes with the router ids recorded on the hosts")}
	}
	return &Loaded{Inv: l.Inv, Layout: layout}, nil
}
