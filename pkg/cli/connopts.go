package cli

import (
	"time"

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
