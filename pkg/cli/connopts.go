package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/sshconfig"

	"github.com/spf13/cobra"
)

// ConnOptions are the flags of every command that connects to hosts.
type ConnOptions struct {
	AcceptNewHostKeys bool
	Parallel          int
	Timeout           time.Duration
	// SSHConfig is the ssh_config file read for what the inventory leaves
	// unset; "" means ~/.ssh/config. A missing file is fine.
	SSHConfig string
}

func (o *ConnOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&o.AcceptNewHostKeys, "accept-new-host-keys", false,
		"trust and record the key of a host not yet in known_hosts (OpenSSH accept-new); a changed key is always refused")
	f.IntVar(&o.Parallel, "parallel", 10, "hosts changed at once (connecting and reading facts go to up to 64 at once)")
	f.DurationVar(&o.Timeout, "connect-timeout", 10*time.Second, "SSH connect timeout per host")
	f.StringVar(&o.SSHConfig, "ssh-config", "",
		"OpenSSH client config read for HostName, User, Port, IdentityFile and ProxyJump where the inventory sets none (default ~/.ssh/config, fine if missing; a file given here must exist)")
}

// check refuses values that cannot mean anything (exit 2).
func (o *ConnOptions) check() error {
	if err := checkPositive("parallel", int64(o.Parallel)); err != nil {
		return err
	}
	if o.Timeout <= 0 {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--connect-timeout must be more than 0s, not %s", o.Timeout)}
	}
	return nil
}

// connect opens one SSH connection per selected host. Hosts that cannot be
// reached are in the fleet with Err set; callers report them.
func (g *Globals) connect(ctx context.Context, l *Loaded, o ConnOptions, limit []string) (*fleet.Fleet, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	hosts, err := fleet.Select(l.Inv, limit)
	if err != nil {
		return nil, &ExitError{Code: ExitUsage, Err: err}
	}
	return g.connectHosts(ctx, l.Inv, hosts, o)
}

// connectHosts opens one SSH connection per host given, which need not be in
// the inventory (hosts that left it are reached with their old cluster's
// SSH settings).
func (g *Globals) connectHosts(ctx context.Context, inv *inventory.Inventory, hosts []*inventory.Host, o ConnOptions) (*fleet.Fleet, error) {
	home, _ := g.IO.LookupEnv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	sock, _ := g.IO.LookupEnv("SSH_AUTH_SOCK")
	path := o.SSHConfig
	if path == "" {
		path = "~/.ssh/config"
	}
	if path == "~" || strings.HasPrefix(path, "~/") {
		if home == "" {
			return nil, &ExitError{Code: ExitUsage, Err: fmt.Errorf("--ssh-config %s: no home directory known", path)}
		}
		path = filepath.Join(home, path[1:])
	}
	if o.SSHConfig != "" {
		// Given explicitly, it must be there: a typo would silently
		// drop the User, Port or ProxyJump the operator relies on.
		if _, err := os.Stat(path); err != nil {
			return nil, &ExitError{Code: ExitUsage, Err: fmt.Errorf("--ssh-config: %w", err)}
		}
	}
	sc, err := sshconfig.Load(path)
	if err != nil {
		return nil, &ExitError{Code: ExitUsage, Err: err}
	}
	return fleet.Connect(ctx, inv, hosts, fleet.Options{
		SSHConfig:         sc,
		AcceptNewHostKeys: o.AcceptNewHostKeys,
		ConnectTimeout:    o.Timeout,
		Parallel:          max(o.Parallel, len(hosts)),
		HomeDir:           home,
		AgentSocket:       sock,
		Dial:              g.Deps.Dial,
	}), nil
}
