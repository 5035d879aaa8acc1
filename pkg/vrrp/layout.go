// Package vrrp turns an inventory into the active-active VRRP layout: for
// every VIP its router id, its MASTER, its BACKUPs in takeover order with their
// priorities, and how long a failover may take. It is pure: no I/O.
package vrrp

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/hactl/hactl/pkg/inventory"
)

// Member is one host's part in one VRRP instance.
type Member struct {
	Host     string `json:"host"`
	Priority int    `json:"priority"`
	State    string `json:"state"` // MASTER or BACKUP, as written in keepalived.conf
}

// Bounds are the theoretical failover times of one VIP (keepalived-facts.md).
type Bounds struct {
	// Graceful: the master stops cleanly and sends a priority-0 advert, so the
	// first backup takes over after its skew alone.
	Graceful time.Duration `json:"graceful"`
	// Crash: the master vanishes (SIGKILL, link or host loss); the first backup
	// waits the whole master-down interval, 3 × advert_int + skew.
	Crash time.Duration `json:"crash"`
}

// Instance is one VIP (on a dual-stack host: its pair of VIPs): one
// vrrp_instance on every host of its cluster.
type Instance struct {
	Name    string       `json:"name"` // VI_<n>, n = the master's position in its cluster
	Cluster string       `json:"cluster"`
	VIP     netip.Prefix `json:"vip"`
	// VIP6 is the IPv6 VIP of a dual-stack master. It belongs to the same
	// VRRP instance (keepalived's virtual_ipaddress_excluded), so it moves
	// with VIP on every failover, drain and failback.
	VIP6 netip.Prefix `json:"vip6,omitzero"`
	VRID int          `json:"vrid"`
	// VRIDFrom says where VRID comes from: VRIDAllocated, VRIDOverride,
	// VRIDRecorded or VRIDNew.
	VRIDFrom  string   `json:"vrid_from"`
	Master    string   `json:"master"`
	Members   []Member `json:"members"` // master first, then backups in takeover order
	Version   int      `json:"vrrp_version"`
	AdvertInt float64  `json:"advert_int"`
	Bounds    Bounds   `json:"bounds"`
}

// Addrs returns the addresses the instance moves: VIP, then VIP6 if any.
func (in *Instance) Addrs() []netip.Prefix {
	if in.VIP6.IsValid() {
		return []netip.Prefix{in.VIP, in.VIP6}
	}
	return []netip.Prefix{in.VIP}
}

// IPv6 reports whether the instance itself is IPv6 (its adverts are, and it
// runs VRRPv3); a dual-stack instance is an IPv4 one.
func (in *Instance) IPv6() bool { return in.VIP.Addr().Is6() }

// Backups returns the backups in takeover order.
func (in *Instance) Backups() []Member { return in.Members[1:] }

// FirstBackup is the host that takes the VIP when its master fails.
func (in *Instance) FirstBackup() Member { return in.Members[1] }

// PriorityOf returns host's priority in this instance, or 0.
func (in *Instance) PriorityOf(host string) int {
	for _, m := range in.Members {
		if m.Host == host {
			return m.Priority
		}
	}
	return 0
}

// Layout is the whole fleet's VRRP plan.
type Layout struct {
	Instances []*Instance `json:"instances"` // in inventory order: cluster by cluster, host by host
	// Retired are, per cluster, departed hosts whose router ids stay
	// reserved (see BuildWith); the record carries them forward.
	Retired map[string][]RecordHost `json:"retired,omitempty"`
}

// ForCluster returns the instances of one cluster in order.
func (l *Layout) ForCluster(name string) []*Instance {
	var out []*Instance
	for _, in := range l.Instances {
		if in.Cluster == name {
			out = append(out, in)
		}
	}
	return out
}

// MasterOf returns the instance whose master is host, or nil.
func (l *Layout) MasterOf(host string) *Instance {
	for _, in := range l.Instances {
		if in.Master == host {
			return in
		}
	}
	return nil
}

// Build computes the layout and checks what only the layout can tell: that
// priorities are valid and distinct, and that a failed health check really
// moves a VIP. Every finding points at the attribute that causes it.
func Build(inv *inventory.Inventory) (*Layout, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	l := &Layout{}
	for _, c := range inv.Clusters {
		diags = append(diags, checkPriorities(c)...)
		n := len(c.Hosts)
		for i, h := range c.Hosts {
			in := &Instance{
				Name:      fmt.Sprintf("VI_%d", i+1),
				Cluster:   c.Name,
				VIP:       h.VIP,
				VIP6:      h.VIP6,
				VRID:      h.VRID,
				VRIDFrom:  VRIDAllocated,
				Master:    h.Name,
				Version:   c.VRRPVersion(),
				AdvertInt: c.AdvertInt,
			}
			if h.VRIDSet {
				in.VRIDFrom = VRIDOverride
			}
			in.Members = append(in.Members, Member{Host: h.Name, Priority: c.MasterPriority, State: "MASTER"})
			for k, j := range backupOrder(c.BackupOrder, i, n) {
				in.Members = append(in.Members, Member{
					Host:     c.Hosts[j].Name,
					Priority: c.MasterPriority - (k+1)*c.PriorityStep,
					State:    "BACKUP",
				})
			}
			if n > 1 {
				in.Bounds = bounds(in.Version, c.AdvertInt, in.FirstBackup().Priority)
			}
			l.Instances = append(l.Instances, in)
		}
	}
	return l, diags
}

// backupOrder returns the indexes of the backups of VIP i among n hosts.
// "inventory" is the seed's order: every other host in file order, so host 1
// backs up most VIPs. "ring" hands VIP i to host i+1, then i+2, …, so one dead
// host's VIP lands on its neighbour and takeovers spread evenly.
func backupOrder(order string, i, n int) []int {
	var out []int
	if order == inventory.BackupOrderRing {
		for k := 1; k < n; k++ {
			out = append(out, (i+k)%n)
		}
		return out
	}
	for j := 0; j < n; j++ {
		if j != i {
			out = append(out, j)
		}
	}
	return out
}

// Skew is VRRP's skew time for a backup of the given priority.
func Skew(version int, advertInt float64, priority int) time.Duration {
	s := float64(256-priority) / 256
	if version == 3 {
		s *= advertInt
	}
	return seconds(s)
}

func bounds(version int, advertInt float64, firstBackup int) Bounds {
	skew := Skew(version, advertInt, firstBackup)
	adv := advertInt
	if version == 2 {
		// VRRPv2 carries whole seconds only.
		adv = float64(int(advertInt))
	}
	return Bounds{Graceful: skew, Crash: seconds(3*adv) + skew}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func checkPriorities(c *inventory.Cluster) hcl.Diagnostics {
	var diags hcl.Diagnostics
	n := len(c.Hosts)
	if n < 2 {
		return nil
	}
	lowest := c.MasterPriority - (n-1)*c.PriorityStep
	if c.MasterPriority < 1 || c.MasterPriority > 254 {
		diags = append(diags, errAt(c.Range("master_priority"), "master_priority out of range",
			fmt.Sprintf("cluster %q: master_priority %d must be 1-254 (255 is reserved for the address owner; keepalived silently turns values ≥ 256 into 100).", c.Name, c.MasterPriority)))
	}
	if c.PriorityStep < 1 {
		diags = append(diags, errAt(c.Range("priority_step"), "Priorities not distinct",
			fmt.Sprintf("cluster %q: priority_step %d gives backups of one VIP equal or rising priorities; they must be distinct and below the master's, so use a step ≥ 1.", c.Name, c.PriorityStep)))
	} else if lowest < 1 {
		diags = append(diags, errAt(c.Range("priority_step"), "Priority out of range",
			fmt.Sprintf("cluster %q: with master_priority %d, priority_step %d and %d hosts the last backup gets priority %d; priorities must be 1-254.",
				c.Name, c.MasterPriority, c.PriorityStep, n, lowest)))
	}
	if c.PriorityStep >= 1 && diags == nil {
		best := c.MasterPriority - c.PriorityStep
		w := c.HealthCheck.Weight
		// keepalived: a negative weight is subtracted while the check fails; a
		// positive one is added while it succeeds. Either way the failing
		// master must end below the best healthy backup.
		failedMaster, healthyBackup := c.MasterPriority+w, best
		if w > 0 {
			failedMaster, healthyBackup = c.MasterPriority, best+w
		}
		if w > 0 && c.MasterPriority+w > 254 {
			// keepalived caps an effective priority at 254: the healthy
			// master and its first backup would both sit there, a tie the
			// higher IP address wins, and the active-active layout is gone.
			diags = append(diags, errAt(rangeOr(c.HealthCheck.Ranges, "weight", c.DefRange), "Effective priority above 254",
				fmt.Sprintf("cluster %q: while nginx is healthy a positive weight %d lifts the master to %d and the first backup to %d; keepalived caps both at 254, a tie that the higher IP address wins. Keep master_priority + weight ≤ 254, or use a negative weight.",
					c.Name, w, c.MasterPriority+w, best+w)))
		} else if w == 0 || failedMaster >= healthyBackup {
			diags = append(diags, errAt(rangeOr(c.HealthCheck.Ranges, "weight", c.DefRange), "Health-check weight too weak",
				fmt.Sprintf("cluster %q: when nginx fails the master's effective priority is %d, not below the first backup's %d, so the VIP would stay on a broken host. Use a weight with |weight| > priority_step (%d), e.g. %d.",
					c.Name, failedMaster, healthyBackup, c.PriorityStep, -(c.PriorityStep+3))))
		}
	}
	return diags
}

func rangeOr(m map[string]hcl.Range, name string, def hcl.Range) hcl.Range {
	if r, ok := m[name]; ok {
		return r
	}
	return def
}

func errAt(r hcl.Range, summary, detail string) *hcl.Diagnostic {
	rr := r
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: &rr}
}
