package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hactl/hactl/pkg/events"
	"github.com/hactl/hactl/pkg/ui"
)

// EventsOptions is `hactl events`.
type EventsOptions struct {
	Conn  ConnOptions
	Limit []string
	Since time.Duration
}

type eventsJSON struct {
	ui.Envelope
	*events.Timeline
}

func newEvents(ctx context.Context, g *Globals) *cobra.Command {
	o := &EventsOptions{}
	cmd := &cobra.Command{
		Use:   "events [-i] FILE [--since 24h] [--limit a,b]",
		Short: "The fleet's VRRP transitions as one timeline per VIP: moves, causes, gaps and split brain",
		Long: `events reads the transitions every host recorded itself (hactl-events.service,
/var/lib/hactl/events/events.log) and merges them per VIP: who held it when,
each move with its cause (keepalived stopped or crashed, nginx down, drained,
preempted), every interval with no holder or with two. Each host's clock is
read against this machine's and the times are corrected by it (shown per host).`,
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Since <= 0 {
				return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--since must be a positive duration (e.g. 10m, 24h), not %s", o.Since)}
			}
			l, err := g.load(ctx)
			if err != nil {
				return err
			}
			return runEvents(ctx, g, o, l)
		},
	}
	o.Conn.addFlags(cmd)
	addLimitFlag(cmd, &o.Limit)
	cmd.Flag("limit").Usage = "only the clusters of these hosts or clusters"
	cmd.Flags().DurationVar(&o.Since, "since", 24*time.Hour, "how far back (e.g. 10m, 24h)")
	inventoryArgs(cmd)
	return cmd
}

func runEvents(ctx context.Context, g *Globals, o *EventsOptions, l *Loaded) error {
	l, err := clustersOf(l, o.Limit)
	if err != nil {
		return err
	}
	fl, err := g.connect(ctx, l, o.Conn, layoutHosts(l))
	if err != nil {
		return err
	}
	defer fl.Close()
	var vips []events.VIPInfo
	for _, in := range l.Layout.Instances {
		vips = append(vips, events.VIPInfo{VIP: in.VIP.String(), Cluster: in.Cluster, Instance: in.Name, Master: in.Master})
	}
	now := time.Now()
	logs := events.Collect(ctx, fl.Hosts, time.Now)
	tl := events.Build(logs, vips, events.Options{Since: now.Add(-o.Since), Until: now})
	var problems []string
	for _, h := range tl.Hosts {
		if h.Error != nil {
			problems = append(problems, *h.Error)
		}
	}
	if g.Output == "json" {
		var perr error
		if len(problems) > 0 {
			perr = errors.New(strings.Join(problems, "; "))
		}
		if err := g.jsonOut(eventsJSON{Envelope: ui.Result(perr), Timeline: tl}); err != nil {
			return err
		}
	} else {
		printTimeline(g.stdout(), tl)
	}
	if len(problems) > 0 {
		return &ExitError{Code: ExitFailed, Err: errors.New(strings.Join(problems, "; "))}
	}
	return nil
}

// printTimeline: per VIP its moves, then the intervals that were not one
// holder; the hosts' clocks last.
func printTimeline(p *ui.Printer, tl *events.Timeline) {
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000Z") }
	p.Printf("Events from %s to %s (UTC, corrected for each host's clock)\n\n", ts(tl.Since), ts(tl.Until))
	for _, v := range tl.VIPs {
		p.Printf("%s  cluster %s, master %s\n", p.Styles.Bold.Render(v.VIP), v.Cluster, orDash(v.Master))
		var rows [][]string
		for _, m := range v.Moves {
			d := ""
			switch {
			case m.GapS > 0:
				d = fmt.Sprintf("no holder %.3fs", m.GapS)
			case m.OverlapS > 0:
				d = fmt.Sprintf("two holders %.3fs", m.OverlapS)
			}
			rows = append(rows, []string{ts(m.Time), m.From + " → " + m.To, m.Cause, d})
		}
		if len(rows) == 0 {
			p.Println("  no move")
		} else {
			p.Table([]string{"TIME", "MOVE", "CAUSE", "BEFORE"}, rows, nil)
		}
		for _, iv := range v.Intervals {
			switch iv.State {
			case events.None:
				p.Printf("  %s from %s for %.3fs%s\n", p.Styles.Bad.Render("NO HOLDER"), ts(iv.Start), iv.Seconds, openNote(iv))
			case events.Split:
				p.Printf("  %s %s from %s for %.3fs%s\n", p.Styles.Bad.Render("SPLIT"), strings.Join(iv.Holders, " + "), ts(iv.Start), iv.Seconds, openNote(iv))
			}
		}
		p.Println()
	}
	var rows [][]string
	for _, h := range tl.Hosts {
		skew, errs := "-", ""
		if h.SkewS != nil {
			skew = fmt.Sprintf("%+.3fs ±%.3fs", *h.SkewS, *h.UncertaintyS)
		}
		if h.Error != nil {
			errs = *h.Error
		}
		rows = append(rows, []string{h.Name, fmt.Sprint(h.Records), skew, errs})
	}
	p.Table([]string{"HOST", "RECORDS", "CLOCK SKEW", "ERROR"}, rows, nil)
}

func openNote(iv events.Interval) string {
	if iv.Open {
		return " (still now)"
	}
	return ""
}

// clustersOf narrows l to the whole clusters of the hosts or clusters in
// limit (VIP placement is judged per cluster), as status does.
func clustersOf(l *Loaded, limit []string) (*Loaded, error) {
	if len(limit) == 0 {
		return l, nil
	}
	sel, err := selectHosts(l, limit)
	if err != nil {
		return nil, err
	}
	return &Loaded{Inv: l.Inv, Layout: layoutOf(l.Layout, clusterHosts(l.Inv, sel), l.Inv)}, nil
}
