package cli

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/hactl/hactl/pkg/ops"
	"github.com/hactl/hactl/pkg/views"
)

// Every command reads the same way: flags → options → load the session →
// the verb → its view → an exit code (g.exit).

func newValidate(ctx context.Context, g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [-i] FILE",
		Short: "Check an inventory without connecting to any host",
		Args:  inventoryArg,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.load(ctx)
			if err != nil {
				return err
			}
			return g.exit(g.view.Validate(ops.Validate(s)))
		},
	}
}

func newRender(ctx context.Context, g *Globals) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "render [-i] FILE -o DIR",
		Short: "Write every managed file to DIR/<host>/<path on the host>",
		Args:  inventoryArg,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return g.usage("render needs an output directory: -o DIR")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.load(ctx)
			if err != nil {
				return err
			}
			res, err := ops.Render(ctx, s, dir)
			if err != nil {
				return g.exit(err)
			}
			return g.exit(g.view.Render(res))
		},
	}
	// --output is the report format everywhere, so -o here is --out DIR.
	cmd.Flags().StringVarP(&dir, "out", "o", "", "output directory")
	return cmd
}

// PlanOptions is `hactl plan`.
type PlanOptions struct {
	Offline bool
	// Destroy previews `hactl destroy` with the same --limit.
	Destroy bool
	Purge   bool
	Conn    ConnOptions
	Run     RunOptions // what the preview is of, as for apply
}

func newPlan(ctx context.Context, g *Globals) *cobra.Command {
	o := &PlanOptions{}
	cmd := &cobra.Command{
		Use:   "plan -i FILE [--offline] [--limit a,b] [-p PLAYBOOK]",
		Short: "Show the VRRP layout and, over SSH, what apply would change",
		Long: `plan prints the VRRP table: per VIP its router id, MASTER, BACKUPs in takeover
order with their priorities, and the theoretical failover bounds. Without
--offline it also connects to every host and shows, as unified diffs, what
apply would change; --limit and -p preview exactly what apply with the same
flags would run. Secrets print as (sensitive).`,
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.load(ctx)
			if err != nil {
				return err
			}
			switch {
			case o.Offline:
				return g.exit(g.view.Layout(s.Inv, s.Layout))
			case o.Destroy:
				return runDestroy(ctx, g, s, ops.DestroyOptions{Conn: o.Conn, Limit: o.Run.Limit, Purge: o.Purge, Dry: true})
			}
			return runApply(ctx, g, s, o.Run.apply(o.Conn, true, time.Now), o.Run.Verbose)
		},
	}
	cmd.Flags().BoolVar(&o.Offline, "offline", false, "do not connect: print the VRRP layout only")
	cmd.Flags().BoolVar(&o.Destroy, "destroy", false, "show what `hactl destroy` with the same --limit would do")
	cmd.Flags().BoolVar(&o.Purge, "purge-packages", false, "with --destroy: include removing the packages")
	addConnFlags(cmd, &o.Conn)
	o.Run.addFlags(cmd)
	return cmd
}

// ApplyOptions is `hactl apply`.
type ApplyOptions struct {
	Conn ConnOptions
	Run  RunOptions
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
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.load(ctx)
			if err != nil {
				return err
			}
			return runApply(ctx, g, s, o.Run.apply(o.Conn, false, o.Now), o.Run.Verbose)
		},
	}
	addConnFlags(cmd, &o.Conn)
	o.Run.addFlags(cmd)
	return cmd
}

func runApply(ctx context.Context, g *Globals, s *ops.Session, o ops.ApplyOptions, verbose bool) error {
	res, err := ops.Apply(ctx, s, o, g.view.Events(verbose))
	if err != nil {
		return g.exit(err)
	}
	if err := g.view.Apply(res, verbose); err != nil {
		return g.exit(err)
	}
	return g.exit(res.Err)
}

// StatusOptions is `hactl status`.
type StatusOptions = ops.StatusOptions

func newStatus(ctx context.Context, g *Globals) *cobra.Command {
	o := &StatusOptions{}
	var verbose, watch bool
	var serve string
	cmd := &cobra.Command{
		Use:   "status [-i] FILE [--limit a,b]",
		Short: "Show who holds which VIP now, service states, split brain and config drift",
		Long: `status asks every host in parallel, in one SSH round trip each, for its
addresses, the state of keepalived and nginx, and the checksums of the files
hactl manages. Each VIP is ok (on its master only), moved (on one other host),
missing (nowhere) or split (on several hosts: always an error). Exit 0 only
when every VIP is ok and every host reachable. --watch follows the transitions
the hosts record; --output openmetrics prints the fleet's invariants for
Prometheus (exit 0 whenever the hosts could be asked); --serve ADDR is an
exporter: every scrape of http://ADDR/metrics asks the hosts anew and answers
with those metrics, until Ctrl-C.`,
		Args: inventoryArg,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			if serve != "" && watch {
				return g.usage("--serve and --watch are two ways to follow the fleet; pick one")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.load(ctx)
			if err != nil {
				return err
			}
			if watch {
				return g.exit(ops.Watch(ctx, s, *o, g.view.Watch()))
			}
			if serve != "" {
				return g.serveStatus(ctx, s, *o, serve)
			}
			res, err := ops.Status(ctx, s, *o)
			if err != nil {
				return g.exit(err)
			}
			return g.exit(g.view.Status(res, verbose))
		},
	}
	cmd.Flags().BoolVar(&watch, "watch", false,
		"follow the hosts' VRRP transitions as they happen: a redrawn table on a terminal, one JSON event per line otherwise (or with --output json); Ctrl-C ends it")
	cmd.Flags().StringVar(&serve, "serve", "",
		"serve the fleet's metrics for Prometheus on ADDR (host:port, e.g. 127.0.0.1:9466): each scrape of /metrics runs status and answers in OpenMetrics; Ctrl-C ends it")
	addConnFlags(cmd, &o.Conn)
	addLimitFlag(cmd, &o.Limit)
	cmd.Flag("limit").Usage = "only the clusters of these hosts or clusters (VIP placement is judged on whole clusters)"
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also print the round trips (SSH sessions) each host cost")
	return cmd
}

// DestroyOptions is `hactl destroy` (and `plan --destroy`).
type DestroyOptions = ops.DestroyOptions

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
			s, err := g.load(ctx)
			if err != nil {
				return err
			}
			return runDestroy(ctx, g, s, *o)
		},
	}
	addConnFlags(cmd, &o.Conn)
	addLimitFlag(cmd, &o.Limit)
	cmd.Flags().BoolVar(&o.Purge, "purge-packages", false, "also remove the keepalived and nginx packages")
	return cmd
}

func runDestroy(ctx context.Context, g *Globals, s *ops.Session, o ops.DestroyOptions) error {
	res, err := ops.Destroy(ctx, s, o, g.view.Events(false))
	if err != nil {
		return g.exit(err)
	}
	if err := g.view.Destroy(res); err != nil {
		return g.exit(err)
	}
	return g.exit(res.Err)
}

// DrainOptions is `hactl drain` and `hactl undrain`.
type DrainOptions struct {
	Conn  ConnOptions
	Grace time.Duration
}

func newDrain(ctx context.Context, g *Globals, undrain bool) *cobra.Command {
	o := &DrainOptions{}
	use, short, long := "drain -i FILE HOST", "Take a balancer out of service without failed requests",
		`drain moves every VIP HOST holds to the next host in its takeover order (the
old holder keeps it until the new one has it: an overlap, never a gap), then
takes HOST out as a backup too. HOST stays drained through apply, a
keepalived restart and a reboot, until undrained. Refused when HOST is the
last host that can hold one of its VIPs, or when the host that would take a
VIP has keepalived or nginx down.`
	if undrain {
		use, short, long = "undrain -i FILE HOST", "Bring a drained balancer back; its VIP comes home without failed requests",
			`undrain puts HOST back into every VIP at its own priority and waits until it
holds its own VIP again (by preemption: the backup keeps it until then).`
	}
	cmd := &cobra.Command{
		Use: use, Short: short, Long: long,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.load(ctx)
			if err != nil {
				return err
			}
			res, err := ops.Drain(ctx, s, ops.DrainOptions{Conn: o.Conn, Host: args[0], Undrain: undrain,
				Grace: o.Grace, GraceSet: cmd.Flags().Changed("grace"), Progress: g.view.DrainProgress()})
			if err != nil {
				return g.exit(err)
			}
			return g.exit(g.view.Drain(res, undrain))
		},
	}
	addConnFlags(cmd, &o.Conn)
	cmd.Flags().DurationVar(&o.Grace, "grace", 0, "keep the old holder serving its open connections this long after a VIP moves (default: the cluster's drain_grace; 0: cut them)")
	return cmd
}

// EventsOptions is `hactl events`.
type EventsOptions = ops.TimelineOptions

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
			s, err := g.load(ctx)
			if err != nil {
				return err
			}
			res, err := ops.Timeline(ctx, s, *o)
			if err != nil {
				return g.exit(err)
			}
			if err := g.view.Timeline(res); err != nil {
				return g.exit(err)
			}
			return g.exit(res.Err)
		},
	}
	addConnFlags(cmd, &o.Conn)
	addLimitFlag(cmd, &o.Limit)
	cmd.Flag("limit").Usage = "only the clusters of these hosts or clusters"
	cmd.Flags().DurationVar(&o.Since, "since", 24*time.Hour, "how far back (e.g. 10m, 24h)")
	return cmd
}

// serveStatus is `status --serve ADDR`: listen first, so a bad or busy
// address fails before anything waits on it, and say where to scrape.
func (g *Globals) serveStatus(ctx context.Context, s *ops.Session, o StatusOptions, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return g.usage("--serve %s: want host:port, e.g. 127.0.0.1:9466 (%v)", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return g.exit(ops.FailedError(fmt.Errorf("--serve %s: %w", addr, err)))
	}
	g.stderr().Printf("serving the fleet's metrics on http://%s/metrics (each scrape asks the hosts); Ctrl-C ends it\n", ln.Addr())
	return g.exit(ops.Serve(ctx, s, o, ln, views.WriteOpenMetrics))
}
