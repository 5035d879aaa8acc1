package remote

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"sync/atomic"
)

// Counted is a Conn that counts its round trips: every command (one SSH
// session and exec request each) and every upload. It is how a run says,
// and a test guards, how many round trips a command costs per host. The
// lock's heartbeat rides on a session already counted and is not one.
type Counted struct {
	Conn
	n atomic.Int64
}

// Count wraps c; a c that counts already is returned as it is.
func Count(c Conn) *Counted {
	if cc, ok := c.(*Counted); ok {
		return cc
	}
	return &Counted{Conn: c}
}

// RoundTrips is how many commands and uploads went through c so far.
func (c *Counted) RoundTrips() int { return int(c.n.Load()) }

func (c *Counted) Run(ctx context.Context, cmd string, stdin io.Reader) (Result, error) {
	c.n.Add(1)
	return c.Conn.Run(ctx, cmd, stdin)
}

func (c *Counted) Upload(ctx context.Context, path string, content []byte, mode fs.FileMode) error {
	c.n.Add(1)
	return c.Conn.Upload(ctx, path, content, mode)
}

// Stream passes a streamed command through to a Conn that has Stream (see
// Streamer), counting it as one round trip.
func (c *Counted) Stream(ctx context.Context, cmd string, stdin io.Reader, stdout io.Writer) (Result, error) {
	s, ok := c.Conn.(Streamer)
	if !ok {
		return Result{}, ErrNoStream
	}
	c.n.Add(1)
	return s.Stream(ctx, cmd, stdin, stdout)
}

// Streams tells whether Stream works on c.
func (c *Counted) Streams() bool { _, ok := c.Conn.(Streamer); return ok }

// Ping passes a keepalive through to a Conn that has one (see Pinger).
func (c *Counted) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(Pinger); ok {
		return p.Ping(ctx)
	}
	return ErrNoPing
}

// Pinger is a Conn that can prove its peer received everything sent before
// the ping: SSH carries one connection's packets in order, so the server's
// answer to a global request comes after it read every earlier packet,
// channel data included. It costs no session and no process on the host
// (sshd answers itself), so it stays quick however busy the host is.
type Pinger interface {
	Ping(ctx context.Context) error
}

// ErrNoPing is Ping on a Conn that cannot ping.
var ErrNoPing = errors.New("this connection cannot send a keepalive")

// Streamer is a Conn that can run a command whose output is read while it
// runs: the host lock reports that it holds the lock, and what it gathered
// under it, on the session that then keeps holding it.
type Streamer interface {
	Stream(ctx context.Context, cmd string, stdin io.Reader, stdout io.Writer) (Result, error)
}

// ErrNoStream is Stream on a Conn that cannot stream.
var ErrNoStream = errors.New("this connection cannot stream a command's output")

// CanStream tells whether c's Stream works.
func CanStream(c Conn) bool {
	if cc, ok := c.(*Counted); ok {
		return cc.Streams()
	}
	_, ok := c.(Streamer)
	return ok
}
