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
	"github.com/hactl/hactl/pkg/ui"
	"github.com/hactl/hactl/pkg/verify"
	"github.com/hactl/hactl/pkg/vrrp"
	"github.com/hactl/hactl/playbooks"
)

// ApplyOptions is `hactl apply`.
type ApplyOptions struct {
	Conn     ConnOptions
	Limit    []string
	Playbook string
	// Now stamps backups; tests fix it.
	Now func() time.Time
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
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.load(ctx)
			if err != nil {
				return err
			}
			return runApply(ctx, g, o, l, false)
		},
	}
	o.Conn.addFlags(cmd)
	cmd.Flags().StringSliceVar(&o.Limit, "limit", nil, "only these hosts (comma-separated names)")
	cmd.Flags().StringVarP(&o.Playbook, "playbook", "p", "", "run this playbook file instead of the embedded playbooks/ha-nginx.hcl")
	return cmd
}

func extraCommands(ctx context.Context, g *Globals) []*cobra.Command {
	return []*cobra.Command{newApply(ctx, g), newStatus(ctx, g), newFailoverTest(ctx, g)}
}

func planOnline(ctx context.Context, g *Globals, o *PlanOptions, l *Loaded) error {
	if g.Output != "json" {
		PrintLayout(g.stdout(), l)
		g.stdout().Println()
	}
	return runApply(ctx, g, &ApplyOptions{Conn: o.Conn, Now: time.Now}, l, true)
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
		return nil, &ExitError{Code: ExitUsage, Err: errReported}
	}
	return book, nil
}

// hostJSON is apply's per-host JSON.
type hostJSON struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Changed int    `json:"changed"`
	Error   string `json:"error"`
}

type applyJSON struct {
	Hosts []hostJSON          `json:"hosts"`
	VIPs  []verify.VIPState   `json:"vips"`
	Plan  map[string][]change `json:"plan,omitempty"`
}

type change struct {
	Step    string `json:"step"`
	Summary string `json:"summary"`
	Diff    string `json:"diff,omitempty"`
}

// targetVars are the inventory values the playbook may name as "{name}".
func targetVars(inv *inventory.Inventory, h *inventory.Host) map[string]string {
	c := inv.ClusterOf(h.Name)
	return map[string]string{
		"nginx_listen":   fmt.Sprint(c.Nginx.Listen),
		"interface":      h.Interface,
		"vrrp_transport": c.Transport,
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
	book, err := g.loadBook(o.Playbook)
	if err != nil {
		return err
	}
	sel, err := fleet.Select(l.Inv, o.Limit)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	r, err := g.renderer()
	if err != nil {
		return &ExitError{Code: ExitFailed, Err: err}
	}
	progress := newProgress(g)
	fl, err := g.connect(ctx, l, o.Conn, clusterHosts(l.Inv, sel))
	if err != nil {
		return err
	}
	defer fl.Close()

	results := map[string]playbook.Result{}
	var inputs []playbook.HostInput
	ro := &rollout{l: l, fl: fl, held: map[string]map[string]bool{}, switching: map[string]bool{}, progress: progress}
	stamp := o.Now().UTC().Format("20060102T150405Z")
	for _, h := range sel {
		fh := fl.Get(h.Name)
		if fh.Err != nil {
			results[h.Name] = playbook.Result{Host: h.Name, Err: fh.Err}
			progress.event(playbook.Event{Host: h.Name, Step: "connect", Status: "failed", Summary: fh.Err.Error()})
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
				ro.noteTransport(h, f.VRRPTransport)
				return f.CheckInterface(h.Name, h.Interface, h.Address)
			},
		})
	}
	runner := &playbook.Runner{
		Book: book, Parallel: o.Conn.Parallel, DryRun: dry, Lock: !dry,
		Event: progress.event,
	}
	runner.Snapshot, runner.Settle, runner.SettleAll = ro.snapshot, ro.settle, ro.settleAll
	runner.Group = func(host string) string { return l.Inv.ClusterOf(host).Name }
	for _, res := range runner.Run(ctx, inputs) {
		results[res.Host] = res
	}

	doc := applyJSON{Hosts: []hostJSON{}}
	failed := 0
	for _, h := range sel {
		res := results[h.Name]
		hj := hostJSON{Name: h.Name, OK: res.Err == nil, Changed: res.Changed}
		if res.Err != nil {
			hj.Error = res.Err.Error()
			failed++
		}
		doc.Hosts = append(doc.Hosts, hj)
		if dry {
			if doc.Plan == nil {
				doc.Plan = map[string][]change{}
			}
			doc.Plan[h.Name] = []change{}
			for _, c := range res.Changes {
				doc.Plan[h.Name] = append(doc.Plan[h.Name], change{c.Step, c.Summary, c.Diff})
			}
		}
	}
	// Verification reads every host of the touched clusters. A VIP may still
	// be on its way home (preemption after the last restart): give each
	// cluster its settle time before judging.
	if !dry && failed == 0 {
		for _, c := range l.Inv.Clusters {
			if fl.Get(c.Hosts[0].Name) != nil {
				_ = waitVIPs(ctx, l, fl, c.Name, func(vs []verify.VIPState) bool {
					for _, v := range vs {
						if v.Cluster == c.Name && !v.OK() {
							return false
						}
					}
					return true
				})
			}
		}
	}
	vips := verify.SetTransports(verify.Classify(clusterLayout(l, fl), verify.ObserveVRRP(ctx, fl.Hosts)), l.Inv)
	doc.VIPs = vips

	if g.Output == "json" {
		if err := ui.JSON(g.IO.Out, doc); err != nil {
			return err
		}
	} else {
		p := g.stdout()
		if dry {
			printPlan(p, sel, results)
		}
		printHosts(p, doc.Hosts, dry)
		p.Println()
		printVIPs(p, vips)
	}
	switch {
	case failed > 0:
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("%d of %d host(s) failed", failed, len(sel))}
	case dry:
		return nil
	case !verify.AllOK(vips):
		return &ExitError{Code: ExitFailed, Err: errors.New("VIP placement is wrong after apply: " + vipProblems(vips))}
	}
	return nil
}

// clusterLayout limits the layout to the clusters whose hosts are in the fleet.
func clusterLayout(l *Loaded, fl *fleet.Fleet) *vrrp.Layout {
	in := map[string]bool{}
	for _, h := range fl.Hosts {
		in[h.Cluster.Name] = true
	}
	out := &vrrp.Layout{}
	for _, i := range l.Layout.Instances {
		if in[i.Cluster] {
			out.Instances = append(out.Instances, i)
		}
	}
	return out
}

func vipProblems(vs []verify.VIPState) string {
	var p []string
	for _, v := range vs {
		if !v.OK() {
			p = append(p, fmt.Sprintf("%s is %s (holders: %s; master %s)", v.VIP, v.State, strings.Join(v.Holders, ","), v.Master))
		}
	}
	if hint := verify.SplitHint(vs); hint != "" {
		p = append(p, hint)
	}
	return strings.Join(p, "; ")
}

// rollout remembers, per host, which VIPs of its cluster were served (held
// by exactly one host) just before the host's daemons were touched.
type rollout struct {
	l        *Loaded
	fl       *fleet.Fleet
	progress *progress
	mu       sync.Mutex
	held     map[string]map[string]bool // host -> VIPs served before its restart
	// switching marks clusters whose VRRP transport changes in this run:
	// until every host is switched, hosts on the old and the new transport
	// cannot hear each other and each claims MASTER, so no per-host settle
	// condition can hold. Their hosts are not waited for one by one; the
	// final verification waits for the whole cluster.
	switching map[string]bool
}

// noteTransport records a host whose live keepalived uses another transport
// than the inventory asks for.
func (ro *rollout) noteTransport(h *inventory.Host, live string) {
	c := ro.l.Inv.ClusterOf(h.Name)
	if live == "" || live == c.Transport {
		return
	}
	ro.mu.Lock()
	first := !ro.switching[c.Name]
	ro.switching[c.Name] = true
	ro.mu.Unlock()
	if first {
		ro.progress.event(playbook.Event{Host: h.Name, Step: "vrrp", Status: "changed",
			Summary: fmt.Sprintf("cluster %s switches VRRP transport %s → %s: hosts on different transports cannot hear each other, so VIPs may sit on several hosts until every host is switched; waiting once at the end instead of after each host", c.Name, live, c.Transport)})
	}
}

func (ro *rollout) isSwitching(host string) bool {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	return ro.switching[ro.l.Inv.ClusterOf(host).Name]
}

// snapshot records the VIPs served right now in host's cluster, and reports
// the cluster dark when no host holds any of its VIPs (a first rollout:
// keepalived runs nowhere yet, or only on hosts started moments ago that have
// not claimed anything). When a host cannot be observed, nothing is recorded,
// the cluster is not dark, and settle falls back to the strict rule (every
// VIP of the cluster on exactly one host).
func (ro *rollout) snapshot(ctx context.Context, host string) (dark bool) {
	c := ro.l.Inv.ClusterOf(host)
	vs := verify.Classify(ro.l.Layout, verify.Observe(ctx, clusterFleet(ro.fl, c.Name)))
	held := map[string]bool{}
	dark = true
	for _, v := range vs {
		if v.Cluster != c.Name {
			continue
		}
		if v.State == verify.StateUnknown {
			ro.mu.Lock()
			delete(ro.held, host)
			ro.mu.Unlock()
			return false
		}
		if len(v.Holders) == 1 {
			held[v.VIP] = true
		}
		if len(v.Holders) > 0 {
			dark = false
		}
	}
	ro.mu.Lock()
	ro.held[host] = held
	ro.mu.Unlock()
	return dark
}

// settle waits, after host's daemons were (re)started, until
//   - no VIP of the cluster is on two hosts,
//   - host holds the VIP it is master of (so it serves before the next host
//     is touched), and
//   - every VIP that was served before the restart is served again.
//
// A VIP nobody held before may stay unheld: on a first rollout the other
// hosts' keepalived is not running yet, and waiting for a backup to claim
// their VIPs (a full master-down interval) protects nothing. Without a
// snapshot every VIP must be on exactly one host. The timeout covers a full
// master-down interval plus preemption, three times over.
func (ro *rollout) settle(ctx context.Context, host string) error {
	if ro.isSwitching(host) {
		return nil
	}
	c := ro.l.Inv.ClusterOf(host)
	ro.mu.Lock()
	held, known := ro.held[host]
	ro.mu.Unlock()
	return waitVIPs(ctx, ro.l, ro.fl, c.Name, func(vs []verify.VIPState) bool {
		return rolledOut(vs, c.Name, host, held, known)
	})
}

// settleAll is settle for several hosts that started together (the hosts of
// a dark cluster): one wait per cluster until settle's condition holds for
// every one of them. The hosts it does not hold for get the error.
func (ro *rollout) settleAll(ctx context.Context, hosts []string) map[string]error {
	var clusters []string
	byCluster := map[string][]string{}
	for _, h := range hosts {
		c := ro.l.Inv.ClusterOf(h).Name
		if byCluster[c] == nil {
			clusters = append(clusters, c)
		}
		byCluster[c] = append(byCluster[c], h)
	}
	ok := func(vs []verify.VIPState, c, h string) bool {
		ro.mu.Lock()
		held, known := ro.held[h]
		ro.mu.Unlock()
		return rolledOut(vs, c, h, held, known)
	}
	errs := map[string]error{}
	for _, c := range clusters {
		if ro.isSwitching(byCluster[c][0]) {
			continue
		}
		var last []verify.VIPState
		err := waitVIPs(ctx, ro.l, ro.fl, c, func(vs []verify.VIPState) bool {
			last = vs
			for _, h := range byCluster[c] {
				if !ok(vs, c, h) {
					return false
				}
			}
			return true
		})
		if err == nil {
			continue
		}
		for _, h := range byCluster[c] {
			if last == nil || !ok(last, c, h) {
				errs[h] = err
			}
		}
	}
	return errs
}

// rolledOut is settle's condition on one observation of the cluster; held
// (when known) are the VIPs served before host's restart.
func rolledOut(vs []verify.VIPState, cluster, host string, held map[string]bool, known bool) bool {
	for _, v := range vs {
		if v.Cluster != cluster {
			continue
		}
		mine := v.Master == host
		switch {
		case mine && (len(v.Holders) != 1 || v.Holders[0] != host):
			return false
		case v.State == verify.StateUnknown:
			// A host cannot be asked: the final verification reports it.
		case len(v.Holders) > 1:
			return false
		case len(v.Holders) == 0 && (!known || held[v.VIP]):
			return false
		}
	}
	return true
}

func clusterFleet(fl *fleet.Fleet, cluster string) []*fleet.Host {
	var hosts []*fleet.Host
	for _, h := range fl.Hosts {
		if h.Cluster.Name == cluster {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// waitVIPs polls the cluster's hosts until done holds: every 50 ms (each poll
// is one short command per host), every 100 ms on clusters of more than 20.
func waitVIPs(ctx context.Context, l *Loaded, fl *fleet.Fleet, cluster string, done func([]verify.VIPState) bool) error {
	hosts := clusterFleet(fl, cluster)
	var bound time.Duration
	for _, in := range l.Layout.ForCluster(cluster) {
		bound = max(bound, in.Bounds.Crash)
	}
	every := 50 * time.Millisecond
	if len(hosts) > 20 {
		every = 100 * time.Millisecond
	}
	timeout := 3*bound + 5*time.Second
	deadline := time.Now().Add(timeout)
	for {
		last := verify.Classify(l.Layout, verify.Observe(ctx, hosts))
		if done(last) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster %s: VIPs did not settle within %s: %s", cluster, timeout.Round(time.Second), vipProblems(last))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// progress prints one line per host per step to stderr as it happens.
type progress struct {
	mu sync.Mutex
	p  *ui.Printer
}

func newProgress(g *Globals) *progress { return &progress{p: g.stderr()} }

func (pr *progress) event(e playbook.Event) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	st := pr.p.Styles
	status := e.Status
	switch e.Status {
	case "changed":
		status = st.Warn.Render(fmt.Sprintf("%-8s", e.Status))
	case "failed":
		status = st.Bad.Render(fmt.Sprintf("%-8s", e.Status))
	case "ok", "settled":
		status = st.OK.Render(fmt.Sprintf("%-8s", e.Status))
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

func printHosts(p *ui.Printer, hosts []hostJSON, dry bool) {
	head := []string{"HOST", "CHANGED", "STATUS", "ERROR"}
	if dry {
		head[1] = "WOULD CHANGE"
	}
	var rows [][]string
	for _, h := range hosts {
		status := "ok"
		if !h.OK {
			status = "failed"
		}
		rows = append(rows, []string{h.Name, fmt.Sprint(h.Changed), status, firstLine(h.Error)})
	}
	bad, ok := p.Styles.Bad, p.Styles.OK
	p.Table(head, rows, func(row, col int) *lipgloss.Style {
		if col == 2 {
			if rows[row][2] == "ok" {
				return &ok
			}
			return &bad
		}
		return nil
	})
	for _, h := range hosts {
		if strings.Contains(h.Error, "\n") {
			p.Printf("\n%s %s:\n%s\n", p.Styles.Bad.Render("error on"), h.Name, h.Error)
		}
	}
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
		rows = append(rows, []string{v.VIP, v.Cluster, v.Master, holders, v.State})
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
