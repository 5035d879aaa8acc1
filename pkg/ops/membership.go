package ops

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/prune"
	"github.com/hactl/hactl/pkg/vrrp"
)

// Departed is a host that left the inventory, as apply or plan found it.
type Departed struct {
	Name      string
	Address   string
	Cluster   string
	VIP       string
	VRID      int
	Reachable bool
	// Keepalived is its keepalived state; nil when it cannot be reached.
	Keepalived *string
	// Action: "refused" (plain apply, keepalived runs), "decommissioned",
	// "would refuse", "would decommission", "reserved" (its VRID stays
	// reserved: unreachable, or not running and not pruned).
	Action string
}

// membership is what the cluster records say about this run.
type membership struct {
	layout   *vrrp.Layout // built on the records
	departed []Departed
}

// decommissioned reports whether a departed host was decommissioned (the
// survivors took its VIPs: their facts' addresses are stale).
func (m *membership) decommissioned() bool {
	for _, d := range m.departed {
		if d.Action == "decommissioned" {
			return true
		}
	}
	return false
}

// changeRun is what a membership change needs of the apply around it.
type changeRun struct {
	conn  ConnOptions
	prune bool
	dry   bool
	stamp string
	ev    Events
}

// fleetChange reads the cluster records of the connected hosts (from the
// facts in known where it has them), finds the hosts that left the
// inventory, and either refuses (plain apply while one still runs
// keepalived), decommissions them first (--prune), or only reports (plan).
// It returns the layout to apply: recorded router ids kept.
func (s *Session) fleetChange(ctx context.Context, fl *fleet.Fleet, known map[string]*facts.Facts, o changeRun) (*membership, error) {
	recs, err := readRecords(ctx, fl.Reachable(), known)
	if err != nil {
		return nil, FailedError(fmt.Errorf("read the cluster record: %w; nothing was changed", err))
	}
	m := &membership{}
	var gone, refuse []string
	if deps := vrrp.Removed(s.Inv, recs); len(deps) > 0 {
		found, err := s.inspect(ctx, deps, o.conn)
		if err != nil {
			return nil, err
		}
		defer func() {
			for _, d := range found {
				if d.Host.Conn != nil {
					_ = d.Host.Conn.Close()
				}
			}
		}()
		for _, d := range found {
			dep, refusal, err := s.departed(ctx, fl, d, recs, o)
			if err != nil {
				return nil, err
			}
			if dep.Action == "decommissioned" {
				gone = append(gone, d.Name)
			}
			if refusal != "" {
				refuse = append(refuse, refusal)
			}
			m.departed = append(m.departed, dep)
		}
	}
	if len(refuse) > 0 && !o.dry {
		return m, FailedError(fmt.Errorf("%s: it left the inventory, and reconfiguring the others now would leave its VIP on a host hactl no longer manages; run `hactl apply --prune` to decommission it first, or put it back in the inventory; nothing was changed",
			strings.Join(refuse, "; ")))
	}
	m.layout, err = s.layoutOnRecords(recs, gone, "the inventory clashes with the router ids recorded on the hosts; nothing was changed")
	if err != nil {
		return m, err
	}
	return m, nil
}

// inspect connects to the departed hosts (with their old cluster's SSH
// settings) and reads their keepalived state.
func (s *Session) inspect(ctx context.Context, deps []vrrp.Departed, conn ConnOptions) ([]*prune.Departed, error) {
	hosts := prune.AsHosts(s.Inv, deps)
	f, err := s.connectHosts(ctx, hosts, conn)
	if err != nil {
		// Only bad --ssh-config gets here, and connect already read it
		// successfully for the inventory's hosts.
		f = &fleet.Fleet{}
		for _, h := range hosts {
			f.Hosts = append(f.Hosts, &fleet.Host{Host: h, Err: err})
		}
	}
	return prune.Inspect(ctx, s.Inv, deps, f), nil
}

// departed decides what happens to one departed host: it returns the host
// as reported, and why apply refuses ("" when it does not).
func (s *Session) departed(ctx context.Context, fl *fleet.Fleet, d *prune.Departed, recs []*vrrp.Record, o changeRun) (Departed, string, error) {
	dep := Departed{Name: d.Name, Address: d.Address.String(), Cluster: d.Cluster, VIP: d.VIP.String(),
		VRID: d.VRID, Reachable: d.Host.Conn != nil && d.Host.Err == nil}
	if dep.Reachable {
		ka := d.Keepalived
		dep.Keepalived = &ka
	}
	status, refusal := "found", ""
	summary := fmt.Sprintf("%s left the inventory (cluster %s, VIP %s, VRID %d)", d.Where(), d.Cluster, d.VIP, d.VRID)
	switch {
	case !dep.Reachable:
		dep.Action, status = "reserved", "failed"
		summary += fmt.Sprintf(": cannot be reached (%v); VRID %d stays reserved and no survivor takes it", d.Host.Err, d.VRID)
	case d.Running() && !o.prune:
		dep.Action = "refused"
		if o.dry {
			dep.Action = "would refuse"
		}
		refusal = fmt.Sprintf("%s still runs keepalived (VIP %s, VRID %d)", d.Where(), d.VIP, d.VRID)
		summary += ": keepalived " + d.Keepalived + "; apply refuses until it is pruned (hactl apply --prune) or put back"
	case o.prune && o.dry:
		dep.Action = "would decommission"
		summary += ": keepalived " + d.Keepalived + "; apply --prune decommissions it first"
	case o.prune:
		o.ev.Event(playbook.Event{Host: d.Name, Step: "left the inventory", Status: "found", Summary: summary + ": decommissioning"})
		err := prune.Decommission(ctx, d, survivors(fl, d.Cluster), prune.Options{
			Stamp: o.stamp, Bound: crashBound(s.Layout, d.Cluster), Event: o.ev.Event,
			VIPs: append(clusterVIPs(s.Layout, d.Cluster), recordedVIPs(recs, d.Cluster)...),
		})
		if err != nil {
			o.ev.Event(playbook.Event{Host: d.Name, Step: "decommission", Status: "failed", Summary: err.Error()})
			return dep, "", FailedError(fmt.Errorf("decommission %s: %w; the survivors were not reconfigured", d.Where(), err))
		}
		dep.Action = "decommissioned"
		return dep, "", nil
	default:
		dep.Action = "reserved"
		summary += ": keepalived " + d.Keepalived + "; VRID " + fmt.Sprint(d.VRID) + " stays reserved (hactl apply --prune frees it)"
	}
	o.ev.Event(playbook.Event{Host: d.Name, Step: "left the inventory", Status: status, Summary: summary})
	return dep, refusal, nil
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
