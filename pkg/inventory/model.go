// Package inventory loads hactl's HCL inventory into a validated model.
//
// Every value keeps the source range it came from, so that later stages (the
// VRRP layout, the CLI) can point the user at the exact attribute that is wrong.
package inventory

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Defaults reproduce the reference cluster of inventory/prod.hcl.
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
	// Webhook is the `webhook` block (nil: none); see observe.go.
	Webhook *Webhook
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
	// JumpHost is "[user@]host[:port]" (OpenSSH ProxyJump, one hop), "none"
	// to connect directly even when ~/.ssh/config names a ProxyJump, or empty.
	JumpHost string
	// Set records which fields the inventory wrote (in the ssh block or the
	// host's own): those win over ~/.ssh/config; the others are defaults that
	// ~/.ssh/config may replace.
	Set SSHSet
}

// SSHSet says which SSH fields were written in the inventory.
type SSHSet struct {
	User, Port, PrivateKeyFile, KnownHostsFile, Become, JumpHost bool
}

// JumpNone is the jump_host value that forbids a jump host (OpenSSH's
// "ProxyJump none").
const JumpNone = "none"

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
	Name      string
	Interface string
	// Gateway (IPv4) receives the gratuitous ARP of an IPv4 VIP; Gateway6
	// (optional) the neighbour solicitation of an IPv6 VIP. Either is the
	// zero Addr when not set.
	Gateway     netip.Addr
	Gateway6    netip.Addr
	AdvertInt   float64
	VRIDBase    int
	AuthPass    Secret
	BackupOrder string
	Transport   string
	// AllowCrossSubnet (unicast only) lets host addresses sit in different
	// subnets; the VIPs and the gateway still share one (see validateSubnet).
	AllowCrossSubnet bool
	MasterPriority   int
	PriorityStep     int
	// DrainGrace is how long `hactl drain`/`undrain` keep a VIP's old holder
	// serving its open connections (drain_grace; 0: not at all).
	DrainGrace  time.Duration
	HealthCheck HealthCheck
	Nginx       Nginx
	// Serving is what the balancers serve beyond the catch-all site
	// (sites.go); empty without site, pool, stream and snippets blocks.
	Serving Serving
	Hosts   []*Host

	DefRange hcl.Range
	// Ranges maps attribute names to where they were written (or to the
	// block's header when the default was used).
	Ranges map[string]hcl.Range
}

// Host is one load balancer. It is MASTER of VIP and, on a dual-stack
// host, of VIP6 too: both addresses move together, as one VRRP instance.
type Host struct {
	Name    string
	Address netip.Addr // IPv4 or IPv6: the SSH target and the unicast VRRP address
	VIP     netip.Prefix
	// VIP6 is the IPv6 VIP of a host whose VIP is IPv4 (dual-stack); the
	// zero Prefix otherwise.
	VIP6      netip.Prefix
	Interface string // the cluster's unless the host overrides it
	VRID      int    // the cluster's base + index unless the host sets virtual_router_id
	// VRIDSet: the host sets virtual_router_id itself (an override that wins
	// over the VRID recorded on the hosts by the last apply).
	VRIDSet bool
	SSH     SSH // merged: inventory defaults, then the host's overrides

	DefRange hcl.Range
	Ranges   map[string]hcl.Range
}

// VIPs returns the host's VIPs: VIP, then VIP6 when it has one.
func (h *Host) VIPs() []netip.Prefix {
	if h.VIP6.IsValid() {
		return []netip.Prefix{h.VIP, h.VIP6}
	}
	return []netip.Prefix{h.VIP}
}

// IPv6 reports whether the cluster's VRRP instances are IPv6 (its hosts'
// `vip` are IPv6). Such instances are always VRRPv3.
func (c *Cluster) IPv6() bool {
	return len(c.Hosts) > 0 && c.Hosts[0].VIP.Addr().Is6()
}

// HasIPv6 reports whether any VIP of the cluster (vip or vip6) is IPv6:
// nginx then listens on [::] as well, and placement is read with
// `ip -o addr` instead of `ip -o -4 addr`.
func (c *Cluster) HasIPv6() bool {
	for _, h := range c.Hosts {
		if h.VIP.Addr().Is6() || h.VIP6.IsValid() {
			return true
		}
	}
	return false
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
// sub-second adverts) or the instances are IPv6 (keepalived always runs
// IPv6 instances as VRRPv3), else 2 as in the seed. A dual-stack cluster's
// instances are IPv4 ones (the IPv6 VIP rides along as an excluded
// address), so they keep the seed's VRRPv2.
func (c *Cluster) VRRPVersion() int {
	if c.AdvertInt != float64(int(c.AdvertInt)) || c.IPv6() {
		return 3
	}
	return 2
}

// ParseJumpHost splits "[user@]host[:port]" (OpenSSH's ProxyJump syntax for
// one hop; an IPv6 host needs brackets when a port is given). user is empty
// and port 0 when not written. "none" and "" give an empty host and no error.
func ParseJumpHost(s string) (user, host string, port int, err error) {
	if s == "" || s == JumpNone {
		return "", "", 0, nil
	}
	if strings.ContainsAny(s, ", \t") {
		return "", "", 0, errors.New("only one jump host is supported (no chains, no blanks)")
	}
	if strings.IndexFunc(s, unsafeRune) >= 0 {
		return "", "", 0, errors.New("control characters are not allowed")
	}
	rest := s
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		user, rest = rest[:i], rest[i+1:]
		if user == "" {
			return "", "", 0, errors.New("empty user before '@'")
		}
	}
	host = rest
	if h, p, serr := net.SplitHostPort(rest); serr == nil {
		n, perr := strconv.Atoi(p)
		if perr != nil || n < 1 || n > 65535 {
			return "", "", 0, fmt.Errorf("port %q is not 1-65535", p)
		}
		host, port = h, n
	} else if strings.Count(rest, ":") == 1 {
		return "", "", 0, fmt.Errorf("cannot read host:port from %q", rest)
	}
	if host == "" {
		return "", "", 0, errors.New("no host")
	}
	if !hostRE.MatchString(host) {
		a, aerr := netip.ParseAddr(host)
		if aerr != nil {
			return "", "", 0, fmt.Errorf("%q is neither an IP address nor a host name", host)
		}
		if zerr := checkZone(a, true); zerr != nil {
			return "", "", 0, zerr
		}
	}
	return user, host, port, nil
}
