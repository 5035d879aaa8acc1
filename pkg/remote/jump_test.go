package remote_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
)

// jumpLab is a bastion and two targets that only the bastion can reach: the
// targets are known by made-up names (tgtN.internal:22) that do not resolve
// on the test machine; the bastion's forwarding maps them to the servers.
type jumpLab struct {
	bastion *remotetest.Server
	targets []*remotetest.Server
	key     remotetest.Key
	kh      string // one known_hosts for all three, like a user's
}

func newJumpLab(t *testing.T, n int) *jumpLab {
	t.Helper()
	key := remotetest.NewKey(t)
	var targets []*remotetest.Server
	for range n {
		targets = append(targets, remotetest.NewServer(t, remotetest.WithAuthorizedKeys(key.Public())))
	}
	bastion := remotetest.NewServer(t, remotetest.WithAuthorizedKeys(key.Public()),
		remotetest.WithForwarding(func(addr string) (net.Conn, error) {
			for i, s := range targets {
				if addr == fmt.Sprintf("tgt%d.internal:22", i+1) {
					return net.Dial("tcp", s.Addr)
				}
			}
			return nil, fmt.Errorf("no route to %s", addr)
		}))
	kh := filepath.Join(t.TempDir(), "known_hosts")
	var lines []string
	for _, s := range append([]*remotetest.Server{bastion}, targets...) {
		b, err := os.ReadFile(s.KnownHostsFile)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimSpace(string(b)))
	}
	// The targets' keys are recorded under the names the client dials.
	text := strings.Join(lines, "\n") + "\n"
	for i, s := range targets {
		text = strings.Replace(text, knownhosts.Normalize(s.Addr), fmt.Sprintf("tgt%d.internal", i+1), 1)
	}
	if err := os.WriteFile(kh, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return &jumpLab{bastion: bastion, targets: targets, key: key, kh: kh}
}

func (l *jumpLab) config(i int, jumps *remote.Jumps) remote.Config {
	return remote.Config{
		Name: fmt.Sprintf("tgt%d", i+1), Address: fmt.Sprintf("tgt%d.internal", i+1), Port: 22, User: "root",
		PrivateKeyFile: l.key.File, KnownHostsFile: l.kh, ConnectTimeout: 5e9,
		Jump: &remote.Config{
			Name: "jump host bastion", Address: l.bastion.Host, Port: l.bastion.Port, User: "ops",
			PrivateKeyFile: l.key.File, KnownHostsFile: l.kh, ConnectTimeout: 5e9,
		},
		Jumps: jumps,
	}
}

// TestJumpHost: two targets reachable only through the bastion's
// direct-tcpip forwarding; both dials share one bastion login.
func TestJumpHost(t *testing.T) {
	l := newJumpLab(t, 2)
	// Without the bastion the names do not even resolve.
	direct := l.config(0, nil)
	direct.Jump = nil
	direct.ConnectTimeout = 2e9
	if c, err := remote.Dial(context.Background(), direct); err == nil {
		_ = c.Close()
		t.Fatal("target reachable without the bastion: the test proves nothing")
	}

	jumps := &remote.Jumps{}
	conns := make([]remote.Conn, 2)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns[i], errs[i] = remote.Dial(context.Background(), l.config(i, jumps))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("dial tgt%d: %v", i+1, err)
		}
	}
	for i, c := range conns {
		res := run(t, c, "echo hello")
		if string(res.Stdout) != "hello\n" {
			t.Errorf("tgt%d: %q", i+1, res.Stdout)
		}
		if err := c.Upload(context.Background(), "up.txt", []byte("x"), 0o600); err != nil {
			t.Errorf("tgt%d upload through the bastion: %v", i+1, err)
		}
	}
	if n := l.bastion.Logins(); n != 1 {
		t.Errorf("bastion logins = %d, want 1 shared by both targets", n)
	}
	if got := l.bastion.Users(); len(got) != 1 || got[0] != "ops" {
		t.Errorf("bastion users = %v, want [ops]", got)
	}
	if got := l.bastion.Forwards(); len(got) != 2 {
		t.Errorf("forwards = %v", got)
	}
	// The bastion stays up while one target uses it, and goes with the last.
	_ = conns[0].Close()
	if res := run(t, conns[1], "echo still"); string(res.Stdout) != "still\n" {
		t.Errorf("second target lost with the first: %q", res.Stdout)
	}
	_ = conns[1].Close()
	c := dial(t, l.config(0, jumps))
	run(t, c, "true")
	if n := l.bastion.Logins(); n != 2 {
		t.Errorf("bastion logins = %d, want a new one after the last user closed", n)
	}
}

// TestJumpHostKeys: the bastion's key is checked like any host's: unknown is
// refused (accepted and recorded with accept-new), changed always refused.
func TestJumpHostKeys(t *testing.T) {
	t.Run("unknown bastion key refused", func(t *testing.T) {
		l := newJumpLab(t, 1)
		b, _ := os.ReadFile(l.kh)
		keep := strings.Join(strings.Split(string(b), "\n")[1:], "\n")
		if err := os.WriteFile(l.kh, []byte(keep), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := remote.Dial(context.Background(), l.config(0, &remote.Jumps{}))
		if !errors.Is(err, remote.ErrHostKeyUnknown) || !strings.Contains(err.Error(), "jump host bastion") {
			t.Fatalf("err = %v, want ErrHostKeyUnknown naming the jump host", err)
		}
		if len(l.bastion.Forwards()) != 0 || len(l.targets[0].Users()) != 0 {
			t.Errorf("something was reached through an unverified bastion")
		}
		cfg := l.config(0, nil)
		cfg.Jump.AcceptNewHostKeys = true
		c := dial(t, cfg)
		run(t, c, "true")
		if b, _ := os.ReadFile(l.kh); !strings.Contains(string(b), knownhosts.Normalize(l.bastion.Addr)) {
			t.Errorf("accept-new did not record the bastion's key")
		}
	})
	t.Run("changed bastion key refused", func(t *testing.T) {
		l := newJumpLab(t, 1)
		other := remotetest.NewKey(t)
		b, _ := os.ReadFile(l.kh)
		lines := strings.Split(string(b), "\n")
		lines[0] = strings.Fields(lines[0])[0] + " " + strings.TrimSpace(string(sshAuthorizedKey(other)))
		if err := os.WriteFile(l.kh, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := l.config(0, &remote.Jumps{})
		cfg.Jump.AcceptNewHostKeys = true
		_, err := remote.Dial(context.Background(), cfg)
		if !errors.Is(err, remote.ErrHostKeyChanged) {
			t.Fatalf("err = %v, want ErrHostKeyChanged", err)
		}
	})
	t.Run("target key verified behind the bastion", func(t *testing.T) {
		l := newJumpLab(t, 1)
		b, _ := os.ReadFile(l.kh)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if err := os.WriteFile(l.kh, []byte(lines[0]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := remote.Dial(context.Background(), l.config(0, &remote.Jumps{}))
		if !errors.Is(err, remote.ErrHostKeyUnknown) || !strings.Contains(err.Error(), "tgt1") {
			t.Fatalf("err = %v, want the target's key refused", err)
		}
	})
}

func sshAuthorizedKey(k remotetest.Key) []byte { return ssh.MarshalAuthorizedKey(k.Public()) }
