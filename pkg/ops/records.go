package ops

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/vrrp"
)

// readRecords reads the cluster record of every reachable host (nil where
// a host has none): from its facts when known holds them (they carry the
// record, so it costs no round trip), else with a command of its own. A
// record that cannot be read is an error naming the host: the run must not
// guess which hosts left or which router ids are taken.
func readRecords(ctx context.Context, hosts []*fleet.Host, known map[string]*facts.Facts) ([]*vrrp.Record, error) {
	recs := make([]*vrrp.Record, len(hosts))
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		if h.Conn == nil {
			continue
		}
		if f := known[h.Name()]; f != nil {
			var err error
			if recs[i], err = vrrp.ParseRecord(f.ClusterRecord); err != nil {
				errs[i] = fmt.Errorf("%s: %w", h.Name(), err)
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := facts.ReadClusterRecord(ctx, h.Conn)
			if err == nil {
				recs[i], err = vrrp.ParseRecord(b)
			}
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", h.Name(), err)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return recs, nil
}

// recordedLayout is the layout as the last apply left it, for verbs that
// look at the fleet without changing its membership (status,
// failover-test, drain): recorded router ids and instance names, and the
// departed hosts the records keep as retired (no others: what was pruned
// is gone). known are facts already gathered (nil: none).
func (s *Session) recordedLayout(ctx context.Context, fl *fleet.Fleet, known map[string]*facts.Facts) (*vrrp.Layout, error) {
	recs, err := readRecords(ctx, fl.Reachable(), known)
	if err != nil {
		return nil, FailedError(fmt.Errorf("read the cluster record: %w", err))
	}
	retired := map[string]bool{}
	for _, r := range recs {
		if r == nil {
			continue
		}
		for _, h := range r.Retired {
			retired[h.Name] = true
		}
	}
	var gone []string
	for _, d := range vrrp.Removed(s.Inv, recs) {
		if !retired[d.Name] {
			gone = append(gone, d.Name)
		}
	}
	return s.layoutOnRecords(recs, gone, "the inventory clashes with the router ids recorded on the hosts")
}

// layoutOnRecords builds the layout on the records read from the hosts;
// a clash between the two is bad input (said with the diagnostics).
func (s *Session) layoutOnRecords(recs []*vrrp.Record, gone []string, clash string) (*vrrp.Layout, error) {
	layout, diags := buildLayout(s.Inv, vrrp.Options{Records: recs, Decommissioned: gone})
	if diags.HasErrors() {
		return nil, UsageError(&DiagError{Err: errors.New(clash), Diags: diags})
	}
	return layout, nil
}
