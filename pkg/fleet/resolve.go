package fleet

import (
	"fmt"
	"strings"

	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/remote"
)

// ResolveSSH decides how to reach h, field by field:
//
//  1. what the inventory wrote (the ssh block or the host's own ssh block);
//  2. else what ssh_config says for the host, matching Host patterns against
//     the inventory host name and its address (first value in file order
//     wins, as in OpenSSH);
//  3. else hactl's defaults (root, port 22, ~/.ssh/known_hosts, ssh-agent).
//
// The inventory `address` is the VRRP address and the default SSH target; an
// ssh_config HostName only redirects the SSH connection (known_hosts is then
// looked up under that name, as OpenSSH does). ProxyJump = jump_host, one hop;
// the bastion's own HostName/User/Port/IdentityFile come from ssh_config for
// its alias when the jump_host string does not give them; its user defaults
// to the target's, its key to the target's; its host key is checked in the
// target's known_hosts_file with the same accept-new rule.
func ResolveSSH(h *inventory.Host, opts Options) (remote.Config, error) {
	s := h.SSH
	addr := h.Address.String()
	sc, err := opts.SSHConfig.Lookup(opts.HomeDir, h.Name, addr)
	if err != nil {
		return remote.Config{}, err
	}
	cfg := remote.Config{
		Name: h.Name, Address: addr, Port: s.Port, User: s.User,
		PrivateKeyFile: s.PrivateKeyFile, AgentSocket: opts.AgentSocket, KnownHostsFile: s.KnownHostsFile,
		AcceptNewHostKeys: opts.AcceptNewHostKeys, Become: s.Become,
		ConnectTimeout: opts.ConnectTimeout, HomeDir: opts.HomeDir,
	}
	if sc.HostName != "" {
		cfg.Address = sc.HostName
	}
	if !s.Set.User && sc.User != "" {
		cfg.User = sc.User
	}
	if !s.Set.Port && sc.Port != 0 {
		cfg.Port = sc.Port
	}
	if !s.Set.PrivateKeyFile && sc.IdentityFile != "" {
		cfg.PrivateKeyFile = sc.IdentityFile
	}
	jump := s.JumpHost
	if !s.Set.JumpHost {
		jump = sc.ProxyJump
	}
	if jump == "" || strings.EqualFold(jump, inventory.JumpNone) {
		return cfg, nil
	}
	where := "jump_host"
	if !s.Set.JumpHost {
		where = "ProxyJump in " + opts.SSHConfig.Path
	}
	user, host, port, err := inventory.ParseJumpHost(jump)
	if err != nil {
		return remote.Config{}, fmt.Errorf("%s %q: %w", where, jump, err)
	}
	bc, err := opts.SSHConfig.Lookup(opts.HomeDir, host)
	if err != nil {
		return remote.Config{}, err
	}
	j := &remote.Config{
		Name: "jump host " + host, Address: host, Port: 22, User: cfg.User,
		PrivateKeyFile: cfg.PrivateKeyFile, AgentSocket: opts.AgentSocket, KnownHostsFile: cfg.KnownHostsFile,
		AcceptNewHostKeys: opts.AcceptNewHostKeys, ConnectTimeout: opts.ConnectTimeout, HomeDir: opts.HomeDir,
	}
	if bc.HostName != "" {
		j.Address = bc.HostName
	}
	switch {
	case user != "":
		j.User = user
	case bc.User != "":
		j.User = bc.User
	}
	switch {
	case port != 0:
		j.Port = port
	case bc.Port != 0:
		j.Port = bc.Port
	}
	if bc.IdentityFile != "" {
		j.PrivateKeyFile = bc.IdentityFile
	}
	cfg.Jump = j
	return cfg, nil
}
