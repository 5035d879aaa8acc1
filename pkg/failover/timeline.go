package failover

import (
	"math"
	"sort"
	"time"

	"github.com/hactl/hactl/pkg/drain"
	"github.com/hactl/hactl/pkg/facts"
)

// Timeline is what one scenario saw over time, for a person to look at
// (hactl failover-test --report): every VIP sample, every HTTP probe and the
// scenario's events. Times are seconds relative to the disruptive command
// (the event "disrupt"), or to the first record when there was none; every
// instant comes from the engine's clock, so a run in virtual time gives the
// same timeline every time.
type Timeline struct {
	// Hosts are the VIP's cluster, in fleet order: one lane each.
	Hosts   []string         `json:"hosts"`
	Samples []TimelineSample `json:"samples"`
	Probes  []TimelineProbe  `json:"probes"`
	Events  []TimelineEvent  `json:"events"`
}

// TimelineSample is one poll of the VIP's placement.
type TimelineSample struct {
	T       float64  `json:"t_s"`
	Holders []string `json:"holders"`
	// Blind: a host could not be asked, Holders may be incomplete.
	Blind bool `json:"blind,omitempty"`
}

// TimelineProbe is one HTTP request to the VIP, at its send time.
type TimelineProbe struct {
	T      float64 `json:"t_s"`
	OK     bool    `json:"ok"`
	Status int     `json:"status"`          // 0: no answer
	Node   string  `json:"node,omitempty"`  // X-Hactl-Node of the answer
	Error  string  `json:"error,omitempty"` // why no answer came
	// URL is the address probed (a dual-stack instance has two).
	URL string `json:"url"`
}

// Event kinds of a timeline.
const (
	// EventDisrupt: the disruptive command was issued (t0 of the drift).
	EventDisrupt = "disrupt"
	// EventTakeover: the first sample with the VIP on the first backup alone.
	EventTakeover = "takeover"
	// EventRestore: the command that undoes the disruption was issued, or
	// (kill) systemd had keepalived active again.
	EventRestore = "restore"
	// EventFailback: the first sample with the VIP home on its master alone.
	EventFailback = "failback"
	// EventRecovered: nginx active again (mode nginx: the check script restarted it).
	EventRecovered = "recovered"
)

// TimelineEvent is one moment of a scenario.
type TimelineEvent struct {
	T    float64 `json:"t_s"`
	Kind string  `json:"kind"`
}

// DisruptCommand is the command a mode's "disrupt" event stands for, as the
// report shows it ("" for an unknown mode).
func DisruptCommand(r Result) string {
	switch m := r.Mode; m {
	case ModeStop:
		return CmdStopKeepalived()
	case ModeKill:
		return CmdFreezeKeepalived() + "; " + CmdKillKeepalived()
	case ModeNginx, ModeNginxDead:
		return CmdStopNginx()
	case ModeDrain:
		if r.DrainStep < 0 {
			return drain.WriteCommand(r.DrainStep)
		}
		return drain.WriteCommand(facts.DrainLow)
	}
	return ""
}

// recorder keeps a scenario's events with their absolute instants until the
// timeline is built; only the scenario's goroutine uses it.
type recorder struct {
	events []struct {
		at   time.Time
		kind string
	}
}

// mark records an event once: the first instant of a kind is the one that
// counts (a takeover seen again in a later wait is not a second takeover).
func (rc *recorder) mark(kind string, at time.Time) {
	for _, e := range rc.events {
		if e.kind == kind {
			return
		}
	}
	rc.events = append(rc.events, struct {
		at   time.Time
		kind string
	}{at, kind})
}

// timeline builds the record from the watch's samples and probes.
func (s *scen) timeline() *Timeline {
	w := s.w
	tl := &Timeline{Hosts: []string{}, Samples: []TimelineSample{}, Probes: []TimelineProbe{}, Events: []TimelineEvent{}}
	for _, h := range w.hosts {
		tl.Hosts = append(tl.Hosts, h.Name())
	}
	var zero time.Time
	for _, e := range s.rec.events {
		if e.kind == EventDisrupt {
			zero = e.at
		}
	}
	if zero.IsZero() {
		for _, t := range []time.Time{firstSample(w.samples), firstProbe(w.probes)} {
			if !t.IsZero() && (zero.IsZero() || t.Before(zero)) {
				zero = t
			}
		}
	}
	sort.SliceStable(w.probes, func(i, j int) bool { return w.probes[i].sent.Before(w.probes[j].sent) })
	rel := func(t time.Time) float64 { return math.Round(t.Sub(zero).Seconds()*1000) / 1000 }
	for _, x := range w.samples {
		tl.Samples = append(tl.Samples, TimelineSample{T: rel(x.at), Holders: append([]string{}, x.holders...), Blind: x.blind})
	}
	for _, p := range w.probes {
		tp := TimelineProbe{T: rel(p.sent), OK: p.res.OK(), Status: p.res.Status, Node: p.res.Node}
		if p.url >= 0 && p.url < len(w.urls) {
			tp.URL = w.urls[p.url]
		}
		if p.res.Err != nil {
			tp.Error = p.res.Err.Error()
		}
		tl.Probes = append(tl.Probes, tp)
	}
	for _, e := range s.rec.events {
		tl.Events = append(tl.Events, TimelineEvent{T: rel(e.at), Kind: e.kind})
	}
	return tl
}

func firstSample(ss []sample) time.Time {
	if len(ss) == 0 {
		return time.Time{}
	}
	return ss[0].at
}

func firstProbe(ps []probeRec) time.Time {
	if len(ps) == 0 {
		return time.Time{}
	}
	return ps[0].sent
}
