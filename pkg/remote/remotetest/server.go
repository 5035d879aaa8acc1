// Package remotetest runs an in-process SSH server for tests of code that
// uses package remote: real protocol, public-key auth, "exec" requests run
// with /bin/sh -c in a temp dir as the test's own user, and the "sftp"
// subsystem served by pkg/sftp. Nothing leaves 127.0.0.1.
//
// Commands really run on the test machine, as the test's user, whatever login
// name the client sends: shadow anything with side effects (systemctl, sudo,
// apt-get) with scripts in a directory passed to WithPath, or WithFakeSudo.
package remotetest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/hactl/hactl/pkg/remote"
)

// Key is a client or host key pair; File holds the private key in OpenSSH
// format (mode 0600) when the key was made by NewKey.
type Key struct {
	Signer  ssh.Signer
	Private any // crypto private key, for agents and re-marshalling
	File    string
}

// Public returns the public half.
func (k Key) Public() ssh.PublicKey { return k.Signer.PublicKey() }

// NewKey generates an Ed25519 key and writes its private half to a file in a
// temp dir.
func NewKey(t testing.TB) Key {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return keyFrom(t, priv)
}

// NewECDSAKey generates an ECDSA P-256 key (a second key type, e.g. for host
// key algorithm tests), written to a file like NewKey.
func NewECDSAKey(t testing.TB) Key {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return keyFrom(t, priv)
}

func keyFrom(t testing.TB, priv any) Key {
	t.Helper()
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "remotetest")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "id_"+strings.TrimPrefix(signer.PublicKey().Type(), "ssh-"))
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return Key{Signer: signer, Private: priv, File: file}
}

// WriteKnownHosts writes (replacing) a known_hosts file at path with one line
// per key for hostport, and returns path.
func WriteKnownHosts(t testing.TB, path, hostport string, keys ...ssh.PublicKey) string {
	t.Helper()
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(knownhosts.Line([]string{hostport}, k) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// StartAgent serves an in-memory ssh-agent holding keys on a unix socket and
// returns the socket path (what SSH_AUTH_SOCK would hold).
func StartAgent(t testing.TB, keys ...Key) string {
	t.Helper()
	keyring := agent.NewKeyring()
	for _, k := range keys {
		if err := keyring.Add(agent.AddedKey{PrivateKey: k.Private}); err != nil {
			t.Fatal(err)
		}
	}
	// Not t.TempDir(): unix socket paths are limited to ~108 bytes and
	// test names can be long.
	dir, err := os.MkdirTemp("", "agent")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = agent.ServeAgent(keyring, c)
				_ = c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
		_ = os.RemoveAll(dir)
	})
	return sock
}

// Server is a running test SSH server. Its fields are read-only.
type Server struct {
	Addr           string // "127.0.0.1:port"
	Host           string // "127.0.0.1"
	Port           int
	HostKey        ssh.PublicKey // the first host key
	ClientKey      Key           // authorized unless WithAuthorizedKeys replaced it
	KnownHostsFile string        // trusts HostKey for Addr (in its own temp dir)
	Dir            string        // working directory of commands and relative SFTP paths

	cfg  *ssh.ServerConfig
	ln   net.Listener
	env  []string
	wg   sync.WaitGroup
	once sync.Once

	frozen     atomic.Bool
	closed     atomic.Bool
	keepalives atomic.Int64

	forward func(addr string) (net.Conn, error)

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	commands []string
	users    []string
	forwards []string
	logins   int
}

type options struct {
	hostKeys   []Key
	authorized []ssh.PublicKey
	replace    bool
	path       []string
	env        []string
	dir        string
	sudo       string
	forward    func(addr string) (net.Conn, error)
}

// Option configures NewServer.
type Option func(*options)

// WithHostKeys replaces the generated Ed25519 host key with keys (several keys
// of different types make the server offer several algorithms).
func WithHostKeys(keys ...Key) Option {
	return func(o *options) { o.hostKeys = keys }
}

// WithAuthorizedKeys makes keys the only keys the server accepts (ClientKey is
// still generated but no longer authorized).
func WithAuthorizedKeys(keys ...ssh.PublicKey) Option {
	return func(o *options) { o.authorized, o.replace = keys, true }
}

// WithPath prepends dirs to PATH for commands, e.g. to shadow real programs.
func WithPath(dirs ...string) Option {
	return func(o *options) { o.path = append(o.path, dirs...) }
}

// WithEnv adds KEY=VALUE pairs to the commands' environment.
func WithEnv(kv ...string) Option {
	return func(o *options) { o.env = append(o.env, kv...) }
}

// WithForwarding makes the server act as a jump host: it accepts
// "direct-tcpip" channels (what ssh -J and ssh.Client.Dial open) and connects
// them with dial, which gets "host:port" as the client asked. Tests map
// made-up names to other test servers here, so a target is reachable only
// through this server. Without this option such channels are refused.
func WithForwarding(dial func(addr string) (net.Conn, error)) Option {
	return func(o *options) { o.forward = dial }
}

// WithDir sets the commands' working directory (default: a fresh temp dir).
func WithDir(dir string) Option {
	return func(o *options) { o.dir = dir }
}

// WithFakeSudo puts a fake `sudo` first in PATH. Passwordless, it drops its
// options up to "--" and execs the rest as the test's user, appending each
// command line to Dir/sudo.log; otherwise it fails the way `sudo -n` does
// when a password is needed.
func WithFakeSudo(passwordless bool) Option {
	return func(o *options) {
		if passwordless {
			o.sudo = fakeSudo
		} else {
			o.sudo = fakeSudoPassword
		}
	}
}

const fakeSudo = `#!/bin/sh
# Fake sudo for tests: skip options up to --, log, run as the current user.
while [ $# -gt 0 ]; do
	case "$1" in
	--) shift; break ;;
	-*) shift ;;
	*) break ;;
	esac
done
printf '%s\n' "$*" >> "$REMOTETEST_DIR/sudo.log"
exec "$@"
`

const fakeSudoPassword = `#!/bin/sh
echo "sudo: a password is required" >&2
exit 1
`

// NewServer starts a server on 127.0.0.1:0 and stops it in t.Cleanup.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if len(o.hostKeys) == 0 {
		o.hostKeys = []Key{NewKey(t)}
	}
	s := &Server{
		ClientKey: NewKey(t),
		Dir:       o.dir,
		conns:     map[net.Conn]struct{}{},
		forward:   o.forward,
	}
	if s.Dir == "" {
		s.Dir = t.TempDir()
	}
	authorized := append([]ssh.PublicKey(nil), o.authorized...)
	if !o.replace {
		authorized = append(authorized, s.ClientKey.Public())
	}
	s.cfg = &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			for _, k := range authorized {
				if bytes.Equal(k.Marshal(), key.Marshal()) {
					s.mu.Lock()
					s.users = append(s.users, meta.User())
					s.mu.Unlock()
					return nil, nil
				}
			}
			return nil, errors.New("key not authorized")
		},
	}
	for _, k := range o.hostKeys {
		s.cfg.AddHostKey(k.Signer)
	}
	s.HostKey = o.hostKeys[0].Public()

	path := o.path
	if o.sudo != "" {
		bin := t.TempDir()
		if err := os.WriteFile(filepath.Join(bin, "sudo"), []byte(o.sudo), 0o755); err != nil {
			t.Fatal(err)
		}
		path = append([]string{bin}, path...)
	}
	s.env = commandEnv(path, append([]string{"REMOTETEST_DIR=" + s.Dir}, o.env...))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	s.Addr = ln.Addr().String()
	s.Host = "127.0.0.1"
	s.Port = ln.Addr().(*net.TCPAddr).Port
	s.KnownHostsFile = WriteKnownHosts(t, filepath.Join(t.TempDir(), "known_hosts"), s.Addr, s.HostKey)

	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.Close)
	return s
}

func commandEnv(path, extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			kv = "PATH=" + strings.Join(append(append([]string(nil), path...), p), ":")
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// Config returns a remote.Config that dials this server as root with
// ClientKey and KnownHostsFile.
func (s *Server) Config() remote.Config {
	return remote.Config{
		Name:           "testhost",
		Address:        s.Host,
		Port:           s.Port,
		User:           "root",
		PrivateKeyFile: s.ClientKey.File,
		KnownHostsFile: s.KnownHostsFile,
		// Hermetic: the test machine's /etc/ssh/ssh_known_hosts is not
		// consulted (the file named here does not exist).
		SystemKnownHostsFiles: []string{filepath.Join(filepath.Dir(s.KnownHostsFile), "no-system-known-hosts")},
		ConnectTimeout:        5 * time.Second,
	}
}

// Commands returns the exec commands received so far, in order, exactly as
// the client sent them (sudo wrapping included).
func (s *Server) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// Users returns the user names of successful logins, in order.
func (s *Server) Users() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.users...)
}

// Forwards returns the "host:port" of every direct-tcpip channel opened,
// in order (refused ones included).
func (s *Server) Forwards() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.forwards...)
}

// Logins counts completed SSH handshakes (connections, not sessions).
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// KeepAlives counts keepalive@openssh.com requests received.
func (s *Server) KeepAlives() int { return int(s.keepalives.Load()) }

// Freeze makes the server stop processing input on every connection, like a
// peer that vanished without closing TCP. Thaw resumes.
func (s *Server) Freeze() { s.frozen.Store(true) }

// Thaw undoes Freeze.
func (s *Server) Thaw() { s.frozen.Store(false) }

// Close stops the server, drops every connection and kills running commands.
// It is called by t.Cleanup and is idempotent.
func (s *Server) Close() {
	s.once.Do(func() {
		s.closed.Store(true)
		_ = s.ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed.Load() {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serveConn(&freezable{Conn: c, s: s})
	}
}

// freezable delays every read while the server is frozen, so requests go
// unanswered but TCP stays up.
type freezable struct {
	net.Conn
	s *Server
}

func (f *freezable) Read(p []byte) (int, error) {
	n, err := f.Conn.Read(p)
	for f.s.frozen.Load() && !f.s.closed.Load() {
		time.Sleep(5 * time.Millisecond)
	}
	return n, err
}

func (s *Server) serveConn(c *freezable) {
	defer s.wg.Done()
	defer func() {
		_ = c.Close()
		s.mu.Lock()
		delete(s.conns, c.Conn)
		s.mu.Unlock()
	}()
	// Bound the handshake so a client that never speaks cannot pin Close.
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, chans, reqs, err := ssh.NewServerConn(c, s.cfg)
	if err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	s.mu.Lock()
	s.logins++
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for req := range reqs {
			if req.Type == "keepalive@openssh.com" {
				s.keepalives.Add(1)
			}
			// Like OpenSSH: unknown global requests get a failure reply,
			// which still proves liveness to the client.
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}()
	var sessions sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() == "direct-tcpip" {
			sessions.Add(1)
			go func() {
				defer sessions.Done()
				s.serveForward(nc)
			}()
			continue
		}
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		sessions.Add(1)
		go func() {
			defer sessions.Done()
			s.serveSession(ch, creqs)
		}()
	}
	sessions.Wait()
}

// serveForward connects a direct-tcpip channel (RFC 4254 7.2) to the
// address it names, through the WithForwarding dialer.
func (s *Server) serveForward(nc ssh.NewChannel) {
	var p struct {
		Host       string
		Port       uint32
		OriginHost string
		OriginPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "bad direct-tcpip payload")
		return
	}
	addr := net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port)))
	s.mu.Lock()
	s.forwards = append(s.forwards, addr)
	s.mu.Unlock()
	if s.forward == nil {
		_ = nc.Reject(ssh.Prohibited, "forwarding disabled")
		return
	}
	up, err := s.forward(addr)
	if err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		_ = up.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, ch); _ = closeWrite(up); done <- struct{}{} }()
	go func() { _, _ = io.Copy(ch, up); _ = ch.CloseWrite(); done <- struct{}{} }()
	<-done
	// Either side ending tears both down, as sshd does.
	_ = ch.Close()
	_ = up.Close()
	<-done
}

func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// signalNamed maps an SSH signal name (RFC 4254 6.9) to the local signal.
func signalNamed(name string) (syscall.Signal, bool) {
	switch name {
	case "TERM":
		return syscall.SIGTERM, true
	case "KILL":
		return syscall.SIGKILL, true
	case "INT":
		return syscall.SIGINT, true
	case "HUP":
		return syscall.SIGHUP, true
	case "QUIT":
		return syscall.SIGQUIT, true
	case "USR1":
		return syscall.SIGUSR1, true
	case "USR2":
		return syscall.SIGUSR2, true
	}
	return 0, false
}

// serveSession handles one session channel: exec, sftp subsystem, signal.
// When the client closes the channel, the command's process group is killed
// (sshd would close its pipes; killing keeps tests from leaking processes).
func (s *Server) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	var (
		started bool
		pgid    int
		done    = make(chan struct{})
	)
	for req := range reqs {
		switch req.Type {
		case "exec":
			var p struct{ Command string }
			if started || ssh.Unmarshal(req.Payload, &p) != nil {
				_ = req.Reply(false, nil)
				continue
			}
			s.mu.Lock()
			s.commands = append(s.commands, p.Command)
			s.mu.Unlock()
			cmd, err := s.start(ch, p.Command)
			if err != nil {
				_ = req.Reply(false, nil)
				continue
			}
			started, pgid = true, cmd.Process.Pid
			_ = req.Reply(true, nil)
			go func() {
				defer close(done)
				_ = cmd.Wait()
				_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{exitStatus(cmd.ProcessState)}))
				_ = ch.Close()
			}()
		case "subsystem":
			var p struct{ Name string }
			if started || ssh.Unmarshal(req.Payload, &p) != nil || p.Name != "sftp" {
				_ = req.Reply(false, nil)
				continue
			}
			srv, err := sftp.NewServer(ch, sftp.WithServerWorkingDirectory(s.Dir))
			if err != nil {
				_ = req.Reply(false, nil)
				continue
			}
			started = true
			_ = req.Reply(true, nil)
			go func() {
				defer close(done)
				_ = srv.Serve()
				_ = srv.Close()
			}()
		case "signal":
			var p struct{ Signal string }
			if ssh.Unmarshal(req.Payload, &p) == nil && pgid > 0 {
				if sig, ok := signalNamed(p.Signal); ok {
					_ = syscall.Kill(-pgid, sig)
				}
			}
			if req.WantReply {
				_ = req.Reply(true, nil)
			}
		case "env":
			_ = req.Reply(true, nil)
		default:
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}
	if pgid > 0 {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	if started {
		_ = ch.Close()
		<-done
	}
}

func (s *Server) start(ch ssh.Channel, command string) (*exec.Cmd, error) {
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Dir = s.Dir
	cmd.Env = s.env
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	// Own process group, so signals and the final kill reach children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A background child holding stdout open must not stall the exit status.
	cmd.WaitDelay = 2 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_, _ = io.Copy(stdin, ch)
		_ = stdin.Close()
	}()
	return cmd, nil
}

// exitStatus follows the shell convention: 128+n for death by signal n.
func exitStatus(ps *os.ProcessState) uint32 {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return uint32(128 + int(ws.Signal()))
	}
	return uint32(ps.ExitCode())
}
