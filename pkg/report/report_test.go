package report

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hactl/hactl/internal/golden"
	"github.com/hactl/hactl/internal/testinv"
	"github.com/hactl/hactl/internal/vrrpsim"
	"github.com/hactl/hactl/pkg/failover"
)

var update = flag.Bool("update", false, "rewrite golden files")

// answerFrom answers every probe with 200 from one node. The simulator has
// no network, and a probe runs in its own goroutine at a moment virtual
// time does not pin down, so an answer that depended on the simulated VIP
// would make the page differ from run to run.
type answerFrom struct {
	mu   sync.Mutex
	node string
}

func (p *answerFrom) Probe(context.Context, string) failover.ProbeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return failover.ProbeResult{Status: 200, Node: p.node}
}

// simRun runs scenarios on lab1 against the simulated lab in virtual time.
func simRun(t *testing.T, modes ...failover.Mode) failover.Report {
	t.Helper()
	inv, l := testinv.Load(t, "lab.hcl")
	w := vrrpsim.New(inv, l)
	run, err := failover.New(failover.Options{Layout: l, Fleet: w.Fleet, Clock: w.Clock, Prober: &answerFrom{node: "lab1"}})
	if err != nil {
		t.Fatal(err)
	}
	var scs []failover.Scenario
	for _, m := range modes {
		scs = append(scs, failover.Scenario{Node: "lab1", Mode: m})
	}
	rep, err := run.Run(context.Background(), scs)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

var info = Info{Inventory: "inventory/lab.hcl", Generated: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)}

func render(t *testing.T, rep failover.Report) []byte {
	t.Helper()
	page, err := HTML(rep, info)
	if err != nil {
		t.Fatal(err)
	}
	return page
}

func count(page []byte, re string) int { return len(regexp.MustCompile(re).FindAll(page, -1)) }

// TestGoldenSim is the page of a simulated kill and nginx test, in virtual
// time: the same bytes every run.
func TestGoldenSim(t *testing.T) {
	rep := simRun(t, failover.ModeKill, failover.ModeNginx)
	page := render(t, rep)
	golden.Check(t, filepath.Join("testdata", "sim.html.golden"), page, *update)

	// What the golden file must show, whatever it looks like.
	for i, s := range rep.Scenarios {
		sec := section(t, page, i)
		if got := count(sec, `<g class="lane"`); got != len(s.Timeline.Hosts) {
			t.Errorf("%s: %d lanes, %d hosts", s.Mode, got, len(s.Timeline.Hosts))
		}
		if got := count(sec, `class="probe ok"`); got != s.HTTPRequests-s.HTTPFailed {
			t.Errorf("%s: %d green marks, %d answered probes", s.Mode, got, s.HTTPRequests-s.HTTPFailed)
		}
		if got := count(sec, `class="probe fail"`); got != s.HTTPFailed {
			t.Errorf("%s: %d red marks, %d failed probes", s.Mode, got, s.HTTPFailed)
		}
		for _, e := range s.Timeline.Events {
			if !bytes.Contains(sec, []byte(`class="event event-`+e.Kind+`"`)) {
				t.Errorf("%s: no %s event", s.Mode, e.Kind)
			}
		}
		if count(sec, `<rect class="bound"`) != 1 || count(sec, `<rect class="margin"`) != 1 {
			t.Errorf("%s: bound or margin band missing", s.Mode)
		}
	}
	// kill: sampling starts after the crash (the simulated VIP is gone from
	// lab1 at once); lab2 holds from the takeover, lab1 from the fail-back.
	kill := section(t, page, 0)
	if n := count(kill, `lab1 held the VIP`); n != 1 {
		t.Errorf("kill: lab1 holds %d spans, want 1 (after the fail-back)", n)
	}
	if n := count(kill, `lab2 held the VIP`); n != 1 {
		t.Errorf("kill: lab2 holds %d spans, want 1", n)
	}
	if n := count(kill, `lab3 held the VIP`); n != 0 {
		t.Errorf("kill: lab3 holds %d spans", n)
	}
	// The summary table has the text output's figures.
	for _, want := range []string{"<td>3.61s &#43;0.50</td>", "<td>0/" + itoa(rep.Scenarios[0].HTTPRequests) + "</td>", "<td>lab1 (stayed)</td>"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("summary lacks %s", want)
		}
	}
	selfContained(t, page)
}

// TestFailedProbesAreRed marks the probes sent while no host held the VIP
// as failed (what the lab's clients see between the crash and the takeover)
// and expects exactly those as red marks.
func TestFailedProbesAreRed(t *testing.T) {
	rep := simRun(t, failover.ModeKill)
	s := &rep.Scenarios[0]
	nobody := map[float64]bool{}
	for _, x := range s.Timeline.Samples {
		if len(x.Holders) == 0 {
			nobody[x.T] = true
		}
	}
	if len(nobody) == 0 {
		t.Fatal("the simulated crash left no sample without a holder")
	}
	s.HTTPFailed = 0
	for i, p := range s.Timeline.Probes {
		if nobody[p.T] {
			s.Timeline.Probes[i] = failover.TimelineProbe{T: p.T, URL: p.URL, Error: "probe http://198.18.0.201:80/hactl-health: connection refused"}
			s.HTTPFailed++
		}
	}
	page := render(t, rep)
	golden.Check(t, filepath.Join("testdata", "failed-probes.html.golden"), page, *update)
	if got := count(page, `class="probe fail"`); got != s.HTTPFailed || got == 0 {
		t.Errorf("%d red marks, %d failed probes", got, s.HTTPFailed)
	}
	if !bytes.Contains(page, []byte("no answer: probe http://198.18.0.201:80/hactl-health: connection refused")) {
		t.Error("a red mark does not say why")
	}
	if !bytes.Contains(page, []byte(`sw-fail`)) {
		t.Error("legend lacks the failed probe")
	}
}

// TestEscapesInventoryText: names and messages come from the inventory and
// the fleet; none may become markup.
func TestEscapesInventoryText(t *testing.T) {
	rep := simRun(t, failover.ModeStop)
	s := &rep.Scenarios[0]
	evil := `<script>alert(1)</script>"'&`
	s.Node, s.Error, s.Notes = evil, evil, []string{evil}
	s.Timeline.Hosts[1] = evil
	for i := range s.Timeline.Samples {
		for j, h := range s.Timeline.Samples[i].Holders {
			if h == "lab2" {
				s.Timeline.Samples[i].Holders[j] = evil
			}
		}
	}
	page, err := HTML(rep, Info{Inventory: evil, Generated: info.Generated})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(page, []byte("<script")) || bytes.Contains(page, []byte(`"'&`)) {
		t.Errorf("unescaped text in the page:\n%s", page)
	}
	if !bytes.Contains(page, []byte("&lt;script&gt;alert(1)&lt;/script&gt;")) {
		t.Error("the escaped name is missing")
	}
	selfContained(t, page)
}

func TestNoTimeline(t *testing.T) {
	rep := failover.Report{Scenarios: []failover.Result{{Node: "lab1", Mode: failover.ModeStop, Error: "lab1: not a master with a backup in this fleet"}}}
	page := render(t, rep)
	if !bytes.Contains(page, []byte("nothing to draw")) || bytes.Contains(page, []byte("<svg")) {
		t.Errorf("page:\n%s", page)
	}
	if !bytes.Contains(page, []byte(`<td class="fail">FAIL</td>`)) {
		t.Error("summary lacks FAIL")
	}
}

// selfContained: no script, no URL of any scheme, nothing fetched. The SVG
// namespace is an identifier, not a fetch; it is the one "http" allowed.
func selfContained(t *testing.T, page []byte) {
	t.Helper()
	s := strings.ReplaceAll(string(page), `xmlns="http://www.w3.org/2000/svg"`, "")
	// The probed URL in a mark's tooltip is text, not a fetch.
	s = regexp.MustCompile(`http://[^ "<]+/hactl-health`).ReplaceAllString(s, "")
	for _, bad := range []string{"<script", "http:", "https:", "url(", "@import", "<link", "src=", "//"} {
		if strings.Contains(s, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
}

// section is scenario i's part of the page.
func section(t *testing.T, page []byte, i int) []byte {
	t.Helper()
	parts := bytes.Split(page, []byte(`<section class="scenario"`))
	if len(parts) <= i+1 {
		t.Fatalf("no section %d", i+1)
	}
	return parts[i+1]
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.html")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new" || st.Mode().Perm() != 0o644 {
		t.Errorf("%q %v", b, st.Mode())
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Errorf("left behind: %v", es)
	}
	// A directory in the way is refused, and nothing is left behind.
	sub := filepath.Join(dir, "d")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(sub, []byte("x")); err == nil || !strings.Contains(err.Error(), sub) {
		t.Errorf("err %v", err)
	}
	if err := WriteFile(filepath.Join(dir, "nodir", "r.html"), []byte("x")); err == nil {
		t.Error("no error for a missing directory")
	}
	if es, _ := os.ReadDir(dir); len(es) != 2 {
		t.Errorf("left behind: %v", es)
	}
}

// TestDualStackProbeRows: a dual-stack instance is probed on both addresses;
// each gets its own row of marks.
func TestDualStackProbeRows(t *testing.T) {
	v4, v6 := "http://198.18.0.201:80/hactl-health", "http://[2001:db8:18::201]:80/hactl-health"
	rep := failover.Report{Scenarios: []failover.Result{{Node: "lab1", Mode: failover.ModeStop, BoundS: 0.61, MarginS: 0.5,
		HTTPRequests: 4, HTTPFailed: 1, Timeline: &failover.Timeline{
			Hosts:   []string{"lab1", "lab2"},
			Samples: []failover.TimelineSample{{T: 0, Holders: []string{"lab1"}}, {T: 0.1, Holders: []string{"lab2"}}},
			Probes: []failover.TimelineProbe{{T: 0, OK: true, Status: 200, Node: "lab1", URL: v4}, {T: 0, URL: v6, Error: "refused"},
				{T: 0.1, OK: true, Status: 200, Node: "lab2", URL: v4}, {T: 0.1, OK: true, Status: 200, Node: "lab2", URL: v6}},
		}}}}
	page := string(render(t, rep))
	if !strings.Contains(page, ">HTTP v4<title>"+v4) || !strings.Contains(page, ">HTTP v6<title>"+v6) {
		t.Errorf("no row per address:\n%s", page)
	}
	// The v6 marks sit one row below the v4 marks.
	ys := map[string]bool{}
	for _, m := range regexp.MustCompile(`class="probe (?:ok|fail)" x="[^"]+" y="([^"]+)"`).FindAllStringSubmatch(page, -1) {
		ys[m[1]] = true
	}
	if len(ys) != 2 || count([]byte(page), `class="probe fail"`) != 1 {
		t.Errorf("mark rows %v", ys)
	}
}
