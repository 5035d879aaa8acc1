package views

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"charm.land/lipgloss/v2"

	"github.com/hactl/hactl/pkg/drain"
	"github.com/hactl/hactl/pkg/failover"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/ops"
	"github.com/hactl/hactl/pkg/render"
	"github.com/hactl/hactl/pkg/report"
	"github.com/hactl/hactl/pkg/ui"
	"github.com/hactl/hactl/pkg/verify"
	"github.com/hactl/hactl/pkg/vrrp"
)

// human is the text view: results on stdout, progress on stderr.
type human struct {
	io      *ui.IO
	p, errp *ui.Printer
	// mu orders failover-test's stderr lines (engine and interrupts).
	mu sync.Mutex
}

func newHuman(io *ui.IO) *human { return &human{io: io, p: io.Stdout(), errp: io.Stderr()} }

func (v *human) Wrote() bool { return false }

func (v *human) Events(verbose bool) ops.Events { return newProgress(v.errp, verbose, true) }

func (v *human) Validate(r *ops.ValidateResult) error {
	warn := ""
	if n := len(r.Warnings); n > 0 {
		warn = fmt.Sprintf(", %d warning(s) above", n)
	}
	v.p.Printf("%s %s: %d cluster(s), %d host(s), %d VIP(s)%s\n", v.p.Styles.OK.Render("valid"), r.Path, r.Clusters, r.Hosts, r.VIPs, warn)
	return nil
}

func (v *human) Render(r *ops.RenderResult) error {
	v.p.Printf("rendered %d files for %d hosts into %s\n", len(r.Files), r.Hosts, r.Dir)
	return nil
}

func (v *human) Layout(inv *inventory.Inventory, l *vrrp.Layout) error {
	PrintLayout(v.p, inv, l)
	return nil
}

func (v *human) Apply(r *ops.ApplyResult, verbose bool) error {
	p := v.p
	if r.Dry {
		PrintLayout(p, r.Inv, r.Layout)
		p.Println()
		printPlan(p, r.Hosts)
	}
	printHosts(p, r.Hosts, r.Dry, true)
	p.Println()
	if verbose || !verify.AllOK(r.VIPs) || r.Dry {
		printVIPs(p, r.VIPs)
	} else {
		p.Printf("%s every VIP on its master (%d of %d)\n", p.Styles.OK.Render("VIPs:"), len(r.VIPs), len(r.VIPs))
	}
	if verbose {
		v.errp.Printf("round trips: %s\n", r.RoundTrips)
	}
	return nil
}

func (v *human) Destroy(r *ops.DestroyResult) error {
	if r.Dry {
		printTeardown(v.p, r.Plan)
	}
	printHosts(v.p, r.Hosts, r.Dry, false)
	return nil
}

func (v *human) Status(r *ops.StatusResult, verbose bool) error {
	printVIPs(v.p, r.VIPs)
	v.p.Println()
	printStatusHosts(v.p, r.Hosts)
	if len(r.Sites) > 0 {
		v.p.Println()
		printStatusSites(v.p, r.Sites)
	}
	if verbose {
		v.errp.Printf("round trips: %s\n", r.RoundTrips)
	}
	return r.Err
}

// printStatusSites: per site its certificate's expiry (days left, a
// warning under ops.CertWarnDays) and whether every host serves it alike.
func printStatusSites(p *ui.Printer, sites []ops.SiteStatus) {
	var rows [][]string
	for _, x := range sites {
		expires, days := "-", "-"
		if x.DaysLeft != nil {
			expires, days = x.NotAfter.UTC().Format("2006-01-02"), fmt.Sprint(*x.DaysLeft)
			if x.Warn {
				days += " (renew)"
			}
		}
		same := "unknown"
		if x.Consistent != nil && *x.Consistent {
			same = "same on every host"
		}
		for _, h := range x.DriftHosts {
			same = "DRIFT " + h + ": " + strings.ReplaceAll(strings.Join(x.DriftFiles[h], ", "), render.SitesDir+"/", "")
			if len(x.DriftHosts) > 1 {
				same = "DRIFT on " + strings.Join(x.DriftHosts, ", ")
			}
		}
		rows = append(rows, []string{x.Cluster, x.Site, expires, days, same})
	}
	ok, bad, warn := p.Styles.OK, p.Styles.Bad, p.Styles.Warn
	p.Table([]string{"CLUSTER", "SITE", "CERT EXPIRES", "DAYS LEFT", "HOSTS"}, rows, func(row, col int) *lipgloss.Style {
		v := rows[row][col]
		switch {
		case col == 3 && strings.HasSuffix(v, "(renew)"):
			return &warn
		case col == 4 && v == "same on every host":
			return &ok
		case col == 4:
			return &bad
		}
		return nil
	})
}

func (v *human) FailoverProgress() (func(failover.Step), func(bool, string)) {
	return v.failoverProgress()
}

func (v *human) failoverProgress() (func(failover.Step), func(bool, string)) {
	say := func(format string, args ...any) {
		v.mu.Lock()
		defer v.mu.Unlock()
		v.errp.Printf(format, args...)
	}
	return func(s failover.Step) { say("%s\n", s) }, func(warn bool, msg string) {
		style := v.errp.Styles.Bad
		if warn {
			style = v.errp.Styles.Warn
		}
		say("%s\n", style.Render(msg))
	}
}

func (v *human) Failover(r *ops.FailoverResult) error {
	_, say := v.failoverProgress()
	if r.ReportErr != nil {
		say(false, "hactl: "+r.ReportErr.Error())
	}
	if r.Refused != nil {
		p := v.p
		printVIPs(p, r.Preflight.VIPs)
		p.Printf("%s the fleet must be healthy before a failover test:\n", p.Styles.Bad.Render("refusing:"))
		for _, x := range r.Preflight.Reasons() {
			p.Printf("  - %s\n", x)
		}
		return nil
	}
	printFailover(v.p, r.Report)
	v.notRestored(r)
	return nil
}

// notRestored lists on stderr what a failover test left changed.
func (v *human) notRestored(r *ops.FailoverResult) {
	if !r.Report.Aborted && len(r.Report.Left) == 0 {
		return
	}
	_, say := v.failoverProgress()
	say(false, "hactl: the fleet is NOT restored; left as it is:")
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, s := range r.Report.Left {
		v.errp.Printf("  - %s\n", s)
	}
}

func (v *human) DrainProgress() func(string) { return func(s string) { v.p.Println(s) } }

func (v *human) Drain(res *drain.Result, undrain bool) error {
	vips := make([]string, 0, len(res.Moved))
	for vip := range res.Moved {
		vips = append(vips, vip)
	}
	sort.Strings(vips)
	for _, vip := range vips {
		v.p.Printf("%s now on %s\n", vip, res.Moved[vip])
	}
	state := "drained"
	if undrain {
		state = "in service"
	}
	v.p.Printf("%s %s after %s\n", res.Host, state, res.Elapsed.Round(10*time.Millisecond))
	return nil
}

func printPlan(p *ui.Printer, hosts []ops.HostResult) {
	for _, h := range hosts {
		if len(h.Changes) == 0 {
			continue
		}
		p.Printf("%s %s\n", p.Styles.Bold.Render("host"), h.Name)
		for _, c := range h.Changes {
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
// (a cell holds a word, never a message), then a one-line verdict. conn:
// an unreachable host's error is said as a connect failure.
func printHosts(p *ui.Printer, hosts []ops.HostResult, dry, conn bool) {
	head := []string{"HOST", "RESULT", "CHANGED", "SKIPPED"}
	if dry {
		head[2] = "WOULD CHANGE"
	}
	var rows [][]string
	changed, changedHosts, unreachable, failed := 0, 0, 0, 0
	for _, h := range hosts {
		rows = append(rows, []string{h.Name, h.Result, intOrDash(h.Changed), intOrDash(h.Skipped)})
		switch h.Result {
		case ops.ResultUnreachable:
			unreachable++
		case ops.ResultFailed:
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
		case ops.ResultOK:
			return &ok
		case ops.ResultChanged:
			return &warn
		}
		return &bad
	})
	for _, h := range hosts {
		if h.Err != nil {
			p.Printf("%s %s: %s\n", p.Styles.Bad.Render(h.Result), h.Name, hostError(h.Name, h.Reachable, h.Err, conn))
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

func printTeardown(p *ui.Printer, plan map[string][]string) {
	var hosts []string
	for h := range plan {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		if len(plan[h]) == 0 {
			continue
		}
		p.Printf("%s %s\n", p.Styles.Bold.Render("host"), h)
		for _, c := range plan[h] {
			p.Printf("  - %s\n", c)
		}
		p.Println()
	}
	for _, h := range hosts {
		if len(plan[h]) > 0 {
			return
		}
	}
	p.Println("No changes: nothing of hactl's is left on the selected hosts.")
	p.Println()
}

// printStatusHosts is one row per host; why a host is unreachable is
// listed under the table, not inside a cell.
func printStatusHosts(p *ui.Printer, hosts []ops.HostStatus) {
	var rows [][]string
	for _, h := range hosts {
		reach, drift, ka, ng, en := "yes", "none", "-", "-", "-"
		if !h.Reachable {
			reach, drift = "NO", "-"
		}
		if len(h.Drift) > 0 {
			drift = strings.Join(h.Drift, "\n")
		}
		if h.Keepalived != nil {
			ka, ng, en = orDash(*h.Keepalived), orDash(*h.Nginx), fmt.Sprint(*h.Enabled)
		}
		drained := "-"
		if h.Drained != nil {
			drained = map[bool]string{true: "DRAINED", false: "no"}[*h.Drained]
		}
		rows = append(rows, []string{h.Name, reach, ka, ng, en, drained, drift})
	}
	ok, bad, warn := p.Styles.OK, p.Styles.Bad, p.Styles.Warn
	p.Table([]string{"HOST", "REACHABLE", "KEEPALIVED", "NGINX", "ENABLED", "DRAINED", "DRIFT"}, rows, func(row, col int) *lipgloss.Style {
		v := rows[row][col]
		switch col {
		case 1:
			if v == "yes" {
				return &ok
			}
			return &bad
		case 2, 3:
			if v == "active" {
				return &ok
			}
			return &bad
		case 5:
			if v == "DRAINED" {
				return &warn
			}
		case 6:
			if v == "none" {
				return &ok
			}
			return &warn
		}
		return nil
	})
	for _, h := range hosts {
		if h.ConnectionDrain != nil {
			p.Printf("%s on %s: %s\n", p.Styles.Warn.Render("connection drain"), h.Name, *h.ConnectionDrain)
		}
	}
	for _, h := range hosts {
		if h.Err != nil {
			p.Printf("%s %s: %s\n", p.Styles.Bad.Render("unreachable"), h.Name, hostError(h.Name, !h.Unreachable, h.Err, true))
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printFailover(p *ui.Printer, rep failover.Report) {
	rows := make([][]string, 0, len(rep.Scenarios))
	for _, s := range rep.Scenarios {
		rows = append(rows, report.SummaryCells(s))
	}
	p.Table([]string{"NODE", "MODE", "VIP", "MOVED TO", "DRIFT", "BOUND", "HTTP ERR", "MAX GAP", "FAILBACK", "PASS"},
		rows, func(row, col int) *lipgloss.Style {
			if col != 9 {
				return nil
			}
			if rep.Scenarios[row].Pass {
				return &p.Styles.OK
			}
			return &p.Styles.Bad
		})
	for _, s := range rep.Scenarios {
		if s.Error != "" {
			p.Printf("%s %s %s: %s\n", p.Styles.Bad.Render("✗"), s.Node, s.Mode, s.Error)
		}
		for _, n := range s.Notes {
			p.Printf("%s\n", p.Styles.Dim.Render(fmt.Sprintf("  %s %s: %s", s.Node, s.Mode, n)))
		}
		for _, l := range s.LongLived {
			st := p.Styles.Dim
			if !l.Survived {
				st = p.Styles.Warn
			}
			p.Printf("%s\n", st.Render(fmt.Sprintf("  %s %s: long-lived %s", s.Node, s.Mode, l)))
		}
	}
	if rep.Interrupted {
		p.Printf("%s\n", p.Styles.Warn.Render("interrupted: remaining scenarios were not run"))
	}
}
