package inventory

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

var (
	// Names end up in keepalived's router_id, in file paths (render -o DIR/<host>)
	// and in shell scripts, so they are kept to a safe alphabet.
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	// Linux interface names: at most 15 bytes, no '/', ':' or blanks
	// (validIface adds what the kernel and the commands refuse besides).
	ifaceRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
	hostRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]*$`)
)

// IfaceRule says which interface names validIface takes.
const IfaceRule = "1-15 letters, digits, '.', '_' or '-', not \".\" or \"..\", not starting with '-'"

// validIface is the kernel's dev_valid_name (at most 15 bytes; not "." or
// ".."; no '/', ':' or blank) plus no leading '-', which `ip`, arping and
// the scripts hactl renders would read as an option.
func validIface(name string) bool {
	return ifaceRE.MatchString(name) && name != "." && name != ".." && name[0] != '-'
}

func validateCluster(c *Cluster) hcl.Diagnostics {
	var diags hcl.Diagnostics
	add := func(r hcl.Range, summary, format string, args ...any) {
		diags = append(diags, errAt(r, summary, fmt.Sprintf(format, args...)))
	}
	if !nameRE.MatchString(c.Name) {
		add(c.DefRange, "Invalid cluster name", "cluster %q: use letters, digits, '.', '_' and '-' only.", c.Name)
	}
	if c.Interface == "" {
		add(c.Range("interface"), "Empty interface",
			"cluster %q: interface names the NIC that carries the VIPs (for example ens192); it must not be empty.", c.Name)
	} else if !validIface(c.Interface) {
		add(c.Range("interface"), "Invalid interface", "cluster %q: %q is not a valid Linux interface name (%s).", c.Name, c.Interface, IfaceRule)
	}
	if _, set := c.Ranges["gateway"]; !set && !c.IPv6() {
		add(c.DefRange, "Missing gateway",
			"cluster %q needs gateway = \"<IPv4>\": it receives the gratuitous ARP when a VIP moves.", c.Name)
	}
	diags = append(diags, validateAdvert(c)...)
	pass := c.AuthPass.Reveal()
	switch {
	case pass == "":
		add(c.Range("auth_pass"), "Empty auth_pass",
			"cluster %q: auth_pass must be 1-8 characters (use env(\"NAME\") to keep it out of the file).", c.Name)
	case len(pass) > 8:
		// The value itself is never echoed: it is a secret.
		add(c.Range("auth_pass"), "auth_pass too long",
			"cluster %q: auth_pass has %d characters; keepalived silently truncates it to 8, so peers configured elsewhere would not match.", c.Name, len(pass))
	case !authPassOK(pass):
		add(c.Range("auth_pass"), "Invalid auth_pass",
			"cluster %q: auth_pass may only contain these characters (keepalived.conf would misread any other): %s", c.Name, AuthPassChars)
	}
	if c.BackupOrder != BackupOrderInventory && c.BackupOrder != BackupOrderRing {
		add(c.Range("backup_order"), "Invalid backup_order", "backup_order is %q; use \"inventory\" or \"ring\".", c.BackupOrder)
	}
	if c.Transport != TransportMulticast && c.Transport != TransportUnicast {
		add(c.Range("vrrp_transport"), "Invalid vrrp_transport", "vrrp_transport is %q; use \"multicast\" or \"unicast\".", c.Transport)
	}
	hc := c.HealthCheck
	for _, f := range []struct {
		name string
		v    int
	}{{"interval", hc.Interval}, {"fall", hc.Fall}, {"rise", hc.Rise}} {
		if f.v < 1 || f.v > 255 {
			add(rangeOr(hc.Ranges, f.name, c.DefRange), "Invalid health_check "+f.name,
				"cluster %q: health_check %s is %d; it must be 1-255.", c.Name, f.name, f.v)
		}
	}
	if hc.Weight < -253 || hc.Weight > 253 {
		add(rangeOr(hc.Ranges, "weight", c.DefRange), "Invalid health_check weight",
			"cluster %q: weight %d is outside keepalived's -253..253.", c.Name, hc.Weight)
	}
	if c.Nginx.Listen < 1 || c.Nginx.Listen > 65535 {
		add(rangeOr(c.Nginx.Ranges, "listen", c.DefRange), "Invalid nginx listen port",
			"cluster %q: listen %d is outside 1-65535.", c.Name, c.Nginx.Listen)
	}
	for _, u := range c.Nginx.Upstream {
		if err := checkUpstream(u); err != nil {
			add(rangeOr(c.Nginx.Ranges, "upstream", c.DefRange), "Invalid nginx upstream",
				"cluster %q: upstream %q: %v.", c.Name, u, err)
		} else if who := loopsBack(c, u); who != "" {
			add(rangeOr(c.Nginx.Ranges, "upstream", c.DefRange), "Upstream loops back",
				"cluster %q: upstream %q is %s, where this cluster's nginx itself listens (port %d): every request would be proxied back to nginx until it runs out of connections. Name the application servers.", c.Name, u, who, c.Nginx.Listen)
		}
	}
	for _, h := range c.Hosts {
		if h.SSH.Port == c.Nginx.Listen {
			add(rangeOr(c.Nginx.Ranges, "listen", c.DefRange), "nginx listen port is the SSH port",
				"cluster %q: nginx would listen on port %d, where sshd serves host %q (hactl's own way in); nginx could not bind it, or would take it over.", c.Name, c.Nginx.Listen, h.Name)
			break
		}
	}
	if len(c.Hosts) < 2 {
		add(c.DefRange, "Too few hosts",
			"cluster %q has %d host(s); an active-active pair needs at least 2.", c.Name, len(c.Hosts))
	}
	diags = append(diags, validateSubnet(c)...)
	return diags
}

func validateAdvert(c *Cluster) hcl.Diagnostics {
	r := c.Range("advert_int")
	a := c.AdvertInt
	switch {
	case a <= 0 || math.IsNaN(a):
		return hcl.Diagnostics{errAt(r, "Invalid advert_int", fmt.Sprintf("cluster %q: advert_int must be > 0 seconds.", c.Name))}
	case c.VRRPVersion() == 2 && a > 255:
		return hcl.Diagnostics{errAt(r, "Invalid advert_int", fmt.Sprintf("cluster %q: advert_int %g is above VRRPv2's 255 s.", c.Name, a))}
	case c.VRRPVersion() == 3 && (a < 0.01 || a > 40.95 || math.Abs(a*100-math.Round(a*100)) > 1e-6):
		return hcl.Diagnostics{errAt(r, "Invalid advert_int",
			fmt.Sprintf("cluster %q: a fractional advert_int selects VRRPv3, which takes 0.01-40.95 s in 0.01 s steps; got %g.", c.Name, a))}
	}
	return nil
}

func checkUpstream(u string) error {
	if len(u) >= 5 && strings.EqualFold(u[:5], "unix:") {
		// nginx reads "unix:…" as a UNIX socket path, never as host "unix".
		return fmt.Errorf("unix: sockets are not supported; want host:port")
	}
	host, port, err := net.SplitHostPort(u)
	if err != nil {
		return fmt.Errorf("want host:port")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port %q is not 1-65535", port)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return checkZone(a, false)
	} else if !hostRE.MatchString(host) {
		return fmt.Errorf("%q is neither an IP address nor a host name", host)
	}
	return nil
}

// loopsBack says which of the cluster's own addresses an upstream (already
// checked to be host:port) names on nginx's listen port — a VIP, a
// member's address, loopback (localhost too) or the unspecified address —
// or "".
func loopsBack(c *Cluster, u string) string {
	host, port, _ := net.SplitHostPort(u)
	if port != strconv.Itoa(c.Nginx.Listen) {
		return ""
	}
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return "this host itself"
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return ""
	}
	a = a.Unmap()
	if a.IsLoopback() || a.IsUnspecified() {
		return "this host itself"
	}
	for _, h := range c.Hosts {
		if a == h.Address {
			return fmt.Sprintf("host %q's own address", h.Name)
		}
		for _, v := range h.namedVIPs() {
			if v.p.IsValid() && a == v.p.Addr() {
				return fmt.Sprintf("the cluster's VIP (host %q's %s)", h.Name, v.attr)
			}
		}
	}
	return ""
}

// validateSubnet enforces the seed's rule: VRRP multicast and gratuitous ARP
// (for IPv6: neighbour advertisements) do not cross subnets, so every host,
// VIP and gateway shares one L2 subnet per address family. The subnet of a
// family is the prefix of the first VIP of that family (vip or vip6). All
// `vip`s of a cluster share one family, the family of its VRRP instances; a
// dual-stack host's vip6 rides on its IPv4 instance.
//
// Unicast VRRP can be routed, so with vrrp_transport = "unicast" AND an
// explicit allow_cross_subnet = true the host addresses (unicast_src_ip,
// unicast_peer, the SSH target) may sit anywhere. The VIPs may not: every host
// of a cluster can become MASTER of every VIP, and a VIP (with the gratuitous
// ARP that announces it) only reaches the segment its holder's VIP interface
// is attached to. So the VIPs and the gateway still share one subnet, and a
// host whose address lies outside it gets a warning: its `interface` must be
// a NIC on the VIPs' segment, which the inventory cannot prove.
func validateSubnet(c *Cluster) hcl.Diagnostics {
	var diags hcl.Diagnostics
	unicast := c.Transport == TransportUnicast
	if c.AllowCrossSubnet && !unicast {
		diags = append(diags, errAt(c.Range("allow_cross_subnet"), "allow_cross_subnet needs unicast",
			fmt.Sprintf("cluster %q: allow_cross_subnet = true only makes sense with vrrp_transport = \"unicast\"; "+
				"VRRP multicast (224.0.0.18, ff02::12) never crosses a router, so multicast peers must share one subnet.", c.Name)))
	}
	// The subnet of each family, with where it came from.
	type origin struct {
		subnet netip.Prefix
		where  string
	}
	subnets := map[bool]origin{} // keyed by Is6
	var first *Host              // its vip gives the instances' family
	for _, h := range c.Hosts {
		for _, vip := range h.namedVIPs() {
			if _, ok := subnets[vip.p.Addr().Is6()]; vip.p.IsValid() && !ok {
				subnets[vip.p.Addr().Is6()] = origin{vip.p.Masked(),
					fmt.Sprintf("%s (from host %q's %s at %s)", vip.p.Masked(), h.Name, vip.attr, h.Range(vip.attr))}
			}
		}
		if first == nil && h.VIP.IsValid() {
			first = h
		}
	}
	if first == nil {
		return diags
	}
	six := first.VIP.Addr().Is6()
	crossOK := unicast && c.AllowCrossSubnet
	for _, h := range c.Hosts {
		if h.VIP.IsValid() && h.VIP.Addr().Is6() != six {
			diags = append(diags, errAt(h.Range("vip"), "Mixed VIP families",
				fmt.Sprintf("host %q: vip %s is %s, but host %q's vip %s is %s; the VRRP instances of one cluster share one address family. "+
					"Give a dual-stack host its IPv6 VIP as vip6, next to an IPv4 vip.", h.Name, h.VIP, family(h.VIP.Addr()), first.Name, first.VIP, family(first.VIP.Addr()))))
		}
		if h.VIP6.IsValid() && h.VIP.IsValid() && h.VIP.Addr().Is6() {
			diags = append(diags, errAt(h.Range("vip6"), "vip6 next to an IPv6 vip",
				fmt.Sprintf("host %q: vip %s is already IPv6; vip6 adds an IPv6 VIP to a host whose vip is IPv4 (dual-stack).", h.Name, h.VIP)))
		}
		for _, vip := range h.namedVIPs() {
			if !vip.p.IsValid() {
				continue
			}
			diags = append(diags, checkVIP(c, h, vip.attr, vip.p, subnets[vip.p.Addr().Is6()].subnet, subnets[vip.p.Addr().Is6()].where, crossOK)...)
		}
		if !h.Address.IsValid() {
			continue
		}
		if unicast && h.Address.Is6() != six {
			diags = append(diags, errAt(h.Range("address"), "Unicast peer of the other family",
				fmt.Sprintf("host %q: address %s is %s, but cluster %q's VRRP instances are %s (the family of its vip): with vrrp_transport = \"unicast\" "+
					"keepalived sends each instance's adverts from unicast_src_ip to the unicast_peer addresses, which must be of the instance's family. "+
					"Use the hosts' %s addresses, or multicast.", h.Name, h.Address, family(h.Address), c.Name, family(first.VIP.Addr()), family(first.VIP.Addr()))))
			continue
		}
		sub, ok := subnets[h.Address.Is6()]
		if ok && sub.subnet.Contains(h.Address) {
			if why := reservedIn(h.Address, sub.subnet); why != "" {
				diags = append(diags, errAt(h.Range("address"), "Host address is not a host's",
					fmt.Sprintf("host %q: address %s is %s of %s; no host can have it.", h.Name, h.Address, why, sub.subnet)))
			}
			continue
		}
		where := sub.where
		if !ok {
			where = "a subnet of the cluster's VIPs: the cluster has no " + family(h.Address) + " VIP"
		}
		switch {
		case crossOK:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Host address outside the VIPs' subnet",
				Detail: fmt.Sprintf("host %q: address %s is not in %s. Unicast VRRP reaches it (allow_cross_subnet), but it can only hold the VIPs "+
					"if its interface %q is attached to the VIPs' segment: a VIP and its gratuitous ARP never cross a router.", h.Name, h.Address, where, h.Interface),
				Subject: rangePtr(h.Range("address")),
			})
		case unicast:
			diags = append(diags, errAt(h.Range("address"), "Host outside the cluster's subnet",
				fmt.Sprintf("host %q: address %s is not in %s. Unicast VRRP can be routed, but hosts in different subnets are refused "+
					"unless the cluster says so explicitly with allow_cross_subnet = true.", h.Name, h.Address, where)))
		default:
			diags = append(diags, errAt(h.Range("address"), "Host outside the cluster's subnet",
				fmt.Sprintf("host %q: address %s is not in %s; VRRP multicast does not cross subnets (routers do not forward it). "+
					"Use vrrp_transport = \"unicast\" with allow_cross_subnet = true if the hosts really are routed apart.", h.Name, h.Address, where)))
		}
	}
	for _, gw := range []struct {
		attr, what string
		a          netip.Addr
	}{{"gateway", "clean_arp.sh announces an IPv4 VIP to the gateway with ARP", c.Gateway},
		{"gateway6", "clean_arp.sh announces an IPv6 VIP to gateway6 with a neighbour solicitation", c.Gateway6}} {
		if !gw.a.IsValid() {
			continue
		}
		sub, ok := subnets[gw.a.Is6()]
		switch {
		case !ok:
			diags = append(diags, errAt(c.Range(gw.attr), "Gateway without VIPs of its family",
				fmt.Sprintf("cluster %q: %s %s is %s, but no VIP of the cluster is; %s. Remove it, or add %s VIPs.", c.Name, gw.attr, gw.a, family(gw.a), gw.what, family(gw.a))))
		case gw.a.IsLinkLocalUnicast():
			// An IPv6 router is often known by its link-local address: on-link by definition.
		case !sub.subnet.Contains(gw.a):
			diags = append(diags, errAt(c.Range(gw.attr), "Gateway outside the cluster's subnet",
				fmt.Sprintf("cluster %q: %s %s is not in %s; %s, which only reaches the local segment.", c.Name, gw.attr, gw.a, sub.where, gw.what)))
		default:
			if why := reservedIn(gw.a, sub.subnet); why != "" {
				diags = append(diags, errAt(c.Range(gw.attr), "Gateway is not a router's address",
					fmt.Sprintf("cluster %q: %s %s is %s of %s; a router cannot have it, so the announcements would reach no router.", c.Name, gw.attr, gw.a, why, sub.subnet)))
			}
		}
	}
	return diags
}

// checkVIP checks one VIP (vip or vip6 of h) against its family's subnet.
func checkVIP(c *Cluster, h *Host, attr string, vip, subnet netip.Prefix, where string, crossOK bool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	add := func(summary, format string, args ...any) {
		diags = append(diags, errAt(h.Range(attr), summary, fmt.Sprintf(format, args...)))
	}
	a := vip.Addr()
	if vip.Masked() != subnet {
		detail := fmt.Sprintf("host %q: %s %s is not in %s; keepalived's VIPs of one cluster share one L2 subnet per address family.", h.Name, attr, vip, where)
		if crossOK {
			detail = fmt.Sprintf("host %q: %s %s is not in %s. allow_cross_subnet lets the hosts' addresses differ, not the VIPs': "+
				"every host may hold every VIP, and a VIP can only be announced (gratuitous ARP) on a segment its holder is attached to.", h.Name, attr, vip, where)
		}
		add("VIP outside the cluster's subnet", "%s", detail)
	}
	if why := reservedIn(a, vip.Masked()); why != "" {
		add("VIP is a network or broadcast address", "host %q: %s %s is %s of %s.", h.Name, attr, vip, why, vip.Masked())
	}
	if a == h.Address {
		add("VIP equals the host address", "host %q: the %s must be an address no host owns; %s is the host's own address.", h.Name, attr, a)
	}
	if a == c.Gateway || a == c.Gateway6 {
		add("VIP equals the gateway", "host %q: %s %s is the gateway's address.", h.Name, attr, a)
	}
	return diags
}

// reservedIn says why a, inside subnet, cannot be a host's or a router's
// address, or "": IPv4's network and broadcast addresses (not on /31 and
// /32), IPv6's Subnet-Router anycast (all interface bits zero, RFC 4291,
// not on /127 and /128) and the reserved subnet anycast addresses (the
// highest 128 interface identifiers of a /64 or shorter, RFC 2526).
func reservedIn(a netip.Addr, subnet netip.Prefix) string {
	switch {
	case a.Is4() && subnet.Bits() < 31 && a == subnet.Masked().Addr():
		return "the network address"
	case a.Is4() && subnet.Bits() < 31 && a == lastAddr(subnet):
		return "the broadcast address"
	case a.Is6() && subnet.Bits() < 127 && a == subnet.Masked().Addr():
		return "the Subnet-Router anycast address (all host bits zero, RFC 4291), which routers answer,"
	case a.Is6() && subnet.Bits() <= 64:
		b := a.As16()
		if b[8] == 0xfd && b[9] == 0xff && b[10] == 0xff && b[11] == 0xff && b[12] == 0xff && b[13] == 0xff && b[14] == 0xff && b[15] >= 0x80 {
			return "a reserved subnet anycast address (the last 128 interface identifiers, RFC 2526)"
		}
	}
	return ""
}

// namedVIP is a VIP with the attribute that set it, for diagnostics.
type namedVIP struct {
	attr string
	p    netip.Prefix
}

// namedVIPs returns vip and vip6 (either may be the zero Prefix).
func (h *Host) namedVIPs() []namedVIP {
	return []namedVIP{{"vip", h.VIP}, {"vip6", h.VIP6}}
}

func family(a netip.Addr) string {
	if a.Is6() {
		return "IPv6"
	}
	return "IPv4"
}

// What an address is for: each use refuses different special addresses.
type addrUse int

const (
	addrHost    addrUse = iota // SSH target and unicast VRRP address
	addrVIP                    // moves between hosts
	addrGateway                // gateway6: a router, often known by its link-local address
)

// addrProblem says why a is unusable for use, or "" when it is fine. err is
// the parse error, if any.
func addrProblem(a netip.Addr, err error, use addrUse) string {
	switch {
	case err != nil:
		return "not an IP address"
	case a.Zone() != "":
		return "zone identifiers (%" + a.Zone() + ") are not accepted; the NIC is the cluster's (or host's) interface"
	case a.Is4In6():
		return "an IPv4-mapped IPv6 address; write it as " + a.Unmap().String()
	case a.IsUnspecified():
		return "the unspecified address"
	case a.IsLoopback():
		return "a loopback address"
	case a.IsMulticast():
		return "a multicast address"
	case a.IsLinkLocalUnicast() && use == addrVIP:
		return "a link-local address; a VIP must be reachable beyond the link (use the subnet's global or unique-local addresses)"
	case a.Is6() && a.IsLinkLocalUnicast() && use == addrHost:
		return "a link-local address, which needs a zone to be reached; use the host's global or unique-local address"
	}
	return ""
}

func rangePtr(r hcl.Range) *hcl.Range { return &r }

// lastAddr is the broadcast address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= (1<<host - 1)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// validateFleet checks what must be unique across the whole file: several
// clusters in one file usually share a LAN.
func validateFleet(inv *Inventory) hcl.Diagnostics {
	var diags hcl.Diagnostics
	clusters := map[string]*Cluster{}
	names := map[string]*Host{}
	addrs := map[netip.Addr]*Host{}
	type vipOf struct {
		h    *Host
		attr string
	}
	vips := map[netip.Addr]vipOf{}
	vrids := map[int]*Host{}
	dup := func(r hcl.Range, what, val string, first hcl.Range) {
		diags = append(diags, errAt(r, "Duplicate "+what,
			fmt.Sprintf("%s %s is already used at %s.", what, val, first.String())))
	}
	for _, c := range inv.Clusters {
		if prev, ok := clusters[c.Name]; ok {
			dup(c.DefRange, "cluster name", strconv.Quote(c.Name), prev.DefRange)
		}
		clusters[c.Name] = c
		for _, h := range c.Hosts {
			if !nameRE.MatchString(h.Name) {
				diags = append(diags, errAt(h.DefRange, "Invalid host name",
					fmt.Sprintf("host %q: use letters, digits, '.', '_' and '-' only (it becomes keepalived's router_id and a directory name).", h.Name)))
			}
			if h.Interface != c.Interface && !validIface(h.Interface) {
				diags = append(diags, errAt(h.Range("interface"), "Invalid interface",
					fmt.Sprintf("host %q: %q is not a valid Linux interface name (%s).", h.Name, h.Interface, IfaceRule)))
			}
			if prev, ok := names[h.Name]; ok {
				dup(h.DefRange, "host name", strconv.Quote(h.Name), prev.DefRange)
			} else {
				names[h.Name] = h
			}
			if h.Address.IsValid() {
				if prev, ok := addrs[h.Address]; ok {
					dup(h.Range("address"), "host address", h.Address.String(), prev.Range("address"))
				} else {
					addrs[h.Address] = h
				}
			}
			for _, v := range h.namedVIPs() {
				if !v.p.IsValid() {
					continue
				}
				if prev, ok := vips[v.p.Addr()]; ok {
					dup(h.Range(v.attr), "VIP", v.p.Addr().String(), prev.h.Range(prev.attr))
				} else {
					vips[v.p.Addr()] = vipOf{h, v.attr}
				}
			}
			if h.VRID < 1 || h.VRID > 255 {
				diags = append(diags, errAt(h.Range("virtual_router_id"), "virtual_router_id out of range",
					fmt.Sprintf("host %q: VIP %s gets virtual_router_id %d; it must be 1-255.", h.Name, h.VIP, h.VRID)))
			} else if prev, ok := vrids[h.VRID]; ok {
				diags = append(diags, errAt(h.Range("virtual_router_id"), "Duplicate virtual_router_id",
					fmt.Sprintf("host %q: virtual_router_id %d is already used by host %q (%s); VRIDs must be unique on the L2 segment, or keepalived logs \"bogus VRRP packet\" and flaps.",
						h.Name, h.VRID, prev.Name, prev.Range("virtual_router_id"))))
			} else {
				vrids[h.VRID] = h
			}
		}
	}
	// --limit takes host and cluster names alike: one name for both would
	// make `destroy --limit NAME` mean two things.
	for _, c := range inv.Clusters {
		for _, h := range c.Hosts {
			if other, ok := clusters[h.Name]; ok {
				diags = append(diags, errAt(h.DefRange, "Host named like a cluster",
					fmt.Sprintf("host %q has the name of cluster %q (%s); --limit %s would be ambiguous. Rename one of them.",
						h.Name, other.Name, other.DefRange, h.Name)))
			}
		}
	}
	// A VIP that is another host's address would steal that host's traffic.
	for a, v := range vips {
		if owner, ok := addrs[a]; ok && owner != v.h {
			diags = append(diags, errAt(v.h.Range(v.attr), "VIP equals a host address",
				fmt.Sprintf("host %q: %s %s is host %q's address (%s).", v.h.Name, v.attr, a, owner.Name, owner.Range("address"))))
		}
	}
	// A VIP that is another cluster's gateway (clusters of one file often
	// share a LAN) would take the router's traffic whenever it is up.
	for _, c := range inv.Clusters {
		for _, gw := range []struct {
			attr string
			a    netip.Addr
		}{{"gateway", c.Gateway}, {"gateway6", c.Gateway6}} {
			if v, ok := vips[gw.a]; ok && gw.a.IsValid() && inv.ClusterOf(v.h.Name) != c {
				diags = append(diags, errAt(v.h.Range(v.attr), "VIP equals another cluster's gateway",
					fmt.Sprintf("host %q: %s %s is cluster %q's %s (%s); a VIP is an address no router and no host owns.",
						v.h.Name, v.attr, gw.a, c.Name, gw.attr, c.Range(gw.attr))))
			}
		}
	}
	// A gateway that is a load balancer's own address would receive the
	// announcements meant for the router, and that host's traffic would
	// leave through itself.
	for _, c := range inv.Clusters {
		for _, gw := range []struct {
			attr string
			a    netip.Addr
		}{{"gateway", c.Gateway}, {"gateway6", c.Gateway6}} {
			if owner, ok := addrs[gw.a]; ok && gw.a.IsValid() {
				diags = append(diags, errAt(c.Range(gw.attr), "Gateway equals a host address",
					fmt.Sprintf("cluster %q: %s %s is host %q's address (%s); the gateway is the router of the VIPs' subnet, never a load balancer.",
						c.Name, gw.attr, gw.a, owner.Name, owner.Range("address"))))
			}
		}
	}
	return diags
}
