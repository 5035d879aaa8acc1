package ops

import (
	"fmt"

	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/vrrp"
)

// SelectHosts is --limit, the one host selection of every verb: host or
// cluster names, in inventory order (all hosts when limit is empty).
func SelectHosts(inv *inventory.Inventory, limit []string) ([]*inventory.Host, error) {
	sel, err := inventory.Select(inv, limit)
	if err != nil {
		return nil, UsageError(fmt.Errorf("--limit: %w", err))
	}
	return sel, nil
}

// clusterHosts widens a selection to every host of the touched clusters:
// VIP placement can only be judged on the whole cluster.
func clusterHosts(inv *inventory.Inventory, sel []*inventory.Host) []string {
	seen := map[string]bool{}
	var names []string
	for _, h := range sel {
		c := inv.ClusterOf(h.Name)
		if seen[c.Name] {
			continue
		}
		seen[c.Name] = true
		for _, x := range c.Hosts {
			names = append(names, x.Name)
		}
	}
	return names
}

// limitLayout is the layout of the clusters a --limit touches (all of it
// when limit is empty).
func limitLayout(inv *inventory.Inventory, l *vrrp.Layout, limit []string) (*vrrp.Layout, error) {
	if len(limit) == 0 {
		return l, nil
	}
	sel, err := SelectHosts(inv, limit)
	if err != nil {
		return nil, err
	}
	return layoutOf(l, clusterHosts(inv, sel), inv), nil
}

// layoutOf is the layout of the clusters that hold these hosts.
func layoutOf(all *vrrp.Layout, hosts []string, inv *inventory.Inventory) *vrrp.Layout {
	in := map[string]bool{}
	for _, h := range hosts {
		in[inv.ClusterOf(h).Name] = true
	}
	out := &vrrp.Layout{}
	for _, i := range all.Instances {
		if in[i.Cluster] {
			out.Instances = append(out.Instances, i)
		}
	}
	return out
}

// layoutHosts are the hosts of the layout's clusters, in inventory order.
func layoutHosts(inv *inventory.Inventory, l *vrrp.Layout) []string {
	in := map[string]bool{}
	for _, i := range l.Instances {
		in[i.Cluster] = true
	}
	var names []string
	for _, c := range inv.Clusters {
		if in[c.Name] {
			for _, h := range c.Hosts {
				names = append(names, h.Name)
			}
		}
	}
	return names
}

// fleetLayout limits the layout to the clusters whose hosts are in the fleet.
func fleetLayout(inv *inventory.Inventory, l *vrrp.Layout, fl *fleet.Fleet) *vrrp.Layout {
	var names []string
	for _, h := range fl.Hosts {
		names = append(names, h.Name())
	}
	return layoutOf(l, names, inv)
}
