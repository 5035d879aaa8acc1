package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"charm.land/lipgloss/v2"
	"github.com/spf13/cobra"

	"github.com/hactl/hactl/pkg/drain"
	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/render"
	"github.com/hactl/hactl/pkg/ui"
	"github.com/hactl/hactl/pkg/verify"
)

// StatusOptions is `hactl status`.
type StatusOptions struct {
	Conn  ConnOptions
	Limit []string
}

// statusHost is one host in status's JSON; what an unreachable host could
// not tell (services, enabled, drift) is null.
type statusHost struct {
	Name       string   `json:"name"`
	Reachable  bool     `json:"reachable"`
	Keepalived *string  `json:"keepalived"`
	Nginx      *string  `json:"nginx"`
	Enabled    *bool    `json:"enabled"`
	Drift      []string `json:"drift"`
	// Drained: `hactl drain` took the host out; null when it could not be read.
	Drained *bool `json:"drained"`
	// ConnectionDrain is what a running connection drain keeps or forwards
	// on the host (pkg/drain); absent when none runs.
	ConnectionDrain *string `json:"connection_drain,omitempty"`
	Error           *string `json:"error"`
}

type statusJSON struct {
	ui.Envelope
	VIPs  []verify.VIPState `json:"vips"`
	Hosts []statusHost      `json:"hosts"`
}

func newStatus(ctx context.Context, g *Globals) *cobra.Command {
	o := &StatusOptions{}
	cmd := &cobra.Command{
		Use:   "status [-i] FILE [--limit a,b]",
		Short: "Show who holds which VIP now, service states, split brain and config drift",
		Long: `status asks every host in parallel, in one SSH round trip each, for its
addresses, the state of keepalived and nginx, and the checksums of the files
hactl manages. Each VIP is ok (on its master only), moved (on one other host),
missing (nowhere) or split (on several hosts: always an error). Exit 0 only
when every VIP is ok and every host reachable.`,
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.load(ctx)
			if err != nil {
				return err
			}
			return runStatus(ctx, g, o, l)
		},
	}
	o.Conn.addFlags(cmd)
	addLimitFlag(cmd, &o.Limit)
	cmd.Flag("limit").Usage = "only the clusters of these hosts or clusters (VIP placement is judged on whole clusters)"
	return cmd
}

func runStatus(ctx context.Context, g *Globals, o *StatusOptions, l *Loaded) error {
	r, err := g.renderer()
	if err != nil {
		return &ExitError{Code: ExitFailed, Err: err}
	}
	if len(o.Limit) > 0 {
		sel, err := selectHosts(l, o.Limit)
		if err != nil {
			return err
		}
		l = &Loaded{Inv: l.Inv, Layout: layoutOf(l.Layout, clusterHosts(l.Inv, sel), l.Inv)}
	}
	fl, err := g.connect(ctx, l, o.Conn, layoutHosts(l))
	if err != nil {
		return err
	}
	defer fl.Close()
	if l, err = recordedLayout(ctx, g, l, fl); err != nil {
		return err
	}
	doc, err := gatherStatus(ctx, l, r, fl)
	if err != nil {
		return &ExitError{Code: ExitFailed, Err: err}
	}
	problems := statusProblems(doc)
	if g.Output == "json" {
		var perr error
		if len(problems) > 0 {
			perr = errors.New(strings.Join(problems, "; "))
		}
		doc.Envelope = ui.Result(perr)
		if err := g.jsonOut(doc); err != nil {
			return err
		}
	} else {
		p := g.stdout()
		printVIPs(p, doc.VIPs)
		p.Println()
		printStatusHosts(p, doc.Hosts)
	}
	if len(problems) > 0 {
		return &ExitError{Code: ExitFailed, Err: errors.New(strings.Join(problems, "; "))}
	}
	return nil
}

func statusProblems(doc *statusJSON) []string {
	var problems []string
	for _, h := range doc.Hosts {
		if !h.Reachable {
			problems = append(problems, h.Name+" unreachable")
		}
	}
	if !verify.AllOK(doc.VIPs) {
		problems = append(problems, verify.Problems(doc.VIPs))
	}
	return problems
}

// gatherStatus asks every host once: facts carry addresses, service states
// and file checksums, so status costs one round trip per host.
func gatherStatus(ctx context.Context, l *Loaded, r *render.Renderer, fl *fleet.Fleet) (*statusJSON, error) {
	doc := &statusJSON{Hosts: make([]statusHost, len(fl.Hosts))}
	obs := make([]verify.Observation, len(fl.Hosts))
	var wg sync.WaitGroup
	for i, h := range fl.Hosts {
		files, err := r.Host(l.Inv, l.Layout, h.Name())
		if err != nil {
			return nil, err
		}
		sh := statusHost{Name: h.Name()}
		obs[i].Host = h.Name()
		if h.Conn == nil {
			msg := connMessage(h.Name(), h.Err)
			sh.Error, obs[i].Err = &msg, h.Err
			doc.Hosts[i] = sh
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var paths []string
			for _, f := range files {
				paths = append(paths, f.Path)
			}
			// keepalived's own view (last state per instance) comes from
			// its journal, on a second channel of the same connection in
			// parallel with the facts: no extra round trip of latency.
			vrrpc := make(chan map[string]string, 1)
			go func() {
				st, err := verify.VRRPStates(ctx, h.Conn)
				if err != nil {
					st = nil // unknown: the verdict rests on addresses alone
				}
				vrrpc <- st
			}()
			cdc := make(chan string, 1)
			go func() { cdc <- drain.ActiveConn(ctx, h.Conn) }()
			f, err := facts.Gather(ctx, h.Conn, facts.Request{Paths: paths, Services: []string{"keepalived", "nginx"}})
			states := <-vrrpc
			if cd := <-cdc; cd != "" {
				sh.ConnectionDrain = &cd
			}
			if err != nil {
				msg := err.Error()
				sh.Error, obs[i].Err = &msg, err
				doc.Hosts[i] = sh
				return
			}
			sh.Reachable = true
			drained := f.Drained()
			sh.Drained, obs[i].Drained = &drained, drained
			ka, ng := f.Services["keepalived"], f.Services["nginx"]
			enabled := ka.Enabled == "enabled" && ng.Enabled == "enabled"
			sh.Keepalived, sh.Nginx, sh.Enabled = &ka.Active, &ng.Active, &enabled
			sh.Drift = []string{}
			// Rendered for the keepalived the host runs (track_file or not).
			if fs, err := r.HostWith(l.Inv, l.Layout, h.Name(), renderOptions(f)); err == nil {
				files = fs
			}
			for _, want := range files {
				// The template module's own rule: what status calls drift
				// is exactly what the next apply replaces or fixes.
				if d := playbook.Drift(want, f.Files[want.Path]); d != playbook.DriftNone {
					sh.Drift = append(sh.Drift, want.Path+" ("+d+")")
				}
			}
			sort.Strings(sh.Drift)
			sh.Drift = append(sh.Drift, playbook.PendingDrift(f)...)
			obs[i].Addrs = f.Addrs[h.Host.Interface]
			if ka.Active == "active" {
				// A stopped daemon claims nothing, whatever it last logged.
				obs[i].VRRP = states
			}
			doc.Hosts[i] = sh
		}()
	}
	wg.Wait()
	doc.VIPs = verify.SetTransports(verify.Classify(l.Layout, obs), l.Inv)
	return doc, nil
}

// printStatusHosts is one row per host; why a host is unreachable is
// listed under the table, not inside a cell.
func printStatusHosts(p *ui.Printer, hosts []statusHost) {
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
		if h.Error != nil {
			p.Printf("%s %s: %s\n", p.Styles.Bad.Render("unreachable"), h.Name, *h.Error)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
