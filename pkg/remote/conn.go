package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// sshConn is the Conn behind Dial.
type sshConn struct {
	client *ssh.Client
	where  string // "name (host:port)" for error messages
	user   string
	sudo   bool // Become with a non-root login: wrap commands in sudo

	done      chan struct{} // closed by Close; stops the keepalive loop
	closeOnce sync.Once
	closeErr  error

	// sftpMu is held while opening the SFTP subsystem, which can block on a
	// dead peer; it is separate from mu so markDead can still run then.
	sftpMu sync.Mutex
	sftp   *sftp.Client // opened on first SFTP upload, then reused

	mu      sync.Mutex
	deadErr error // why the keepalive loop closed the connection

	release func() // gives the bastion connection back (no-op without one)
}

func newConn(client *ssh.Client, cfg Config, where string) *sshConn {
	c := &sshConn{
		client: client,
		where:  where,
		user:   cfg.User,
		// Root needs no sudo, and sudo may not even be installed there.
		sudo: cfg.Become && cfg.User != "root",
		done: make(chan struct{}),
	}
	if cfg.KeepAlive > 0 {
		go c.keepAlive(cfg.KeepAlive)
	}
	return c
}

// keepAlive sends keepalive@openssh.com every interval and closes the
// connection when a reply takes longer than keepAliveCountMax intervals, so a
// dead peer turns into prompt errors instead of commands hanging forever.
func (c *sshConn) keepAlive(interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-ticker.C:
		}
		replied := make(chan error, 1)
		go func() {
			// Servers answer unknown global requests with failure; any
			// answer proves the peer is alive, so only err matters.
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			replied <- err
		}()
		timer := time.NewTimer(interval * keepAliveCountMax)
		select {
		case <-c.done:
			timer.Stop()
			return
		case err := <-replied:
			timer.Stop()
			if err != nil {
				c.markDead(fmt.Errorf("keepalive failed: %w", err))
				return
			}
		case <-timer.C:
			c.markDead(fmt.Errorf("no keepalive reply within %s", interval*keepAliveCountMax))
			return
		}
	}
}

func (c *sshConn) markDead(reason error) {
	c.mu.Lock()
	c.deadErr = reason
	c.mu.Unlock()
	_ = c.client.Close()
}

// transportErr wraps a transport failure with the host and, when the
// keepalive loop killed the connection, the reason.
func (c *sshConn) transportErr(what string, err error) error {
	c.mu.Lock()
	dead := c.deadErr
	c.mu.Unlock()
	if dead != nil {
		return fmt.Errorf("%s: %s: connection closed (%v): %w", c.where, what, dead, err)
	}
	return fmt.Errorf("%s: %s: %w", c.where, what, err)
}

func (c *sshConn) Run(ctx context.Context, cmd string, stdin io.Reader) (Result, error) {
	return c.run(ctx, cmd, stdin, nil)
}

// Stream is Run with the command's stdout written to stdout as it arrives
// (Result.Stdout stays empty); see Streamer.
func (c *sshConn) Stream(ctx context.Context, cmd string, stdin io.Reader, stdout io.Writer) (Result, error) {
	return c.run(ctx, cmd, stdin, stdout)
}

func (c *sshConn) run(ctx context.Context, cmd string, stdin io.Reader, stdout io.Writer) (Result, error) {
	if c.sudo {
		cmd = "sudo -n -- sh -c " + Quote(cmd)
	}
	res, err := c.exec(ctx, cmd, stdin, stdout)
	if err != nil {
		return res, err
	}
	if err := c.checkSudo(res); err != nil {
		return res, err
	}
	return res, nil
}

// checkSudo recognises sudo refusing to run without a password. sudo -n exits 1
// and says so on stderr; the wording differs between sudo versions.
func (c *sshConn) checkSudo(res Result) error {
	if !c.sudo || res.ExitCode != 1 {
		return nil
	}
	msg := string(res.Stderr)
	for _, s := range []string{"a password is required", "a terminal is required", "no tty present"} {
		if strings.Contains(msg, s) {
			return fmt.Errorf("%s: become is set but sudo asks user %s for a password; "+
				"give %s passwordless sudo (NOPASSWD) or log in as root: %w",
				c.where, c.user, c.user, ErrSudoPassword)
		}
	}
	return nil
}

// exec runs cmd verbatim in a new session; its stdout goes to out when out
// is not nil, else into Result.Stdout.
func (c *sshConn) exec(ctx context.Context, cmd string, stdin io.Reader, out io.Writer) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("%s: command not started: %w", c.where, err)
	}
	sess, err := c.client.NewSession()
	if err != nil {
		return Result{}, c.transportErr("opening session", err)
	}
	var stdout, stderr bytes.Buffer
	sess.Stdout = &stdout
	if out != nil {
		sess.Stdout = out
	}
	sess.Stderr = &stderr
	// stdin is copied here rather than through sess.Stdin: x/crypto makes
	// Wait report the copy's EOF when the command exits without reading all
	// its input, which is the command's business, not a transport failure.
	var stdinPipe io.WriteCloser
	if stdin != nil {
		if stdinPipe, err = sess.StdinPipe(); err != nil {
			_ = sess.Close()
			return Result{}, c.transportErr("opening stdin", err)
		}
	}
	if err := sess.Start(cmd); err != nil {
		_ = sess.Close()
		return Result{}, c.transportErr("starting command", err)
	}
	if stdinPipe != nil {
		go func() {
			_, _ = io.Copy(stdinPipe, stdin)
			_ = stdinPipe.Close()
		}()
	}
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()

	select {
	case err = <-waited:
	case <-ctx.Done():
		// Signal and close without waiting: on a wedged connection even
		// these writes could block, and the caller asked to stop now.
		// Closing the channel also closes the command's pipes remotely.
		go func() {
			_ = sess.Signal(ssh.SIGTERM)
			_ = sess.Close()
		}()
		return Result{}, fmt.Errorf("%s: command abandoned: %w", c.where, ctx.Err())
	}
	_ = sess.Close()

	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var exitErr *ssh.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.ExitCode = exitErr.ExitStatus()
	default:
		return res, c.transportErr("running command", err)
	}
	return res, nil
}

func (c *sshConn) Upload(ctx context.Context, path string, content []byte, mode fs.FileMode) error {
	if c.sudo {
		return c.uploadSudo(ctx, path, content, mode)
	}
	return c.uploadSFTP(ctx, path, content, mode)
}

// uploadSudo streams content through `sudo sh -c 'cat > "$1"'`: SFTP runs as
// the login user and cannot write root-owned paths. umask 077 keeps the file
// private until chmod, since rendered configs may hold secrets.
func (c *sshConn) uploadSudo(ctx context.Context, path string, content []byte, mode fs.FileMode) error {
	script := fmt.Sprintf(`umask 077 && cat > "$1" && chmod %04o "$1"`, unixMode(mode))
	cmd := "sudo -n -- sh -c " + Quote(script) + " sh " + Quote(path)
	res, err := c.exec(ctx, cmd, bytes.NewReader(content), nil)
	if err != nil {
		return fmt.Errorf("%w (upload %s)", err, path)
	}
	if err := c.checkSudo(res); err != nil {
		return fmt.Errorf("%w (upload %s)", err, path)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("%s: upload %s: exit status %d: %s", c.where, path, res.ExitCode,
			strings.TrimSpace(string(res.Stderr)))
	}
	return nil
}

// uploadChunk bounds how much is written between ctx checks.
const uploadChunk = 64 << 10

func (c *sshConn) uploadSFTP(ctx context.Context, path string, content []byte, mode fs.FileMode) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: upload %s: %w", c.where, path, err)
	}
	sc, err := c.sftpClient()
	if err != nil {
		return err
	}
	// pkg/sftp sends no attributes with its open, so a file it creates has
	// the server's default mode (0644) until a chmod, and a reader that
	// opens it in that moment keeps reading through its descriptor whatever
	// is written next (rendered configs hold secrets). So the shell creates
	// it, replacing whatever was there, under umask 077: 0600 from birth.
	// SFTP then opens that file without O_CREATE (gone meanwhile: an
	// error, never a new 0644 file), writes, and sets the mode last.
	q := Quote(path)
	res, err := c.exec(ctx, "rm -f -- "+q+" && (umask 077 && : > "+q+")", nil, nil)
	if err != nil {
		return fmt.Errorf("%w (upload %s)", err, path)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("%s: upload %s: creating it 0600: exit status %d: %s", c.where, path, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	f, err := sc.OpenFile(path, os.O_WRONLY|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("%s: upload %s: %w", c.where, path, err)
	}
	for off := 0; off < len(content); off += uploadChunk {
		if err := ctx.Err(); err != nil {
			_ = f.Close()
			return fmt.Errorf("%s: upload %s: %w", c.where, path, err)
		}
		if _, err := f.Write(content[off:min(off+uploadChunk, len(content))]); err != nil {
			_ = f.Close()
			return fmt.Errorf("%s: upload %s: %w", c.where, path, err)
		}
	}
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return fmt.Errorf("%s: upload %s: chmod: %w", c.where, path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: upload %s: %w", c.where, path, err)
	}
	return nil
}

// sftpClient opens the SFTP subsystem on first use and reuses it; holding
// sftpMu while opening makes concurrent first uploads share one client.
func (c *sshConn) sftpClient() (*sftp.Client, error) {
	c.sftpMu.Lock()
	defer c.sftpMu.Unlock()
	if c.sftp != nil {
		return c.sftp, nil
	}
	select {
	case <-c.done:
		return nil, fmt.Errorf("%s: sftp: %w", c.where, net.ErrClosed)
	default:
	}
	sc, err := sftp.NewClient(c.client)
	if err != nil {
		return nil, c.transportErr("starting sftp", err)
	}
	c.sftp = sc
	return sc, nil
}

func (c *sshConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		// Closing the SSH client first unblocks an SFTP open in progress,
		// which holds sftpMu.
		err := c.client.Close()
		// The keepalive loop may have closed the client already.
		if err != nil && !errors.Is(err, net.ErrClosed) {
			c.closeErr = fmt.Errorf("%s: close: %w", c.where, err)
		}
		c.sftpMu.Lock()
		if c.sftp != nil {
			_ = c.sftp.Close()
		}
		c.sftpMu.Unlock()
		if c.release != nil {
			c.release()
		}
	})
	return c.closeErr
}

// unixMode converts fs.FileMode to the numeric mode chmod(1) expects.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// Ping sends keepalive@openssh.com and waits for the answer (see Pinger).
func (c *sshConn) Ping(ctx context.Context) error {
	replied := make(chan error, 1)
	go func() {
		// Any answer, failure included, proves the peer read the request.
		_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
		replied <- err
	}()
	select {
	case err := <-replied:
		if err != nil {
			return c.transportErr("keepalive", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: keepalive: %w", c.where, ctx.Err())
	}
}
