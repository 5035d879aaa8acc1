package ops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/render"
	"github.com/hactl/hactl/pkg/rollout"
	"github.com/hactl/hactl/pkg/verify"
	"github.com/hactl/hactl/pkg/vrrp"
)

// ApplyOptions are `hactl apply` and `hactl plan` (Dry).
type ApplyOptions struct {
	Conn  ConnOptions
	Limit []string
	// Playbook is a playbook file; "": the embedded one.
	Playbook string
	// Prune decommissions hosts that left the inventory before the others
	// are reconfigured (Dry: previews it).
	Prune bool
	// Dry is plan: nothing changes, every host says what would.
	Dry bool
	// Now stamps backups; nil: time.Now.
	Now func() time.Time
}

// Host results.
const (
	ResultOK          = "ok"
	ResultChanged     = "changed"
	ResultFailed      = "failed"
	ResultUnreachable = "unreachable"
)

// HostResult is one selected host's outcome. What was not observed (an
// unreachable host's counts) is nil.
type HostResult struct {
	Name string
	// Result is ok, changed, failed or unreachable.
	Result    string
	Reachable bool
	Changed   *int
	Skipped   *int
	Err       error
	// Changes (a plan) are what would change; Known is false for a host
	// that was never reached or failed before it could tell.
	Changes []playbook.Change
	Known   bool
}

// OK reports whether the host ended well.
func (h HostResult) OK() bool { return h.Err == nil }

// ApplyResult is what apply did, or plan found would be done.
type ApplyResult struct {
	Dry   bool
	Hosts []HostResult
	// Departed are the hosts that left the inventory since the last apply.
	Departed []Departed
	// VIPs is the verification (placement of every VIP of the touched
	// clusters) after the run.
	VIPs []verify.VIPState
	// Inv and Layout are what was applied: router ids as the records
	// decided.
	Inv    *inventory.Inventory
	Layout *vrrp.Layout
	// Sites is the serving layer's rollout, host by host (canary first);
	// nil when the selection has no sites or the run was a plan.
	Sites []rollout.SiteResult
	// Err: a host failed or a VIP is misplaced after apply.
	Err error
	// RoundTrips is what the run cost each host in SSH sessions
	// ("4 per host", or per host when they differ): -v prints it.
	RoundTrips string
}

// Apply converges the selected hosts (Dry: plans it). An error is a run
// that stopped before it could report on the hosts; a run that reports
// says what went wrong in ApplyResult.Err.
func Apply(ctx context.Context, s *Session, o ApplyOptions, ev Events) (*ApplyResult, error) {
	book, err := loadBook(o.Playbook)
	if err != nil {
		return nil, err
	}
	sel, err := SelectHosts(s.Inv, o.Limit)
	if err != nil {
		return nil, err
	}
	r, err := s.renderer()
	if err != nil {
		return nil, FailedError(err)
	}
	fl, err := s.connectRead(ctx, o.Conn, sel, ev)
	if err != nil {
		return nil, err
	}
	defer fl.Close()
	stamp := backupStamp(o.Now)
	skips := &skipCounter{Events: ev, n: map[string]int{}}
	res := &ApplyResult{Dry: o.Dry, Inv: s.Inv}
	// The membership, the layout and so the rollout are decided on the
	// cluster records, which ride in the facts' round trip (taken under
	// the lock): the runner calls Gathered once every host is locked and
	// read, before anything changes.
	var mem *membership
	var refused error
	ro := &lateRollout{}
	var snap map[string]*facts.Facts
	// A plan shows the sites' diffs with the rest; apply rolls them out
	// after it, canary first (sites.go).
	var sitesBook *playbook.Book
	var sitesMod *playbook.NginxSites
	book = withConnDrainTools(book, s.Inv, sel)
	if !o.Dry {
		book, sitesBook, sitesMod = splitSites(book, s.Inv, sel)
	}
	runner := &playbook.Runner{
		Book: book, Parallel: o.Conn.Parallel, DryRun: o.Dry, Lock: !o.Dry, Locker: s.deps.Locker,
		Event: skips.Event, Rollout: ro, Needs: facts.Request{VRRP: verify.VRRPCommand, Cache: facts.CacheDir},
		Gathered: func(ctx context.Context, got map[string]*facts.Facts) error {
			m, err := s.fleetChange(ctx, fl, got, changeRun{conn: o.Conn, prune: o.Prune, dry: o.Dry, stamp: stamp, ev: skips})
			if err != nil {
				refused = err
				return err
			}
			mem, snap = m, got
			ro.Rollout = rollout.New(rollout.Options{Layout: m.layout, Fleet: fl, Event: skips.Event})
			return nil
		},
	}
	layout := func() *vrrp.Layout { return mem.layout }
	results := runBook(ctx, runner, s.hostInputs(r, layout, sel, fl, stamp), sel, fl, skips)
	if refused != nil {
		// Nothing changed, as when the records were read before the lock.
		return nil, refused
	}
	res.Departed, res.Layout = mem.departed, mem.layout
	failed, unreachable := res.collect(sel, fl, results, skips)
	vipLayout := fleetLayout(s.Inv, mem.layout, fl)
	// The facts' own snapshot of the VIPs (addresses and keepalived's
	// states, read under the lock in the same shell), when every host of
	// the touched clusters gave one.
	before, whole := snapshotPlacement(s.Inv, vipLayout, fl, snap, ro.Drained())
	settled := whole && verify.AllOK(before)
	quiet := failed == 0 && unchanged(res.Hosts) && !mem.decommissioned()
	// Verification reads every host of the touched clusters, once each has
	// had its time to converge; what did not, the verification reports. A
	// run that changed nothing on a fleet its snapshot found right has
	// nothing to wait for.
	if !o.Dry && failed == 0 && !(quiet && settled) {
		_ = ro.WaitConverged(ctx)
	}
	var sitesErr error
	if sitesBook != nil && failed == 0 {
		x := &siteHost{s: s, r: r, layout: mem.layout, fl: fl, stamp: stamp, book: sitesBook, mod: sitesMod, ev: skips}
		res.Sites, sitesErr = s.rollSites(ctx, x, sel, ro.Drained())
		failed += res.foldSites()
		quiet = quiet && sitesErr == nil && failed == 0 && unchanged(res.Hosts)
	}
	switch {
	case whole && o.Dry, quiet && settled:
		// Nothing changed on any host since the snapshot (no file, no
		// handler, no service, no package, no site, no departed host
		// decommissioned), and it was taken under every host's lock, which
		// kept any other apply or failover-test off them since: it is the
		// placement this run leaves, as good a proof as a read a moment
		// later (itself only a moment's view, and taken after the locks
		// are given back). Any change, or a snapshot that is not right,
		// and the verification reads the hosts again.
		res.VIPs = before
	default:
		res.VIPs = Verify(ctx, s.Inv, vipLayout, fl, ro.Drained())
	}
	switch {
	case sitesErr != nil:
		res.Err = sitesErr
	case failed > 0:
		res.Err = fmt.Errorf("%d of %d host(s) %s", failed, len(sel), failedWord(failed-unreachable, unreachable))
	case o.Dry:
	case !verify.AllOK(res.VIPs):
		res.Err = errors.New("VIP placement is wrong after apply: " + verify.Problems(res.VIPs))
	}
	res.RoundTrips = fl.RoundTrips()
	return res, nil
}

// lateRollout is the rollout of a run whose layout is known only once the
// hosts' facts (and the cluster records in them) are in: the runner holds
// it from the start and asks it nothing before Gathered has set it.
type lateRollout struct{ *rollout.Rollout }

// unchanged reports whether no host changed anything.
func unchanged(hosts []HostResult) bool {
	for _, h := range hosts {
		if h.Changed != nil && *h.Changed > 0 {
			return false
		}
	}
	return true
}

// snapshotPlacement is the verdict on the VIPs as the facts saw them: whole
// is false when a reachable host of the fleet has no facts (a host only
// read, under --limit; a host whose facts failed).
func snapshotPlacement(inv *inventory.Inventory, layout *vrrp.Layout, fl *fleet.Fleet, snap map[string]*facts.Facts, drained map[string]bool) ([]verify.VIPState, bool) {
	obs := make([]verify.Observation, len(fl.Hosts))
	for i, h := range fl.Hosts {
		f := snap[h.Name()]
		switch {
		case h.Conn == nil:
			// As a live read reports it: no round trip, the connection's error.
			obs[i] = verify.Observation{Host: h.Name(), Err: h.Err}
		case f == nil:
			return nil, false
		default:
			obs[i] = verify.FromFacts(h, f)
		}
	}
	return placement(inv, layout, verify.MarkDrained(obs, drained)), true
}

// connectRead connects to every host of the selection's clusters: the
// selected hosts are changed, the others of their clusters only read (VIP
// placement is judged on whole clusters).
func (s *Session) connectRead(ctx context.Context, o ConnOptions, sel []*inventory.Host, ev Events) (*fleet.Fleet, error) {
	read := clusterHosts(s.Inv, sel)
	if extra := len(read) - len(sel); extra > 0 {
		ev.ReadOnly(extra)
	}
	stopLive := ev.Live(read, "connecting")
	defer stopLive()
	return s.connect(ctx, o, read)
}

// runBook runs the playbook on the reachable selected hosts; an
// unreachable one is a result of its own (why is said once, under the
// recap).
func runBook(ctx context.Context, runner *playbook.Runner, inputs []playbook.HostInput, sel []*inventory.Host, fl *fleet.Fleet, ev Events) map[string]playbook.Result {
	results := map[string]playbook.Result{}
	for _, h := range sel {
		if fh := fl.Get(h.Name); fh.Err != nil {
			results[h.Name] = playbook.Result{Host: h.Name, Err: fh.Err}
			ev.Event(playbook.Event{Host: h.Name, Step: "connect", Status: ResultUnreachable})
		}
	}
	var names []string
	for _, in := range inputs {
		names = append(names, in.Target.Name)
	}
	stopLive := ev.Live(names, "gathering facts")
	defer stopLive()
	for _, x := range runner.Run(ctx, inputs) {
		results[x.Host] = x
	}
	return results
}

// hostInputs are the runner's inputs for the reachable selected hosts:
// each host's files are rendered once, after its facts, for the keepalived
// it runs (track_file or, before 2.0, polling scripts).
func (s *Session) hostInputs(r *render.Renderer, layout func() *vrrp.Layout, sel []*inventory.Host, fl *fleet.Fleet, stamp string) []playbook.HostInput {
	var inputs []playbook.HostInput
	for _, h := range sel {
		fh := fl.Get(h.Name)
		if fh.Err != nil {
			continue
		}
		paths, err := r.PathsOf(s.Inv, h.Name)
		if err != nil {
			// The Render hook meets the same error and fails this host with it.
			paths = render.Paths()
		}
		inputs = append(inputs, playbook.HostInput{
			Target: &playbook.Target{Name: h.Name, Conn: fh.Conn, Stamp: stamp, Vars: targetVars(s.Inv, h)},
			Paths:  paths,
			Check: func(f *facts.Facts) error {
				if err := f.CheckSupported(h.Name); err != nil {
					return err
				}
				return f.CheckInterface(h.Name, h.Interface, h.Address)
			},
			Render: func(f *facts.Facts) ([]render.File, error) {
				return r.HostWith(s.Inv, layout(), h.Name, RenderOptions(f))
			},
		})
	}
	return inputs
}

// collect fills res.Hosts from the runner's results, in selection order,
// and counts the failed hosts and, of them, the unreachable ones.
func (res *ApplyResult) collect(sel []*inventory.Host, fl *fleet.Fleet, results map[string]playbook.Result, skips *skipCounter) (failed, unreachable int) {
	for _, h := range sel {
		x := results[h.Name]
		hr := HostResult{Name: h.Name, Reachable: fl.Get(h.Name).Err == nil, Result: ResultOK, Err: x.Err}
		switch {
		case !hr.Reachable:
			hr.Result = ResultUnreachable
			unreachable++
		case x.Err != nil:
			hr.Result = ResultFailed
		case x.Changed > 0:
			hr.Result = ResultChanged
		}
		if hr.Reachable {
			changed, skipped := x.Changed, skips.skipped(h.Name)
			hr.Changed, hr.Skipped = &changed, &skipped
		}
		if x.Err != nil {
			failed++
		}
		hr.Changes, hr.Known = x.Changes, x.Err == nil || len(x.Changes) > 0
		res.Hosts = append(res.Hosts, hr)
	}
	return failed, unreachable
}

func failedWord(failed, unreachable int) string {
	switch {
	case unreachable == 0:
		return "failed"
	case failed == 0:
		return "unreachable"
	}
	return fmt.Sprintf("failed or unreachable (%d failed, %d unreachable)", failed, unreachable)
}

// targetVars are the inventory values the playbook may name as "{name}".
func targetVars(inv *inventory.Inventory, h *inventory.Host) map[string]string {
	c := inv.ClusterOf(h.Name)
	yes := map[bool]string{true: "yes", false: "no"}
	return map[string]string{
		"nginx_listen":       fmt.Sprint(c.Nginx.Listen),
		"interface":          h.Interface,
		"vrrp_transport":     c.Transport,
		playbook.VarIPv6:     yes[c.HasIPv6()],
		playbook.VarVRRPIPv6: yes[c.IPv6()],
		playbook.VarWebhook:  yes[inv.Webhook != nil],
	}
}

// RenderOptions render a host's files for the keepalived its facts found.
func RenderOptions(f *facts.Facts) render.Options {
	return render.Options{KeepalivedVersion: f.KeepalivedVersion, Legacy: !f.KeepalivedTrackFile()}
}

// Verify is apply's verification: where every VIP of layout sits on the
// fleet's hosts now (drained hosts' VIPs expected on their next host).
func Verify(ctx context.Context, inv *inventory.Inventory, layout *vrrp.Layout, fl *fleet.Fleet, drained map[string]bool) []verify.VIPState {
	return placement(inv, layout, verify.MarkDrained(verify.ObserveVRRP(ctx, fl.Hosts), drained))
}

// placement is the one verdict on observations, for apply and status:
// each VIP ok, moved, missing or split, with its cluster's VRRP transport.
func placement(inv *inventory.Inventory, layout *vrrp.Layout, obs []verify.Observation) []verify.VIPState {
	return verify.SetTransports(verify.Classify(layout, obs), inv)
}

// foldSites puts the sites rollout's outcome into the host results: a
// host it changed counts a change, a host it failed or stopped before is
// failed (its error says which). It returns how many failed.
func (res *ApplyResult) foldSites() (failed int) {
	by := map[string]rollout.SiteResult{}
	for _, x := range res.Sites {
		by[x.Host] = x
	}
	for i := range res.Hosts {
		hr := &res.Hosts[i]
		x, ok := by[hr.Name]
		if !ok || hr.Err != nil {
			continue
		}
		if x.Err != nil {
			hr.Err, hr.Result = x.Err, ResultFailed
			failed++
			continue
		}
		if x.Changed {
			hr.Result = ResultChanged
			if hr.Changed != nil {
				n := *hr.Changed + 1
				hr.Changed = &n
			}
		}
	}
	return failed
}
