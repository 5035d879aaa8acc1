package remote_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// systemFile writes a system-wide known_hosts with text and returns a config
// for s that consults it, with a user file at user (which may not exist).
func systemFile(t *testing.T, s *remotetest.Server, text, user string) (remote.Config, string) {
	t.Helper()
	sys := filepath.Join(t.TempDir(), "ssh_known_hosts")
	if err := os.WriteFile(sys, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := s.Config()
	cfg.KnownHostsFile = user
	cfg.SystemKnownHostsFiles = []string{filepath.Join(t.TempDir(), "absent"), sys}
	return cfg, sys
}

// acceptNewInto writes content to a new known_hosts file, dials s with
// accept-new against it and returns the file and the config used.
func acceptNewInto(t *testing.T, s *remotetest.Server, content string) (string, remote.Config) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := s.Config()
	cfg.KnownHostsFile = file
	cfg.AcceptNewHostKeys = true
	run(t, dial(t, cfg), "true")
	return file, cfg
}

// TestSystemKnownHosts: OpenSSH also consults /etc/ssh/ssh_known_hosts; a
// host pinned there to another key is refused, even with accept-new and an
// empty user file, and a key on record there is trusted.
func TestSystemKnownHosts(t *testing.T) {
	s := remotetest.NewServer(t)
	other := remotetest.NewKey(t).Public()
	t.Run("pinned to another key", func(t *testing.T) {
		for _, acceptNew := range []bool{false, true} {
			user := filepath.Join(t.TempDir(), "known_hosts")
			cfg, sys := systemFile(t, s, knownhosts.Line([]string{s.Addr}, other)+"\n", user)
			cfg.AcceptNewHostKeys = acceptNew
			_, err := remote.Dial(context.Background(), cfg)
			if !errors.Is(err, remote.ErrHostKeyChanged) {
				t.Fatalf("accept-new=%v: err = %v, want ErrHostKeyChanged", acceptNew, err)
			}
			for _, want := range []string{sys + ":1", ssh.FingerprintSHA256(other), "ssh-keygen -R " + remote.Quote(knownhosts.Normalize(s.Addr)) + " -f " + remote.Quote(sys)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			if _, err := os.Stat(user); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the user's known_hosts was written: %v", err)
			}
		}
	})
	t.Run("revoked there", func(t *testing.T) {
		user := filepath.Join(t.TempDir(), "known_hosts")
		cfg, _ := systemFile(t, s, "@revoked "+knownhosts.Line([]string{"*"}, s.HostKey)+"\n", user)
		cfg.AcceptNewHostKeys = true
		if _, err := remote.Dial(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "@revoked") {
			t.Fatalf("err = %v, want a revoked key refused", err)
		}
	})
	t.Run("trusted there", func(t *testing.T) {
		user := filepath.Join(t.TempDir(), "known_hosts")
		cfg, _ := systemFile(t, s, knownhosts.Line([]string{s.Addr}, s.HostKey)+"\n", user)
		run(t, dial(t, cfg), "true")
		cfg.AcceptNewHostKeys = true
		run(t, dial(t, cfg), "true")
		if _, err := os.Stat(user); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a key the system file has was recorded again: %v", err)
		}
	})
	t.Run("user file pins another key", func(t *testing.T) {
		user := remotetest.WriteKnownHosts(t, filepath.Join(t.TempDir(), "known_hosts"), s.Addr, other)
		cfg, _ := systemFile(t, s, "", user)
		cfg.AcceptNewHostKeys = true
		if _, err := remote.Dial(context.Background(), cfg); !errors.Is(err, remote.ErrHostKeyChanged) {
			t.Fatalf("err = %v, want ErrHostKeyChanged", err)
		}
	})
}

// TestAcceptNewHashes: a file whose entries are hashed gets a hashed entry
// (like HashKnownHosts), which then verifies the host; a file in clear gets
// an entry in clear.
func TestAcceptNewHashes(t *testing.T) {
	s := remotetest.NewServer(t)
	hashedOther := knownhosts.Line([]string{knownhosts.HashHostname("10.0.0.1")}, remotetest.NewKey(t).Public())
	for _, marker := range []string{"", "@cert-authority "} {
		t.Run("first entry "+marker, func(t *testing.T) {
			file, cfg := acceptNewInto(t, s, marker+hashedOther+"\n")
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[1], "|1|") {
				t.Fatalf("want a hashed second entry, got:\n%s", data)
			}
			if strings.Contains(string(data), "127.0.0.1") {
				t.Fatalf("the host is named in clear:\n%s", data)
			}
			cfg.AcceptNewHostKeys = false
			run(t, dial(t, cfg), "true")
		})
	}
	t.Run("clear file", func(t *testing.T) {
		plain := knownhosts.Line([]string{"10.0.0.1"}, remotetest.NewKey(t).Public()) + "\n"
		file, _ := acceptNewInto(t, s, plain)
		assertFile(t, file, plain+knownhosts.Line([]string{s.Addr}, s.HostKey)+"\n", 0o600)
	})
}

// TestAcceptNewReplacesAtomically: the new file is renamed into place (a new
// inode, no temp file left), keeps the old mode, and a symlinked known_hosts
// stays a symlink to its updated target.
func TestAcceptNewReplacesAtomically(t *testing.T) {
	s := remotetest.NewServer(t)
	other := knownhosts.Line([]string{"10.0.0.1"}, remotetest.NewKey(t).Public()) + "\n"
	want := other + knownhosts.Line([]string{s.Addr}, s.HostKey) + "\n"
	for _, mode := range []os.FileMode{0o644, 0o600, 0o640} {
		t.Run(fmt.Sprintf("mode %04o", mode), func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "known_hosts")
			if err := os.WriteFile(file, []byte(other), mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(file, mode); err != nil {
				t.Fatal(err)
			}
			before, _ := os.Stat(file)
			cfg := s.Config()
			cfg.KnownHostsFile = file
			cfg.AcceptNewHostKeys = true
			run(t, dial(t, cfg), "true")
			assertFile(t, file, want, mode)
			after, _ := os.Stat(file)
			if os.SameFile(before, after) {
				t.Errorf("known_hosts was written in place, not renamed over")
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("left behind: %v", ents)
			}
		})
	}
	t.Run("symlink", func(t *testing.T) {
		dir := t.TempDir()
		real := filepath.Join(dir, "dotfiles-known_hosts")
		if err := os.WriteFile(real, []byte(other), 0o600); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, "known_hosts")
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		cfg := s.Config()
		cfg.KnownHostsFile = link
		cfg.AcceptNewHostKeys = true
		run(t, dial(t, cfg), "true")
		if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("the symlink was replaced: %v %v", st.Mode(), err)
		}
		assertFile(t, real, want, 0o600)
	})
}
