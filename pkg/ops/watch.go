package ops

import (
	"context"
	"time"

	"github.com/hactl/hactl/pkg/events"
)

// WatchSink shows `status --watch` as it happens. Watch calls it from one
// goroutine at a time.
type WatchSink interface {
	// Redraws says whether the sink shows the whole status again on every
	// record (a terminal); only then does Watch gather it.
	Redraws() bool
	// Status is the fleet's status now with the latest records, newest
	// last: once at the start and after every record, when Redraws.
	Status(res *StatusResult, recent []events.Record)
	// Record is one transition a host recorded, with when hactl got it.
	Record(rec events.Record, received time.Time)
	// Lost is a host hactl could not follow (it keeps trying).
	Lost(host string, err error)
}

// watchRecent is how many records a redraw shows.
const watchRecent = 10

// Watch follows the hosts of the (limited) clusters until ctx ends (the
// interrupt): every transition they record goes to sink as it happens.
// Ending by the interrupt is no error; the run's exit code says it.
func Watch(ctx context.Context, s *Session, o StatusOptions, sink WatchSink) error {
	r, err := s.renderer()
	if err != nil {
		return FailedError(err)
	}
	limited, err := limitLayout(s.Inv, s.Layout, o.Limit)
	if err != nil {
		return err
	}
	// The records are read up front so that a clash with the inventory is
	// an error before anything is shown; each redraw then decides the
	// layout on the records its own facts carry.
	fl, _, err := s.observe(ctx, o.Conn, layoutHosts(s.Inv, limited))
	if err != nil {
		return err
	}
	defer fl.Close()
	var recent []events.Record
	redraw := func() {
		res, err := s.gatherStatus(ctx, r, fl)
		if err != nil || ctx.Err() != nil {
			return // ending, or the next record redraws
		}
		sink.Status(res, recent)
	}
	if sink.Redraws() {
		redraw()
	}
	events.Watch(ctx, fl.Hosts, func(rec events.Record) {
		if !sink.Redraws() {
			sink.Record(rec, time.Now().UTC())
			return
		}
		recent = append(recent, rec)
		if len(recent) > watchRecent {
			recent = recent[len(recent)-watchRecent:]
		}
		redraw()
	}, sink.Lost)
	return nil
}
