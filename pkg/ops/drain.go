package ops

import (
	"context"
	"time"

	"github.com/hactl/hactl/pkg/drain"
	"github.com/hactl/hactl/pkg/fleet"
)

// DrainOptions are `hactl drain` and `hactl undrain`.
type DrainOptions struct {
	Conn    ConnOptions
	Host    string
	Undrain bool
	// Grace keeps a VIP's old holder serving its open connections this long
	// after the VIP moved; GraceSet: --grace was given and overrides the
	// cluster's drain_grace.
	Grace    time.Duration
	GraceSet bool
	// Progress receives a line at every step; nil discards them.
	Progress func(string)
}

// Drain takes a host out of service (Undrain: brings it back) without
// failed requests, on the layout its cluster's records keep.
func Drain(ctx context.Context, s *Session, o DrainOptions) (*drain.Result, error) {
	sel, err := fleet.Select(s.Inv, []string{o.Host})
	if err != nil {
		return nil, UsageError(err)
	}
	grace, err := drain.GraceFor(s.Inv, o.Host, o.Grace, o.GraceSet)
	if err != nil {
		return nil, UsageError(err)
	}
	fl, layout, err := s.observe(ctx, o.Conn, clusterHosts(s.Inv, sel))
	if err != nil {
		return nil, err
	}
	defer fl.Close()
	d := drain.New(drain.Options{Layout: layout, Fleet: fl, Grace: grace, Event: o.Progress})
	var res *drain.Result
	if o.Undrain {
		res, err = d.Undrain(ctx, o.Host)
	} else {
		res, err = d.Drain(ctx, o.Host)
	}
	if err != nil {
		return nil, FailedError(err)
	}
	return res, nil
}
