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
}

func (o *RunOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&o.Limit, "limit", nil, "only these hosts (comma-separated names)")
	cmd.Flags().StringVarP(&o.Playbook, "playbook", "p", "", "run this playbook file instead of the embedded playbooks/ha-nginx.hcl")
	cmd.Flags().BoolVar(&o.Prune, "prune", false, "decommission hosts that left the inventory (keepalived stopped gracefully and disabled, hactl's files removed) before the others are reconfigured")
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
	o.Run.addFlags(cmd)
	return cmd
}

func extraCommands(ctx context.Context, g *Globals) []*cobra.Command {
	return []*cobra.Command{newApply(ctx, g), newStatus(ctx, g), newFailoverTest(ctx, g), newDrain(ctx, g, false), newDrain(ctx, g, true), newDestroy(ctx, g)}
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
	Hosts []hostJSON `json:"hosts"`
	// Departed are the hosts that left the inventory since the last apply.
	Departed []departedJSON      `json:"departed"`
	VIPs     []verify.VIPState   `json:"vips"`
	Plan     map[string][]change `json:"plan,omitempty"`
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
	sel, err := fleet.Select(l.Inv, o.Run.Limit)
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
	var inputs []playbook.HostInput
	ro := rollout.New(rollout.Options{Layout: l.Layout, Fleet: fl, Event: progress.event})
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
	for _, res := range runner.Run(ctx, inputs) {
		results[res.Host] = res
	}

	doc := applyJSON{Hosts: []hostJSON{}, Departed: append([]departedJSON{}, mem.departed...)}
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
	// Verification reads every host of the touched clusters, once each has
	// had its time to converge; what did not, the verification reports.
	if !dry && failed == 0 {
		_ = ro.WaitConverged(ctx)
	}
	vips := verify.SetTransports(verify.Classify(clusterLayout(l, fl), verify.MarkDrained(verify.ObserveVRRP(ctx, fl.Hosts), ro.Drained())), l.Inv)
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
		return &ExitError{Code: ExitFailed, Err: errors.New("VIP placement is wrong after apply: " + verify.Problems(vips))}
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
