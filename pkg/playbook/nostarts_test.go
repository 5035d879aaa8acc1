package playbook

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoStartsDuringInstall runs the apt install's policy prefix for real
// (sh, paths moved into a temp dir): while the install runs, policy-rc.d
// forbids starts (101); afterwards neither the symlink nor its file is
// left; a leftover symlink of hactl's (a host that rebooted mid-install)
// is replaced; an operator's own policy-rc.d is used as it is and kept.
func TestNoStartsDuringInstall(t *testing.T) {
	if !strings.Contains(must(InstallCommand("apt-get", []string{"nginx"})), noStarts) {
		t.Fatal("the apt install does not carry the policy")
	}
	run := func(t *testing.T, dir, during string) string {
		t.Helper()
		script := `P=` + filepath.Join(dir, "sbin", "policy-rc.d") + ` R=` + filepath.Join(dir, "run", "hactl", "policy-rc.d") + `; ` + noStartsBody + during
		out, err := exec.Command("sh", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	during := `"$P" nginx start; echo "policy $?"`
	t.Run("no policy", func(t *testing.T) {
		dir := t.TempDir()
		_ = os.MkdirAll(filepath.Join(dir, "sbin"), 0o755)
		if got := run(t, dir, during); got != "policy 101" {
			t.Errorf("during the install: %q, want policy 101", got)
		}
		for _, p := range []string{"sbin/policy-rc.d", "run/hactl/policy-rc.d"} {
			if _, err := os.Lstat(filepath.Join(dir, p)); !os.IsNotExist(err) {
				t.Errorf("%s left behind (%v)", p, err)
			}
		}
	})
	t.Run("leftover symlink", func(t *testing.T) {
		dir := t.TempDir()
		_ = os.MkdirAll(filepath.Join(dir, "sbin"), 0o755)
		if err := os.Symlink(filepath.Join(dir, "run", "hactl", "policy-rc.d"), filepath.Join(dir, "sbin", "policy-rc.d")); err != nil {
			t.Fatal(err)
		}
		if got := run(t, dir, during); got != "policy 101" {
			t.Errorf("during the install: %q, want policy 101", got)
		}
		if _, err := os.Lstat(filepath.Join(dir, "sbin", "policy-rc.d")); !os.IsNotExist(err) {
			t.Errorf("the leftover symlink is still there (%v)", err)
		}
	})
	t.Run("operator's policy", func(t *testing.T) {
		dir := t.TempDir()
		own := filepath.Join(dir, "sbin", "policy-rc.d")
		_ = os.MkdirAll(filepath.Dir(own), 0o755)
		if err := os.WriteFile(own, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if got := run(t, dir, during); got != "policy 0" {
			t.Errorf("during the install: %q, want the operator's policy 0", got)
		}
		if b, err := os.ReadFile(own); err != nil || string(b) != "#!/bin/sh\nexit 0\n" {
			t.Errorf("the operator's policy-rc.d changed: %q %v", b, err)
		}
	})
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}
