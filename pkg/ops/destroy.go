package ops

import (
	"context"
	"fmt"
	"time"

	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/prune"
)

// DestroyOptions are `hactl destroy` and `hactl plan --destroy` (Dry).
type DestroyOptions struct {
	Conn  ConnOptions
	Limit []string // host or cluster names
	Purge bool
	Dry   bool
	// Now stamps backups; nil: time.Now.
	Now func() time.Time
}

// DestroyResult is what destroy did, or would do. A host's Changes (Dry)
// are the teardown's steps.
type DestroyResult struct {
	Dry   bool
	Hosts []HostResult
	// Plan (Dry) is per host what would be removed.
	Plan map[string][]string
	Err  error
}

// Destroy takes the selected hosts out of service one at a time, the
// hosts that keep running taking their VIPs.
func Destroy(ctx context.Context, s *Session, o DestroyOptions, ev Events) (*DestroyResult, error) {
	sel, err := SelectHosts(s.Inv, o.Limit)
	if err != nil {
		return nil, err
	}
	fl, err := s.connect(ctx, o.Conn, clusterHosts(s.Inv, sel))
	if err != nil {
		return nil, err
	}
	defer fl.Close()
	opts := prune.Options{Stamp: backupStamp(o.Now), Event: ev.Event, Restore: true, Purge: o.Purge}
	plans, errs := planTeardowns(ctx, fl, opts)
	res := &DestroyResult{Dry: o.Dry}
	if o.Dry {
		res.Plan = map[string][]string{}
	}
	failed := 0
	for _, h := range sel {
		hr := s.destroyHost(ctx, h, fl, plans, errs[h.Name], opts, ev, res)
		if !hr.OK() {
			failed++
		}
		res.Hosts = append(res.Hosts, hr)
		if !hr.OK() && !o.Dry {
			// The next host's VIPs would have nowhere sure to go.
			break
		}
	}
	if failed > 0 {
		res.Err = fmt.Errorf("%d of %d host(s) failed", failed, len(sel))
	}
	return res, nil
}

// planTeardowns reads every host of the touched clusters: the hosts that
// keep running are where the destroyed hosts' VIPs go.
func planTeardowns(ctx context.Context, fl *fleet.Fleet, opts prune.Options) (map[string]*prune.Teardown, map[string]error) {
	plans := map[string]*prune.Teardown{}
	errs := map[string]error{}
	for _, h := range fl.Hosts {
		if h.Conn == nil {
			errs[h.Name()] = h.Err
			continue
		}
		t, err := prune.PlanTeardown(ctx, h.Conn, opts)
		if err != nil {
			errs[h.Name()] = fmt.Errorf("%s: %w", h.Name(), err)
			continue
		}
		plans[h.Name()] = t
	}
	return plans, errs
}

// destroyHost tears one host down (Dry: records what would be removed).
func (s *Session) destroyHost(ctx context.Context, h *inventory.Host, fl *fleet.Fleet, plans map[string]*prune.Teardown,
	err error, opts prune.Options, ev Events, res *DestroyResult) HostResult {
	hr := HostResult{Name: h.Name, Result: ResultOK, Reachable: true}
	t := plans[h.Name]
	cluster := s.Inv.ClusterOf(h.Name).Name
	switch {
	case err != nil:
		hr.Result, hr.Err = ResultFailed, err
		if fl.Get(h.Name) == nil || fl.Get(h.Name).Conn == nil {
			hr.Result, hr.Reachable = ResultUnreachable, false
		}
	case res.Dry:
		res.Plan[h.Name] = append([]string{}, t.Changes()...)
		n := len(res.Plan[h.Name])
		hr.Changed = &n
		if n > 0 {
			hr.Result = ResultChanged
		}
	default:
		// Where this host's VIPs go: the hosts of its cluster that are
		// not destroyed yet and run keepalived.
		var others []*fleet.Host
		for _, x := range fl.Reachable() {
			if x.Cluster.Name == cluster && x.Name() != h.Name && plans[x.Name()] != nil && plans[x.Name()].Stop {
				others = append(others, x)
			}
		}
		opts.Bound = crashBound(s.Layout, cluster)
		opts.VIPs = clusterVIPs(s.Layout, cluster)
		n, err := t.Run(ctx, fl.Get(h.Name), others, opts)
		hr.Changed = &n
		if n > 0 {
			hr.Result = ResultChanged
		}
		if err != nil {
			hr.Result, hr.Err = ResultFailed, err
			ev.Event(playbook.Event{Host: h.Name, Step: "decommission", Status: "failed", Summary: err.Error()})
		}
		t.Stop = false // it no longer takes VIPs
	}
	return hr
}
