package cli

import (
	"context"
	"encoding/json"
	"time"

	"github.com/spf13/cobra"

	"github.com/hactl/hactl/pkg/events"
	"github.com/hactl/hactl/pkg/metrics"
)

func addStatusFlags(cmd *cobra.Command, o *StatusOptions) {
	cmd.Flags().BoolVar(&o.Watch, "watch", false,
		"follow the hosts' VRRP transitions as they happen: a redrawn table on a terminal, one JSON event per line otherwise (or with --output json); Ctrl-C ends it")
}

// writeOpenMetrics is `status --output openmetrics`: the fleet invariants
// for Prometheus. It always exits 0 when it could ask the hosts: the
// metrics carry the verdict, alerting rules judge it.
func writeOpenMetrics(g *Globals, doc *statusJSON) error {
	var hosts []metrics.Host
	for _, h := range doc.Hosts {
		hosts = append(hosts, metrics.Host{Name: h.Name, Reachable: h.Reachable, Drained: h.Drained})
	}
	return metrics.Write(g.IO.Out, doc.VIPs, hosts)
}

// watchEvent is one line of `status --watch --output json`.
type watchEvent struct {
	events.Record
	// Received is when hactl got the record (its own clock).
	Received time.Time `json:"received"`
}

// watchError is a line for a host hactl lost (it keeps trying).
type watchError struct {
	Host  string `json:"host"`
	Error string `json:"error"`
}

// runStatusWatch follows the hosts until Ctrl-C (exit 130). On a terminal
// in text mode every record redraws the status table under the latest
// transitions; elsewhere each record is one JSON line, written at once.
func runStatusWatch(ctx context.Context, g *Globals, o *StatusOptions, l *Loaded) error {
	r, err := g.renderer()
	if err != nil {
		return &ExitError{Code: ExitFailed, Err: err}
	}
	l, err = clustersOf(l, o.Limit)
	if err != nil {
		return err
	}
	fl, err := g.connect(ctx, l, o.Conn, layoutHosts(l))
	if err != nil {
		return err
	}
	defer fl.Close()
	table := g.Output == "text" && g.IO.OutTTY
	g.wroteJSON = true // a stream of lines, not one document
	var recent []events.Record
	redraw := func() {
		doc, err := gatherStatus(ctx, l, r, fl)
		if err != nil || ctx.Err() != nil {
			return
		}
		p := g.stdout()
		p.Printf("\x1b[H\x1b[2J")
		printVIPs(p, doc.VIPs)
		p.Println()
		printStatusHosts(p, doc.Hosts)
		p.Println()
		p.Printf("Latest transitions (Ctrl-C to stop), %s:\n", time.Now().Format("15:04:05"))
		for _, e := range recent {
			p.Printf("  %s  %-6s %-4s %-16s %s → %s  %s\n", e.Time.Local().Format("15:04:05.000"), e.Host, e.Kind, e.Key(), e.From, e.To, e.Cause)
		}
	}
	if table {
		redraw()
	}
	enc := json.NewEncoder(g.IO.Out)
	events.Watch(ctx, fl.Hosts, func(rec events.Record) {
		if !table {
			_ = enc.Encode(watchEvent{Record: rec, Received: time.Now().UTC()})
			return
		}
		recent = append(recent, rec)
		if len(recent) > 10 {
			recent = recent[len(recent)-10:]
		}
		redraw()
	}, func(host string, err error) {
		if !table {
			_ = enc.Encode(watchError{Host: host, Error: err.Error()})
		}
	})
	return nil
}
