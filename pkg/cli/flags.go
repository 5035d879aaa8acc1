package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/hactl/hactl/pkg/failover"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/ops"
)

// ConnOptions are the flags of every command that connects to hosts.
type ConnOptions = ops.ConnOptions

func addConnFlags(cmd *cobra.Command, o *ConnOptions) {
	f := cmd.Flags()
	f.BoolVar(&o.AcceptNewHostKeys, "accept-new-host-keys", false,
		"trust and record the key of a host not yet in known_hosts (OpenSSH accept-new); a changed key is always refused")
	f.IntVar(&o.Parallel, "parallel", 10, "hosts changed at once (connecting and reading facts go to up to 64 at once)")
	f.DurationVar(&o.Timeout, "connect-timeout", 10*time.Second, "SSH connect timeout per host")
	f.StringVar(&o.SSHConfig, "ssh-config", "",
		"OpenSSH client config read for HostName, User, Port, IdentityFile and ProxyJump where the inventory sets none (default ~/.ssh/config, fine if missing; a file given here must exist)")
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

// apply is the verb's options for these flags (dry: plan).
func (o *RunOptions) apply(conn ConnOptions, dry bool, now func() time.Time) ops.ApplyOptions {
	return ops.ApplyOptions{Conn: conn, Limit: o.Limit, Playbook: o.Playbook, Prune: o.Prune, Dry: dry, Now: now}
}

// addLimitFlag is --limit, the same on every command that works on hosts.
func addLimitFlag(cmd *cobra.Command, limit *[]string) {
	cmd.Flags().StringSliceVar(limit, "limit", nil, "only these hosts or clusters (comma-separated names)")
}

type completion = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective)

func fixedCompletion(vals ...string) completion {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return vals, cobra.ShellCompDirectiveNoFileComp
	}
}

// registerCompletions offers values for --mode (every failover mode, from
// failover's one list), --node and --limit (hosts and clusters from the
// inventory given with -i).
func registerCompletions(cmd *cobra.Command, g *Globals) {
	names := func(clusters bool) completion {
		return func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			path := g.Inventory
			if path == "" && len(args) == 1 {
				path = args[0]
			}
			if path == "" {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			inv, diags := inventory.NewLoader(inventory.Options{LookupEnv: g.IO.LookupEnv}).LoadFile(path)
			if inv == nil || diags.HasErrors() {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []string
			for _, c := range inv.Clusters {
				if clusters {
					out = append(out, c.Name)
				}
				for _, h := range c.Hosts {
					out = append(out, h.Name)
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		}
	}
	if cmd.Flag("mode") != nil {
		_ = cmd.RegisterFlagCompletionFunc("mode", fixedCompletion(failover.ModeNames()...))
	}
	if cmd.Flag("node") != nil {
		_ = cmd.RegisterFlagCompletionFunc("node", names(false))
	}
	if cmd.Flag("limit") != nil {
		_ = cmd.RegisterFlagCompletionFunc("limit", names(true))
	}
}
