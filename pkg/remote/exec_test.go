package remote_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
)

func TestOutputExitError(t *testing.T) {
	c := dial(t, remotetest.NewServer(t).Config())
	ctx := context.Background()
	out, err := remote.Output(ctx, c, "echo fine")
	if err != nil || out != "fine\n" {
		t.Fatalf("Output = %q, %v", out, err)
	}
	cmd := "echo partial; echo broken >&2; exit 3"
	out, err = remote.Output(ctx, c, cmd)
	wrapped := fmt.Errorf("host1: step: %w", err)
	ee, ok := remote.AsExit(wrapped)
	if !ok || ee.Code != 3 || ee.Cmd != cmd || ee.Output != "broken\npartial" || out != "partial\n" {
		t.Fatalf("Output = %q, %#v", out, err)
	}
	if got := ee.Error(); got != "exit status 3: broken\npartial" {
		t.Errorf("Error() = %q", got)
	}
	if _, ok := remote.AsExit(fmt.Errorf("x: %w", context.Canceled)); ok {
		t.Error("a transport error read as an exit error")
	}
	long := remote.NewExitError("x", remote.Result{ExitCode: 1, Stderr: []byte(strings.Repeat("a", 5000) + "END")})
	if e, _ := remote.AsExit(long); len(e.Output) > 2100 || !strings.HasSuffix(e.Output, "END") {
		t.Errorf("tail not kept: %d bytes", len(e.Output))
	}
}

// TestUnitQuoting runs every systemctl line against a stand-in systemctl
// that prints its arguments one per line: a hostile unit name or signal
// arrives as one word, and nothing else runs.
func TestUnitQuoting(t *testing.T) {
	bin := t.TempDir()
	script := "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n"
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	c := dial(t, remotetest.NewServer(t, remotetest.WithPath(bin)).Config())
	evil := remote.Unit("x'; touch pwned; echo '$(id)")
	for _, tc := range []struct {
		cmd  string
		want []string
	}{
		{evil.Start(), []string{"start", string(evil)}},
		{evil.Stop(), []string{"stop", string(evil)}},
		{evil.Restart(), []string{"restart", string(evil)}},
		{evil.Reload(), []string{"reload", string(evil)}},
		{evil.Enable(), []string{"enable", "-q", string(evil)}},
		{evil.Disable(), []string{"disable", "-q", string(evil)}},
		{evil.IsActive(), []string{"is-active", string(evil)}},
		{evil.Active(), []string{"is-active", "-q", string(evil)}},
		{evil.Enabled(), []string{"is-enabled", "-q", string(evil)}},
		{evil.IsEnabled(), []string{"is-enabled", string(evil)}},
		{evil.ResetFailed(), []string{"reset-failed", "-q", string(evil)}},
		{evil.Kill("SIG; reboot"), []string{"kill", "-s", "SIG; reboot", string(evil)}},
		{evil.MaskRuntime(), []string{"mask", "--runtime", string(evil)}},
		{evil.UnmaskRuntime(), []string{"unmask", "--runtime", string(evil)}},
		{remote.IsActive("a b", string(evil)), []string{"is-active", "a b", string(evil)}},
		{remote.DaemonReload, []string{"daemon-reload"}},
	} {
		out, err := remote.Output(context.Background(), c, tc.cmd+"; [ ! -e pwned ]")
		if err != nil {
			t.Fatalf("%s: %v", tc.cmd, err)
		}
		if got := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s: systemctl got %q, want %q", tc.cmd, got, tc.want)
		}
	}
}
