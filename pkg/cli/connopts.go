package cli

import (
	"context"
	"os"
	"time"

	"github.com/hactl/hactl/pkg/fleet"

	"github.com/spf13/cobra"
)

// ConnOptions are the flags of every command that connects to hosts.
type ConnOptions struct {
	AcceptNewHostKeys bool
	Parallel          int
	Timeout           time.Duration
}

func (o *ConnOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&o.AcceptNewHostKeys, "accept-new-host-keys", false,
		"trust and record the key of a host not yet in known_hosts (OpenSSH accept-new); a changed key is always refused")
	f.IntVar(&o.Parallel, "parallel", 10, "hosts worked on at once")
	f.DurationVar(&o.Timeout, "connect-timeout", 10*time.Second, "SSH connect timeout per host")
}

// connect opens one SSH connection per selected host. Hosts that cannot be
// reached are in the fleet with Err set; callers report them.
func (g *Globals) connect(ctx context.Context, l *Loaded, o ConnOptions, limit []string) (*fleet.Fleet, error) {
	hosts, err := fleet.Select(l.Inv, limit)
	if err != nil {
		return nil, &ExitError{Code: ExitUsage, Err: err}
	}
	home, _ := g.IO.LookupEnv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	sock, _ := g.IO.LookupEnv("SSH_AUTH_SOCK")
	return fleet.Connect(ctx, l.Inv, hosts, fleet.Options{
		AcceptNewHostKeys: o.AcceptNewHostKeys,
		ConnectTimeout:    o.Timeout,
		Parallel:          max(o.Parallel, len(hosts)),
		HomeDir:           home,
		AgentSocket:       sock,
		Dial:              g.Dial,
	}), nil
}
