package cli

import (
	"strings"
	"testing"

	"github.com/hactl/hactl/pkg/failover"
)

// TestModeCompletionOffersEveryMode: --mode completes to every failover
// mode and "all", from failover's one list (drain was once missing), and
// every mode offered is one --mode accepts.
func TestModeCompletionOffersEveryMode(t *testing.T) {
	r := runCLI(t, nil, "__complete", "failover-test", "--mode", "")
	var offered []string
	for _, l := range strings.Split(strings.TrimSpace(r.out), "\n") {
		if !strings.HasPrefix(l, ":") {
			offered = append(offered, l)
		}
	}
	want := []string{"stop", "kill", "nginx", "nginx-dead", "drain", "all"}
	if strings.Join(offered, ",") != strings.Join(want, ",") {
		t.Errorf("--mode offers %v, want %v", offered, want)
	}
	for _, m := range offered {
		if _, err := failover.ParseModes(m); err != nil {
			t.Errorf("offered %q, which --mode refuses: %v", m, err)
		}
	}
	if h := runCLI(t, nil, "failover-test", "--help"); !strings.Contains(h.out, "stop, kill, nginx, nginx-dead, drain or all") ||
		!strings.Contains(h.out, "--mode stop|kill|nginx|nginx-dead|drain|all") {
		t.Errorf("help does not name every mode:\n%s", h.out)
	}
}
