package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// build compiles this command into a temp directory: the signal tests
// drive the real binary, with the process's own signal handling.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hactl")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// stuckInventory is a valid inventory whose two hosts are loopback
// listeners that accept SSH connections and never answer: apply waits in
// the handshake (connect timeout 10 s) until it is interrupted.
func stuckInventory(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	accepted := make(chan struct{}, 4)
	var addrs []string
	for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		addrs = append(addrs, ln.Addr().String())
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() })
				accepted <- struct{}{}
			}
		}()
	}
	_, port, _ := net.SplitHostPort(addrs[0])
	_, port2, _ := net.SplitHostPort(addrs[1])
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Skipf("ssh-keygen: %v %s", err, out)
	}
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	inv := fmt.Sprintf(`ssh {
  user             = "root"
  private_key_file = %q
  known_hosts_file = %q
}
cluster "c" {
  interface = "eth0"
  gateway   = "198.18.0.1"
  auth_pass = "pass1234"
  host "a" {
    address = "198.18.0.11"
    vip     = "198.18.0.201/24"
  }
  host "b" {
    address = "198.18.0.12"
    vip     = "198.18.0.202/24"
  }
}
`, key, kh)
	// The inventory names lab-style addresses (a loopback host address is
	// refused); ssh_config's HostName sends the connections to the local
	// listeners, so nothing leaves this machine.
	cfg := fmt.Sprintf("Host 198.18.0.11\n  HostName 127.0.0.2\n  Port %s\nHost 198.18.0.12\n  HostName 127.0.0.3\n  Port %s\n", port, port2)
	if err := os.WriteFile(filepath.Join(dir, "ssh_config"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "stuck.hcl")
	if err := os.WriteFile(p, []byte(inv), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, accepted
}

// TestInterruptExits130: SIGINT or SIGTERM while apply waits on the network
// ends the run promptly with exit 130; nothing keeps catching signals.
func TestInterruptExits130(t *testing.T) {
	bin := build(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			inv, accepted := stuckInventory(t)
			cmd := exec.Command(bin, "apply", "-i", inv, "--connect-timeout", "60s", "--ssh-config", filepath.Join(filepath.Dir(inv), "ssh_config"))
			cmd.Env = append(os.Environ(), "NO_COLOR=1")
			var errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &errb, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-accepted:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("apply never connected\n%s", errb.String())
			}
			sent := time.Now()
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("still running 30 s after %v\n%s", sig, errb.String())
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 130 {
				t.Fatalf("after %v: %v, want exit 130\n%s", sig, err, errb.String())
			}
			if !strings.Contains(errb.String(), "interrupted") {
				t.Errorf("stderr does not say it was interrupted:\n%s", errb.String())
			}
			t.Logf("%v: exit 130 after %v", sig, time.Since(sent).Round(time.Millisecond))
		})
	}
}
