package failover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hactl/hactl/internal/testinv"
	"github.com/hactl/hactl/internal/vrrpsim"
	"github.com/hactl/hactl/pkg/drain"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
	"github.com/hactl/hactl/pkg/vrrp"
)

const never = vrrpsim.Never

// okProber answers 200 from whoever holds... nobody in particular: the
// simulation has no network, so only request counting is checked.
type okProber struct {
	mu   sync.Mutex
	n    int
	url  string
	urls map[string]bool
	// delay > 0: each answer takes this long in real time, and a probe
	// whose context ends first fails, as the HTTP prober's would.
	delay time.Duration
}

func (p *okProber) Probe(ctx context.Context, url string) ProbeResult {
	if p.delay > 0 {
		select {
		case <-time.After(p.delay):
		case <-ctx.Done():
			return ProbeResult{Err: fmt.Errorf("probe %s: %w", url, ctx.Err())}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	p.url = url
	if p.urls == nil {
		p.urls = map[string]bool{}
	}
	p.urls[url] = true
	return ProbeResult{Status: 200, Node: "lab1"}
}

// seen is every URL probed.
func (p *okProber) seen() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.urls
}

// flakyConn fails one command with a transport error, like a dropped SSH
// connection.
type flakyConn struct {
	*remotetest.Fake
	failOn string
}

func (c *flakyConn) Run(ctx context.Context, cmd string, stdin io.Reader) (remote.Result, error) {
	if cmd == c.failOn {
		_, _ = c.Fake.Run(ctx, cmd, stdin) // recorded: it was sent
		return remote.Result{}, errors.New("ssh: connection lost")
	}
	return c.Fake.Run(ctx, cmd, stdin)
}

// fakeHolder reports each long-lived connection as cut or not, without a
// network (the simulation has none), and counts the holds.
type fakeHolder struct {
	mu  sync.Mutex
	cut bool
	n   int
}

func (h *fakeHolder) Hold(_ context.Context, url string, _ time.Duration) []LongLived {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n++
	up := LongLived{Kind: KindUpload, URL: url, Bytes: UploadBytes, ExpectedBytes: UploadBytes, Survived: true}
	ka := LongLived{Kind: KindKeepAlive, URL: url, Requests: 60, Survived: true}
	if h.cut {
		up.Bytes, up.Survived, up.Error = 400_000, false, "after 400000 bytes: connection reset by peer"
		ka.Requests, ka.Failed, ka.Survived, ka.Error = 31, 1, false, "request 31: connection reset by peer"
	}
	return []LongLived{up, ka}
}

// rig is the lab's three balancers, simulated (internal/vrrpsim).
type rig struct {
	w      *vrrpsim.World
	layout *vrrp.Layout
	steps  []Step
	prober *okProber
	holder fakeHolder
}

func labLayout(t *testing.T) (*inventory.Inventory, *vrrp.Layout) {
	t.Helper()
	inv, l := testinv.Load(t, "lab.hcl")
	return inv, l
}

func newRig(t *testing.T) *rig {
	t.Helper()
	inv, l := labLayout(t)
	return &rig{w: vrrpsim.New(inv, l), layout: l, prober: &okProber{}}
}

func (r *rig) runner(t *testing.T, abort <-chan struct{}) *Runner {
	t.Helper()
	run, err := New(Options{
		Layout: r.layout, Fleet: r.w.Fleet, Clock: r.w.Clock, Prober: r.prober, Holder: &r.holder, Abort: abort,
		Progress: func(s Step) { r.steps = append(r.steps, s) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// actions are the commands sent to host other than the polls.
func (r *rig) actions(host string) []string {
	out := []string{}
	for _, c := range r.w.Fakes[host].Runs() {
		if strings.HasPrefix(c.Cmd, "ip -o -4 addr") || strings.HasPrefix(c.Cmd, "ip -o addr") || strings.HasPrefix(c.Cmd, "systemctl is-active") || c.Cmd == drain.ReadCommand() {
			continue
		}
		out = append(out, c.Cmd)
	}
	return out
}
