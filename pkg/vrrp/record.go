package vrrp

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"

	"github.com/hashicorp/hcl/v2"

	"github.com/hactl/hactl/pkg/inventory"
)

// RecordPath is where every host keeps the record of its cluster as the last
// apply wrote it. It holds no secret (0644): membership, addresses, VIPs and
// router ids only.
const RecordPath = "/etc/keepalived/hactl-cluster.json"

// RecordVersion is the record's schema_version.
const RecordVersion = 1

// Where a VRID comes from (Instance.VRIDFrom).
const (
	// VRIDAllocated: a new cluster's allocation, base + position in the cluster.
	VRIDAllocated = "allocated"
	// VRIDOverride: the host sets virtual_router_id.
	VRIDOverride = "override"
	// VRIDRecorded: the VIP keeps the router id the last apply gave it.
	VRIDRecorded = "recorded"
	// VRIDNew: a VIP new to a recorded cluster gets the lowest router id ≥ the
	// base that nothing recorded or configured uses.
	VRIDNew = "new"
)

// RecordHost is one member of a recorded cluster.
type RecordHost struct {
	Name    string       `json:"name"`
	Address netip.Addr   `json:"address"`
	VIP     netip.Prefix `json:"vip"`
	VIP6    netip.Prefix `json:"vip6,omitzero"`
	VRID    int          `json:"vrid"`
	// Instance is the vrrp_instance name: keepalived matches instances by
	// name on reload, so a renamed one would drop and re-elect its VIP.
	Instance string `json:"instance"`
	// Interface carries the VIP: where to look for it once the host has
	// left the inventory.
	Interface string `json:"interface"`
}

// Record is one cluster's membership as the last apply left it.
type Record struct {
	SchemaVersion int          `json:"schema_version"`
	Cluster       string       `json:"cluster"`
	Hosts         []RecordHost `json:"hosts"`
	// Retired are hosts that left the inventory but were not decommissioned
	// (unreachable, or removed without --prune): their router ids stay
	// reserved, because they may still be advertising them.
	Retired []RecordHost `json:"retired"`
}

// ParseRecord reads a record; empty input is no record (nil, nil).
func ParseRecord(b []byte) (*Record, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read %s: %w", RecordPath, err)
	}
	if r.SchemaVersion != RecordVersion {
		return nil, fmt.Errorf("read %s: schema_version %d, this hactl reads %d", RecordPath, r.SchemaVersion, RecordVersion)
	}
	// The record comes from a host: what reaches keepalived.conf (instance
	// names, router ids) or a command line must be what hactl writes.
	for _, h := range r.Members() {
		switch {
		case !recordName.MatchString(h.Name):
			return nil, fmt.Errorf("read %s: bad host name %q", RecordPath, h.Name)
		case h.Instance != "" && !instanceName.MatchString(h.Instance):
			return nil, fmt.Errorf("read %s: host %s: bad instance name %q", RecordPath, h.Name, h.Instance)
		case h.VRID < 1 || h.VRID > 255:
			return nil, fmt.Errorf("read %s: host %s: virtual_router_id %d out of range", RecordPath, h.Name, h.VRID)
		case !h.Address.IsValid() || !h.VIP.IsValid():
			return nil, fmt.Errorf("read %s: host %s: no address or VIP", RecordPath, h.Name)
		case h.Interface != "" && !recordName.MatchString(h.Interface):
			return nil, fmt.Errorf("read %s: host %s: bad interface %q", RecordPath, h.Name, h.Interface)
		}
	}
	return &r, nil
}

var (
	recordName   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	instanceName = regexp.MustCompile(`^VI_[0-9]{1,3}$`)
)

// Marshal is the record's file content.
func (r *Record) Marshal() []byte {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		// Only addresses, strings and ints: cannot fail.
		panic(err)
	}
	return append(b, '\n')
}

// Record is what apply writes on every host of cluster.
func (l *Layout) Record(inv *inventory.Inventory, cluster string) *Record {
	r := &Record{SchemaVersion: RecordVersion, Cluster: cluster, Hosts: []RecordHost{}, Retired: []RecordHost{}}
	for _, in := range l.ForCluster(cluster) {
		rh := RecordHost{Name: in.Master, VIP: in.VIP, VIP6: in.VIP6, VRID: in.VRID, Instance: in.Name}
		if h := hostOf(inv, in.Master); h != nil {
			rh.Address, rh.Interface = h.Address, h.Interface
		}
		r.Hosts = append(r.Hosts, rh)
	}
	r.Retired = append(r.Retired, l.Retired[cluster]...)
	return r
}

// Members are every host a record names, current and retired; none for a
// nil record (a host without one).
func (r *Record) Members() []RecordHost {
	if r == nil {
		return nil
	}
	return append(append([]RecordHost{}, r.Hosts...), r.Retired...)
}

// Removed returns, per record, the recorded hosts that left the inventory:
// neither their name nor their address is in it. A host renamed at the same
// address is not removed (apply reconfigures it under its new name); a host
// replaced by a new machine at the same address and name is not either.
// Each host is returned once, in record order.
func Removed(inv *inventory.Inventory, recs []*Record) []Departed {
	names, addrs := map[string]bool{}, map[netip.Addr]bool{}
	for _, h := range inv.Hosts() {
		names[h.Name] = true
		addrs[h.Address] = true
	}
	seen := map[string]bool{}
	var out []Departed
	for _, r := range recs {
		if r == nil {
			continue
		}
		for _, h := range r.Members() {
			if names[h.Name] || addrs[h.Address] || seen[h.Name] {
				continue
			}
			seen[h.Name] = true
			out = append(out, Departed{Cluster: r.Cluster, RecordHost: h})
		}
	}
	return out
}

// Departed is a recorded host that left the inventory.
type Departed struct {
	Cluster string `json:"cluster"`
	RecordHost
}

// Options are the layout's inputs besides the inventory.
type Options struct {
	// Records are the records read from the hosts (any order; nil entries
	// are hosts without one). The first record of a cluster to name a VIP
	// decides its router id.
	Records []*Record
	// Decommissioned are departed hosts that no longer run keepalived:
	// their router ids are free again. Every other departed host stays in
	// the record as retired, its router id reserved.
	Decommissioned []string
}

// BuildWith computes the layout as Build does, except that a cluster with a
// record keeps the router ids it recorded: a surviving VIP keeps its VRID
// (unless its host sets virtual_router_id), a new VIP gets the lowest VRID ≥
// the cluster's base that no recorded, retired or configured VIP uses.
// Renumbering a live VIP would put two VIP sets on one VRID while the hosts
// are reconfigured one at a time, so numbering never follows file position
// once a cluster exists.
func BuildWith(inv *inventory.Inventory, o Options) (*Layout, hcl.Diagnostics) {
	l, diags := Build(inv)
	if diags.HasErrors() || len(o.Records) == 0 {
		return l, diags
	}
	recorded := map[string]map[netip.Prefix]RecordHost{} // cluster → VIP → its recorded entry
	reserved := map[int]string{}                         // VRID → why it is taken
	for _, r := range o.Records {
		if r == nil {
			continue
		}
		m := recorded[r.Cluster]
		if m == nil {
			m = map[netip.Prefix]RecordHost{}
			recorded[r.Cluster] = m
		}
		for _, h := range r.Members() {
			if _, ok := m[h.VIP]; !ok {
				m[h.VIP] = h
			}
		}
	}
	gone := map[string]bool{}
	for _, n := range o.Decommissioned {
		gone[n] = true
	}
	l.Retired = map[string][]RecordHost{}
	for _, d := range Removed(inv, o.Records) {
		if gone[d.Name] {
			continue
		}
		l.Retired[d.Cluster] = append(l.Retired[d.Cluster], d.RecordHost)
		reserved[d.VRID] = fmt.Sprintf("retired host %s (%s)", d.Name, d.VIP)
	}
	// Pass 1: every VRID that is fixed (overrides, recorded VIPs, clusters
	// without a record); pass 2: new VIPs of recorded clusters.
	var pending []*Instance
	for _, in := range l.Instances {
		h := hostOf(inv, in.Master)
		m, hasRec := recorded[in.Cluster]
		was, ok := m[in.VIP]
		if ok && was.Instance != "" {
			in.Name = was.Instance
		}
		switch {
		case h.VRIDSet:
			in.VRIDFrom = VRIDOverride
		case !hasRec:
			in.VRIDFrom = VRIDAllocated
		case ok:
			in.VRID, in.VRIDFrom = was.VRID, VRIDRecorded
		default:
			pending = append(pending, in)
			continue
		}
		if why, dup := reserved[in.VRID]; dup {
			diags = append(diags, errAt(h.Range("virtual_router_id"), "Duplicate virtual_router_id",
				fmt.Sprintf("host %q: VIP %s would get virtual_router_id %d, which %s already uses; set a free virtual_router_id on the host.", h.Name, in.VIP, in.VRID, why)))
			continue
		}
		reserved[in.VRID] = fmt.Sprintf("host %s (%s)", in.Master, in.VIP)
	}
	for _, r := range o.Records {
		for _, h := range r.Members() {
			if _, ok := reserved[h.VRID]; !ok {
				// A recorded VIP that left: its id stays out of reach of new
				// VIPs in this run, so nothing new lands on a VRID a
				// still-running old holder may advertise.
				reserved[h.VRID] = fmt.Sprintf("recorded VIP %s", h.VIP)
			}
		}
	}
	for _, in := range pending {
		c := inv.ClusterOf(in.Master)
		v := c.VRIDBase
		for ; v <= 255; v++ {
			if _, taken := reserved[v]; !taken {
				break
			}
		}
		if v > 255 {
			h := hostOf(inv, in.Master)
			diags = append(diags, errAt(h.DefRange, "No free virtual_router_id",
				fmt.Sprintf("host %q: every virtual_router_id from %d to 255 is in use; set virtual_router_id_base lower.", h.Name, c.VRIDBase)))
			continue
		}
		in.VRID, in.VRIDFrom = v, VRIDNew
		reserved[v] = fmt.Sprintf("host %s (%s)", in.Master, in.VIP)
	}
	renameNew(l, recorded)
	return l, diags
}

// renameNew gives every instance of a recorded cluster that has no recorded
// name the lowest VI_<n> no other instance of the cluster (kept or
// recorded) uses: kept names never move.
func renameNew(l *Layout, recorded map[string]map[netip.Prefix]RecordHost) {
	for cluster, m := range recorded {
		taken := map[string]bool{}
		for _, h := range m {
			taken[h.Instance] = true
		}
		var fresh []*Instance
		for _, in := range l.ForCluster(cluster) {
			if was, ok := m[in.VIP]; ok && was.Instance == in.Name {
				continue
			}
			fresh = append(fresh, in)
		}
		for _, in := range fresh {
			n := 1
			for taken[fmt.Sprintf("VI_%d", n)] {
				n++
			}
			in.Name = fmt.Sprintf("VI_%d", n)
			taken[in.Name] = true
		}
	}
}

func hostOf(inv *inventory.Inventory, name string) *inventory.Host {
	for _, h := range inv.Hosts() {
		if h.Name == name {
			return h
		}
	}
	return nil
}
