package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/spf13/cobra"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/render"
	"github.com/hactl/hactl/pkg/rollout"
	"github.com/hactl/hactl/pkg/ui"
	"github.com/hactl/hactl/pkg/verify"
	"github.com/hactl/hactl/pkg/vrrp"
	"github.com/hactl/hactl/playbooks"
)

// ApplyOptions is `hactl apply`.
type ApplyOptions struct {
	Conn ConnOptions
	Run  RunOptions
	// Now stamps backups; tests fix it.
	Now func() time.Time
}

// RunOptions choose what apply runs, and plan previews: which hosts and
// which playbook.
type RunOptions struct {
	Limit    []string
	Playbook string
	// Prune decommissions hosts that left the inventory before the others
	// are reconfigured (plan: previews it).
	Prune bool
	// Verbose prints every step; by default only what changed or failed.
	Verbose bool
}

func (o *RunOptions) addFlags(cmd *cobra.Command) {
	addLimitFlag(cmd, &o.Limit)
	cmd.Flags().StringVarP(&o.Playbook, "playbook", "p", "", "run this playbook file instead of the embedded playbooks/ha-nginx.hcl")
	cmd.Flags().BoolVar(&o.Prune, "prune", false, "decommission hosts that left the inventory (keepalived stopped gracefully and disabled, hactl's files removed) before the others are reconfigured")
	cmd.Flags().BoolVarP(&o.Verbose, "verbose", "v", false, "print every step, not only what changed or failed")
}

// addLimitFlag is --limit, the same on every command that works on hosts.
func addLimitFlag(cmd *cobra.Command, limit *[]string) {
	cmd.Flags().StringSliceVar(limit, "limit", nil, "only these hosts or clusters (comma-separated names)")
}

func newApply(ctx context.Context, g *Globals) *cobra.Command {
	o := &ApplyOptions{Now: time.Now}
	cmd := &cobra.Command{
		Use:   "apply -i FILE [--limit a,b] [--parallel N] [-p PLAYBOOK]",
		Short: "Converge every host, restart only what changed, and verify VIP placement",
		Long: `apply connects to every host (one SSH connection each), gathers its facts in one
round trip, installs nginx, keepalived and arping, writes the rendered files
safely (validated, backed up, renamed into place), then reloads or restarts
services one host at a time, waiting after each until every VIP sits on
exactly one host. It ends by reading ip addr on every host: each VIP must be
on its master only. Exit 1 if any host failed or any VIP is misplaced.`,
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.load(ctx)
			if err != nil {
				return err
			}
			return runApply(ctx, g, o, l, false)
		},
	}
	o.Conn.addFlags(cmd)
	o.Run.addFlags(cmd)
	return cmd
}

func extraCommands(ctx context.Context, g *Globals) []*cobra.Command {
	return []*cobra.Command{newApply(ctx, g), newStatus(ctx, g), newFailoverTest(ctx, g), newDrain(ctx, g, false), newDrain(ctx, g, true), newDestroy(ctx, g), newEvents(ctx, g)}
}

// planOnline is apply's dry run; it prints the layout once the records on
// the hosts have decided the router ids.
func planOnline(ctx context.Context, g *Globals, o *PlanOptions, l *Loaded) error {
	return runApply(ctx, g, &ApplyOptions{Conn: o.Conn, Run: o.Run, Now: time.Now}, l, true)
}

func (g *Globals) loadBook(path string) (*playbook.Book, error) {
	name, src := playbooks.HANginxName, playbooks.HANginx
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, &ExitError{Code: ExitUsage, Err: fmt.Errorf("playbook: %w", err)}
		}
		name, src = path, b
	}
	book, parser, diags := playbook.Parse(name, src)
	if diags.HasErrors() {
		g.printDiags(parser.Files(), diags)
		fmt.Fprintf(g.IO.Err, "hactl: %s: invalid playbook\n", name)
		return nil, &ExitError{Code: ExitUsage, Err: newDiagsError(name+": invalid playbook", diags)}
	}
	return book, nil
}

// hostJSON is apply's per-host JSON. What was not observed (an unreachable
// host's counts) is null.
type hostJSON struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Result is ok, changed, failed or unreachable.
	Result    string  `json:"result"`
	Reachable bool    `json:"reachable"`
	Changed   *int    `json:"changed"`
	Skipped   *int    `json:"skipped"`
	Error     *string `json:"error"`
}

type applyJSON struct {
	ui.Envelope
	Hosts []hostJSON `json:"hosts"`
	// Departed are the hosts that left the inventory since the last apply.
	Departed []departedJSON    `json:"departed"`
	VIPs     []verify.VIPState `json:"vips"`
	// Plan (plan only) is per host what would change; null for a host
	// that was never reached or failed before it could tell.
	Plan map[string][]change `json:"plan,omitempty"`
}

type change struct {
	Step    string `json:"step"`
	Summary string `json:"summary"`
	Diff    string `json:"diff,omitempty"`
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
	}
}

// clusterHosts widens a --limit selection to every host of the touched
// clusters: VIP placement can only be judged on the whole cluster.
func clusterHosts(inv *inventory.Inventory, sel []*inventory.Host) []string {
	seen := map[string]bool{}
	var names []string
	for _, h := range sel {
		c := inv.ClusterOf(h.Name)
		if seen[c.Name] {
			continue
		}
		seen[c.Name] = true
		for _, x := range c.Hosts {
			names = append(names, x.Name)
		}
	}
	return names
}

func runApply(ctx context.Context, g *Globals, o *ApplyOptions, l *Loaded, dry bool) error {
	book, err := g.loadBook(o.Run.Playbook)
	if err != nil {
		return err
	}
	sel, err := selectHosts(l, o.Run.Limit)
	if err != nil {
		return err
	}
	r, err := g.renderer()
	if err != nil {
		return &ExitError{Code: ExitFailed, Err: err}
	}
	progress := newProgress(g, o.Run.Verbose)
	read := clusterHosts(l.Inv, sel)
	if extra := len(read) - len(sel); extra > 0 && g.Output != "json" {
		g.stderr().Printf("%s %d other host(s) of the same cluster(s) are only read, to verify VIP placement; nothing on them changes\n",
			g.stderr().Styles.Dim.Render("--limit:"), extra)
	}
	stopLive := progress.live(read, "connecting")
	fl, err := g.connect(ctx, l, o.Conn, read)
	stopLive()
	if err != nil {
		return err
	}
	defer fl.Close()

	stamp := o.Now().UTC().Format("20060102T150405Z")
	mem, err := g.fleetChange(ctx, o, l, fl, dry, progress, stamp)
	if err != nil {
		return err
	}
	l = mem.loaded
	if dry && g.Output != "json" {
		PrintLayout(g.stdout(), l)
		g.stdout().Println()
	}

	results := map[string]playbook.Result{}
	unreachable := map[string]bool{}
	var inputs []playbook.HostInput
	ro := rollout.New(rollout.Options{Layout: l.Layout, Fleet: fl, Event: progress.event})
	for _, h := range sel {
		fh := fl.Get(h.Name)
		if fh.Err != nil {
			results[h.Name] = playbook.Result{Host: h.Name, Err: fh.Err}
			unreachable[h.Name] = true
			// Why is said once, under the recap.
			progress.event(playbook.Event{Host: h.Name, Step: "connect", Status: "unreachable"})
			continue
		}
		files, err := r.Host(l.Inv, l.Layout, h.Name)
		if err != nil {
			return &ExitError{Code: ExitFailed, Err: err}
		}
		byPath := map[string]render.File{}
		for _, f := range files {
			byPath[f.Path] = f
		}
		inputs = append(inputs, playbook.HostInput{
			Target: &playbook.Target{Name: h.Name, Conn: fh.Conn, Files: byPath, Stamp: stamp, Vars: targetVars(l.Inv, h)},
			Check: func(f *facts.Facts) error {
				if err := f.CheckSupported(h.Name); err != nil {
					return err
				}
				// keepalived before 2.0 gets polling scripts instead of track_file.
				if err := renderFor(r, l, h.Name, f, byPath); err != nil {
					return err
				}
				ro.NoteTransport(h.Name, f.VRRPTransport)
				ro.NoteDrained(h.Name, f.Drained())
				if f.Drained() {
					progress.event(playbook.Event{Host: h.Name, Step: "drain", Status: "ok",
						Summary: "drained: its VIPs stay on their next host (hactl undrain " + h.Name + " brings it back)"})
				}
				return f.CheckInterface(h.Name, h.Interface, h.Address)
			},
		})
	}
	runner := &playbook.Runner{
		Book: book, Parallel: o.Conn.Parallel, DryRun: dry, Lock: !dry, Locker: g.Deps.Locker,
		Event: progress.event, Rollout: ro,
	}
	var names []string
	for _, in := range inputs {
		names = append(names, in.Target.Name)
	}
	stopLive = progress.live(names, "gathering facts")
	for _, res := range runner.Run(ctx, inputs) {
		results[res.Host] = res
	}
	stopLive()

	doc := applyJSON{Hosts: []hostJSON{}, Departed: append([]departedJSON{}, mem.departed...)}
	failed := 0
	for _, h := range sel {
		res := results[h.Name]
		hj := hostJSON{Name: h.Name, OK: res.Err == nil, Reachable: !unreachable[h.Name], Result: "ok"}
		switch {
		case unreachable[h.Name]:
			hj.Result = "unreachable"
		case res.Err != nil:
			hj.Result = "failed"
		case res.Changed > 0:
			hj.Result = "changed"
		}
		if hj.Reachable {
			changed, skipped := res.Changed, progress.skipped(h.Name)
			hj.Changed, hj.Skipped = &changed, &skipped
		}
		if res.Err != nil {
			msg := res.Err.Error()
			if unreachable[h.Name] {
				msg = connMessage(h.Name, res.Err)
			}
			hj.Error = &msg
			failed++
		}
		doc.Hosts = append(doc.Hosts, hj)
		if dry {
			if doc.Plan == nil {
				doc.Plan = map[string][]change{}
			}
			if res.Err != nil && len(res.Changes) == 0 {
				doc.Plan[h.Name] = nil // not known: the host never told
				continue
			}
			doc.Plan[h.Name] = []change{}
			for _, c := range res.Changes {
				doc.Plan[h.Name] = append(doc.Plan[h.Name], change{c.Step, c.Summary, c.Diff})
			}
		}
	}
	// Verification reads every host of the touched clusters, once each has
	// had its time to converge; what did not, the verification reports.
	if !dry && failed == 0 {
		_ = ro.WaitConverged(ctx)
	}
	vips := verify.SetTransports(verify.Classify(clusterLayout(l, fl), verify.MarkDrained(verify.ObserveVRRP(ctx, fl.Hosts), ro.Drained())), l.Inv)
	doc.VIPs = vips

	var runErr error
	switch {
	case failed > 0:
		runErr = fmt.Errorf("%d of %d host(s) %s", failed, len(sel), failedWord(failed-len(unreachable), len(unreachable)))
	case dry:
	case !verify.AllOK(vips):
		runErr = errors.New("VIP placement is wrong after apply: " + verify.Problems(vips))
	}
	if g.Output == "json" {
		doc.Envelope = ui.Result(runErr)
		if err := g.jsonOut(doc); err != nil {
			return err
		}
	} else {
		p := g.stdout()
		if dry {
			printPlan(p, sel, results)
		}
		printHosts(p, doc.Hosts, dry)
		p.Println()
		if o.Run.Verbose || !verify.AllOK(vips) || dry {
			printVIPs(p, vips)
		} else {
			p.Printf("%s every VIP on its master (%d of %d)\n", p.Styles.OK.Render("VIPs:"), len(vips), len(vips))
		}
	}
	if runErr != nil {
		return &ExitError{Code: ExitFailed, Err: runErr}
	}
	return nil
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

// selectHosts is --limit: host or cluster names, in inventory order.
func selectHosts(l *Loaded, limit []string) ([]*inventory.Host, error) {
	var names []string
	for _, n := range limit {
		if c := clusterNamed(l.Inv, strings.TrimSpace(n)); c != nil {
			for _, h := range c.Hosts {
				names = append(names, h.Name)
			}
			continue
		}
		names = append(names, n)
	}
	known := map[string]bool{}
	for _, h := range l.Inv.Hosts() {
		known[h.Name] = true
	}
	var unknown []string
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" && !known[n] {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		return nil, &ExitError{Code: ExitUsage, Err: fmt.Errorf("--limit: no host or cluster named %s in %s", strings.Join(unknown, ", "), l.Inv.Path)}
	}
	sel, err := fleet.Select(l.Inv, names)
	if err != nil {
		return nil, &ExitError{Code: ExitUsage, Err: err}
	}
	return sel, nil
}

func clusterNamed(inv *inventory.Inventory, name string) *inventory.Cluster {
	for _, c := range inv.Clusters {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// clusterLayout limits the layout to the clusters whose hosts are in the fleet.
func clusterLayout(l *Loaded, fl *fleet.Fleet) *vrrp.Layout {
	var names []string
	for _, h := range fl.Hosts {
		names = append(names, h.Name())
	}
	return layoutOf(l.Layout, names, l.Inv)
}

// progress prints, as it happens, one line per event to stderr: what
// changed or failed, or every step with -v. It counts each host's skipped
// steps for the recap. On a terminal it also keeps a live line at the
// bottom naming the hosts that have been quiet for more than a second (a
// package install, a VIP wait, a connect timeout), redrawn by tick.
type progress struct {
	mu      sync.Mutex
	p       *ui.Printer
	verbose bool
	skips   map[string]int
	now     func() time.Time
	// hosts being worked on, in order, with their last event's time and step.
	hosts    []string
	since    map[string]time.Time
	lastStep map[string]string
	shown    bool // the live line is on the screen
}

func newProgress(g *Globals, verbose bool) *progress {
	return &progress{p: g.stderr(), verbose: verbose, skips: map[string]int{}, now: time.Now,
		since: map[string]time.Time{}, lastStep: map[string]string{}}
}

func (pr *progress) skipped(host string) int {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.skips[host]
}

// live shows the live line for hosts until the returned stop is called
// (only on a terminal).
// doing names what the hosts do until their first event ("connecting").
func (pr *progress) live(hosts []string, doing string) (stop func()) {
	pr.mu.Lock()
	pr.hosts = hosts
	for _, h := range hosts {
		pr.since[h], pr.lastStep[h] = pr.now(), doing
	}
	pr.mu.Unlock()
	if !pr.p.Terminal() {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				pr.tick()
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		pr.mu.Lock()
		defer pr.mu.Unlock()
		pr.clear()
		pr.hosts = nil
	}
}

// tick redraws the live line: every host quiet for more than a second.
func (pr *progress) tick() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	var parts []string
	for _, h := range pr.hosts {
		if d := pr.now().Sub(pr.since[h]); d > time.Second {
			parts = append(parts, fmt.Sprintf("%s %ds %s", h, int(d.Seconds()), pr.lastStep[h]))
		}
	}
	pr.clear()
	if len(parts) == 0 {
		return
	}
	line := "… " + strings.Join(parts, ", ")
	if w := pr.p.Width(); w > 1 && len([]rune(line)) >= w {
		line = string([]rune(line)[:w-2]) + "…"
	}
	pr.p.Printf("%s", pr.p.Styles.Dim.Render(line))
	pr.shown = true
}

func (pr *progress) clear() {
	if pr.shown {
		pr.p.Printf("\r\x1b[K")
		pr.shown = false
	}
}

func (pr *progress) event(e playbook.Event) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.since[e.Host], pr.lastStep[e.Host] = pr.now(), "after "+e.Step
	if e.Status == "ok" && strings.HasPrefix(e.Summary, "skipped:") {
		pr.skips[e.Host]++
	}
	if !pr.verbose && e.Status == "ok" {
		return
	}
	pr.clear()
	st := pr.p.Styles
	status := e.Status
	switch e.Status {
	case "changed", "warning":
		status = st.Warn.Render(fmt.Sprintf("%-11s", e.Status))
	case "failed", "unreachable":
		status = st.Bad.Render(fmt.Sprintf("%-11s", e.Status))
	case "ok", "settled":
		status = st.OK.Render(fmt.Sprintf("%-11s", e.Status))
	}
	el := ""
	if e.Elapsed > 0 {
		el = st.Dim.Render(fmt.Sprintf(" %.2fs", e.Elapsed.Seconds()))
	}
	pr.p.Printf("%-10s %-26s %s %s%s\n", e.Host, e.Step, status, e.Summary, el)
}

func printPlan(p *ui.Printer, sel []*inventory.Host, results map[string]playbook.Result) {
	for _, h := range sel {
		res := results[h.Name]
		if len(res.Changes) == 0 {
			continue
		}
		p.Printf("%s %s\n", p.Styles.Bold.Render("host"), h.Name)
		for _, c := range res.Changes {
			p.Printf("  ~ %s: %s\n", c.Step, c.Summary)
			if c.Diff != "" {
				for _, line := range strings.Split(strings.TrimRight(c.Diff, "\n"), "\n") {
					style := lipgloss.NewStyle()
					switch {
					case strings.HasPrefix(line, "+"):
						style = p.Styles.OK
					case strings.HasPrefix(line, "-"):
						style = p.Styles.Bad
					}
					p.Printf("    %s\n", style.Render(line))
				}
			}
		}
		p.Println()
	}
}

// printHosts is the recap: one row per host, its errors under the table
// (a cell holds a word, never a message), then a one-line verdict.
func printHosts(p *ui.Printer, hosts []hostJSON, dry bool) {
	head := []string{"HOST", "RESULT", "CHANGED", "SKIPPED"}
	if dry {
		head[2] = "WOULD CHANGE"
	}
	var rows [][]string
	changed, changedHosts, unreachable, failed := 0, 0, 0, 0
	for _, h := range hosts {
		rows = append(rows, []string{h.Name, h.Result, intOrDash(h.Changed), intOrDash(h.Skipped)})
		switch h.Result {
		case "unreachable":
			unreachable++
		case "failed":
			failed++
		}
		if h.Changed != nil && *h.Changed > 0 {
			changed += *h.Changed
			changedHosts++
		}
	}
	ok, warn, bad := p.Styles.OK, p.Styles.Warn, p.Styles.Bad
	p.Table(head, rows, func(row, col int) *lipgloss.Style {
		if col != 1 {
			return nil
		}
		switch rows[row][1] {
		case "ok":
			return &ok
		case "changed":
			return &warn
		}
		return &bad
	})
	for _, h := range hosts {
		if h.Error != nil {
			p.Printf("%s %s: %s\n", p.Styles.Bad.Render(h.Result), h.Name, *h.Error)
		}
	}
	verb := "Applied"
	if dry {
		verb = "Plan"
	}
	switch {
	case changed == 0 && unreachable == 0 && failed == 0:
		p.Println("No changes.")
	default:
		p.Printf("%s: %d change(s) on %d host(s), %d unreachable, %d failed.\n", verb, changed, changedHosts, unreachable, failed)
	}
}

func intOrDash(n *int) string {
	if n == nil {
		return "-"
	}
	return fmt.Sprint(*n)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func printVIPs(p *ui.Printer, vips []verify.VIPState) {
	var rows [][]string
	for _, v := range vips {
		holders := strings.Join(v.Holders, ", ")
		if holders == "" {
			holders = "-"
		}
		master := v.Master
		if v.Want != "" {
			master += " (drained: " + v.Want + ")"
		}
		rows = append(rows, []string{v.VIP, v.Cluster, master, holders, v.State})
	}
	ok, warn, bad := p.Styles.OK, p.Styles.Warn, p.Styles.Bad
	p.Table([]string{"VIP", "CLUSTER", "MASTER", "HELD BY", "STATE"}, rows, func(row, col int) *lipgloss.Style {
		if col != 4 {
			return nil
		}
		switch rows[row][4] {
		case verify.StateOK:
			return &ok
		case verify.StateMoved:
			return &warn
		}
		return &bad
	})
	if hint := verify.SplitHint(vips); hint != "" {
		p.Printf("%s %s\n", p.Styles.Bad.Render("split brain:"), hint)
	}
}

// renderFor renders host's files again for the keepalived its facts found
// (track_file or, before 2.0, polling scripts) into byPath.
func renderFor(r *render.Renderer, l *Loaded, host string, f *facts.Facts, byPath map[string]render.File) error {
	files, err := r.HostWith(l.Inv, l.Layout, host, renderOptions(f))
	if err != nil {
		return err
	}
	for _, x := range files {
		byPath[x.Path] = x
	}
	return nil
}

func renderOptions(f *facts.Facts) render.Options {
	return render.Options{KeepalivedVersion: f.KeepalivedVersion, Legacy: !f.KeepalivedTrackFile()}
}
