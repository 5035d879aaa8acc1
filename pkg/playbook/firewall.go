package playbook

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/remote"
)

// Firewall opens what the cluster needs in the host's active firewall:
// VRRP (IP protocol 112) and the listed ports ("80/tcp"; "{var}" names a
// Target var). firewalld: permanent rules in the zone of Interface (the
// default zone when the interface has none), queried first, then one
// --reload only when something was added. ufw: rules queried with
// --dry-run, added with `ufw allow` (live at once). No active firewall:
// nothing is changed — hactl never enables a firewall.
type Firewall struct {
	VRRP      bool
	Interface string
	Ports     []string
}

// VRRPRichRule is firewalld's rule for VRRP (Red Hat's keepalived guide).
const VRRPRichRule = `rule protocol value="vrrp" accept`

// VRRPGroup is VRRP's multicast group (RFC 5798); VRRPGroup6 its IPv6 one.
const (
	VRRPGroup  = "224.0.0.18"
	VRRPGroup6 = "ff02::12"
)

// UfwIPv6Check succeeds when ufw also writes IPv6 rules (IPV6=yes, the
// default): with IPV6=no every `ufw allow` covers IPv4 only, and clients of
// an IPv6 VIP are refused although the plan said the port is open.
const UfwIPv6Check = "grep -Eqs '^[[:space:]]*IPV6=\"?yes' /etc/default/ufw"

func (m *Firewall) Kind() string         { return "firewall" }
func (m *Firewall) Needs() facts.Request { return facts.Request{} }

// fwRule is one thing to allow, in the backend's own words.
type fwRule struct {
	label string // for summaries: "vrrp", "80/tcp"
	arg   string // firewalld: "--add-port=80/tcp" minus "--add-"; ufw: the allow arguments
}

func expand(s string, vars map[string]string) (string, error) {
	var err error
	out := varRef.ReplaceAllStringFunc(s, func(ref string) string {
		v, ok := vars[ref[1:len(ref)-1]]
		if !ok && err == nil {
			err = fmt.Errorf("%q names %s, which this host does not define", s, ref)
		}
		return v
	})
	return out, err
}

var varRef = regexp.MustCompile(`\{[a-z_][a-z0-9_]*\}`)

func (m *Firewall) ports(t *Target) ([]string, error) {
	var out []string
	for _, p := range m.Ports {
		v, err := expand(p, t.Vars)
		if err != nil {
			return nil, err
		}
		if !portSpec.MatchString(v) {
			return nil, fmt.Errorf("port %q: want PORT/tcp or PORT/udp", v)
		}
		out = append(out, v)
	}
	return out, nil
}

var portSpec = regexp.MustCompile(`^[0-9]{1,5}/(tcp|udp)$`)

func (m *Firewall) Plan(ctx context.Context, t *Target) (Plan, error) {
	ports, err := m.ports(t)
	if err != nil {
		return Plan{}, err
	}
	switch t.Facts.Firewall {
	case "firewalld":
		return m.firewalld(ctx, t, ports)
	case "ufw":
		return m.ufw(ctx, t, ports)
	}
	return Plan{Summary: "no active firewall (firewalld, ufw): nothing to open"}, nil
}

// missing runs a read-only query script that prints "missing N" for every
// rule N not in place (and, for firewalld, "zone Z" first).
func missing(ctx context.Context, t *Target, script string, rules []fwRule) (zone string, miss []fwRule, err error) {
	out, err := run(ctx, t, script)
	if err != nil {
		return "", nil, fmt.Errorf("query firewall: %w", err)
	}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 2 && f[0] == "zone":
			zone = f[1]
		case len(f) == 2 && f[0] == "missing":
			var i int
			if _, err := fmt.Sscan(f[1], &i); err == nil && i >= 0 && i < len(rules) {
				miss = append(miss, rules[i])
			}
		}
	}
	return zone, miss, nil
}

func labels(rs []fwRule) string {
	var l []string
	for _, r := range rs {
		l = append(l, r.label)
	}
	return strings.Join(l, ", ")
}

func (m *Firewall) firewalld(ctx context.Context, t *Target, ports []string) (Plan, error) {
	q := remote.Quote
	var rules []fwRule
	if m.VRRP {
		rules = append(rules, fwRule{"vrrp", "rich-rule=" + q(VRRPRichRule)})
	}
	for _, p := range ports {
		rules = append(rules, fwRule{p, "port=" + q(p)})
	}
	if len(rules) == 0 {
		return Plan{Summary: "nothing to open"}, nil
	}
	var b strings.Builder
	// The zone that filters the VRRP interface; firewall-cmd exits non-zero
	// ("no zone") when the interface is bound to none: the default zone applies.
	zoneOf := "z=$(firewall-cmd --get-default-zone) || exit 3"
	if iface, err := expand(m.Interface, t.Vars); err != nil {
		return Plan{}, err
	} else if iface != "" {
		zoneOf = "z=$(firewall-cmd --get-zone-of-interface=" + q(iface) + " 2>/dev/null) || " + zoneOf
	}
	fmt.Fprintf(&b, "%s; echo \"zone $z\"", zoneOf)
	for i, r := range rules {
		fmt.Fprintf(&b, "; firewall-cmd --permanent --zone=\"$z\" --query-%s >/dev/null 2>&1 || echo 'missing %d'", r.arg, i)
	}
	zone, miss, err := missing(ctx, t, b.String(), rules)
	if err != nil {
		return Plan{}, err
	}
	if len(miss) == 0 {
		return Plan{Summary: "open in zone " + zone + ": " + labels(rules)}, nil
	}
	var cmds []string
	for _, r := range miss {
		cmds = append(cmds, "firewall-cmd -q --permanent --zone="+q(zone)+" --add-"+r.arg)
	}
	// --reload makes the permanent configuration the runtime one; it runs
	// only when a rule was added, so a converged host's firewall is never
	// reloaded.
	cmds = append(cmds, "firewall-cmd -q --reload")
	return Plan{
		Summary: fmt.Sprintf("allow %s in zone %s (permanent) and reload", labels(miss), zone),
		Done:    done(fmt.Sprintf("allowed %s in zone %s (permanent), reloaded", labels(miss), zone)),
		Ops:     []Op{{Cmd: strings.Join(cmds, " && "), Fail: prefix("firewalld")}},
	}, nil
}

// ufwSkip is what `ufw allow` prints for a rule it already has.
const ufwSkip = "Skipping adding existing rule"

func (m *Firewall) ufw(ctx context.Context, t *Target, ports []string) (Plan, error) {
	var rules []fwRule
	note := ""
	if t.Vars[VarIPv6] == "yes" {
		if _, err := run(ctx, t, UfwIPv6Check); err != nil {
			if _, ok := remote.AsExit(err); !ok {
				return Plan{}, fmt.Errorf("query ufw: %w", err)
			}
			return Plan{}, fmt.Errorf("ufw is active with IPv6 rules off (no IPV6=yes in /etc/default/ufw): the cluster's IPv6 VIPs would get no rules; set IPV6=yes and run `ufw reload`")
		}
	}
	if m.VRRP {
		// ufw's proto list has no vrrp before 0.36.2; allowing everything to
		// VRRP's multicast group admits exactly the adverts. Unicast adverts
		// go to the host's own address and cannot be singled out this way.
		// IPv6 instances (VRRPv3) advertise to ff02::12; a dual-stack
		// instance is an IPv4 one.
		group := VRRPGroup
		if t.Vars[VarVRRPIPv6] == "yes" {
			group = VRRPGroup6
		}
		rules = append(rules, fwRule{"vrrp (to " + group + ")", "to " + group})
		if t.Vars["vrrp_transport"] == "unicast" {
			note = "; note: ufw cannot match unicast VRRP by protocol, allow the peers' protocol 112 in /etc/ufw/before.rules"
		}
	}
	for _, p := range ports {
		rules = append(rules, fwRule{p, p})
	}
	if len(rules) == 0 {
		return Plan{Summary: "nothing to open"}, nil
	}
	var b strings.Builder
	for i, r := range rules {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "ufw --dry-run allow %s 2>&1 | grep -q '%s' || echo 'missing %d'", r.arg, ufwSkip, i)
	}
	_, miss, err := missing(ctx, t, b.String(), rules)
	if err != nil {
		return Plan{}, err
	}
	if len(miss) == 0 {
		return Plan{Summary: "open: " + labels(rules) + note}, nil
	}
	var ops []Op
	for _, r := range miss {
		ops = append(ops, Op{Cmd: "ufw allow " + r.arg, Fail: prefix("ufw allow " + r.arg)})
	}
	// ufw says when it already had a rule the query missed: only the
	// rules it really added are a change.
	added := func(outs []string) (string, bool) {
		var got []fwRule
		for i, r := range miss {
			if !strings.Contains(outs[i], ufwSkip) {
				got = append(got, r)
			}
		}
		if len(got) == 0 {
			return "open: " + labels(rules) + note, false
		}
		return "allowed " + labels(got) + note, true
	}
	return Plan{Summary: "allow " + labels(miss) + note, Done: added, Ops: ops}, nil
}
