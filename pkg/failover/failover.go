// Package failover runs hactl's failover scenarios against a live fleet: it
// disrupts one master (graceful stop, crash, nginx dying and coming back, nginx
// staying dead), watches over the open SSH connections where the master's VIP
// goes, probes the VIP over HTTP from the control machine, compares the drift
// with the layout's theoretical bound, and always puts everything back.
//
// The package never prints: progress goes to Options.Progress, results come
// back as a Report.
package failover

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/hactl/hactl/pkg/clock"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/vrrp"
)

// Mode is one kind of disruption.
type Mode string

// Modes (`--mode`).
const (
	// ModeStop: `systemctl stop keepalived`, a graceful stop with a priority-0 advert.
	ModeStop Mode = "stop"
	// ModeKill: a crash; every keepalived process frozen, then killed.
	ModeKill Mode = "kill"
	// ModeNginx: nginx stops; the check script restarts it and the VIP stays.
	ModeNginx Mode = "nginx"
	// ModeNginxDead: nginx masked and stopped; the check fails and the VIP moves.
	ModeNginxDead Mode = "nginx-dead"
	// ModeDrain: `hactl drain` then undrain (drain file drain.Step, -254, 0); the
	// VIP moves and comes home with overlap, so it passes only with 0
	// failed requests.
	ModeDrain Mode = "drain"
	// ModeAll is the five above, in that order.
	ModeAll Mode = "all"
)

// Sentinel errors; the wrapped errors name the details.
var (
	ErrUnknownMode    = errors.New("unknown failover mode")
	ErrUnknownNode    = errors.New("unknown node")
	ErrNoBackup       = errors.New("node has no backup to fail over to")
	ErrNotReady       = errors.New("fleet is not healthy")
	ErrInterrupted    = errors.New("interrupted")
	ErrNotRestored    = errors.New("fleet not restored")
	ErrRestoreAborted = errors.New("restoration aborted")
)

// Modes are the modes one by one, in the order ModeAll runs them: the one
// list every --mode help text, completion and check is made from.
func Modes() []Mode { return []Mode{ModeStop, ModeKill, ModeNginx, ModeNginxDead, ModeDrain} }

// ModeNames are the --mode values: Modes, then "all".
func ModeNames() []string {
	var out []string
	for _, m := range Modes() {
		out = append(out, string(m))
	}
	return append(out, string(ModeAll))
}

// ParseModes turns a --mode value into the modes to run.
func ParseModes(s string) ([]Mode, error) {
	if Mode(s) == ModeAll {
		return Modes(), nil
	}
	for _, m := range Modes() {
		if Mode(s) == m {
			return []Mode{m}, nil
		}
	}
	names := ModeNames()
	return nil, fmt.Errorf("%w %q: use %s or %s", ErrUnknownMode, s, strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
}

// Scenario is one mode on one node.
type Scenario struct {
	Node string
	Mode Mode
}

// Plan lists the scenarios: every mode on node, or on every master that has
// a backup (in layout order) when node is empty.
func Plan(l *vrrp.Layout, node string, modes []Mode) ([]Scenario, error) {
	var nodes []string
	if node != "" {
		in := l.MasterOf(node)
		if in == nil {
			return nil, fmt.Errorf("%w %q: not in the inventory", ErrUnknownNode, node)
		}
		if len(in.Members) < 2 {
			return nil, fmt.Errorf("%s: %w (cluster %q has one host)", node, ErrNoBackup, in.Cluster)
		}
		nodes = []string{node}
	} else {
		for _, in := range l.Instances {
			if len(in.Members) >= 2 {
				nodes = append(nodes, in.Master)
			}
		}
		if len(nodes) == 0 {
			return nil, fmt.Errorf("%w: every cluster has a single host", ErrNoBackup)
		}
	}
	var out []Scenario
	for _, n := range nodes {
		for _, m := range modes {
			out = append(out, Scenario{Node: n, Mode: m})
		}
	}
	return out, nil
}

// Result is one scenario's measurements (the JSON shape documented in README.md; keys
// may grow). Durations are seconds rounded to hundredths.
type Result struct {
	Node    string  `json:"node"`
	Mode    Mode    `json:"mode"`
	VIP     string  `json:"vip"`
	VIP6    string  `json:"vip6,omitempty"` // a dual-stack instance's IPv6 VIP, watched and probed with VIP
	MovedTo string  `json:"moved_to"`
	DriftS  float64 `json:"drift_s"`
	BoundS  float64 `json:"bound_s"`
	// MarginS is what the drift may exceed the bound by and still pass.
	MarginS      float64        `json:"margin_s"`
	HTTPRequests int            `json:"http_requests"`
	HTTPFailed   int            `json:"http_failed"`
	HTTPGapS     float64        `json:"http_gap_s"`
	HTTPNodes    map[string]int `json:"http_nodes,omitempty"` // answers per X-Hactl-Node
	FailbackS    float64        `json:"failback_s"`
	// The fail-back's own share of the probes: those sent from the
	// restore (or keepalived's restart) on.
	FailbackHTTPFailed int      `json:"failback_http_failed"`
	FailbackHTTPGapS   float64  `json:"failback_http_gap_s"`
	Restored           bool     `json:"restored"`
	Pass               bool     `json:"pass"`
	Error              string   `json:"error,omitempty"`
	Notes              []string `json:"notes,omitempty"`
	// DrainStep is the drain scenario's first drain file value (drain.Step).
	DrainStep int `json:"drain_step,omitempty"`
	// LongLived is the drain scenario's long-lived connections: an upload
	// and a keep-alive client through the drain, then through the undrain.
	LongLived []LongLived `json:"long_lived,omitempty"`
	// Timeline is every sample, probe and event of the scenario (absent when
	// the scenario could not start).
	Timeline *Timeline `json:"timeline,omitempty"`
}

// Report is a whole run.
type Report struct {
	Scenarios []Result `json:"scenarios"`
	// Left is what could not be put back (empty when all was restored).
	Left        []string `json:"left,omitempty"`
	Interrupted bool     `json:"interrupted,omitempty"`
	Aborted     bool     `json:"restore_aborted,omitempty"`
}

// OK reports whether every scenario passed and nothing is left undone.
func (r Report) OK() bool {
	if len(r.Left) > 0 || r.Interrupted || r.Aborted {
		return false
	}
	for _, s := range r.Scenarios {
		if !s.Pass || !s.Restored {
			return false
		}
	}
	return true
}

// Step is a progress message of one scenario (Node and Mode empty for
// messages about the whole run).
type Step struct {
	Node string
	Mode Mode
	Msg  string
}

func (s Step) String() string {
	if s.Node == "" {
		return s.Msg
	}
	return fmt.Sprintf("%s %s: %s", s.Node, s.Mode, s.Msg)
}

// Defaults of Options.
const (
	// DefaultPoll is the period of both the VIP poll and the HTTP probes:
	// ten samples per second resolve the sub-second graceful handover (0.6 s).
	DefaultPoll = 100 * time.Millisecond
	// DefaultMargin is added to every bound: one poll period, plus the SSH
	// round trips between the moment the disruptive command is issued (t0)
	// and the moment it takes effect, and between the VIP appearing and the
	// sample that sees it (tens of ms each on a LAN, more over a bastion).
	DefaultMargin = 500 * time.Millisecond
	// DefaultCheckScriptMargin is added to the nginx-dead bound:
	// check_nginx.sh tries to start nginx and waits up to 1 s (10 × 0.1 s)
	// for it before it reports the failure that counts.
	DefaultCheckScriptMargin = time.Second
	// DefaultFailbackTimeout bounds waiting for a VIP to come home. Preemption
	// takes one master-down interval after keepalived is back (3.3–3.7 s in the
	// lab); after a crash systemd first waits RestartSec (crash bound + ~1 s).
	DefaultFailbackTimeout = 30 * time.Second
	// DefaultRestoreTimeout bounds restoration after a failure or interrupt.
	DefaultRestoreTimeout = 60 * time.Second
)

// Options configure a Runner. Layout and Fleet are required; zero values
// elsewhere mean the defaults above.
type Options struct {
	Layout *vrrp.Layout
	Fleet  *fleet.Fleet

	Clock    clock.Clock // clock.Real
	Observer Observer    // SSHObserver
	Prober   Prober      // NewHTTPProber(DefaultProbeTimeout)
	Holder   Holder      // TCPHolder{}: the drain scenario's long-lived connections

	Poll              time.Duration
	Margin            time.Duration
	CheckScriptMargin time.Duration
	// Settle is how long the VIP may sit on two hosts at once before that
	// counts as a split. Zero: the cluster's advert_int + 0.5 s, because a
	// holder that is preempted drops the VIP when it hears the first
	// higher-priority advert (one advert_int at most), and the two hosts'
	// samples are not taken at the same instant.
	Settle          time.Duration
	FailbackTimeout time.Duration
	RestoreTimeout  time.Duration

	// Abort is closed on the second interrupt: restoration stops at once and
	// the report lists what is left. The first interrupt is ctx's cancellation.
	Abort <-chan struct{}
	// Progress receives a message at every step; nil discards them.
	Progress func(Step)
}

// Runner runs scenarios; it holds no state between calls of Run.
type Runner struct {
	o Options
}

// New checks opts and fills in defaults.
func New(o Options) (*Runner, error) {
	if o.Layout == nil || o.Fleet == nil {
		return nil, errors.New("failover: Layout and Fleet are required")
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Observer == nil {
		o.Observer = SSHObserver{}
	}
	if o.Prober == nil {
		o.Prober = NewHTTPProber(DefaultProbeTimeout)
	}
	if o.Holder == nil {
		o.Holder = TCPHolder{}
	}
	o.Poll = orDefault(o.Poll, DefaultPoll)
	o.Margin = orDefault(o.Margin, DefaultMargin)
	o.CheckScriptMargin = orDefault(o.CheckScriptMargin, DefaultCheckScriptMargin)
	o.FailbackTimeout = orDefault(o.FailbackTimeout, DefaultFailbackTimeout)
	o.RestoreTimeout = orDefault(o.RestoreTimeout, DefaultRestoreTimeout)
	if o.Progress == nil {
		o.Progress = func(Step) {}
	}
	return &Runner{o: o}, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Preflight reads the fleet's Status and returns ErrNotReady unless it is OK:
// a failover test on a fleet that is already degraded measures nothing and
// may take the last copy of a VIP down.
func (r *Runner) Preflight(ctx context.Context) (Status, error) {
	st := r.Status(ctx)
	if !st.OK() {
		return st, fmt.Errorf("%w: %s", ErrNotReady, strings.Join(st.Reasons(), "; "))
	}
	return st, nil
}

// Run runs the scenarios one after another. Each one starts only from a
// healthy fleet and ends with restoration; a scenario that could not be
// restored, an interrupt, or an aborted restoration stops the run. The
// returned error wraps ErrNotReady, ErrInterrupted, ErrNotRestored or
// ErrRestoreAborted; failed scenarios alone are not errors (see Report.OK).
func (r *Runner) Run(ctx context.Context, scenarios []Scenario) (Report, error) {
	rep := Report{Scenarios: []Result{}}
	for _, sc := range scenarios {
		if err := ctx.Err(); err != nil {
			rep.Interrupted = true
			return rep, fmt.Errorf("%w before %s %s: %w", ErrInterrupted, sc.Node, sc.Mode, err)
		}
		if st, err := r.Preflight(ctx); err != nil {
			if ctx.Err() != nil {
				rep.Interrupted = true
				return rep, fmt.Errorf("%w before %s %s: %w", ErrInterrupted, sc.Node, sc.Mode, ctx.Err())
			}
			rep.Left = st.Reasons()
			return rep, fmt.Errorf("before %s %s: %w", sc.Node, sc.Mode, err)
		}
		res, out := r.runOne(ctx, sc)
		rep.Scenarios = append(rep.Scenarios, res)
		rep.Left = append(rep.Left, out.left...)
		switch {
		case out.aborted:
			rep.Aborted = true
			rep.Interrupted = true
			return rep, fmt.Errorf("%s %s: %w; left: %s", sc.Node, sc.Mode, ErrRestoreAborted, strings.Join(out.left, "; "))
		case ctx.Err() != nil:
			rep.Interrupted = true
			if !res.Restored {
				return rep, fmt.Errorf("%w during %s %s, and %w: %s", ErrInterrupted, sc.Node, sc.Mode, ErrNotRestored, strings.Join(out.left, "; "))
			}
			return rep, fmt.Errorf("%w during %s %s (restored): %w", ErrInterrupted, sc.Node, sc.Mode, ctx.Err())
		case !res.Restored:
			return rep, fmt.Errorf("%s %s: %w: %s", sc.Node, sc.Mode, ErrNotRestored, strings.Join(out.left, "; "))
		}
	}
	return rep, nil
}

// Bound returns the theoretical time of a scenario from the layout, and the
// margin the measurement may exceed it by:
//   - stop: the first backup's skew (priority-0 advert);
//   - kill: the master-down interval, 3 × advert_int + skew;
//   - nginx: fall × interval, by when the check script has run and restarted
//     nginx (it runs every interval; the VIP would move only after fall failures);
//   - nginx-dead: fall × interval for the check to fail fall times, then the
//     master-down interval, since the backup ignores the lowered adverts and
//     waits for its timer; plus CheckScriptMargin.
func (r *Runner) Bound(in *vrrp.Instance, interval, fall int, m Mode) (bound, margin time.Duration) {
	checks := time.Duration(fall*interval) * time.Second
	switch m {
	case ModeStop:
		return in.Bounds.Graceful, r.o.Margin
	case ModeKill:
		return in.Bounds.Crash, r.o.Margin
	case ModeNginx:
		return checks, r.o.Margin
	case ModeDrain:
		// The next host claims the VIP when its master-down timer expires:
		// the drained host's adverts at priority 1 do not reset it.
		return in.Bounds.Crash + time.Duration(in.AdvertInt*float64(time.Second)), r.o.Margin
	default:
		// nginx-dead: the stop event puts the master in FAULT, which the
		// backup answers like a graceful stop (priority-0 advert).
		return in.Bounds.Graceful, r.o.Margin
	}
}

func (r *Runner) settle(in *vrrp.Instance) time.Duration {
	if r.o.Settle > 0 {
		return r.o.Settle
	}
	return time.Duration(in.AdvertInt*float64(time.Second)) + 500*time.Millisecond
}

func secs(d time.Duration) float64 { return math.Round(d.Seconds()*100) / 100 }
