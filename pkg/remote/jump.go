package remote

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"

	"golang.org/x/crypto/ssh"
)

// Jumps shares one connection per bastion between the dials of one run, so
// a fleet behind one jump host costs one bastion login, not one per host.
// The zero value is ready to use; a nil *Jumps gives every dial its own
// bastion connection.
type Jumps struct {
	mu sync.Mutex
	m  map[string]*jump
}

type jump struct {
	ready  chan struct{} // closed when client or err is set
	client *ssh.Client
	err    error
	refs   int
}

// jumpKey identifies a bastion login: the same address with another user,
// key or known_hosts file is another connection.
func jumpKey(c Config) string {
	return fmt.Sprintf("%s@%s|%s|%s|%q|%v", c.User, net.JoinHostPort(c.Address, strconv.Itoa(c.Port)),
		c.PrivateKeyFile, c.KnownHostsFile, c.SystemKnownHostsFiles, c.AcceptNewHostKeys)
}

// acquire returns a logged-in bastion client and the func that gives it
// back; the connection closes when its last user gives it back.
func (js *Jumps) acquire(ctx context.Context, cfg Config) (*ssh.Client, func(), error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", cfg.Name, err)
	}
	where := fmt.Sprintf("%s (%s)", cfg.Name, net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port)))
	if js == nil {
		c, err := dialClient(ctx, cfg, nil, where)
		if err != nil {
			return nil, nil, err
		}
		return c, func() { _ = c.Close() }, nil
	}
	key := jumpKey(cfg)
	js.mu.Lock()
	if js.m == nil {
		js.m = map[string]*jump{}
	}
	j, ok := js.m[key]
	if !ok {
		j = &jump{ready: make(chan struct{})}
		js.m[key] = j
	}
	j.refs++
	js.mu.Unlock()

	if !ok {
		j.client, j.err = dialClient(ctx, cfg, nil, where)
		close(j.ready)
	}
	select {
	case <-j.ready:
	case <-ctx.Done():
		js.put(key, j)
		return nil, nil, fmt.Errorf("%s: waiting for the bastion connection: %w", where, ctx.Err())
	}
	if j.err != nil {
		js.put(key, j)
		return nil, nil, j.err
	}
	var once sync.Once
	return j.client, func() { once.Do(func() { js.put(key, j) }) }, nil
}

// put drops one reference; the last one closes the bastion connection and
// forgets it, so a later dial (or a retry after a failure) dials anew.
func (js *Jumps) put(key string, j *jump) {
	js.mu.Lock()
	j.refs--
	last := j.refs == 0
	if last && js.m[key] == j {
		delete(js.m, key)
	}
	js.mu.Unlock()
	if last {
		<-j.ready
		if j.client != nil {
			_ = j.client.Close()
		}
	}
}
