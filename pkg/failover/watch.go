package failover

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/verify"
	"github.com/hactl/hactl/pkg/vrrp"
)

// sample is one poll of the cluster.
type sample struct {
	at      time.Time  // when the answers were in (conservative for drift)
	holders []string   // hosts that carry the VIP, in fleet order
	held    [][]string // per address of the instance (in.Addrs()): its holders; held[0] is holders
	apart   []string   // verify.Apart: a dual-stack pair not on the same hosts
	blind   bool       // a host could not be asked: holders may be incomplete
	unit    string     // state of the watched unit on the node, if any
}

// only reports whether every address of the instance is on host and nowhere
// else, as far as a complete sample can tell.
func (s sample) only(host string) bool {
	if s.blind || len(s.held) == 0 {
		return false
	}
	for _, h := range s.held {
		if len(h) != 1 || h[0] != host {
			return false
		}
	}
	return true
}

// onTwo reports whether some address is on two or more hosts.
func (s sample) onTwo() bool {
	for _, h := range s.held {
		if len(h) > 1 {
			return true
		}
	}
	return false
}

type probeRec struct {
	url  int // index into watch.urls
	sent time.Time
	res  ProbeResult
}

// watch polls one instance's addresses (both of a dual-stack pair) and
// probes its site on each while a scenario runs.
// Only the scenario's goroutine calls its methods; probes run in their own
// goroutines so that a request hanging until its timeout never slows the
// poll, and report back through a channel.
type watch struct {
	r      *Runner
	hosts  []*fleet.Host // the VIP's cluster
	node   *fleet.Host
	one    *vrrp.Layout // the scenario's instance alone, for verify.Classify and Apart
	urls   []string     // one per address (ProbeURL), in in.Addrs() order
	unit   string       // "" or a unit whose state on node is read at every poll
	settle time.Duration

	probeCtx context.Context
	inflight sync.WaitGroup
	probeCh  chan probeRec
	probes   []probeRec
	samples  []sample // every tick, for the timeline

	splitSpan span
	split     bool // the VIP sat on ≥ 2 hosts longer than settle
	obsErr    string

	// A dual-stack pair seen apart: keepalived adds and removes the two
	// addresses together, but a poll can fall between the two netlink
	// changes, so up to settle is tolerated like a split.
	apartSpan span
	apartLong string // the first Apart message seen for longer than settle
}

// span is how long a condition has held over consecutive samples. A blind
// sample (a host could not be asked) neither ends nor starts it.
type span struct {
	since   time.Time
	longest time.Duration
}

// observe records whether the condition holds at s and returns for how long
// it has held (0 when it does not).
func (p *span) observe(holds bool, s sample) time.Duration {
	if !holds {
		if !s.blind {
			p.since = time.Time{}
		}
		return 0
	}
	if p.since.IsZero() {
		p.since = s.at
	}
	d := s.at.Sub(p.since)
	p.longest = max(p.longest, d)
	return d
}

func (w *watch) probe() {
	sent := w.r.o.Clock.Now()
	for i, u := range w.urls {
		w.inflight.Add(1)
		go func() {
			defer w.inflight.Done()
			w.probeCh <- probeRec{url: i, sent: sent, res: w.r.o.Prober.Probe(w.probeCtx, u)}
		}()
	}
}

// drain collects finished probes without waiting.
func (w *watch) drain() {
	for {
		select {
		case p := <-w.probeCh:
			w.probes = append(w.probes, p)
		default:
			return
		}
	}
}

// finish waits for the probes still in flight (each bounded by the prober's
// timeout) and returns all of them.
func (w *watch) finish() []probeRec {
	done := make(chan struct{})
	go func() { w.inflight.Wait(); close(done) }()
	for {
		select {
		case p := <-w.probeCh:
			w.probes = append(w.probes, p)
		case <-done:
			w.drain()
			return w.probes
		}
	}
}

// tick takes one sample: the VIP interface of every host of the cluster, and
// the watched unit on the node, in parallel over the open connections.
func (w *watch) tick(ctx context.Context) sample {
	w.probe()
	var unit string
	var wg sync.WaitGroup
	if w.unit != "" && w.node.Conn != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unit = unitState(ctx, w.node.Conn, w.unit)
		}()
	}
	obs := w.r.o.Observer.Observe(ctx, w.hosts)
	wg.Wait()
	s := sample{at: w.r.o.Clock.Now(), unit: unit}
	for _, o := range obs {
		if o.Err != nil {
			s.blind = true
			w.obsErr = o.Err.Error()
		}
	}
	vs := verify.Classify(w.one, obs)
	for _, v := range vs {
		s.held = append(s.held, v.Holders)
	}
	s.holders = []string{}
	if len(s.held) > 0 {
		s.holders = s.held[0]
	}
	s.apart = verify.Apart(w.one, vs)
	w.trackSplit(s)
	w.samples = append(w.samples, s)
	w.trackApart(s)
	w.drain()
	return s
}

// trackApart tolerates a dual-stack pair apart for up to settle and records
// the first that lasted longer.
func (w *watch) trackApart(s sample) {
	if d := w.apartSpan.observe(len(s.apart) > 0, s); d > w.settle && w.apartLong == "" {
		w.apartLong = strings.Join(s.apart, "; ")
	}
}

// trackSplit tolerates two holders for up to settle (a handover in progress)
// and flags anything longer.
func (w *watch) trackSplit(s sample) {
	if w.splitSpan.observe(s.onTwo(), s) > w.settle {
		w.split = true
	}
}

// until samples every poll period until cond holds or limit has passed since
// from. each, if set, sees every sample. ok is false on timeout; err is set
// only when ctx ends.
func (w *watch) until(ctx context.Context, from time.Time, limit time.Duration, cond, each func(sample) bool) (s sample, ok bool, err error) {
	clk := w.r.o.Clock
	for {
		if err := ctx.Err(); err != nil {
			return s, false, err
		}
		started := clk.Now()
		s = w.tick(ctx)
		if err := ctx.Err(); err != nil {
			return s, false, err
		}
		if each != nil && !each(s) {
			return s, false, nil
		}
		if cond(s) {
			return s, true, nil
		}
		if s.at.Sub(from) >= limit {
			return s, false, nil
		}
		// The period is Poll from sample start to sample start: the SSH
		// round trips of the sample are part of it, not added to it.
		if rest := w.r.o.Poll - clk.Now().Sub(started); rest > 0 {
			select {
			case <-ctx.Done():
				return s, false, ctx.Err()
			case <-clk.After(rest):
			}
		}
	}
}

// httpStatsPerURL is httpStats for each address's probes on its own (a gap
// of one family is not hidden by the other's answers), summed: the total
// and failed counts add up, the gap is the longest of any address.
func httpStatsPerURL(ps []probeRec, urls int) (total, failed int, gap time.Duration, nodes map[string]int) {
	by := make([][]probeRec, urls)
	for _, p := range ps {
		by[p.url] = append(by[p.url], p)
	}
	for _, l := range by {
		t, f, g, n := httpStats(l)
		total, failed, gap = total+t, failed+f, max(gap, g)
		for k, v := range n {
			if nodes == nil {
				nodes = map[string]int{}
			}
			nodes[k] += v
		}
	}
	return total, failed, gap, nodes
}

// httpStats sums the probes: how many, how many failed, and the longest time
// without a successful answer, measured between the send times of successes
// (and from the first probe / to the last one). Send times, not answer
// times, because that is when the site was asked; the difference is at most
// one request's latency.
func httpStats(ps []probeRec) (total, failed int, gap time.Duration, nodes map[string]int) {
	if len(ps) == 0 {
		return 0, 0, 0, nil
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].sent.Before(ps[j].sent) })
	nodes = map[string]int{}
	last := ps[0].sent
	for _, p := range ps {
		total++
		if !p.res.OK() {
			failed++
			continue
		}
		if p.res.Node != "" {
			nodes[p.res.Node]++
		}
		gap = max(gap, p.sent.Sub(last))
		last = p.sent
	}
	gap = max(gap, ps[len(ps)-1].sent.Sub(last))
	if len(nodes) == 0 {
		nodes = nil
	}
	return total, failed, gap, nodes
}
