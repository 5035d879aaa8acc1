// Package fleet opens one SSH connection per inventory host, in parallel, and
// keeps it for every later command of the run.
package fleet

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/sshconfig"
)

// Host is one inventory host and, when it could be reached, its connection.
type Host struct {
	Host    *inventory.Host
	Cluster *inventory.Cluster
	Conn    remote.Conn // nil when Err is set
	Err     error       // why the host could not be reached
}

// RoundTrips is how many commands and uploads went to the host so far (0
// for a host that was never reached): one SSH session each.
func (h *Host) RoundTrips() int {
	if c, ok := h.Conn.(*remote.Counted); ok {
		return c.RoundTrips()
	}
	return 0
}

// Name is the inventory name.
func (h *Host) Name() string { return h.Host.Name }

// DialFunc opens a connection; remote.Dial in production, a fake in tests.
type DialFunc func(ctx context.Context, cfg remote.Config) (remote.Conn, error)

// Options say how to connect.
type Options struct {
	AcceptNewHostKeys bool
	ConnectTimeout    time.Duration
	Parallel          int
	HomeDir           string // for ~/ in key and known_hosts paths
	AgentSocket       string // SSH_AUTH_SOCK
	Dial              DialFunc
	// SSHConfig fills what the inventory leaves unset (nil: nothing).
	SSHConfig *sshconfig.File
}

// Fleet is the set of hosts a command works on, in inventory order.
type Fleet struct {
	Hosts []*Host
}

// Select returns the inventory hosts named in limit (all when empty), or an
// error naming the unknown ones.
func Select(inv *inventory.Inventory, limit []string) ([]*inventory.Host, error) {
	if len(limit) == 0 {
		return inv.Hosts(), nil
	}
	want := map[string]bool{}
	for _, n := range limit {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	var out []*inventory.Host
	for _, h := range inv.Hosts() {
		if want[h.Name] {
			out = append(out, h)
			delete(want, h.Name)
		}
	}
	if len(want) > 0 {
		var unknown []string
		for n := range want {
			unknown = append(unknown, n)
		}
		sort.Strings(unknown)
		return nil, fmt.Errorf("--limit names hosts not in the inventory: %s", strings.Join(unknown, ", "))
	}
	return out, nil
}

// ReadAtOnce is how many hosts are connected to, and read, at once at
// least, whatever --parallel says: a handshake or a read-only round trip
// costs the control machine a few milliseconds of CPU and each host one
// session, and in waves of --parallel (10) a 30-host no-change apply paid
// three handshake latencies and three fact gatherings one after the other.
// --parallel keeps bounding what changes hosts.
const ReadAtOnce = 64

// ReadParallel is the bound on connecting and reading for a --parallel.
func ReadParallel(parallel int) int { return max(parallel, ReadAtOnce) }

// Connect dials every host in parallel (at most ReadParallel at once). A host
// that cannot be reached gets Err set; it never stops the others.
func Connect(ctx context.Context, inv *inventory.Inventory, hosts []*inventory.Host, opts Options) *Fleet {
	dial := opts.Dial
	if dial == nil {
		dial = remote.Dial
	}
	f := &Fleet{}
	for _, h := range hosts {
		f.Hosts = append(f.Hosts, &Host{Host: h, Cluster: inv.ClusterOf(h.Name)})
	}
	// One bastion connection per jump host for the whole run.
	jumps := &remote.Jumps{}
	var g errgroup.Group
	g.SetLimit(ReadParallel(opts.Parallel))
	for _, fh := range f.Hosts {
		g.Go(func() error {
			cfg, err := ResolveSSH(fh.Host, opts)
			if err != nil {
				fh.Err = fmt.Errorf("connect %s: %w", fh.Host.Name, err)
				return nil
			}
			cfg.Jumps = jumps
			conn, err := dial(ctx, cfg)
			if err != nil {
				fh.Err = fmt.Errorf("connect %s: %w", fh.Host.Name, err)
				return nil
			}
			fh.Conn = remote.Count(conn)
			return nil
		})
	}
	_ = g.Wait()
	return f
}

// Reachable returns the hosts with a live connection.
func (f *Fleet) Reachable() []*Host {
	var out []*Host
	for _, h := range f.Hosts {
		if h.Conn != nil {
			out = append(out, h)
		}
	}
	return out
}

// Get returns the host named name, or nil.
func (f *Fleet) Get(name string) *Host {
	for _, h := range f.Hosts {
		if h.Host.Name == name {
			return h
		}
	}
	return nil
}

// RoundTrips says how many round trips (SSH sessions) each reached host
// cost so far: "3 per host" when all agree, else "lab1 3, lab2 4".
func (f *Fleet) RoundTrips() string {
	var parts []string
	counts := map[int]bool{}
	for _, h := range f.Hosts {
		if h.Conn == nil {
			continue
		}
		counts[h.RoundTrips()] = true
		parts = append(parts, fmt.Sprintf("%s %d", h.Name(), h.RoundTrips()))
	}
	if len(counts) == 1 {
		for n := range counts {
			return fmt.Sprintf("%d per host", n)
		}
	}
	return strings.Join(parts, ", ")
}

// Close closes every connection.
func (f *Fleet) Close() {
	for _, h := range f.Hosts {
		if h.Conn != nil {
			_ = h.Conn.Close()
		}
	}
}
