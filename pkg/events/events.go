// Package events reads the VRRP transitions every host records for itself
// (hactl_events.sh: one JSON line per change in /var/lib/hactl/events) and
// merges them into one timeline per VIP: who held it when, each move with
// its cause, and every interval with no holder or with two. The merge is
// pure (records in, timeline out); fetch.go and watch.go talk to the hosts.
package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Record kinds.
const (
	KindVRRP = "vrrp" // keepalived's state of an instance (notify FIFO)
	KindAddr = "addr" // the VIP appeared on / left the host's interface
)

// Address states of an addr record.
const (
	Present = "present"
	Absent  = "absent"
)

// Record is one line of a host's events.log.
type Record struct {
	Time     time.Time `json:"time"` // the host's clock
	Host     string    `json:"host"`
	Cluster  string    `json:"cluster"`
	Kind     string    `json:"kind"`
	Instance string    `json:"instance"`
	VIP      string    `json:"vip"` // "198.18.0.201/24", dual-stack: "v4/len v6/len"
	From     string    `json:"from"`
	To       string    `json:"to"`
	Priority int       `json:"priority"`
	Cause    string    `json:"cause"`
	Seq      int64     `json:"seq"`
}

// Key is the VIP the record is about: its first prefix.
func (r Record) Key() string {
	k, _, _ := strings.Cut(r.VIP, " ")
	return k
}

// Parse reads a host's log. A line that is not a record (a torn last line
// after a power loss, a hand edit) is skipped and reported as host:line.
func Parse(host string, data []byte) ([]Record, []error) {
	var out []Record
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(line, &r); err != nil || r.Time.IsZero() || r.VIP == "" {
			if err == nil {
				err = fmt.Errorf("no time or vip")
			}
			errs = append(errs, fmt.Errorf("%s: events.log line %d: %w", host, n, err))
			continue
		}
		if r.Host == "" {
			r.Host = host
		}
		out = append(out, r)
	}
	return out, errs
}

// HostLog is what one host gave: its records and how far its clock is
// from ours (Skew = host clock − local clock, ±Uncertainty).
type HostLog struct {
	Host        string
	Records     []Record
	Skew        time.Duration
	Uncertainty time.Duration
	SkewKnown   bool
	Err         error
}

// VIPInfo is what the inventory says about a VIP.
type VIPInfo struct {
	VIP, Cluster, Instance, Master string
}

// Options bound the timeline.
type Options struct {
	Since, Until time.Time
}

// Timeline is `hactl events`'s result.
type Timeline struct {
	Since time.Time     `json:"since"`
	Until time.Time     `json:"until"`
	Hosts []HostSummary `json:"hosts"`
	VIPs  []VIPTimeline `json:"vips"`
}

// HostSummary says what each host contributed and how its clock was read.
type HostSummary struct {
	Name    string `json:"name"`
	Records int    `json:"records"`
	// SkewS is the host clock minus hactl's, in seconds (null: not read);
	// every time in the timeline is corrected by it.
	SkewS        *float64 `json:"skew_s"`
	UncertaintyS *float64 `json:"skew_uncertainty_s"`
	Error        *string  `json:"error"`
}

// VIPTimeline is one VIP's history in the window.
type VIPTimeline struct {
	VIP       string     `json:"vip"`
	Cluster   string     `json:"cluster"`
	Master    string     `json:"master"`
	Moves     []Move     `json:"moves"`
	Intervals []Interval `json:"intervals"`
	// Transitions are the hosts' own records for this VIP, in corrected time.
	Transitions []Transition `json:"transitions"`
}

// Move is the VIP going from one sole holder to another.
type Move struct {
	Time  time.Time `json:"time"`
	From  string    `json:"from"`
	To    string    `json:"to"`
	Cause string    `json:"cause"`
	// GapS: how long no host held it before To did; OverlapS: how long both did.
	GapS     float64 `json:"gap_s"`
	OverlapS float64 `json:"overlap_s"`
}

// Interval states.
const (
	Held   = "held"
	None   = "none"
	Split  = "split"
	Before = "unknown" // before the first record: nothing is known
)

// Interval is a stretch of time with one set of holders.
type Interval struct {
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Holders []string  `json:"holders"`
	State   string    `json:"state"`
	Seconds float64   `json:"seconds"`
	// Open: the interval lasts until now (End is the window's end).
	Open bool `json:"open"`
}

// Transition is one host record in corrected time.
type Transition struct {
	Time     time.Time `json:"time"`
	HostTime time.Time `json:"host_time"`
	Host     string    `json:"host"`
	Kind     string    `json:"kind"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Priority int       `json:"priority"`
	Cause    string    `json:"cause"`
}

// causeWindow: how far from a takeover the previous holder's release record
// may be and still be its cause (a crash's takeover comes 3 × advert_int +
// skew after the release; a drain's before it).
const causeWindow = 15 * time.Second

type rec struct {
	Record
	at time.Time // corrected
}

// Build merges the hosts' logs into per-VIP timelines. vips lists the
// inventory's VIPs (their order is the output's); a VIP only the logs know
// (a departed host's) is added after them.
func Build(logs []HostLog, vips []VIPInfo, o Options) *Timeline {
	t := &Timeline{Since: o.Since.UTC(), Until: o.Until.UTC()}
	byVIP := map[string][]rec{}
	for _, l := range logs {
		hs := HostSummary{Name: l.Host, Records: len(l.Records)}
		if l.SkewKnown {
			s, u := round(l.Skew.Seconds()), round(l.Uncertainty.Seconds())
			hs.SkewS, hs.UncertaintyS = &s, &u
		}
		if l.Err != nil {
			msg := l.Err.Error()
			hs.Error = &msg
		}
		t.Hosts = append(t.Hosts, hs)
		for _, r := range l.Records {
			at := r.Time
			if l.SkewKnown {
				at = at.Add(-l.Skew)
			}
			byVIP[r.Key()] = append(byVIP[r.Key()], rec{Record: r, at: at.UTC()})
		}
	}
	seen := map[string]bool{}
	for _, v := range vips {
		seen[v.VIP] = true
		t.VIPs = append(t.VIPs, build(v, byVIP[v.VIP], o))
	}
	var extra []string
	for k := range byVIP {
		if !seen[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		rs := byVIP[k]
		t.VIPs = append(t.VIPs, build(VIPInfo{VIP: k, Cluster: rs[0].Cluster}, rs, o))
	}
	return t
}

func build(v VIPInfo, rs []rec, o Options) VIPTimeline {
	out := VIPTimeline{VIP: v.VIP, Cluster: v.Cluster, Master: v.Master, Moves: []Move{}, Intervals: []Interval{}, Transitions: []Transition{}}
	sort.SliceStable(rs, func(i, j int) bool {
		if !rs[i].at.Equal(rs[j].at) {
			return rs[i].at.Before(rs[j].at)
		}
		if rs[i].Host == rs[j].Host {
			return rs[i].Seq < rs[j].Seq
		}
		return rs[i].Host < rs[j].Host
	})
	holders := map[string]bool{}
	known := false
	var cur *Interval
	sole := ""
	var last Interval // the interval that closed most recently
	open := func(at time.Time) {
		hs := sortedKeys(holders)
		st := map[int]string{0: None, 1: Held}[len(hs)]
		if len(hs) > 1 {
			st = Split
		}
		cur = &Interval{Start: at, Holders: hs, State: st}
	}
	closeAt := func(at time.Time) {
		if cur == nil {
			return
		}
		cur.End = at
		cur.Seconds = round(at.Sub(cur.Start).Seconds())
		last = *cur
		if !cur.Start.Before(o.Since) || at.After(o.Since) {
			iv := *cur
			if iv.Start.Before(o.Since) {
				iv.Start = o.Since.UTC()
				iv.Seconds = round(at.Sub(iv.Start).Seconds())
			}
			if at.After(o.Since) {
				out.Intervals = append(out.Intervals, iv)
			}
		}
		cur = nil
	}
	for i, r := range rs {
		if r.at.After(o.Until) {
			break
		}
		inWindow := !r.at.Before(o.Since)
		if inWindow {
			out.Transitions = append(out.Transitions, Transition{
				Time: r.at, HostTime: r.Time.UTC(), Host: r.Host, Kind: r.Kind, From: r.From, To: r.To, Priority: r.Priority, Cause: r.Cause,
			})
		}
		if r.Kind != KindAddr {
			continue
		}
		had := holders[r.Host]
		has := r.To == Present
		if known && had == has {
			continue
		}
		if !known {
			known = true
			if has {
				holders[r.Host] = true
			}
			open(r.at)
			if len(holders) == 1 {
				sole = r.Host
			}
			continue
		}
		closeAt(r.at)
		if has {
			holders[r.Host] = true
		} else {
			delete(holders, r.Host)
		}
		open(r.at)
		if len(holders) == 1 {
			to := sortedKeys(holders)[0]
			if sole != "" && sole != to && inWindow {
				m := Move{Time: r.at, From: sole, To: to, Cause: cause(rs, i, sole, to)}
				switch last.State {
				case None:
					m.GapS = last.Seconds
				case Split:
					m.OverlapS = last.Seconds
				}
				out.Moves = append(out.Moves, m)
			}
			sole = to
		}
	}
	if cur != nil {
		end := o.Until.UTC()
		closeAt(end)
		if n := len(out.Intervals); n > 0 && out.Intervals[n-1].End.Equal(end) {
			out.Intervals[n-1].Open = true
		}
	}
	return out
}

// cause explains the move at rs[i] from one host to another: the previous
// holder's own record of why it let go, else the new holder's.
func cause(rs []rec, i int, from, to string) string {
	at := rs[i].at
	var release, take *rec
	for j := range rs {
		r := &rs[j]
		if r.Kind != KindVRRP || r.at.Sub(at) > causeWindow || at.Sub(r.at) > causeWindow {
			continue
		}
		if r.Host == from && r.From == "MASTER" && r.To != "MASTER" && (release == nil || closer(r.at, release.at, at)) {
			release = r
		}
		if r.Host == to && r.To == "MASTER" && (take == nil || closer(r.at, take.at, at)) {
			take = r
		}
	}
	switch {
	case release != nil && release.Cause == "preempted" && take != nil:
		return fmt.Sprintf("preempted by %s (priority %d)", to, take.Priority)
	case release != nil && release.Cause != "":
		return release.Cause + " on " + from
	case take != nil && take.Cause != "":
		return take.Cause + " by " + to
	}
	return "unknown"
}

func closer(a, b, to time.Time) bool { return absDur(a.Sub(to)) < absDur(b.Sub(to)) }

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func round(s float64) float64 { return float64(int64(s*1000+0.5*sign(s))) / 1000 }

func sign(s float64) float64 {
	if s < 0 {
		return -1
	}
	return 1
}
