//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// scenario is one failover-test scenario as its JSON reports it (the keys
// every e2e test reads).
type scenario struct {
	Node, Mode, VIP string
	VIP6            string   `json:"vip6"`
	MovedTo         string   `json:"moved_to"`
	Drift           float64  `json:"drift_s"`
	Bound           float64  `json:"bound_s"`
	Requests        int      `json:"http_requests"`
	Failed          int      `json:"http_failed"`
	Gap             float64  `json:"http_gap_s"`
	Failback        float64  `json:"failback_s"`
	FailbackFailed  int      `json:"failback_http_failed"`
	FailbackGap     float64  `json:"failback_http_gap_s"`
	Notes           []string `json:"notes"`
	Restored, Pass  bool
	Error           string
}

func (s scenario) String() string {
	v := s.VIP
	if s.VIP6 != "" {
		v += " " + s.VIP6
	}
	return fmt.Sprintf("%s %-10s %s moved to %-5s drift %.2fs (bound %.2fs) http %d/%d failed, gap %.2fs, failback %.2fs (http failed %d, gap %.2fs) pass=%v %s %v",
		s.Node, s.Mode, v, s.MovedTo, s.Drift, s.Bound, s.Failed, s.Requests, s.Gap, s.Failback, s.FailbackFailed, s.FailbackGap, s.Pass, s.Error, s.Notes)
}

type scenarioDoc struct {
	Scenarios []scenario `json:"scenarios"`
}

// runFailover runs `hactl failover-test -i inv --output json args…` and
// logs every scenario.
func runFailover(t *testing.T, inv string, args ...string) (doc scenarioDoc, stderr string, code int) {
	t.Helper()
	out, errOut, code := hactl(t, append([]string{"failover-test", "-i", inv, "--output", "json"}, args...)...)
	decode(t, out, &doc)
	for _, s := range doc.Scenarios {
		t.Logf("%s", s)
	}
	return doc, errOut, code
}

// failoverPassing runs --mode mode on every node and requires n scenarios,
// each passed and restored.
//
// A scenario that fails is run once more on its own (--node, --mode), and
// its second result stands; the first failure stays in the log as RETRIED.
// Why: these are real VRRP timings on a 2-core machine that also runs the
// lab, where one scenario in several hundred has missed a bound by a
// scheduling hiccup. A defect fails the second run as well; the retry only
// keeps a lone hiccup from hiding the rest of the run's figures.
func failoverPassing(t *testing.T, inv, mode string, n int) []scenario {
	t.Helper()
	doc, errOut, code := runFailover(t, inv, "--mode", mode)
	if len(doc.Scenarios) != n {
		t.Fatalf("failover-test --mode %s: exit %d, %d scenarios (want %d)\n%s", mode, code, len(doc.Scenarios), n, errOut)
	}
	var bad []string
	retried := false
	for i, s := range doc.Scenarios {
		if s.Pass && s.Restored {
			continue
		}
		retried = true
		t.Logf("RETRIED %s %s after: restored=%v error=%q notes=%q", s.Node, s.Mode, s.Restored, s.Error, s.Notes)
		again, errAgain, _ := runFailover(t, inv, "--node", s.Node, "--mode", s.Mode)
		if len(again.Scenarios) != 1 || !again.Scenarios[0].Pass || !again.Scenarios[0].Restored {
			bad = append(bad, fmt.Sprintf("%s %s failed twice: first %q; then %v\n%s", s.Node, s.Mode, s.Error, again.Scenarios, errAgain))
			continue
		}
		doc.Scenarios[i] = again.Scenarios[0]
	}
	if code != 0 && !retried {
		// Every scenario passed, yet the run failed: something left behind.
		bad = append(bad, fmt.Sprintf("exit %d with every scenario passed\n%s", code, errOut))
	}
	if len(bad) > 0 {
		// The failures go last: a CI excerpt shows the tail.
		t.Fatalf("failover-test --mode %s:\n%s", mode, strings.Join(bad, "\n"))
	}
	return doc.Scenarios
}
