package rollout

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hactl/hactl/pkg/clock"
	"github.com/hactl/hactl/pkg/drain"
	"github.com/hactl/hactl/pkg/playbook"
)

// SiteHost is what a sites rollout does on one host; pkg/ops gives the
// real steps (the nginx_sites module, pkg/sitecheck, a tar of the serving
// layer), tests give their own.
type SiteHost interface {
	// Changes reports whether the host's serving layer would change.
	Changes(ctx context.Context, host string) (bool, error)
	// Keep records the host's live serving layer as the restore point.
	Keep(ctx context.Context, host string) error
	// Apply stages, tests (nginx -t) and reloads the new serving layer.
	Apply(ctx context.Context, host string) error
	// Check proves, through the host's own address, that it serves every
	// site; the error names the site and the check.
	Check(ctx context.Context, host string) error
	// Restore puts the restore point back and reloads nginx on it.
	Restore(ctx context.Context, host string) error
	// Forget drops the restore point after the host passed.
	Forget(ctx context.Context, host string) error
}

// Drainer takes a host out of its VIPs and back (pkg/drain).
type Drainer interface {
	Drain(ctx context.Context, host string) (*drain.Result, error)
	Undrain(ctx context.Context, host string) (*drain.Result, error)
}

// SitesOptions say what a sites rollout works on.
type SitesOptions struct {
	// Hosts in rollout order: the first one whose serving layer changes is
	// the canary.
	Hosts []string
	Step  SiteHost
	// Drainer moves the canary's VIPs away while it changes (every host's
	// with DrainEvery) and back, keeping the connections open at each move
	// (a connection drain with a grace period); nil: hosts are changed in
	// place (their clients see a bad change until it is restored).
	Drainer Drainer
	// Cut is Drainer without the connection drain: used, with a warning,
	// for a move whose connection drain Drainer refused
	// (drain.ErrConnsRefused: a host lacks nft, an IPv6 VIP), where the
	// move still works but cuts the requests in flight. nil: no fallback,
	// the refusal stops the rollout.
	Cut Drainer
	// DrainEvery drains every host, not only the canary. Off by default:
	// once the canary proved the change, a reload in place costs clients
	// nothing, while each VIP move can cut a request that is in flight
	// at that moment (measured on the lab: 4 of 4663 with every host
	// drained).
	DrainEvery bool
	// Drained are hosts drained before the run (hactl drain): they stay
	// out, are neither drained nor undrained here.
	Drained map[string]bool
	// Retries of a failed check, CheckEvery apart, before the host fails
	// (a reload's new workers may need a moment). Zero: 2 and 1 s.
	Retries    int
	CheckEvery time.Duration
	Clock      clock.Clock // nil: clock.Real
	Event      func(playbook.Event)
}

// SiteResult is one host's part in a sites rollout.
type SiteResult struct {
	Host    string
	Changed bool
	// Canary: the first host changed, checked before any other.
	Canary  bool
	Elapsed time.Duration
	Err     error
}

// CheckError is a host that failed its check after the new serving layer
// went live: it was restored, and the rollout stopped there.
type CheckError struct {
	Host   string
	Canary bool
	Err    error // names the site and the check (pkg/sitecheck)
	// Restore is the error of putting the previous layer back, if any.
	Restore error
}

func (e *CheckError) Error() string {
	role := "host"
	if e.Canary {
		role = "canary"
	}
	msg := fmt.Sprintf("%s %s failed its check after the new sites went live: %v; ", role, e.Host, e.Err)
	if e.Restore != nil {
		return msg + fmt.Sprintf("restoring its previous sites failed too: %v; the rollout stopped, no other host was touched", e.Restore)
	}
	return msg + "its previous sites are back and nginx reloaded on them; the rollout stopped, no other host was touched"
}

func (e *CheckError) Unwrap() []error { return []error{e.Err, e.Restore} }

// ErrStopped is wrapped by the results of hosts a failed host kept from
// being touched.
var ErrStopped = errors.New("not touched: the rollout stopped at an earlier host")

// RollSites changes the hosts' serving layer one host at a time, the first
// changed host being the canary: the canary is drained (its VIPs move to
// their next host with overlap, so clients never reach it while it
// changes; the connections open at the move finish where they began, and
// so at the undrain), given the new layer (staged, nginx -t, reload), checked
// through its own address, and undrained only when the check passes; the
// hosts after it are changed in place (a reload keeps every connection)
// and checked the same way (DrainEvery drains them too). A host that fails its
// check gets its previous layer back (reload) and is undrained on it; the
// rollout stops there and no later host is touched. A host whose layer
// does not change is neither drained nor checked. The error is the first
// failure (a *CheckError for a failed check).
func RollSites(ctx context.Context, o SitesOptions) ([]SiteResult, error) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Retries == 0 {
		o.Retries = 2
	}
	if o.CheckEvery == 0 {
		o.CheckEvery = time.Second
	}
	emit := func(host, status, summary string, elapsed time.Duration) {
		if o.Event != nil {
			o.Event(playbook.Event{Host: host, Step: "sites rollout", Status: status, Summary: summary, Elapsed: elapsed})
		}
	}
	res := make([]SiteResult, len(o.Hosts))
	canary := true
	var stop error
	for i, h := range o.Hosts {
		res[i].Host = h
		if stop != nil {
			res[i].Err = ErrStopped
			continue
		}
		start := o.Clock.Now()
		changed, err := o.Step.Changes(ctx, h)
		if err != nil {
			res[i].Err, stop = err, err
			continue
		}
		if !changed {
			continue
		}
		res[i].Changed, res[i].Canary = true, canary
		role := "host"
		if canary {
			role = "canary"
		}
		canary = false
		err = rollOne(ctx, o, h, role, role == "canary" || o.DrainEvery, emit)
		res[i].Elapsed = o.Clock.Now().Sub(start)
		if err != nil {
			var ce *CheckError
			if errors.As(err, &ce) {
				ce.Canary = res[i].Canary
			}
			res[i].Err, stop = err, err
			emit(h, "failed", err.Error(), res[i].Elapsed)
			continue
		}
		emit(h, "changed", role+": new sites live, checked through its own address, serving clients again", res[i].Elapsed)
	}
	return res, stop
}

// rollOne is one host: drain, keep, apply, check (restore on failure),
// undrain.
func rollOne(ctx context.Context, o SitesOptions, h, role string, drainIt bool, emit func(string, string, string, time.Duration)) error {
	drained := false
	d, cut := o.Drainer, false
	// move drains or undrains h with d, falling back to o.Cut when d's
	// connection drain is refused (nothing changed then).
	move := func(ctx context.Context, undrain bool) (*drain.Result, error) {
		do := func(x Drainer) (*drain.Result, error) {
			if undrain {
				return x.Undrain(ctx, h)
			}
			return x.Drain(ctx, h)
		}
		res, err := do(d)
		if err != nil && errors.Is(err, drain.ErrConnsRefused) && o.Cut != nil && !cut {
			emit(h, "warning", fmt.Sprintf("open connections not kept (%v): its VIPs move without connection draining, a request in flight at the move can fail", err), 0)
			d, cut = o.Cut, true
			res, err = do(d)
		}
		return res, err
	}
	if drainIt && d != nil && !o.Drained[h] {
		emit(h, "ok", role+": draining (its VIPs move to their next host) before its sites change", 0)
		if res, err := move(ctx, false); err != nil {
			if errors.Is(err, drain.ErrConnsRefused) || !errors.Is(err, drain.ErrRefused) {
				return fmt.Errorf("%s: drain before the sites change: %w", h, err)
			}
			// No other host can hold its VIPs (a one-host cluster, or
			// the others drained): changed in place, still checked.
			emit(h, "warning", fmt.Sprintf("not drained (%v): its sites change while it serves", err), 0)
		} else {
			drained = true
			emit(h, "ok", role+": drained"+moved(res), 0)
		}
	}
	undrain := func(err error) error {
		if !drained {
			return err
		}
		res, uerr := move(context.WithoutCancel(ctx), true)
		if uerr != nil {
			return errors.Join(err, fmt.Errorf("%s: undrain: %w", h, uerr))
		}
		emit(h, "ok", role+": undrained"+moved(res), 0)
		return err
	}
	if err := o.Step.Keep(ctx, h); err != nil {
		return undrain(fmt.Errorf("%s: keep the live sites as the restore point: %w", h, err))
	}
	if err := o.Step.Apply(ctx, h); err != nil {
		// nginx_sites put its files back itself when nginx -t or the
		// reload failed; nothing went live.
		return undrain(err)
	}
	cerr := check(ctx, o, h)
	if cerr != nil {
		ce := &CheckError{Host: h, Err: cerr}
		ce.Restore = o.Step.Restore(context.WithoutCancel(ctx), h)
		return undrain(ce)
	}
	if err := o.Step.Forget(ctx, h); err != nil {
		emit(h, "warning", fmt.Sprintf("restore point not removed: %v", err), 0)
	}
	return undrain(nil)
}

// check runs the host's check, retried: a failure must persist.
func check(ctx context.Context, o SitesOptions, h string) error {
	var err error
	for try := 0; try <= o.Retries; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			case <-o.Clock.After(o.CheckEvery):
			}
		}
		if err = o.Step.Check(ctx, h); err == nil {
			return nil
		}
	}
	return err
}

// moved says where a drain or undrain moved the VIPs and what became of the
// connections open at the move.
func moved(res *drain.Result) string {
	if res == nil {
		return ""
	}
	var parts []string
	for _, vip := range slices.Sorted(maps.Keys(res.Moved)) {
		parts = append(parts, vip+" now on "+res.Moved[vip])
	}
	s := ""
	if len(parts) > 0 {
		s = ": " + strings.Join(parts, ", ")
	}
	if c := res.Conns; c != nil {
		left := 0
		for _, n := range c.Left {
			left += n
		}
		if left == 0 {
			s += fmt.Sprintf("; every connection open at the move ended (waited %.1fs of %gs)", c.WaitedSeconds, c.GraceSeconds)
		} else {
			s += fmt.Sprintf("; %d connection(s) still open after the %gs grace period: cut", left, c.GraceSeconds)
		}
	}
	return s
}
