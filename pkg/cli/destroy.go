package cli

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/prune"
	"github.com/hactl/hactl/pkg/ui"
)

// DestroyOptions is `hactl destroy` (and `plan --destroy`).
type DestroyOptions struct {
	Conn  ConnOptions
	Limit []string // host or cluster names
	Purge bool
	Now   func() time.Time
}

func newDestroy(ctx context.Context, g *Globals) *cobra.Command {
	o := &DestroyOptions{Now: time.Now}
	cmd := &cobra.Command{
		Use:   "destroy -i FILE [--limit host|cluster,…] [--purge-packages]",
		Short: "The reverse of apply: release the VIPs, stop and disable keepalived, remove hactl's files",
		Long: `destroy takes the selected hosts (default: every host) out of service one at a
time: keepalived is stopped gracefully (its VIPs move to the hosts still
running, the last host's VIPs are released last), then disabled; hactl's
files and its systemd drop-in are removed (kept in /var/backups/hactl) and the
distribution's defaults it replaced are restored from its backups. Packages
stay unless --purge-packages. plan --destroy shows it first. A second destroy
changes nothing; apply afterwards converges the hosts as new.`,
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.load(ctx)
			if err != nil {
				return err
			}
			return runDestroy(ctx, g, o, l, false)
		},
	}
	o.Conn.addFlags(cmd)
	addLimitFlag(cmd, &o.Limit)
	cmd.Flags().BoolVar(&o.Purge, "purge-packages", false, "also remove the keepalived and nginx packages")
	return cmd
}

func runDestroy(ctx context.Context, g *Globals, o *DestroyOptions, l *Loaded, dry bool) error {
	sel, err := selectHosts(l, o.Limit)
	if err != nil {
		return err
	}
	fl, err := g.connect(ctx, l, o.Conn, clusterHosts(l.Inv, sel))
	if err != nil {
		return err
	}
	defer fl.Close()
	pr := newProgress(g, false)
	opts := prune.Options{Stamp: o.Now().UTC().Format(playbook.StampFormat), Event: pr.event, Restore: true, Purge: o.Purge}

	// Every host of the touched clusters is read: the hosts that keep
	// running are where the destroyed hosts' VIPs go.
	plans := map[string]*prune.Teardown{}
	errs := map[string]error{}
	for _, h := range fl.Hosts {
		if h.Conn == nil {
			errs[h.Name()] = h.Err
			continue
		}
		t, err := prune.PlanTeardown(ctx, h.Conn, opts)
		if err != nil {
			errs[h.Name()] = fmt.Errorf("%s: %w", h.Name(), err)
			continue
		}
		plans[h.Name()] = t
	}

	doc := applyJSON{Hosts: []hostJSON{}, Departed: []departedJSON{}}
	if dry {
		doc.Plan = map[string][]change{}
	}
	failed := 0
	for _, h := range sel {
		hj := hostJSON{Name: h.Name, OK: true, Result: "ok", Reachable: true}
		t := plans[h.Name]
		switch {
		case errs[h.Name] != nil:
			msg := errs[h.Name].Error()
			hj.OK, hj.Result, hj.Error = false, "failed", &msg
			if fl.Get(h.Name) == nil || fl.Get(h.Name).Conn == nil {
				hj.Result, hj.Reachable = "unreachable", false
			}
		case dry:
			doc.Plan[h.Name] = []change{}
			for _, c := range t.Changes() {
				doc.Plan[h.Name] = append(doc.Plan[h.Name], change{Step: "destroy", Summary: c})
			}
			n := len(doc.Plan[h.Name])
			hj.Changed = &n
			if n > 0 {
				hj.Result = "changed"
			}
		default:
			// Where this host's VIPs go: the hosts of its cluster that are
			// not destroyed yet and run keepalived.
			var others []*fleet.Host
			for _, x := range fl.Reachable() {
				if x.Cluster.Name == l.Inv.ClusterOf(h.Name).Name && x.Name() != h.Name && plans[x.Name()] != nil && plans[x.Name()].Stop {
					others = append(others, x)
				}
			}
			opts.Bound = crashBound(l.Layout, l.Inv.ClusterOf(h.Name).Name)
			opts.VIPs = clusterVIPs(l.Layout, l.Inv.ClusterOf(h.Name).Name)
			n, err := t.Run(ctx, fl.Get(h.Name), others, opts)
			hj.Changed = &n
			if n > 0 {
				hj.Result = "changed"
			}
			if err != nil {
				msg := err.Error()
				hj.OK, hj.Result, hj.Error = false, "failed", &msg
				pr.event(playbook.Event{Host: h.Name, Step: "decommission", Status: "failed", Summary: err.Error()})
			}
			t.Stop = false // it no longer takes VIPs
		}
		if !hj.OK {
			failed++
		}
		doc.Hosts = append(doc.Hosts, hj)
		if !hj.OK && !dry {
			// The next host's VIPs would have nowhere sure to go.
			break
		}
	}
	var runErr error
	if failed > 0 {
		runErr = &ExitError{Code: ExitFailed, Err: fmt.Errorf("%d of %d host(s) failed", failed, len(sel))}
	}
	if g.Output == "json" {
		doc.Envelope = ui.Result(runErr)
		if err := g.jsonOut(doc); err != nil {
			return err
		}
	} else {
		p := g.stdout()
		if dry {
			printTeardown(p, doc.Plan)
		}
		printHosts(p, doc.Hosts, dry)
	}
	return runErr
}

func printTeardown(p *ui.Printer, plan map[string][]change) {
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
			p.Printf("  - %s\n", c.Summary)
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
