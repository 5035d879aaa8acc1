package ops

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"

	"github.com/hactl/hactl/pkg/drain"
	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/render"
	"github.com/hactl/hactl/pkg/verify"
	"github.com/hactl/hactl/pkg/vrrp"
)

// StatusOptions are `hactl status`.
type StatusOptions struct {
	Conn  ConnOptions
	Limit []string
}

// HostStatus is one host as status found it; what an unreachable host
// could not tell (services, enabled, drift, drained) is nil.
type HostStatus struct {
	Name       string
	Reachable  bool
	Keepalived *string
	Nginx      *string
	Enabled    *bool
	Drift      []string
	Drained    *bool
	// ConnectionDrain is what a running connection drain keeps or forwards
	// on the host (pkg/drain); nil when none runs.
	ConnectionDrain *string
	// Err is why the host could not be read; Unreachable says that it
	// could not be connected to at all.
	Err         error
	Unreachable bool
}

// StatusResult is `hactl status`.
type StatusResult struct {
	VIPs  []verify.VIPState
	Hosts []HostStatus
	// Sites are the clusters' sites: certificate expiry and whether every
	// host serves them alike (empty without sites).
	Sites []SiteStatus
	// Err names every unreachable host and misplaced VIP.
	Err error
	// RoundTrips is what status cost each host in SSH sessions (-v).
	RoundTrips string
}

// Status asks every host of the (limited) clusters, once each, where the
// VIPs are, how the services run and what drifted.
func Status(ctx context.Context, s *Session, o StatusOptions) (*StatusResult, error) {
	r, err := s.renderer()
	if err != nil {
		return nil, FailedError(err)
	}
	limited, err := limitLayout(s.Inv, s.Layout, o.Limit)
	if err != nil {
		return nil, err
	}
	fl, err := s.connect(ctx, o.Conn, layoutHosts(s.Inv, limited))
	if err != nil {
		return nil, err
	}
	defer fl.Close()
	res, err := s.gatherStatus(ctx, r, fl)
	if err != nil {
		return nil, err
	}
	res.Sites = s.siteStatuses(res.Hosts, s.now())
	var problems []string
	for _, h := range res.Hosts {
		if !h.Reachable {
			problems = append(problems, h.Name+" unreachable")
		}
	}
	if !verify.AllOK(res.VIPs) {
		problems = append(problems, verify.Problems(res.VIPs))
	}
	if len(problems) > 0 {
		res.Err = errors.New(strings.Join(problems, "; "))
	}
	res.RoundTrips = fl.RoundTrips()
	return res, nil
}

// gatherStatus asks every host once: its facts carry the cluster record,
// addresses, keepalived's states, service states and file checksums, so
// status costs one round trip per host. The layout is decided on the
// records once every host answered, then each host is judged.
func (s *Session) gatherStatus(ctx context.Context, r *render.Renderer, fl *fleet.Fleet) (*StatusResult, error) {
	res := &StatusResult{Hosts: make([]HostStatus, len(fl.Hosts))}
	obs := make([]verify.Observation, len(fl.Hosts))
	got := make([]*facts.Facts, len(fl.Hosts))
	var wg sync.WaitGroup
	for i, h := range fl.Hosts {
		obs[i].Host = h.Name()
		if h.Conn == nil {
			res.Hosts[i] = HostStatus{Name: h.Name(), Err: h.Err, Unreachable: true}
			obs[i].Err = h.Err
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], res.Hosts[i].Err = s.statusFacts(ctx, r, h)
		}()
	}
	wg.Wait()
	known := map[string]*facts.Facts{}
	for i, h := range fl.Hosts {
		if got[i] != nil {
			known[h.Name()] = got[i]
		}
	}
	// A host whose facts failed has its record read on its own, as before.
	layout, err := s.recordedLayout(ctx, fl, known)
	if err != nil {
		return nil, err
	}
	for i, h := range fl.Hosts {
		if h.Conn == nil {
			continue
		}
		if err := res.Hosts[i].Err; err != nil {
			res.Hosts[i] = HostStatus{Name: h.Name(), Err: err}
			obs[i].Err = err
			continue
		}
		res.Hosts[i] = s.hostStatus(layout, r, h, got[i], &obs[i])
	}
	res.VIPs = placement(s.Inv, layout, obs)
	return res, nil
}

// statusFacts gathers what status needs of one host in one round trip.
func (s *Session) statusFacts(ctx context.Context, r *render.Renderer, h *fleet.Host) (*facts.Facts, error) {
	paths, err := r.PathsOf(s.Inv, h.Name())
	if err != nil {
		return nil, err
	}
	return facts.Gather(ctx, h.Conn, facts.Request{Paths: paths, Services: []string{"keepalived", "nginx"}, Described: drain.ConnUnit, VRRP: verify.VRRPCommand, Cache: facts.CacheDir})
}

// hostStatus judges one reachable host on its facts: its status, and its
// observation for the VIPs' verdict.
func (s *Session) hostStatus(layout *vrrp.Layout, r *render.Renderer, h *fleet.Host, f *facts.Facts, ob *verify.Observation) HostStatus {
	hs := HostStatus{Name: h.Name()}
	// Rendered once, for the keepalived the host runs (track_file or not).
	files, err := r.HostWith(s.Inv, layout, h.Name(), RenderOptions(f))
	if err != nil {
		hs.Err, ob.Err = err, err
		return hs
	}
	hs.Reachable = true
	drained := f.Drained()
	hs.Drained, ob.Drained = &drained, drained
	if cd := drain.ParseActiveConn(f.Described); cd != "" {
		hs.ConnectionDrain = &cd
	}
	ka, ng := f.Services["keepalived"], f.Services["nginx"]
	enabled := ka.Enabled == "enabled" && ng.Enabled == "enabled"
	hs.Keepalived, hs.Nginx, hs.Enabled = &ka.Active, &ng.Active, &enabled
	hs.Drift = []string{}
	for _, want := range files {
		// The template module's own rule: what status calls drift is
		// exactly what the next apply replaces or fixes.
		if d := playbook.Drift(want, f.Files[want.Path]); d != playbook.DriftNone {
			hs.Drift = append(hs.Drift, want.Path+" ("+d+")")
		}
	}
	sort.Strings(hs.Drift)
	hs.Drift = append(hs.Drift, playbook.PendingDrift(f)...)
	ob.Addrs = f.Addrs[h.Host.Interface]
	if ka.Active == "active" {
		// A stopped daemon claims nothing, whatever it last logged.
		ob.VRRP = verify.ParseVRRP(f.VRRP)
	}
	return hs
}
