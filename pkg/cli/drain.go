package cli

import (
	"context"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/hactl/hactl/pkg/drain"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/ui"
)

// DrainOptions is `hactl drain` and `hactl undrain`.
type DrainOptions struct {
	Conn     ConnOptions
	Grace    time.Duration
	GraceSet bool // --grace given: it overrides the cluster's drain_grace
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
			l, err := g.load(ctx)
			if err != nil {
				return err
			}
			o.GraceSet = cmd.Flags().Changed("grace")
			return runDrain(ctx, g, o, l, args[0], undrain)
		},
	}
	o.Conn.addFlags(cmd)
	cmd.Flags().DurationVar(&o.Grace, "grace", 0, "keep the old holder serving its open connections this long after a VIP moves (default: the cluster's drain_grace; 0: cut them)")
	return cmd
}

// drainJSON is drain's and undrain's --output json document.
type drainJSON struct {
	ui.Envelope
	*drain.Result
}

func runDrain(ctx context.Context, g *Globals, o *DrainOptions, l *Loaded, host string, undrain bool) error {
	sel, err := fleet.Select(l.Inv, []string{host})
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	fl, err := g.connect(ctx, l, o.Conn, clusterHosts(l.Inv, sel))
	if err != nil {
		return err
	}
	defer fl.Close()
	p := g.stdout()
	grace, err := drain.GraceFor(l.Inv, host, o.Grace, o.GraceSet)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	d := drain.New(drain.Options{Layout: l.Layout, Fleet: fl, Grace: grace, Event: func(s string) {
		if g.Output != "json" {
			p.Println(s)
		}
	}})
	var res *drain.Result
	if undrain {
		res, err = d.Undrain(ctx, host)
	} else {
		res, err = d.Drain(ctx, host)
	}
	if err != nil {
		return &ExitError{Code: ExitFailed, Err: err}
	}
	if g.Output == "json" {
		return g.jsonOut(drainJSON{Envelope: ui.Result(nil), Result: res})
	}
	vips := make([]string, 0, len(res.Moved))
	for vip := range res.Moved {
		vips = append(vips, vip)
	}
	sort.Strings(vips)
	for _, vip := range vips {
		p.Printf("%s now on %s\n", vip, res.Moved[vip])
	}
	state := "drained"
	if undrain {
		state = "in service"
	}
	p.Printf("%s %s after %s\n", host, state, res.Elapsed.Round(10*time.Millisecond))
	return nil
}
