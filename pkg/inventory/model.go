// Package inventory loads hactl's HCL inventory into a validated model.
//
// Every value keeps the source range it came from, so that later stages (the
// VRRP layout, the CLI) can point the user at the exact attribute that is wrong.
package inventory

import (
	"net/netip"

	"github.com/hashicorp/hcl/v2"
)

// Defaults reproduce the seed document's cluster (see DESIGN.md).
const (
	DefaultUser           = "root"
	DefaultPort           = 22
	DefaultKnownHosts     = "~/.ssh/known_hosts"
	DefaultAdvertInt      = 1.0
	DefaultVRIDBase       = 51
	DefaultMasterPriority = 101
	DefaultPriorityStep   = 2
	DefaultListen         = 80

	BackupOrderInventory = "inventory"
	BackupOrderRing      = "ring"

	TransportMulticast = "multicast"
	TransportUnicast   = "unicast"
)

// Inventory is a whole, validated inventory file.
type Inventory struct {
	Path     string
	Clusters []*Cluster
	// Files holds the parsed sources so diagnostics can print snippets.
	Files map[string]*hcl.File
}

// SSH holds how to reach a host. The inventory's `ssh` block gives defaults;
// a host's own `ssh` block overrides any of them.
type SSH struct {
	User           string
	Port           int
	PrivateKeyFile string
	KnownHostsFile string
	Become         bool
	JumpHost       string
}

// Secret is a string that never prints itself: fmt, %v, JSON and templates all
// see "(sensitive)". Only Reveal gives the value, and only the renderer of
// keepalived.conf calls it.
type Secret struct{ value string }

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{value: s} }

// Reveal returns the secret value.
func (s Secret) Reveal() string { return s.value }

// String implements fmt.Stringer.
func (s Secret) String() string { return "(sensitive)" }

// GoString keeps %#v from leaking the value.
func (s Secret) GoString() string { return "(sensitive)" }

// MarshalJSON keeps JSON output from leaking the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"(sensitive)"`), nil }

// MarshalText covers encoders that use encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte("(sensitive)"), nil }

// HealthCheck is the seed's vrrp_script on nginx.
type HealthCheck struct {
	Interval int
	Weight   int
	Fall     int
	Rise     int
	Ranges   map[string]hcl.Range
}

// Nginx is the site hactl renders on every host of a cluster.
type Nginx struct {
	Listen   int
	Upstream []string
	Ranges   map[string]hcl.Range
}

// Cluster is one group of load balancers sharing an L2 segment and a set of VIPs.
type Cluster struct {
	Name           string
	Interface      string
	Gateway        netip.Addr
	AdvertInt      float64
	VRIDBase       int
	AuthPass       Secret
	BackupOrder    string
	Transport      string
	MasterPriority int
	PriorityStep   int
	HealthCheck    HealthCheck
	Nginx          Nginx
	Hosts          []*Host

	DefRange hcl.Range
	// Ranges maps attribute names to where they were written (or to the
	// block's header when the default was used).
	Ranges map[string]hcl.Range
}

// Host is one load balancer. It is MASTER of VIP.
type Host struct {
	Name      string
	Address   netip.Addr
	VIP       netip.Prefix
	Interface string // the cluster's unless the host overrides it
	VRID      int    // the cluster's base + index unless the host sets virtual_router_id
	SSH       SSH    // merged: inventory defaults, then the host's overrides

	DefRange hcl.Range
	Ranges   map[string]hcl.Range
}

// Range returns where attribute name was set, falling back to the block header.
func (c *Cluster) Range(name string) hcl.Range { return rangeOr(c.Ranges, name, c.DefRange) }

// Range returns where attribute name was set, falling back to the block header.
func (h *Host) Range(name string) hcl.Range { return rangeOr(h.Ranges, name, h.DefRange) }

func rangeOr(m map[string]hcl.Range, name string, def hcl.Range) hcl.Range {
	if r, ok := m[name]; ok {
		return r
	}
	return def
}

// Hosts returns every host of every cluster, in file order.
func (inv *Inventory) Hosts() []*Host {
	var hs []*Host
	for _, c := range inv.Clusters {
		hs = append(hs, c.Hosts...)
	}
	return hs
}

// ClusterOf returns the cluster that holds host name, or nil.
func (inv *Inventory) ClusterOf(name string) *Cluster {
	for _, c := range inv.Clusters {
		for _, h := range c.Hosts {
			if h.Name == name {
				return c
			}
		}
	}
	return nil
}

// VRRPVersion is 3 when advert_int has a fraction (only VRRPv3 accepts
// sub-second adverts), else 2 as in the seed.
func (c *Cluster) VRRPVersion() int {
	if c.AdvertInt != float64(int(c.AdvertInt)) {
		return 3
	}
	return 2
}
