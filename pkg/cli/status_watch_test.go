package cli

import (
	"strings"
	"testing"
)

// TestStatusOpenMetrics: status --output openmetrics on a converged fleet
// prints the invariants and ends in # EOF; other commands refuse the format.
func TestStatusOpenMetrics(t *testing.T) {
	r := runWith(t, Deps{Dial: convergedLab(t, "lab3"), Locker: miniLock}, nil, "status", lab, "--output", "openmetrics")
	if r.code != 0 || !strings.HasSuffix(r.out, "# EOF\n") ||
		!strings.Contains(r.out, `hactl_vip_holders{cluster="lab",vip="198.18.0.201/24",master="lab1"} 1`) ||
		!strings.Contains(r.out, `hactl_host_reachable{host="lab1"} 1`) {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	if r := runCLI(t, nil, "validate", lab, "--output", "openmetrics"); r.code != ExitUsage {
		t.Errorf("validate --output openmetrics: exit %d", r.code)
	}
}
