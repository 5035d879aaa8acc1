package inventory

import (
	"fmt"
	"strings"
)

// Select resolves --limit: each name is a host or a cluster (all its hosts).
// It returns the inventory's hosts in file order, each once; no names
// selects every host. A name that is both a host and a cluster is an error,
// never a guess (a destroy meant for host "edge" must not take cluster
// "edge"); validate refuses such an inventory, and this refuses it again for
// any inventory that got past it. An unknown name is an error too.
func Select(inv *Inventory, names []string) ([]*Host, error) {
	want := map[string]bool{}
	var unknown, ambiguous []string
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		var c *Cluster
		for _, x := range inv.Clusters {
			if x.Name == n {
				c = x
				break
			}
		}
		isHost := inv.ClusterOf(n) != nil
		switch {
		case c != nil && isHost:
			ambiguous = append(ambiguous, n)
		case c != nil:
			for _, h := range c.Hosts {
				want[h.Name] = true
			}
		case isHost:
			want[n] = true
		default:
			unknown = append(unknown, n)
		}
	}
	switch {
	case len(ambiguous) > 0:
		return nil, fmt.Errorf("%s names both a host and a cluster in %s; rename one of them", strings.Join(ambiguous, ", "), inv.Path)
	case len(unknown) > 0:
		return nil, fmt.Errorf("no host or cluster named %s in %s", strings.Join(unknown, ", "), inv.Path)
	}
	var out []*Host
	for _, h := range inv.Hosts() {
		if len(want) == 0 && len(names) == 0 || want[h.Name] {
			out = append(out, h)
		}
	}
	return out, nil
}
