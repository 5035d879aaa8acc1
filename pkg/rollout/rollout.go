// Package rollout is the VRRP side of a rolling service change: before a
// host's daemons are touched it records which VIPs its cluster serves (and
// whether the cluster serves nothing at all, so its hosts may start
// together), and afterwards it waits until those VIPs are served again
// before the next host is touched. The playbook runner calls it through
// playbook.Rollout; every wait goes through a clock.Clock.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hactl/hactl/pkg/clock"
	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/verify"
	"github.com/hactl/hactl/pkg/vrrp"
)

// ErrUnsettled is wrapped by the error of a wait that timed out.
var ErrUnsettled = errors.New("VIPs did not settle")

// Options say what the rollout works on.
type Options struct {
	Layout *vrrp.Layout
	// Fleet holds every host of the clusters being rolled out: VIP
	// placement can only be judged on the whole cluster.
	Fleet *fleet.Fleet
	Clock clock.Clock // nil: clock.Real
	// Event receives the rollout's own announcements; nil discards them.
	Event func(playbook.Event)
}

// Rollout remembers, per host, which VIPs of its cluster were served (held
// by exactly one host) just before the host's daemons were touched. It is
// safe for concurrent use.
type Rollout struct {
	o    Options
	mu   sync.Mutex
	held map[string]map[string]bool // host -> VIPs served before its restart
	// switching marks clusters whose VRRP transport changes in this run:
	// until every host is switched, hosts on the old and the new transport
	// cannot hear each other and each claims MASTER, so no per-host settle
	// condition can hold. Their hosts are not waited for one by one;
	// WaitConverged waits for the whole cluster.
	switching map[string]bool
	// drained: hosts `hactl drain` took out (their facts): their VIPs
	// belong on the next host, and they hold none.
	drained map[string]bool
}

var (
	_ playbook.Rollout       = (*Rollout)(nil)
	_ playbook.FactsObserver = (*Rollout)(nil)
)

// New returns a rollout with nothing recorded yet.
func New(o Options) *Rollout {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	return &Rollout{o: o, held: map[string]map[string]bool{}, switching: map[string]bool{}, drained: map[string]bool{}}
}

// Group names host's cluster: the hosts of a dark cluster start together.
func (r *Rollout) Group(host string) string {
	if h := r.o.Fleet.Get(host); h != nil {
		return h.Cluster.Name
	}
	return host
}

// NoteTransport records that host's live keepalived uses transport live
// (from its facts); when that is not what the inventory asks for, the
// cluster is switching and its hosts are not settled one by one. The first
// host of a cluster found switching is announced as an event.
func (r *Rollout) NoteTransport(host, live string) {
	h := r.o.Fleet.Get(host)
	if h == nil || live == "" || live == h.Cluster.Transport {
		return
	}
	c := h.Cluster
	r.mu.Lock()
	first := !r.switching[c.Name]
	r.switching[c.Name] = true
	r.mu.Unlock()
	if first && r.o.Event != nil {
		r.o.Event(playbook.Event{Host: host, Step: "vrrp", Status: "changed",
			Summary: fmt.Sprintf("cluster %s switches VRRP transport %s → %s: hosts on different transports cannot hear each other, so VIPs may sit on several hosts until every host is switched; waiting once at the end instead of after each host", c.Name, live, c.Transport)})
	}
}

// Facts takes what the rollout decides on from host's facts, as the runner
// gathers them: its live VRRP transport and whether it is drained (a
// drained host is announced: it stays out through this apply).
func (r *Rollout) Facts(host string, f *facts.Facts) {
	r.NoteTransport(host, f.VRRPTransport)
	r.NoteDrained(host, f.Drained())
	if f.Drained() && r.o.Event != nil {
		r.o.Event(playbook.Event{Host: host, Step: "drain", Status: "ok",
			Summary: "drained: its VIPs stay on their next host (hactl undrain " + host + " brings it back)"})
	}
}

// NoteDrained records that host is drained (from its facts): placement is
// judged with its VIPs on their next host.
func (r *Rollout) NoteDrained(host string, drained bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drained[host] = drained
}

// Drained returns the hosts noted drained.
func (r *Rollout) Drained() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]bool{}
	for h, d := range r.drained {
		out[h] = d
	}
	return out
}

// observe reads the hosts' addresses, drained hosts marked.
func (r *Rollout) observe(ctx context.Context, hosts []*fleet.Host) []verify.VIPState {
	return verify.Classify(r.o.Layout, verify.MarkDrained(verify.Observe(ctx, hosts), r.Drained()))
}

func (r *Rollout) isSwitching(cluster string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.switching[cluster]
}

// Snapshot records the VIPs served right now in host's cluster, and reports
// the cluster dark when no host holds any of its VIPs (a first rollout:
// keepalived runs nowhere yet, or only on hosts started moments ago that
// have not claimed anything). When a host cannot be observed, nothing is
// recorded, the cluster is not dark, and Settle falls back to the strict
// rule (every VIP of the cluster on exactly one host).
func (r *Rollout) Snapshot(ctx context.Context, host string) (dark bool) {
	c := r.Group(host)
	vs := r.observe(ctx, r.clusterFleet(c))
	held := map[string]bool{}
	dark = true
	for _, v := range vs {
		if v.Cluster != c {
			continue
		}
		if v.State == verify.StateUnknown {
			r.mu.Lock()
			delete(r.held, host)
			r.mu.Unlock()
			return false
		}
		if len(v.Holders) == 1 {
			held[v.VIP] = true
		}
		if len(v.Holders) > 0 {
			dark = false
		}
	}
	r.mu.Lock()
	r.held[host] = held
	r.mu.Unlock()
	return dark
}

// Settle waits, after the hosts' daemons were (re)started, until for every
// one of them
//   - no VIP of its cluster is on two hosts,
//   - the host holds the VIP it is master of (so it serves before the next
//     host is touched), and
//   - every VIP that was served before its restart is served again.
//
// A VIP nobody held before may stay unheld: on a first rollout the other
// hosts' keepalived is not running yet, and waiting for a backup to claim
// their VIPs (a full master-down interval) protects nothing. Without a
// snapshot every VIP must be on exactly one host. Several hosts (those of a
// dark cluster that started together) cost one wait per cluster. Hosts of a
// cluster that switches transport are not waited for. It returns the hosts
// the condition did not come to hold for, with why.
func (r *Rollout) Settle(ctx context.Context, hosts []string) map[string]error {
	var clusters []string
	byCluster := map[string][]string{}
	for _, h := range hosts {
		c := r.Group(h)
		if byCluster[c] == nil {
			clusters = append(clusters, c)
		}
		byCluster[c] = append(byCluster[c], h)
	}
	ok := func(vs []verify.VIPState, c, h string) bool {
		r.mu.Lock()
		held, known := r.held[h]
		r.mu.Unlock()
		return rolledOut(vs, c, h, held, known)
	}
	errs := map[string]error{}
	for _, c := range clusters {
		if r.isSwitching(c) {
			continue
		}
		var last []verify.VIPState
		err := r.waitVIPs(ctx, c, func(vs []verify.VIPState) bool {
			last = vs
			for _, h := range byCluster[c] {
				if !ok(vs, c, h) {
					return false
				}
			}
			return true
		})
		if err == nil {
			continue
		}
		for _, h := range byCluster[c] {
			if last == nil || !ok(last, c, h) {
				errs[h] = err
			}
		}
	}
	return errs
}

// WaitConverged waits, cluster by cluster, until every VIP of the fleet's
// clusters sits on its master only: after the last restart a VIP may still
// be on its way home (preemption), and a cluster that switched transport
// settles only once every host is switched. The error names each cluster
// that did not get there in time.
func (r *Rollout) WaitConverged(ctx context.Context) error {
	var errs []error
	seen := map[string]bool{}
	for _, h := range r.o.Fleet.Hosts {
		c := h.Cluster.Name
		if seen[c] {
			continue
		}
		seen[c] = true
		errs = append(errs, r.waitVIPs(ctx, c, func(vs []verify.VIPState) bool {
			for _, v := range vs {
				if v.Cluster == c && !v.OK() {
					return false
				}
			}
			return true
		}))
	}
	return errors.Join(errs...)
}

// rolledOut is Settle's condition on one observation of the cluster; held
// (when known) are the VIPs served before host's restart.
func rolledOut(vs []verify.VIPState, cluster, host string, held map[string]bool, known bool) bool {
	for _, v := range vs {
		if v.Cluster != cluster {
			continue
		}
		// The VIP host must hold: its own, or a drained master's.
		mine := (v.Want == "" && v.Master == host) || v.Want == host
		switch {
		case mine && (len(v.Holders) != 1 || v.Holders[0] != host):
			return false
		case v.State == verify.StateUnknown:
			// A host cannot be asked: the final verification reports it.
		case len(v.Holders) > 1:
			return false
		case len(v.Holders) == 0 && (!known || held[v.VIP]):
			return false
		}
	}
	return true
}

func (r *Rollout) clusterFleet(cluster string) []*fleet.Host {
	var hosts []*fleet.Host
	for _, h := range r.o.Fleet.Hosts {
		if h.Cluster.Name == cluster {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// waitVIPs polls the cluster's hosts until done holds: every 50 ms (each
// poll is one short command per host), every 100 ms on clusters of more
// than 20. The timeout covers a full master-down interval plus preemption,
// three times over.
func (r *Rollout) waitVIPs(ctx context.Context, cluster string, done func([]verify.VIPState) bool) error {
	hosts := r.clusterFleet(cluster)
	var bound time.Duration
	for _, in := range r.o.Layout.ForCluster(cluster) {
		bound = max(bound, in.Bounds.Crash)
	}
	every := 50 * time.Millisecond
	if len(hosts) > 20 {
		every = 100 * time.Millisecond
	}
	timeout := 3*bound + 5*time.Second
	deadline := r.o.Clock.Now().Add(timeout)
	for {
		last := r.observe(ctx, hosts)
		if done(last) {
			return nil
		}
		if r.o.Clock.Now().After(deadline) {
			return fmt.Errorf("cluster %s: %w within %s: %s", cluster, ErrUnsettled, timeout.Round(time.Second), verify.Problems(last))
		}
		// Checked first: a select on two ready channels picks either.
		if err := ctx.Err(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.o.Clock.After(every):
		}
	}
}
