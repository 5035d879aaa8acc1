package ops

import (
	"context"

	"github.com/hactl/hactl/pkg/drain"
	"github.com/hactl/hactl/pkg/fleet"
)

// DrainOptions are `hactl drain` and `hactl undrain`.
type DrainOptions struct {
	Conn    ConnOptions
	Host    string
	Undrain bool
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
	fl, layout, err := s.observe(ctx, o.Conn, clusterHosts(s.Inv, sel))
	if err != nil {
		return nil, err
	}
	defer fl.Close()
	d := drain.New(drain.Options{Layout: layout, Fleet: fl, Event: o.Progress})
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
