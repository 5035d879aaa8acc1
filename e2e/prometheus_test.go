//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hactl/hactl/e2e/labkit"
)

// loopbackPort is a 127.0.0.1 address nothing listens on now.
func loopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// promAPI is one GET of a real Prometheus's HTTP API, its data decoded.
func promAPI(base, path string, data any) error {
	resp, err := http.Get(base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var doc struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return fmt.Errorf("%s: %s: %w", path, resp.Status, err)
	}
	if doc.Status != "success" {
		return fmt.Errorf("%s: %s %s", path, doc.Status, doc.Error)
	}
	return json.Unmarshal(doc.Data, data)
}

type promAlert struct {
	Labels   map[string]string `json:"labels"`
	State    string            `json:"state"`
	ActiveAt time.Time         `json:"activeAt"`
}

// TestPrometheus: a real Prometheus (the Debian package's server) scrapes
// the lab through `hactl status --serve` with the shipped rules loaded; a
// VIP put on a second host by hand fires HactlSplitBrain, and taking it
// away resolves it.
func TestPrometheus(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("no prometheus binary: `make test-deps` (as root) installs the Debian package prometheus")
	}
	lab := labkit.Reuse(t, 3)
	inv := lab.InventoryPath()
	applyOK(t, inv)
	root, err := labkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}

	// The exporter, on loopback only.
	exporter := loopbackPort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	exp, _, expErr := hactlCmd(ctx, t, "status", "-i", inv, "--serve", exporter)
	if err := exp.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = exp.Process.Signal(syscall.SIGINT)
		err := exp.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
			t.Errorf("status --serve after Ctrl-C: %v, want exit 130\n%s", err, expErr)
		}
	}()

	// Prometheus: 1 s scrapes and rule evaluations, the shipped rules, a
	// throwaway TSDB, its web API on loopback only.
	dir := t.TempDir()
	web := loopbackPort(t)
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: hactl
    static_configs: [{targets: [%q]}]
`, filepath.Join(root, "docs", "prometheus", "hactl-alerts.yml"), exporter)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	prom := exec.CommandContext(ctx, promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+web)
	promLog, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer promLog.Close()
	prom.Stdout, prom.Stderr = promLog, promLog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = prom.Process.Signal(syscall.SIGTERM)
		_ = prom.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("prometheus log (tail):\n%s", tail(string(b), 3000))
		}
	}()
	base := "http://" + web

	// The target is up and the VIP on one host.
	var scrapeS float64
	waitFor(t, "prometheus scraping status --serve (target up)", 60*time.Second, func() bool {
		var tg struct {
			ActiveTargets []struct {
				Health             string  `json:"health"`
				LastError          string  `json:"lastError"`
				LastScrapeDuration float64 `json:"lastScrapeDuration"`
			} `json:"activeTargets"`
		}
		if promAPI(base, "/api/v1/targets", &tg) != nil || len(tg.ActiveTargets) != 1 {
			return false
		}
		scrapeS = tg.ActiveTargets[0].LastScrapeDuration
		return tg.ActiveTargets[0].Health == "up"
	})
	t.Logf("target up; one scrape (a status of 3 hosts over SSH) took %.3f s", scrapeS)
	holders := func() string {
		var q struct {
			Result []struct {
				Value []any `json:"value"`
			} `json:"result"`
		}
		if err := promAPI(base, "/api/v1/query?query="+url.QueryEscape(`hactl_vip_holders{vip="198.18.0.201/24"}`), &q); err != nil || len(q.Result) != 1 {
			return fmt.Sprint("?", err)
		}
		return fmt.Sprint(q.Result[0].Value[1])
	}
	waitFor(t, "hactl_vip_holders 1 for 198.18.0.201/24", 20*time.Second, func() bool { return holders() == "1" })
	splitAlert := func() *promAlert {
		var a struct {
			Alerts []promAlert `json:"alerts"`
		}
		if err := promAPI(base, "/api/v1/alerts", &a); err != nil {
			t.Logf("alerts: %v", err)
			return nil
		}
		for _, al := range a.Alerts {
			if al.Labels["alertname"] == "HactlSplitBrain" && al.Labels["vip"] == "198.18.0.201/24" {
				return &al
			}
		}
		return nil
	}
	if a := splitAlert(); a != nil {
		t.Fatalf("HactlSplitBrain %s before any VIP was put anywhere by hand: %+v", a.State, a)
	}

	// The VIP by hand on a second host: split brain, firing.
	ssh(t, lab, "lab2", "ip addr add 198.18.0.201/24 dev eth0")
	added := time.Now()
	removed := false
	defer func() {
		if !removed {
			ssh(t, lab, "lab2", "ip addr del 198.18.0.201/24 dev eth0")
		}
	}()
	var firing *promAlert
	deadline := added.Add(30 * time.Second)
	for firing == nil || firing.State != "firing" {
		if time.Now().After(deadline) {
			t.Fatalf("HactlSplitBrain not firing 30 s after 198.18.0.201 was put on lab2 too (alert %+v, hactl_vip_holders %s)\n%s",
				firing, holders(), expErr)
		}
		time.Sleep(100 * time.Millisecond)
		firing = splitAlert()
	}
	fired := time.Since(added)
	t.Logf("HactlSplitBrain firing %s after the VIP was put on lab2 by hand (active at +%s; hactl_vip_holders %s)",
		fired.Round(time.Millisecond), firing.ActiveAt.Sub(added).Round(time.Millisecond), holders())

	// Taken away again: resolved.
	ssh(t, lab, "lab2", "ip addr del 198.18.0.201/24 dev eth0")
	removed = true
	gone := time.Now()
	waitFor(t, "HactlSplitBrain resolved after the hand-added VIP left lab2", 30*time.Second, func() bool { return splitAlert() == nil })
	t.Logf("HactlSplitBrain resolved %s after the VIP left lab2", time.Since(gone).Round(time.Millisecond))
	if h := holders(); h != "1" {
		t.Errorf("hactl_vip_holders after the VIP left lab2: %s, want 1", h)
	}
}

// tail is the end of s, at most n bytes.
func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
