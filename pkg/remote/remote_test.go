package remote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
)

func dial(t *testing.T, cfg remote.Config) remote.Conn {
	t.Helper()
	c, err := remote.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func run(t *testing.T, c remote.Conn, cmd string) remote.Result {
	t.Helper()
	res, err := c.Run(context.Background(), cmd, nil)
	if err != nil {
		t.Fatalf("Run(%q): %v", cmd, err)
	}
	return res
}

func TestKeyFileAuth(t *testing.T) {
	s := remotetest.NewServer(t)
	c := dial(t, s.Config())
	res := run(t, c, "echo hello")
	if got := string(res.Stdout); got != "hello\n" || res.ExitCode != 0 {
		t.Fatalf("got %q exit %d", got, res.ExitCode)
	}
	if got := s.Users(); len(got) != 1 || got[0] != "root" {
		t.Fatalf("logins = %v, want [root]", got)
	}
}

func TestAgentAuth(t *testing.T) {
	s := remotetest.NewServer(t)
	cfg := s.Config()
	cfg.PrivateKeyFile = ""
	// An unrelated key first: the agent's keys are all offered in turn.
	cfg.AgentSocket = remotetest.StartAgent(t, remotetest.NewKey(t), s.ClientKey)
	c := dial(t, cfg)
	if got := string(run(t, c, "echo via-agent").Stdout); got != "via-agent\n" {
		t.Fatalf("got %q", got)
	}
}

func TestAuthFailures(t *testing.T) {
	s := remotetest.NewServer(t)
	// Generated once: encrypting a key costs seconds of bcrypt under -race.
	encrypted := filepath.Join("testdata", "encrypted_ed25519")
	other := remotetest.NewKey(t)
	tests := []struct {
		name   string
		modify func(*remote.Config)
	}{
		{"wrong key file", func(c *remote.Config) { c.PrivateKeyFile = other.File }},
		{"missing key file", func(c *remote.Config) { c.PrivateKeyFile = filepath.Join(t.TempDir(), "nope") }},
		{"encrypted key file", func(c *remote.Config) { c.PrivateKeyFile = encrypted }},
		{"no key, no agent", func(c *remote.Config) { c.PrivateKeyFile = "" }},
		{"agent with the wrong key", func(c *remote.Config) {
			c.PrivateKeyFile = ""
			c.AgentSocket = remotetest.StartAgent(t, other)
		}},
		{"empty agent", func(c *remote.Config) {
			c.PrivateKeyFile = ""
			c.AgentSocket = remotetest.StartAgent(t)
		}},
		{"agent socket gone", func(c *remote.Config) {
			c.PrivateKeyFile = ""
			c.AgentSocket = filepath.Join(t.TempDir(), "no.sock")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := s.Config()
			tt.modify(&cfg)
			c, err := remote.Dial(context.Background(), cfg)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			if !errors.Is(err, remote.ErrAuth) {
				t.Fatalf("err = %v, want ErrAuth", err)
			}
			if !strings.Contains(err.Error(), "testhost") {
				t.Errorf("error does not name the host: %v", err)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error leaks key material: %v", err)
			}
		})
	}
}

func TestUnknownHostKeyRefused(t *testing.T) {
	s := remotetest.NewServer(t)
	fp := ssh.FingerprintSHA256(s.HostKey)
	for _, tt := range []struct {
		name    string
		content *string // nil: file does not exist
	}{
		{"missing file", nil},
		{"empty file", ptr("")},
		{"other hosts only", ptr(knownhosts.Line([]string{"10.0.0.1"}, remotetest.NewKey(t).Public()) + "\n")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "known_hosts")
			if tt.content != nil {
				if err := os.WriteFile(file, []byte(*tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg := s.Config()
			cfg.KnownHostsFile = file
			_, err := remote.Dial(context.Background(), cfg)
			if !errors.Is(err, remote.ErrHostKeyUnknown) {
				t.Fatalf("err = %v, want ErrHostKeyUnknown", err)
			}
			for _, want := range []string{"testhost", s.Addr, "ssh-ed25519", fp, "--accept-new-host-keys", "ssh-keyscan"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			got, readErr := os.ReadFile(file)
			if tt.content == nil {
				if !errors.Is(readErr, os.ErrNotExist) {
					t.Fatalf("known_hosts was created: %v", readErr)
				}
			} else if string(got) != *tt.content {
				t.Fatalf("known_hosts changed: %q", got)
			}
		})
	}
}

func TestAcceptNewHostKey(t *testing.T) {
	s := remotetest.NewServer(t)
	dir := filepath.Join(t.TempDir(), "dot-ssh")
	file := filepath.Join(dir, "known_hosts")
	cfg := s.Config()
	cfg.KnownHostsFile = file
	cfg.AcceptNewHostKeys = true
	run(t, dial(t, cfg), "true")

	want := knownhosts.Line([]string{s.Addr}, s.HostKey) + "\n"
	assertFile(t, file, want, 0o600)
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("dir: %v %v", st.Mode(), err)
	}

	// Now known: strict checking accepts it, accept-new adds nothing.
	cfg.AcceptNewHostKeys = false
	run(t, dial(t, cfg), "true")
	cfg.AcceptNewHostKeys = true
	run(t, dial(t, cfg), "true")
	assertFile(t, file, want, 0o600)
}

func TestAcceptNewKeepsLinesApart(t *testing.T) {
	s := remotetest.NewServer(t)
	other := knownhosts.Line([]string{"10.0.0.1"}, remotetest.NewKey(t).Public()) // no trailing newline
	file, _ := acceptNewInto(t, s, other)
	assertFile(t, file, other+"\n"+knownhosts.Line([]string{s.Addr}, s.HostKey)+"\n", 0o600)
}

func TestAcceptNewConcurrentDials(t *testing.T) {
	servers := []*remotetest.Server{remotetest.NewServer(t), remotetest.NewServer(t), remotetest.NewServer(t)}
	file := filepath.Join(t.TempDir(), "known_hosts")
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(servers))
	for i := 0; i < 4; i++ {
		for _, s := range servers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cfg := s.Config()
				cfg.KnownHostsFile = file
				cfg.AcceptNewHostKeys = true
				c, err := remote.Dial(context.Background(), cfg)
				if err != nil {
					errs <- err
					return
				}
				c.Close()
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != len(servers) {
		t.Fatalf("want one line per server, got:\n%s", data)
	}
	for _, s := range servers {
		if !strings.Contains(string(data), knownhosts.Line([]string{s.Addr}, s.HostKey)+"\n") {
			t.Errorf("no line for %s", s.Addr)
		}
	}
}

func TestChangedHostKeyRefused(t *testing.T) {
	s := remotetest.NewServer(t)
	old := remotetest.NewKey(t).Public()
	for _, acceptNew := range []bool{false, true} {
		t.Run(fmt.Sprintf("accept-new=%v", acceptNew), func(t *testing.T) {
			file := remotetest.WriteKnownHosts(t, filepath.Join(t.TempDir(), "known_hosts"), s.Addr, old)
			before, _ := os.ReadFile(file)
			cfg := s.Config()
			cfg.KnownHostsFile = file
			cfg.AcceptNewHostKeys = acceptNew
			_, err := remote.Dial(context.Background(), cfg)
			if !errors.Is(err, remote.ErrHostKeyChanged) {
				t.Fatalf("err = %v, want ErrHostKeyChanged", err)
			}
			for _, want := range []string{"testhost", s.Addr, ssh.FingerprintSHA256(old), ssh.FingerprintSHA256(s.HostKey), "ssh-keygen -R"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			assertFile(t, file, string(before), 0o600)
		})
	}
}

// x/crypto prefers ECDSA to Ed25519; a server with both must be asked for
// the type known_hosts has, or the check fails with a spurious "changed".
func TestHostKeyAlgorithmsFollowKnownHosts(t *testing.T) {
	ed, ec := remotetest.NewKey(t), remotetest.NewECDSAKey(t)
	s := remotetest.NewServer(t, remotetest.WithHostKeys(ec, ed))
	for _, known := range []remotetest.Key{ed, ec} {
		t.Run(known.Public().Type(), func(t *testing.T) {
			cfg := s.Config()
			cfg.KnownHostsFile = remotetest.WriteKnownHosts(t, filepath.Join(t.TempDir(), "known_hosts"), s.Addr, known.Public())
			run(t, dial(t, cfg), "true")
		})
	}

	t.Run("no common type", func(t *testing.T) {
		only := remotetest.NewServer(t, remotetest.WithHostKeys(remotetest.NewECDSAKey(t)))
		cfg := only.Config()
		cfg.KnownHostsFile = remotetest.WriteKnownHosts(t, filepath.Join(t.TempDir(), "known_hosts"), only.Addr, ed.Public())
		cfg.AcceptNewHostKeys = true
		_, err := remote.Dial(context.Background(), cfg)
		if !errors.Is(err, remote.ErrHostKeyChanged) {
			t.Fatalf("err = %v, want ErrHostKeyChanged", err)
		}
	})
}

func TestNonDefaultPortKnownHostsForm(t *testing.T) {
	s := remotetest.NewServer(t)
	data, err := os.ReadFile(s.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	// The fixture itself must use OpenSSH's [host]:port form, or the test
	// above would not prove that Dial looks entries up that way.
	if want := fmt.Sprintf("[127.0.0.1]:%d ", s.Port); !strings.HasPrefix(string(data), want) {
		t.Fatalf("known_hosts = %q, want prefix %q", data, want)
	}
}

func TestRunStreamsAndExitCodes(t *testing.T) {
	s := remotetest.NewServer(t)
	c := dial(t, s.Config())
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	tests := []struct {
		name       string
		cmd        string
		stdin      []byte
		wantOut    string
		wantErr    string
		wantStatus int
	}{
		{name: "success", cmd: "echo out", wantOut: "out\n"},
		{name: "exit code", cmd: "echo partial; exit 3", wantOut: "partial\n", wantStatus: 3},
		{name: "stderr", cmd: "echo out; echo err >&2; exit 1", wantOut: "out\n", wantErr: "err\n", wantStatus: 1},
		{name: "stdin", cmd: "cat", stdin: []byte("line1\nline2\x00\xff"), wantOut: "line1\nline2\x00\xff"},
		{name: "big stdin", cmd: "wc -c | tr -d ' '", stdin: big, wantOut: fmt.Sprintf("%d\n", len(big))},
		{name: "big stdout", cmd: "head -c 1048576 /dev/zero | tr '\\0' x", wantOut: strings.Repeat("x", 1<<20)},
		{name: "stdin not read", cmd: "echo early", stdin: big, wantOut: "early\n"},
		{name: "shell syntax", cmd: "for i in 1 2; do printf %s $i; done && [ -n \"$PATH\" ]", wantOut: "12"},
		{name: "command not found", cmd: "no-such-command-xyz", wantStatus: 127},
		{name: "killed by signal", cmd: "kill -9 $$", wantStatus: 137},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdin io.Reader
			if tt.stdin != nil {
				stdin = bytes.NewReader(tt.stdin)
			}
			res, err := c.Run(context.Background(), tt.cmd, stdin)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if string(res.Stdout) != tt.wantOut {
				t.Errorf("stdout = %.80q, want %.80q", res.Stdout, tt.wantOut)
			}
			if tt.wantErr != "" && string(res.Stderr) != tt.wantErr {
				t.Errorf("stderr = %q, want %q", res.Stderr, tt.wantErr)
			}
			if res.ExitCode != tt.wantStatus {
				t.Errorf("exit = %d, want %d (stderr %q)", res.ExitCode, tt.wantStatus, res.Stderr)
			}
		})
	}
}

func TestUpload(t *testing.T) {
	s := remotetest.NewServer(t)
	c := dial(t, s.Config())
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	big := bytes.Repeat(all, 1<<12) // 1 MiB: several chunks
	dir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		content []byte
		mode    os.FileMode
	}{
		{"binary", filepath.Join(dir, "bin"), all, 0o640},
		{"empty", filepath.Join(dir, "empty"), nil, 0o600},
		{"executable", filepath.Join(dir, "script.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755},
		{"big", filepath.Join(dir, "big"), big, 0o644},
		{"relative to the home dir", "rel.txt", []byte("relative\n"), 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.Upload(context.Background(), tt.path, tt.content, tt.mode); err != nil {
				t.Fatalf("Upload: %v", err)
			}
			path := tt.path
			if !filepath.IsAbs(path) {
				path = filepath.Join(s.Dir, path)
			}
			assertFile(t, path, string(tt.content), tt.mode)
		})
	}

	t.Run("truncates and re-modes an existing file", func(t *testing.T) {
		path := filepath.Join(dir, "existing")
		if err := os.WriteFile(path, []byte("a much longer previous content\n"), 0o666); err != nil {
			t.Fatal(err)
		}
		if err := c.Upload(context.Background(), path, []byte("short\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		assertFile(t, path, "short\n", 0o600)
	})

	t.Run("missing directory", func(t *testing.T) {
		err := c.Upload(context.Background(), filepath.Join(dir, "no", "such", "dir", "f"), []byte("x"), 0o644)
		if err == nil || !strings.Contains(err.Error(), "testhost") {
			t.Fatalf("err = %v, want an error naming the host", err)
		}
	})
}

func TestConcurrentUse(t *testing.T) {
	s := remotetest.NewServer(t)
	c := dial(t, s.Config())
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				want := fmt.Sprintf("g%d-i%d", g, i)
				res, err := c.Run(context.Background(), "cat; printf -- -%s "+remote.Quote(want), strings.NewReader(want))
				if err != nil {
					errs <- err
					return
				}
				if got := string(res.Stdout); got != want+"-"+want {
					errs <- fmt.Errorf("got %q, want %q", got, want+"-"+want)
				}
				path := filepath.Join(dir, want)
				if err := c.Upload(context.Background(), path, []byte(want), 0o600); err != nil {
					errs <- err
					return
				}
				if got, err := os.ReadFile(path); err != nil || string(got) != want {
					errs <- fmt.Errorf("upload %s: %q %v", want, got, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRunCancel(t *testing.T) {
	s := remotetest.NewServer(t)
	c := dial(t, s.Config())

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.Run(ctx, "sleep 30", nil)
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Fatalf("Run returned after %s", elapsed)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Run(ctx, "sleep 30", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}

	// The connection survives an abandoned command.
	if got := string(run(t, c, "echo still-here").Stdout); got != "still-here\n" {
		t.Fatalf("got %q", got)
	}

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Upload(cancelled, filepath.Join(t.TempDir(), "f"), []byte("x"), 0o600); !errors.Is(err, context.Canceled) {
		t.Fatalf("Upload with cancelled ctx: %v", err)
	}
}

func TestBecome(t *testing.T) {
	s := remotetest.NewServer(t, remotetest.WithFakeSudo(true))
	cfg := s.Config()
	cfg.User = "ops"
	cfg.Become = true
	c := dial(t, cfg)

	cmd := `echo "it's $((1+1))"; cat >&2`
	res, err := c.Run(context.Background(), cmd, strings.NewReader("to-stderr"))
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Stdout) != "it's 2\n" || string(res.Stderr) != "to-stderr" {
		t.Fatalf("got %q / %q", res.Stdout, res.Stderr)
	}
	if got, want := s.Commands()[0], "sudo -n -- sh -c "+remote.Quote(cmd); got != want {
		t.Fatalf("server ran %q, want %q", got, want)
	}

	path := filepath.Join(t.TempDir(), "root-owned")
	content := []byte("secret = \"x\"\n\x00\xff'\"$")
	if err := c.Upload(context.Background(), path, content, 0o640); err != nil {
		t.Fatal(err)
	}
	assertFile(t, path, string(content), 0o640)
	log, err := os.ReadFile(filepath.Join(s.Dir, "sudo.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), "sh -c"); n != 2 {
		t.Fatalf("want 2 commands through sudo, log:\n%s", log)
	}
	if res := run(t, c, "exit 5"); res.ExitCode != 5 {
		t.Fatalf("exit = %d", res.ExitCode)
	}
}

func TestBecomeNeedsPassword(t *testing.T) {
	s := remotetest.NewServer(t, remotetest.WithFakeSudo(false))
	cfg := s.Config()
	cfg.User = "ops"
	cfg.Become = true
	c := dial(t, cfg)
	_, err := c.Run(context.Background(), "true", nil)
	if !errors.Is(err, remote.ErrSudoPassword) {
		t.Fatalf("Run: err = %v, want ErrSudoPassword", err)
	}
	for _, want := range []string{"testhost", s.Addr, "ops", "password"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	err = c.Upload(context.Background(), filepath.Join(t.TempDir(), "f"), []byte("x"), 0o644)
	if !errors.Is(err, remote.ErrSudoPassword) {
		t.Fatalf("Upload: err = %v, want ErrSudoPassword", err)
	}

	// Logged in as root, become needs no sudo at all.
	cfg.User = "root"
	if got := string(run(t, dial(t, cfg), "echo root").Stdout); got != "root\n" {
		t.Fatalf("got %q", got)
	}
}

var tricky = []string{
	"", "plain", "two words", "it's", "'", "''", `"double"`, `back\slash`, "$HOME", "${PATH}", "`id`", "$(id)",
	"a\nb", "\n", "tab\there", "glob*?[a]", "semi;colon&&and||or", "pipe|redirect>x<y", "~", "~root", "#hash",
	"!bang", "héllo wörld", " leading and trailing ", "-n", "--", "'\"'\"'",
}

func TestQuoteRoundTripLocalShell(t *testing.T) {
	for _, s := range tricky {
		out, err := exec.Command("/bin/sh", "-c", "printf '%s' "+remote.Quote(s)).Output()
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if string(out) != s {
			t.Errorf("Quote(%q) came back as %q", s, out)
		}
	}
	out, err := exec.Command("/bin/sh", "-c", "printf '%s\\0' "+remote.Join(tricky...)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00"); !slices.Equal(got, tricky) {
		t.Errorf("Join round trip: got %q", got)
	}
	if got := remote.Quote("it's"); got != `'it'\''s'` {
		t.Errorf("Quote(it's) = %s", got)
	}
}

func TestQuoteRoundTripRemote(t *testing.T) {
	s := remotetest.NewServer(t, remotetest.WithFakeSudo(true))
	cfg := s.Config()
	c := dial(t, cfg)
	cfg.User, cfg.Become = "ops", true
	sudo := dial(t, cfg) // quoting twice: once for Join, once for sudo's sh -c
	for _, conn := range []remote.Conn{c, sudo} {
		res := run(t, conn, "printf '%s\\0' "+remote.Join(tricky...))
		if got := strings.Split(strings.TrimSuffix(string(res.Stdout), "\x00"), "\x00"); !slices.Equal(got, tricky) {
			t.Errorf("got %q", got)
		}
	}
}

func TestKeepAliveDetectsDeadPeer(t *testing.T) {
	s := remotetest.NewServer(t)
	cfg := s.Config()
	cfg.KeepAlive = 50 * time.Millisecond
	c := dial(t, cfg)
	deadline := time.Now().Add(5 * time.Second)
	for s.KeepAlives() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d keepalives", s.KeepAlives())
		}
		time.Sleep(20 * time.Millisecond)
	}
	run(t, c, "true") // failure replies to keepalives do not close the conn

	s.Freeze()
	defer s.Thaw()
	start := time.Now()
	_, err := c.Run(context.Background(), "true", nil)
	if err == nil {
		t.Fatal("Run on a dead peer succeeded")
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Fatalf("dead peer noticed after %s", elapsed)
	}
	if !strings.Contains(err.Error(), "keepalive") || !strings.Contains(err.Error(), "testhost") {
		t.Errorf("error should name the host and the keepalive: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close after keepalive failure: %v", err)
	}
}

func TestDialTimeoutAndCancel(t *testing.T) {
	// A peer that accepts TCP and never speaks SSH.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	addr := ln.Addr().(*net.TCPAddr)
	cfg := remote.Config{
		Name: "silent", Address: "127.0.0.1", Port: addr.Port,
		PrivateKeyFile: remotetest.NewKey(t).File,
		KnownHostsFile: filepath.Join(t.TempDir(), "known_hosts"),
		ConnectTimeout: 300 * time.Millisecond,
	}
	start := time.Now()
	_, err = remote.Dial(context.Background(), cfg)
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %s", err, time.Since(start))
	}
	if !strings.Contains(err.Error(), "silent") || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("error should name the host and say it timed out: %v", err)
	}

	cfg.ConnectTimeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, err = remote.Dial(ctx, cfg)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %s, want context.Canceled promptly", err, time.Since(start))
	}
}

func TestConfig(t *testing.T) {
	s := remotetest.NewServer(t)

	t.Run("home expansion", func(t *testing.T) {
		cfg := s.Config()
		cfg.HomeDir = filepath.Dir(s.KnownHostsFile)
		cfg.KnownHostsFile = "~/" + filepath.Base(s.KnownHostsFile)
		run(t, dial(t, cfg), "true")
	})
	t.Run("home expansion without HomeDir", func(t *testing.T) {
		cfg := s.Config()
		cfg.KnownHostsFile = "~/known_hosts"
		if _, err := remote.Dial(context.Background(), cfg); err == nil {
			t.Fatal("Dial succeeded")
		}
	})
	t.Run("known_hosts required", func(t *testing.T) {
		cfg := s.Config()
		cfg.KnownHostsFile = ""
		_, err := remote.Dial(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "known_hosts") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("closed conn", func(t *testing.T) {
		c, err := remote.Dial(context.Background(), s.Config())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := c.Run(context.Background(), "true", nil); err == nil {
			t.Fatal("Run after Close succeeded")
		}
		if err := c.Upload(context.Background(), filepath.Join(t.TempDir(), "f"), nil, 0o600); err == nil {
			t.Fatal("Upload after Close succeeded")
		}
	})
}

func assertFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != content {
		t.Errorf("%s = %.80q, want %.80q", path, got, content)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode() != mode {
		t.Errorf("%s mode = %v, want %v", path, st.Mode(), mode)
	}
}

func ptr[T any](v T) *T { return &v }

// TestDefaultIdentities: with no private_key_file and no agent, the keys
// OpenSSH tries by default (~/.ssh/id_ed25519, id_ecdsa, id_rsa) are tried;
// an unparsable one among them is skipped, not fatal.
func TestDefaultIdentities(t *testing.T) {
	s := remotetest.NewServer(t)
	cfg := s.Config()
	key, err := os.ReadFile(cfg.PrivateKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg.PrivateKeyFile, cfg.AgentSocket, cfg.HomeDir = "", "", home
	_, err = remote.Dial(context.Background(), cfg)
	if !errors.Is(err, remote.ErrAuth) || !strings.Contains(err.Error(), "id_ed25519, id_ecdsa, id_rsa") {
		t.Fatalf("no keys at all: %v", err)
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "id_ed25519"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "id_rsa"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	c := dial(t, cfg)
	if got := string(run(t, c, "echo hi").Stdout); got != "hi\n" {
		t.Fatalf("got %q", got)
	}
}
