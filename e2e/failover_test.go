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
	Timeline        *struct {
		Probes []struct {
			T     float64 `json:"t_s"`
			OK    bool    `json:"ok"`
			Error string  `json:"error"`
		} `json:"probes"`
	} `json:"timeline"`
}

// failedProbes is what the first few failed probes of s said, with when.
func (s scenario) failedProbes() string {
	if s.Timeline == nil {
		return ""
	}
	var out []string
	for _, p := range s.Timeline.Probes {
		if !p.OK && len(out) < 3 {
			out = append(out, fmt.Sprintf("t=%.3fs %s", p.T, p.Error))
		}
	}
	return strings.Join(out, "; ")
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
// A scenario that fails is run again on its own (--node, --mode), up to
// twice, and the first passing result stands; each failure stays in the log
// as RETRIED, with its failed probes. Why: these are real VRRP timings and
// real requests on a 2-core machine that also runs the lab (three labs, in
// make test), where a scenario now and then misses a bound by a scheduling
// hiccup, or a drain without grace (drain_grace 0, the documented limit)
// cuts a request in flight at the very moment the VIP switches hosts — a
// "connection reset by peer" of the probe caught between the old holder and
// the new. The dual-stack sweep, with two probes in flight at each tick,
// saw that in 4 of about 24 drains beside two other labs, once twice in a
// row. A defect fails all three runs; the retries keep a lone hiccup from
// failing the suite.
func failoverPassing(t *testing.T, inv, mode string, n int) []scenario {
	t.Helper()
	final, _ := failoverRuns(t, inv, n, "--mode", mode)
	return final
}

// failoverRuns is failoverPassing for `failover-test args…`: it returns the
// final result of each of the n scenarios, and every run in the order it ran
// (the first run's n, then each retry), for a test that checks what the runs
// did to the hosts (TestObserve's events).
func failoverRuns(t *testing.T, inv string, n int, args ...string) (final, runs []scenario) {
	t.Helper()
	mode := strings.Join(args, " ")
	doc, errOut, code := runFailover(t, inv, args...)
	if len(doc.Scenarios) != n {
		t.Fatalf("failover-test %s: exit %d, %d scenarios (want %d)\n%s", mode, code, len(doc.Scenarios), n, errOut)
	}
	runs = append(runs, doc.Scenarios...)
	var bad []string
	retried := false
	for i, s := range doc.Scenarios {
		if s.Pass && s.Restored {
			continue
		}
		retried = true
		var tries []string
		passed := false
		for try, last := 1, s; try <= 2 && !passed; try++ {
			t.Logf("RETRIED %s %s (retry %d of 2) after: restored=%v error=%q failed probes: %s notes=%q", last.Node, last.Mode, try, last.Restored, last.Error, last.failedProbes(), last.Notes)
			tries = append(tries, fmt.Sprintf("%q (%s)", last.Error, last.failedProbes()))
			again, errAgain, _ := runFailover(t, inv, "--node", s.Node, "--mode", s.Mode)
			runs = append(runs, again.Scenarios...)
			if len(again.Scenarios) == 1 && again.Scenarios[0].Pass && again.Scenarios[0].Restored {
				doc.Scenarios[i], passed = again.Scenarios[0], true
				break
			}
			if len(again.Scenarios) != 1 {
				tries = append(tries, fmt.Sprintf("%d scenarios\n%s", len(again.Scenarios), errAgain))
				break
			}
			last = again.Scenarios[0]
			if try == 2 {
				tries = append(tries, fmt.Sprintf("%q (%s)", last.Error, last.failedProbes()))
			}
		}
		if !passed {
			bad = append(bad, fmt.Sprintf("%s %s failed every run: %s", s.Node, s.Mode, strings.Join(tries, "; then ")))
		}
	}
	if code != 0 && !retried {
		// Every scenario passed, yet the run failed: something left behind.
		bad = append(bad, fmt.Sprintf("exit %d with every scenario passed\n%s", code, errOut))
	}
	if len(bad) > 0 {
		// The failures go last: a CI excerpt shows the tail.
		t.Fatalf("failover-test %s:\n%s", mode, strings.Join(bad, "\n"))
	}
	return doc.Scenarios, runs
}
