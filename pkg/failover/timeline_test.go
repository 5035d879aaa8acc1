package failover

import (
	"context"
	"math"
	"reflect"
	"testing"
)

func TestTimelineOfStop(t *testing.T) {
	r := newRig(t)
	rep, err := run1(t, r, context.Background(), nil, ModeStop)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Scenarios[0]
	tl := res.Timeline
	if tl == nil {
		t.Fatal("no timeline")
	}
	if want := []string{"lab1", "lab2", "lab3"}; !reflect.DeepEqual(tl.Hosts, want) {
		t.Errorf("hosts %v", tl.Hosts)
	}
	// The events are the figures of the result, on one time axis from t0.
	want := []TimelineEvent{
		{T: 0, Kind: EventDisrupt},
		{T: res.DriftS, Kind: EventTakeover},
	}
	if len(tl.Events) != 4 || !reflect.DeepEqual(tl.Events[:2], want) {
		t.Fatalf("events %+v", tl.Events)
	}
	restore, failback := tl.Events[2], tl.Events[3]
	if restore.Kind != EventRestore || failback.Kind != EventFailback || math.Abs(failback.T-restore.T-res.FailbackS) > 1e-9 {
		t.Errorf("events %+v, fail-back %v", tl.Events, res.FailbackS)
	}
	if len(tl.Probes) != res.HTTPRequests {
		t.Errorf("%d probes in the timeline, %d requests", len(tl.Probes), res.HTTPRequests)
	}
	for i, p := range tl.Probes {
		if !p.OK || p.Node != "lab1" || (i > 0 && p.T < tl.Probes[i-1].T) {
			t.Fatalf("probe %d: %+v", i, p)
		}
	}
	// One sample per probe (a probe is sent at every tick); the VIP is on
	// lab1 before the takeover, on lab2 alone at it, on lab1 alone at the end.
	if len(tl.Samples) != len(tl.Probes) {
		t.Errorf("%d samples, %d probes", len(tl.Samples), len(tl.Probes))
	}
	at := func(ts float64) []string {
		for _, s := range tl.Samples {
			if s.T == ts {
				return s.Holders
			}
		}
		return nil
	}
	if got := at(res.DriftS); !reflect.DeepEqual(got, []string{"lab2"}) {
		t.Errorf("holders at the takeover %v", got)
	}
	if got := at(failback.T); !reflect.DeepEqual(got, []string{"lab1"}) {
		t.Errorf("holders at the fail-back %v", got)
	}
	// Sampling starts at t0 (the stop runs concurrently with it).
	if first := tl.Samples[0]; first.T != 0 {
		t.Errorf("first sample %+v", first)
	}
}

func TestTimelineWithoutDisruptStartsAtFirstRecord(t *testing.T) {
	r := newRig(t)
	r.w.FailCommand("lab1", CmdMaskNginx(), 1)
	rep, _ := run1(t, r, context.Background(), nil, ModeNginxDead)
	tl := rep.Scenarios[0].Timeline
	if tl == nil || len(tl.Events) != 0 || len(tl.Samples) != 0 || len(tl.Probes) != 0 {
		t.Fatalf("timeline %+v", tl)
	}
}
