package inventory

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"regexp"
	"strconv"

	"github.com/hashicorp/hcl/v2"
)

var (
	// Names end up in keepalived's router_id, in file paths (render -o DIR/<host>)
	// and in shell scripts, so they are kept to a safe alphabet.
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	// Linux interface names: at most 15 bytes, no '/', ':' or blanks.
	ifaceRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
	hostRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]*$`)
)

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
			"cluster %q: interface names the NIC that carries the VIPs (seed: ens192); it must not be empty.", c.Name)
	} else if !ifaceRE.MatchString(c.Interface) {
		add(c.Range("interface"), "Invalid interface", "cluster %q: %q is not a valid Linux interface name.", c.Name, c.Interface)
	}
	if _, set := c.Ranges["gateway"]; !set {
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

// validateSubnet enforces the seed's rule: VRRP multicast and gratuitous ARP
// do not cross subnets, so every host, VIP and the gateway share one L2 subnet.
// The subnet is the first host's VIP prefix.
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
				"VRRP multicast (224.0.0.18) never crosses a router, so multicast peers must share one subnet.", c.Name)))
	}
	var subnet netip.Prefix
	var from *Host
	for _, h := range c.Hosts {
		if h.VIP.IsValid() {
			subnet, from = h.VIP.Masked(), h
			break
		}
	}
	if from == nil {
		return diags
	}
	where := fmt.Sprintf("%s (from host %q's vip at %s)", subnet, from.Name, from.Range("vip"))
	crossOK := unicast && c.AllowCrossSubnet
	for _, h := range c.Hosts {
		if h.VIP.IsValid() {
			if h.VIP.Masked() != subnet {
				detail := fmt.Sprintf("host %q: vip %s is not in %s; keepalived's VIPs of one cluster share one L2 subnet.", h.Name, h.VIP, where)
				if crossOK {
					detail = fmt.Sprintf("host %q: vip %s is not in %s. allow_cross_subnet lets the hosts' addresses differ, not the VIPs': "+
						"every host may hold every VIP, and a VIP can only be announced (gratuitous ARP) on a segment its holder is attached to.", h.Name, h.VIP, where)
				}
				diags = append(diags, errAt(h.Range("vip"), "VIP outside the cluster's subnet", detail))
			}
			if a := h.VIP.Addr(); h.VIP.Bits() < 31 && (a == subnet.Addr() || a == lastAddr(subnet)) {
				diags = append(diags, errAt(h.Range("vip"), "VIP is a network or broadcast address",
					fmt.Sprintf("host %q: vip %s is the network or broadcast address of %s.", h.Name, h.VIP, subnet)))
			}
			if h.VIP.Addr() == h.Address {
				diags = append(diags, errAt(h.Range("vip"), "VIP equals the host address",
					fmt.Sprintf("host %q: the vip must be an address no host owns; %s is the host's own address.", h.Name, h.VIP.Addr())))
			}
			if h.VIP.Addr() == c.Gateway {
				diags = append(diags, errAt(h.Range("vip"), "VIP equals the gateway",
					fmt.Sprintf("host %q: vip %s is the gateway's address.", h.Name, h.VIP.Addr())))
			}
		}
		if !h.Address.IsValid() || subnet.Contains(h.Address) {
			continue
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
				fmt.Sprintf("host %q: address %s is not in %s; VRRP multicast does not cross subnets (the seed warns about this). "+
					"Use vrrp_transport = \"unicast\" with allow_cross_subnet = true if the hosts really are routed apart.", h.Name, h.Address, where)))
		}
	}
	if c.Gateway.IsValid() && !subnet.Contains(c.Gateway) {
		diags = append(diags, errAt(c.Range("gateway"), "Gateway outside the cluster's subnet",
			fmt.Sprintf("cluster %q: gateway %s is not in %s; clean_arp.sh announces a VIP to the gateway with ARP, which only reaches the local segment.", c.Name, c.Gateway, where)))
	}
	return diags
}

func rangePtr(r hcl.Range) *hcl.Range { return &r }

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
	vips := map[netip.Addr]*Host{}
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
			if h.Interface != c.Interface && !ifaceRE.MatchString(h.Interface) {
				diags = append(diags, errAt(h.Range("interface"), "Invalid interface",
					fmt.Sprintf("host %q: %q is not a valid Linux interface name.", h.Name, h.Interface)))
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
			if h.VIP.IsValid() {
				if prev, ok := vips[h.VIP.Addr()]; ok {
					dup(h.Range("vip"), "VIP", h.VIP.Addr().String(), prev.Range("vip"))
				} else {
					vips[h.VIP.Addr()] = h
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
	// A VIP that is another host's address would steal that host's traffic.
	for a, h := range vips {
		if owner, ok := addrs[a]; ok && owner != h {
			diags = append(diags, errAt(h.Range("vip"), "VIP equals a host address",
				fmt.Sprintf("host %q: vip %s is host %q's address (%s).", h.Name, a, owner.Name, owner.Range("address"))))
		}
	}
	return diags
}
