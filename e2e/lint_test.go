package e2e

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// TestShellcheck keeps the lab's scripts shellcheck-clean (make test-deps
// installs shellcheck; where it cannot, the test is skipped with a note).
func TestShellcheck(t *testing.T) {
	bin, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck not installed: make test-deps installs it (as root, with apt-get)")
	}
	scripts, err := filepath.Glob("lab/*.sh")
	runners, err2 := filepath.Glob("*.sh") // lanes.sh
	if err != nil || err2 != nil || len(scripts) == 0 || len(runners) == 0 {
		t.Fatalf("no scripts found: %v %v", err, err2)
	}
	scripts = append(scripts, runners...)
	out, err := exec.Command(bin, append([]string{"-x"}, scripts...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
}
