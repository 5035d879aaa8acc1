package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hactl/hactl/pkg/events"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/vrrp"
)

// TimelineOptions are `hactl events`.
type TimelineOptions struct {
	Conn  ConnOptions
	Limit []string
	// Since is how far back the timeline reaches.
	Since time.Duration
	// Now is the end of the timeline and the clock the hosts' clocks are
	// read against; nil: time.Now.
	Now func() time.Time
}

// TimelineResult is `hactl events`.
type TimelineResult struct {
	Timeline *events.Timeline
	// Err names every host whose records could not be read.
	Err error
}

// Timeline reads the transitions every host of the (limited) clusters
// recorded itself and merges them into one timeline per VIP, each host's
// times corrected by its clock's skew against this machine's.
func Timeline(ctx context.Context, s *Session, o TimelineOptions) (*TimelineResult, error) {
	if o.Since <= 0 {
		return nil, UsageError(fmt.Errorf("--since must be a positive duration (e.g. 10m, 24h), not %s", o.Since))
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	layout, fl, err := s.connectLimited(ctx, o.Conn, o.Limit)
	if err != nil {
		return nil, err
	}
	defer fl.Close()
	var vips []events.VIPInfo
	for _, in := range layout.Instances {
		vips = append(vips, events.VIPInfo{VIP: in.VIP.String(), Cluster: in.Cluster, Instance: in.Name, Master: in.Master})
	}
	end := now()
	logs := events.Collect(ctx, fl.Hosts, events.Clock(now))
	if err := stopped(ctx); err != nil {
		return nil, err
	}
	tl := events.Build(logs, vips, events.Options{Since: end.Add(-o.Since), Until: end})
	var problems []string
	for _, h := range tl.Hosts {
		if h.Error != nil {
			problems = append(problems, *h.Error)
		}
	}
	res := &TimelineResult{Timeline: tl}
	if len(problems) > 0 {
		res.Err = errors.New(strings.Join(problems, "; "))
	}
	return res, nil
}

// connectLimited connects to every host of the clusters a --limit touches
// (VIP placement is judged per cluster, as status does) and returns their
// layout as the inventory gives it. The caller closes the fleet.
func (s *Session) connectLimited(ctx context.Context, o ConnOptions, limit []string) (*vrrp.Layout, *fleet.Fleet, error) {
	layout, err := limitLayout(s.Inv, s.Layout, limit)
	if err != nil {
		return nil, nil, err
	}
	fl, err := s.connect(ctx, o, layoutHosts(s.Inv, layout))
	if err != nil {
		return nil, nil, err
	}
	return layout, fl, nil
}
