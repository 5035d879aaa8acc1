// Package remote is hactl's SSH transport: one long-lived connection per host,
// commands through the remote shell, file uploads over SFTP on the same
// connection, host keys checked against known_hosts with OpenSSH accept-new
// semantics.
package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Sentinel errors; every error returned by this package that belongs to one of
// these classes wraps it, so callers can use errors.Is.
var (
	ErrHostKeyUnknown = errors.New("host key unknown")
	ErrHostKeyChanged = errors.New("host key changed")
	ErrSudoPassword   = errors.New("sudo requires a password")
	ErrAuth           = errors.New("ssh authentication failed")
)

// Result of one command. A non-zero exit is NOT a Go error: it is in ExitCode.
type Result struct {
	Stdout, Stderr []byte
	ExitCode       int
}

// Conn is one live connection to one host, reused for every command.
// Implementations are safe for concurrent use by several goroutines.
type Conn interface {
	// Run runs cmd through the remote shell (sh -c semantics), with stdin if non-nil.
	// Returns an error only for transport failures or ctx cancellation (then the remote
	// command is signalled/abandoned and ctx.Err() is wrapped). With Config.Become a
	// sudo that wants a password is reported as ErrSudoPassword (Result is still filled).
	Run(ctx context.Context, cmd string, stdin io.Reader) (Result, error)
	// Upload writes content to path exactly (caller chooses a temp path and renames it itself),
	// creating/truncating it, then sets mode. Owner is the login user, or root when become.
	Upload(ctx context.Context, path string, content []byte, mode fs.FileMode) error
	Close() error
}

// Config says how to reach and log in to one host.
type Config struct {
	Name           string // inventory host name, used in error messages
	Address        string // IP or DNS name
	Port           int    // default 22
	User           string // default "root"
	PrivateKeyFile string // optional; "~/" expanded; else ssh-agent
	AgentSocket    string // value of SSH_AUTH_SOCK passed in by the caller
	KnownHostsFile string // required; "~/" expanded
	// SystemKnownHostsFiles are consulted too, as OpenSSH's
	// GlobalKnownHostsFile: a key on record there is trusted, a host pinned
	// there to other keys is refused. nil means OpenSSH's default
	// (/etc/ssh/ssh_known_hosts and /etc/ssh/ssh_known_hosts2); files that
	// do not exist are skipped. New keys are never written there.
	SystemKnownHostsFiles []string
	AcceptNewHostKeys     bool          // OpenSSH accept-new: unknown key appended to KnownHostsFile; changed key ALWAYS refused
	Become                bool          // run commands as root via `sudo -n`; uploads land as root
	ConnectTimeout        time.Duration // default 10s; bounds TCP connect + SSH handshake + auth
	KeepAlive             time.Duration // default 15s; negative disables; a peer silent for 3 intervals closes the conn
	HomeDir               string        // for "~/" expansion (caller passes os.UserHomeDir())
	// Jump, when set, is the bastion to reach this host through (OpenSSH
	// ProxyJump, one hop): Dial logs in there first, with its own host key
	// verified against Jump.KnownHostsFile, then opens a direct-tcpip channel
	// to Address:Port and runs this host's SSH session inside it.
	Jump *Config
	// Jumps shares bastion connections between dials; nil gives every Conn
	// its own bastion connection.
	Jumps *Jumps
}

const (
	defaultPort           = 22
	defaultUser           = "root"
	defaultConnectTimeout = 10 * time.Second
	defaultKeepAlive      = 15 * time.Second
	// keepAliveCountMax mirrors OpenSSH's ServerAliveCountMax default: the
	// peer is declared dead after this many intervals without a reply.
	keepAliveCountMax = 3
)

// withDefaults fills the zero fields and expands "~/" paths.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Port == 0 {
		cfg.Port = defaultPort
	}
	if cfg.User == "" {
		cfg.User = defaultUser
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = defaultKeepAlive
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Address
	}
	if cfg.Address == "" {
		return cfg, errors.New("no address")
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return cfg, fmt.Errorf("port %d out of range", cfg.Port)
	}
	if cfg.KnownHostsFile == "" {
		return cfg, errors.New("no known_hosts_file: host keys must be verified")
	}
	if cfg.SystemKnownHostsFiles == nil {
		cfg.SystemKnownHostsFiles = defaultSystemKnownHosts()
	}
	var err error
	if cfg.KnownHostsFile, err = expandHome(cfg.KnownHostsFile, cfg.HomeDir); err != nil {
		return cfg, fmt.Errorf("known_hosts_file: %w", err)
	}
	if cfg.PrivateKeyFile, err = expandHome(cfg.PrivateKeyFile, cfg.HomeDir); err != nil {
		return cfg, fmt.Errorf("private_key_file: %w", err)
	}
	return cfg, nil
}

// expandHome expands a leading "~/" (or a lone "~") with home. "~user/" is not
// supported: it would need a user database lookup the caller did not ask for.
func expandHome(path, home string) (string, error) {
	if path != "~" && !strings.HasPrefix(path, "~/") {
		return path, nil
	}
	if home == "" {
		return "", fmt.Errorf("%q starts with ~ but no home directory is known", path)
	}
	return filepath.Join(home, strings.TrimPrefix(path[1:], "/")), nil
}

// Dial connects to cfg's host, verifies its host key, logs in and starts the
// keepalive loop. ctx bounds the whole dial; cancelling ctx later does not
// affect the returned Conn.
func Dial(ctx context.Context, cfg Config) (Conn, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Name, err)
	}
	where := fmt.Sprintf("%s (%s)", cfg.Name, net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port)))
	var via *ssh.Client
	release := func() {}
	if cfg.Jump != nil {
		via, release, err = cfg.Jumps.acquire(ctx, *cfg.Jump)
		if err != nil {
			return nil, fmt.Errorf("%s: through jump host: %w", where, err)
		}
		where = fmt.Sprintf("%s via %s", where, cfg.Jump.Name)
	}
	client, err := dialClient(ctx, cfg, via, where)
	if err != nil {
		release()
		return nil, err
	}
	c := newConn(client, cfg, where)
	c.release = release
	return c, nil
}

// dialClient opens the SSH client connection to cfg's host: over TCP, or
// through via (a bastion's direct-tcpip channel) when via is not nil.
func dialClient(ctx context.Context, cfg Config, via *ssh.Client, where string) (*ssh.Client, error) {
	hostport := net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port))
	hk, err := loadHostKeys(cfg.KnownHostsFile, cfg.SystemKnownHostsFiles, hostport, where, cfg.AcceptNewHostKeys)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}

	auth, closeAgent, err := authMethod(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: user %s: %w", where, cfg.User, err)
	}
	defer closeAgent()

	dctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()

	var nc net.Conn
	if via != nil {
		nc, err = via.DialContext(dctx, "tcp", hostport)
	} else {
		dialer := net.Dialer{KeepAlive: 30 * time.Second}
		nc, err = dialer.DialContext(dctx, "tcp", hostport)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: connect: %w", where, dialErr(ctx, err, cfg.ConnectTimeout))
	}
	// ssh.NewClientConn has no context: when dctx ends, an immediate deadline
	// unblocks its reads and writes on TCP; a bastion channel has no
	// deadlines, so it is closed instead.
	stop := context.AfterFunc(dctx, func() {
		if via != nil {
			_ = nc.Close()
			return
		}
		_ = nc.SetDeadline(time.Now())
	})

	ccfg := &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              []ssh.AuthMethod{auth},
		HostKeyCallback:   hk.callback,
		HostKeyAlgorithms: hk.algorithms(),
		ClientVersion:     "SSH-2.0-hactl",
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, hostport, ccfg)
	if !stop() && err == nil {
		// The deadline fired just after a successful handshake: the
		// connection is unusable, and the caller's ctx is over anyway.
		_ = sc.Close()
		err = dctx.Err()
	}
	if err != nil {
		_ = nc.Close()
		return nil, classifyHandshake(ctx, err, hk, where, cfg)
	}
	if via == nil {
		_ = nc.SetDeadline(time.Time{})
	}
	return ssh.NewClient(sc, chans, reqs), nil
}

// dialErr turns a connect failure caused by the timeout into a message that
// says so, while keeping the caller's own cancellation visible to errors.Is.
func dialErr(parent context.Context, err error, timeout time.Duration) error {
	if parent.Err() != nil {
		return fmt.Errorf("%w (%w)", parent.Err(), err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	return err
}

func classifyHandshake(parent context.Context, err error, hk *hostKeys, where string, cfg Config) error {
	if hkErr := hk.failure(); hkErr != nil {
		return hkErr
	}
	if parent.Err() != nil {
		return fmt.Errorf("%s: ssh handshake: %w", where, parent.Err())
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: ssh handshake timed out after %s: %w", where, cfg.ConnectTimeout, err)
	}
	msg := err.Error()
	// x/crypto has no typed error for these two cases; its message text is
	// the only signal.
	switch {
	case strings.Contains(msg, "unable to authenticate"):
		return fmt.Errorf("%s: the server refused user %s with %s: %w (%w)",
			where, cfg.User, describeAuth(cfg), ErrAuth, err)
	case strings.Contains(msg, "no common algorithm for host key"):
		return fmt.Errorf("%s: %s lists only %s key(s) for this host and the server offers none of those types; "+
			"if the host was reinstalled, remove the old entry with: ssh-keygen -R %s -f %s: %w",
			where, cfg.KnownHostsFile, strings.Join(hk.knownTypes(), ", "),
			Quote(knownhosts.Normalize(hk.hostport)), Quote(cfg.KnownHostsFile), ErrHostKeyChanged)
	}
	return fmt.Errorf("%s: ssh handshake: %w", where, err)
}

// DefaultIdentities are the keys under ~/.ssh tried, in this order, when
// neither private_key_file nor an agent gives one: OpenSSH's defaults (the
// ones it still offers by default).
func DefaultIdentities() []string { return []string{"id_ed25519", "id_ecdsa", "id_rsa"} }

// defaultIdentities loads those of ~/.ssh/id_* that exist and parse without
// a passphrase (OpenSSH would ask for it; hactl asks nothing and skips them).
func defaultIdentities(home string) []ssh.Signer {
	if home == "" {
		return nil
	}
	var signers []ssh.Signer
	for _, name := range DefaultIdentities() {
		pem, err := os.ReadFile(filepath.Join(home, ".ssh", name))
		if err != nil {
			continue
		}
		if signer, err := ssh.ParsePrivateKey(pem); err == nil {
			signers = append(signers, signer)
		}
	}
	return signers
}

func describeAuth(cfg Config) string {
	var parts []string
	if cfg.PrivateKeyFile != "" {
		parts = append(parts, "key "+cfg.PrivateKeyFile)
	}
	if cfg.PrivateKeyFile == "" && cfg.AgentSocket == "" {
		parts = append(parts, "the default keys ~/.ssh/"+strings.Join(DefaultIdentities(), ", "))
	}
	if cfg.AgentSocket != "" {
		parts = append(parts, "the keys in ssh-agent")
	}
	return strings.Join(parts, " and ")
}

// authMethod builds the single publickey method (x/crypto tries each method
// name once, so the key file and the agent keys must share one callback).
// The returned func closes the agent connection; call it after the handshake.
func authMethod(cfg Config) (ssh.AuthMethod, func(), error) {
	noop := func() {}
	var signers []ssh.Signer
	if cfg.PrivateKeyFile != "" {
		pem, err := os.ReadFile(cfg.PrivateKeyFile)
		if err != nil {
			return nil, noop, fmt.Errorf("reading private_key_file: %w (%w)", ErrAuth, err)
		}
		signer, err := ssh.ParsePrivateKey(pem)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, noop, fmt.Errorf("private_key_file %s is passphrase-protected; load it into ssh-agent instead (ssh-add): %w",
				cfg.PrivateKeyFile, ErrAuth)
		}
		if err != nil {
			return nil, noop, fmt.Errorf("parsing private_key_file %s: %w (%w)", cfg.PrivateKeyFile, ErrAuth, err)
		}
		signers = append(signers, signer)
	}
	if cfg.AgentSocket == "" {
		if len(signers) == 0 {
			signers = defaultIdentities(cfg.HomeDir)
		}
		if len(signers) == 0 {
			return nil, noop, fmt.Errorf("no private_key_file, no ssh-agent (SSH_AUTH_SOCK is empty) and no usable ~/.ssh/%s: %w",
				strings.Join(DefaultIdentities(), ", "), ErrAuth)
		}
		return ssh.PublicKeys(signers...), noop, nil
	}
	sock, err := net.Dial("unix", cfg.AgentSocket)
	if err != nil {
		if len(signers) > 0 {
			// The key file alone may be enough; an agent that is gone is not fatal.
			return ssh.PublicKeys(signers...), noop, nil
		}
		return nil, noop, fmt.Errorf("connecting to ssh-agent at %s: %w (%w)", cfg.AgentSocket, ErrAuth, err)
	}
	ag := agent.NewClient(sock)
	cb := func() ([]ssh.Signer, error) {
		agentSigners, err := ag.Signers()
		if err != nil && len(signers) == 0 {
			return nil, fmt.Errorf("listing ssh-agent keys: %w", err)
		}
		return append(append([]ssh.Signer(nil), signers...), agentSigners...), nil
	}
	return ssh.PublicKeysCallback(cb), func() { _ = sock.Close() }, nil
}
