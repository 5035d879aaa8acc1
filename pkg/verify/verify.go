// Package verify answers "where is every VIP right now?" from `ip -o -4 addr`
// on every host, and classifies each VIP: ok (on its master only), moved (on
// one other host), missing (nowhere), split (on two or more hosts).
package verify

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/vrrp"
)

// VIP states.
const (
	StateOK      = "ok"
	StateMoved   = "moved"
	StateMissing = "missing"
	StateSplit   = "split"
	// StateUnknown: seen nowhere, but a host could not be asked.
	StateUnknown = "unknown"
)

// VIPState is one VIP's placement (the JSON shape of DESIGN.md).
type VIPState struct {
	VIP     string   `json:"vip"`
	Cluster string   `json:"cluster"`
	Master  string   `json:"master"`
	Holders []string `json:"holders"`
	State   string   `json:"state"`
}

// OK reports whether the VIP sits on its master only.
func (v VIPState) OK() bool { return v.State == StateOK }

// AddrCommand lists the IPv4 addresses of iface, one per line.
func AddrCommand(iface string) string {
	return "ip -o -4 addr show dev " + remote.Quote(iface)
}

// ParseAddrs reads `ip -o -4 addr` output.
func ParseAddrs(out string) []netip.Prefix {
	var ps []netip.Prefix
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil {
					ps = append(ps, p)
				}
				break
			}
		}
	}
	return ps
}

// Observation is what one host reported.
type Observation struct {
	Host  string
	Addrs []netip.Prefix
	Err   error
}

// Observe reads the VIP interface of every reachable host in parallel.
// Unreachable hosts (and hosts whose command fails) carry Err.
func Observe(ctx context.Context, hosts []*fleet.Host) []Observation {
	obs := make([]Observation, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		obs[i].Host = h.Host.Name
		if h.Conn == nil {
			obs[i].Err = h.Err
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			obs[i].Addrs, obs[i].Err = Addrs(ctx, h.Conn, h.Host.Interface)
			if obs[i].Err != nil {
				obs[i].Err = fmt.Errorf("%s: %w", h.Host.Name, obs[i].Err)
			}
		}()
	}
	wg.Wait()
	return obs
}

// Addrs runs AddrCommand on one connection.
func Addrs(ctx context.Context, c remote.Conn, iface string) ([]netip.Prefix, error) {
	res, err := c.Run(ctx, AddrCommand(iface), nil)
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("ip addr show dev %s: exit %d: %s", iface, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	return ParseAddrs(string(res.Stdout)), nil
}

// Classify maps observations onto the layout's VIPs, in layout order.
func Classify(l *vrrp.Layout, obs []Observation) []VIPState {
	var out []VIPState
	for _, in := range l.Instances {
		s := VIPState{VIP: in.VIP.String(), Cluster: in.Cluster, Master: in.Master, Holders: []string{}}
		blind := false
		for _, o := range obs {
			if o.Err != nil {
				if in.PriorityOf(o.Host) > 0 {
					blind = true
				}
				continue
			}
			for _, a := range o.Addrs {
				if a.Addr() == in.VIP.Addr() {
					s.Holders = append(s.Holders, o.Host)
					break
				}
			}
		}
		switch {
		case len(s.Holders) > 1:
			s.State = StateSplit
		case len(s.Holders) == 1 && s.Holders[0] == in.Master:
			s.State = StateOK
		case len(s.Holders) == 1:
			s.State = StateMoved
		case blind:
			s.State = StateUnknown
		default:
			s.State = StateMissing
		}
		out = append(out, s)
	}
	return out
}

// AllOK reports whether every VIP is on its master only.
func AllOK(vs []VIPState) bool {
	for _, v := range vs {
		if !v.OK() {
			return false
		}
	}
	return true
}

// Settled reports whether every VIP of cluster is held by exactly one host
// (its master or not): the condition a rolling restart waits for. A VIP that
// cannot be seen (a host is unreachable) does not hold the rollout up; the
// final verification reports it.
func Settled(vs []VIPState, cluster string) bool {
	for _, v := range vs {
		if v.Cluster == cluster && v.State != StateUnknown && len(v.Holders) != 1 {
			return false
		}
	}
	return true
}

// SplitHint explains the usual cause of a split: VRRP adverts not reaching the
// peers (multicast filtered), so every host believes it is MASTER.
func SplitHint(vs []VIPState) string {
	for _, v := range vs {
		if v.State == StateSplit {
			return "A VIP on several hosts means the hosts do not hear each other's VRRP adverts: " +
				"multicast (224.0.0.18, IP protocol 112) is probably filtered between them (cloud networks, " +
				"firewalls, VLANs). Allow VRRP, or set vrrp_transport = \"unicast\" on the cluster."
		}
	}
	return ""
}
