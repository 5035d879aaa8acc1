package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFailoverReportFile(t *testing.T) {
	m := newMiniLab(t)
	path := filepath.Join(t.TempDir(), "run.html")
	r := runFailoverCLI(t, m.dial, Deps{Prober: stubProber{}, Signals: make(chan os.Signal), Locker: miniLock},
		"failover-test", "-i", lab, "--node", "lab1", "--output", "json", "--report", path)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	var doc struct {
		Scenarios []struct {
			HTTPRequests int `json:"http_requests"`
			Timeline     struct {
				Hosts []string `json:"hosts"`
			} `json:"timeline"`
		} `json:"scenarios"`
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil || len(doc.Scenarios) != 1 {
		t.Fatal(err, r.out)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}
	page, _ := os.ReadFile(path)
	s := doc.Scenarios[0]
	if n := strings.Count(string(page), `<g class="lane"`); n != len(s.Timeline.Hosts) || n != 3 {
		t.Errorf("%d lanes, hosts %v", n, s.Timeline.Hosts)
	}
	if n := strings.Count(string(page), `class="probe ok"`); n != s.HTTPRequests || n == 0 {
		t.Errorf("%d probe marks, %d requests", n, s.HTTPRequests)
	}
}

func TestFailoverReportUnwritable(t *testing.T) {
	m := newMiniLab(t)
	path := filepath.Join(t.TempDir(), "missing", "run.html")
	r := runFailoverCLI(t, m.dial, Deps{Prober: stubProber{}, Signals: make(chan os.Signal), Locker: miniLock},
		"failover-test", "-i", lab, "--node", "lab1", "--report", path)
	if r.code == 0 || !strings.Contains(r.err, path) {
		t.Errorf("exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	// The table is printed all the same.
	if !strings.Contains(r.out, "lab1") {
		t.Errorf("stdout:\n%s", r.out)
	}
}
