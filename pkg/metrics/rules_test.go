package metrics

import (
	"os"
	"os/exec"
	"testing"
)

// TestAlertingRules runs `promtool test rules` on the shipped rules
// (docs/prometheus). make test-deps installs promtool (Debian: prometheus)
// as root; without root it cannot, and the test says so and skips.
func TestAlertingRules(t *testing.T) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Geteuid() != 0 {
			t.Skip("promtool not installed and not root: make test-deps installs it (Debian package prometheus) as root")
		}
		t.Fatal("promtool not installed: run make test-deps (it installs Debian's prometheus package)")
	}
	cmd := exec.Command(bin, "test", "rules", "hactl-alerts_test.yml")
	cmd.Dir = "../../docs/prometheus"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
