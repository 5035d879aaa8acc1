//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hactl/hactl/e2e/labkit"
)

// probe GETs url every 50 ms until stopped, like failover-test's probe.
type probe struct {
	mu       sync.Mutex
	requests int
	failed   int
	errs     []string             // the first few failures, with when they happened: what a failure was
	first    map[string]time.Time // when each node first answered
	stop     chan struct{}
	done     chan struct{}
}

func newProbe() *probe {
	return &probe{first: map[string]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
}

// every runs req every 50 ms until the probe is stopped: one after another, or with async each
// in a goroutine of its own (all waited for before done closes).
func (p *probe) every(async bool, req func()) {
	go func() {
		defer close(p.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			if !async {
				req()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				req()
			}()
		}
	}()
}

// record counts one request: failed with err (the first few kept, with when), else answered by
// node ("" when the answer does not say).
func (p *probe) record(node string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	if err != nil {
		p.failed++
		if len(p.errs) < 3 {
			p.errs = append(p.errs, time.Now().Format("15:04:05.000")+" "+err.Error())
		}
	} else if _, ok := p.first[node]; !ok && node != "" {
		p.first[node] = time.Now()
	}
}

func startProbe(url string) *probe {
	p := newProbe()
	p.every(false, func() { p.record(httpNode(url)) })
	return p
}

// answeredBy is when node first answered a probe (false: not yet).
func (p *probe) answeredBy(node string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at, ok := p.first[node]
	return at, ok
}

func (p *probe) end() (requests, failed int) {
	close(p.stop)
	<-p.done
	return p.requests, p.failed
}

// failures is the first few failed probes, for the message of a test that counts them.
func (p *probe) failures() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.errs, "; ")
}

// slowSize is the body of the slow requests: nginx's limit_rate 64k sends a response's first
// 64 KB at once, then 64 KB/s, so each request takes ~0.5 s and several are in flight at a switch.
const slowSize = 65536 + 32768

// slowClients starts a request of slowSize bytes through url every 50 ms, each on a new
// connection and in its own goroutine, until stopped: the requests in flight when a VIP switches
// hosts, which a drain's Settle (drain.Settle) lets complete on the old holder. Before it, a drain
// without grace lost ~19 of them per move (bench/settle.sh).
func slowClients(url string) *probe {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	get := func() error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			return fmt.Errorf("after %d bytes: %w", n, err)
		}
		if resp.StatusCode != 200 || n != slowSize {
			return fmt.Errorf("%s, %d of %d bytes", resp.Status, n, slowSize)
		}
		return nil
	}
	p := newProbe()
	p.every(true, func() { p.record("", get()) })
	return p
}

// TestDrain is issue 13 on the 3-host lab at advert_int 1: a dead nginx
// moves the VIP within the skew, drain and undrain cost no request on any
// node, and a drained host stays drained through apply, a keepalived
// restart and a reboot.
func TestDrain(t *testing.T) {
	// Any 3-host lab will do once the lab inventory is applied (cold on bare hosts); a passing
	// run hands its lab on (labkit.Reuse), undrained and applied.
	lab := labkit.Reuse(t, 3)
	inv := lab.InventoryPath()
	masters := map[string]string{labkit.VIP(1): "lab1", labkit.VIP(2): "lab2", labkit.VIP(3): "lab3"}
	next := map[string]string{"lab1": "lab2", "lab2": "lab1", "lab3": "lab1"} // first backups: the first other host in inventory order
	start := time.Now()
	if out, errOut, code := hactl(t, "apply", "-i", inv, "--output", "json"); code != 0 {
		t.Fatalf("apply exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("apply of the lab inventory: %s", time.Since(start).Round(10*time.Millisecond))

	// One run of every mode on every node: the README's table. It is also TestHactl's
	// failover-test on the lab inventory (every scenario passed, restored and probed; every VIP
	// back on its master afterwards), run once for both.
	t.Run("failover-test all modes: nginx dead within 1.2 s, drain without a failed request", func(t *testing.T) {
		for _, s := range failoverPassing(t, inv, "all", 15) {
			if s.Requests == 0 {
				t.Errorf("%s %s: no HTTP request: %v", s.Node, s.Mode, s)
			}
			switch s.Mode {
			case "nginx-dead":
				if s.MovedTo != next[s.Node] || s.Drift > 1.2 {
					t.Errorf("%s: moved to %s after %.2fs (want %s within 1.2 s)", s.Node, s.MovedTo, s.Drift, next[s.Node])
				}
			case "drain":
				if s.Failed != 0 || s.FailbackFailed != 0 || s.Requests < 50 {
					t.Errorf("%s drain: %d failed of %d (fail-back %d failed)", s.Node, s.Failed, s.Requests, s.FailbackFailed)
				}
			}
		}
		holders := vipHolders(t, lab)
		for vip, master := range masters {
			if got := holders[vip]; len(got) != 1 || got[0] != master {
				t.Errorf("after the failover test VIP %s is on %v", vip, got)
			}
		}
	})

	drainCmd := func(t *testing.T, verb, host string) {
		t.Helper()
		start := time.Now()
		out, errOut, code := hactl(t, verb, "-i", inv, host)
		if code != 0 {
			t.Fatalf("%s %s: exit %d\n%s\n%s", verb, host, code, out, errOut)
		}
		t.Logf("%s %s: %s (%s)", verb, host, strings.ReplaceAll(strings.TrimSpace(out), "\n", "; "), time.Since(start).Round(10*time.Millisecond))
	}
	only := func(t *testing.T, vip, want string) {
		t.Helper()
		if got := vipHolders(t, lab)[vip]; len(got) != 1 || got[0] != want {
			t.Errorf("VIP %s on %v, want %s only", vip, got, want)
		}
	}
	holdsNone := func(t *testing.T, host string) {
		t.Helper()
		for vip, hs := range vipHolders(t, lab) {
			for _, h := range hs {
				if h == host {
					t.Errorf("drained %s holds %s", host, vip)
				}
			}
		}
	}

	// A slow file server on :8080 of every host (slowClients), removed when the test ends.
	for _, h := range []string{"lab1", "lab2", "lab3"} {
		ssh(t, lab, h, fmt.Sprintf(`set -e; mkdir -p /srv/hactl-slow; head -c %d /dev/zero > /srv/hactl-slow/f
printf 'server { listen 8080; root /srv/hactl-slow; limit_rate 64k; keepalive_timeout 0; }\n' > /etc/nginx/conf.d/zz-slow-test.conf
nginx -t -q && systemctl reload nginx`, slowSize))
	}
	t.Cleanup(func() {
		for _, h := range []string{"lab1", "lab2", "lab3"} {
			ssh(t, lab, h, "rm -rf /srv/hactl-slow /etc/nginx/conf.d/zz-slow-test.conf && nginx -t -q && systemctl reload nginx")
		}
	})

	for _, node := range []string{"lab1", "lab2", "lab3"} {
		t.Run("drain and undrain "+node+" without a failed request", func(t *testing.T) {
			vip := labkit.VIP(int(node[3] - '0'))
			// Without a grace (the lab inventory's drain_grace is 0): the slow requests in flight
			// at each switch complete on the old holder (drain.Settle).
			slow := slowClients("http://" + vip + ":8080/f")
			p := startProbe("http://" + vip + "/hactl-health")
			drainCmd(t, "drain", node)
			n, failed := p.end()
			t.Logf("drain %s: %d failed of %d probes", node, failed, n)
			if failed != 0 || n < 50 {
				t.Errorf("drain %s: %d failed of %d probes (want 0 of ≥ 50); first: %s", node, failed, n, p.failures())
			}
			n, failed = slow.end()
			t.Logf("drain %s: %d failed of %d slow requests in flight", node, failed, n)
			if failed != 0 || n < 50 {
				t.Errorf("drain %s: %d failed of %d slow requests (~0.5 s each; want 0 of ≥ 50); first: %s", node, failed, n, slow.failures())
			}
			only(t, vip, next[node])
			holdsNone(t, node)
			if got := ssh(t, lab, node, "cat /etc/keepalived/hactl-drain; stat -c '%a %U' /etc/keepalived/hactl-drain"); got != "-254\n644 root" {
				t.Errorf("drain file: %q", got)
			}

			slow = slowClients("http://" + vip + ":8080/f")
			p = startProbe("http://" + vip + "/hactl-health")
			drainCmd(t, "undrain", node)
			n, failed = p.end()
			t.Logf("undrain %s: %d failed of %d probes", node, failed, n)
			if failed != 0 || n < 50 {
				t.Errorf("undrain %s: %d failed of %d probes (want 0 of ≥ 50); first: %s", node, failed, n, p.failures())
			}
			n, failed = slow.end()
			t.Logf("undrain %s: %d failed of %d slow requests in flight", node, failed, n)
			if failed != 0 || n < 50 {
				t.Errorf("undrain %s: %d failed of %d slow requests (~0.5 s each; want 0 of ≥ 50); first: %s", node, failed, n, slow.failures())
			}
			for v, m := range masters {
				only(t, v, m)
			}
		})
	}

	t.Run("a drained host stays drained through apply, a keepalived restart and a reboot", func(t *testing.T) {
		vip := labkit.VIP(1)
		drainCmd(t, "drain", "lab1")

		out, errOut, code := hactl(t, "apply", "-i", inv, "--output", "json")
		if code != 0 {
			t.Fatalf("apply on a drained host: exit %d\n%s\n%s", code, out, errOut)
		}
		only(t, vip, "lab2")
		holdsNone(t, "lab1")
		if got := ssh(t, lab, "lab1", "cat /etc/keepalived/hactl-drain"); got != "-254" {
			t.Errorf("apply changed the drain file: %q", got)
		}
		out, _, code = hactl(t, "status", "-i", inv, "--output", "json")
		var st struct {
			Hosts []struct {
				Name    string
				Drained *bool `json:"drained"`
			}
		}
		decode(t, out, &st)
		for _, h := range st.Hosts {
			if h.Drained == nil || *h.Drained != (h.Name == "lab1") {
				t.Errorf("status: %s drained %v", h.Name, h.Drained)
			}
		}
		if code != 0 {
			t.Errorf("status exit %d with lab1 drained", code)
		}

		ssh(t, lab, "lab1", "systemctl restart keepalived")
		time.Sleep(6 * time.Second) // beyond a master-down interval (3.6 s)
		only(t, vip, "lab2")
		holdsNone(t, "lab1")

		root, err := labkit.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "e2e", "lab", "lab.sh"), "reboot", "lab1")
		cmd.Env = append(os.Environ(), "HACTL_LAB_DIR="+labkit.Dir())
		cmd.WaitDelay = 10 * time.Second
		rb, err := cmd.CombinedOutput()
		t.Logf("lab.sh reboot lab1: %s", strings.TrimSpace(string(rb)))
		if err != nil {
			t.Fatalf("reboot: %v", err)
		}
		time.Sleep(6 * time.Second)
		only(t, vip, "lab2")
		holdsNone(t, "lab1")
		if got := ssh(t, lab, "lab1", "systemctl is-active keepalived nginx | tr '\\n' ' '"); got != "active active" {
			t.Errorf("after the reboot: %q", got)
		}

		drainCmd(t, "undrain", "lab1")
		for v, m := range masters {
			only(t, v, m)
		}
	})
}

// TestDrainFast is TestDrain's failover table at advert_int 0.1 (VRRPv3):
// one `failover-test --mode all` on a fresh lab. Fresh, not TestDrain's lab handed on: going
// from advert_int 1 to 0.1 changes the VRRP version (2 → 3), and hosts on different versions
// cannot hear each other while the change rolls out host by host; that is not what this
// measures.
func TestDrainFast(t *testing.T) {
	lab := labkit.Fresh(t, 3)
	src, err := os.ReadFile(lab.InventoryPath())
	if err != nil {
		t.Fatal(err)
	}
	inv := writeInventory(t, string(src), "fast.hcl", "advert_int             = 1", "advert_int             = 0.1")
	if out, errOut, code := hactl(t, "apply", "-i", inv, "--output", "json"); code != 0 {
		t.Fatalf("apply exit %d\n%s\n%s", code, out, errOut)
	}
	doc, errOut, code := runFailover(t, inv, "--mode", "all")
	// At advert_int 0.1 this is a measurement for the README's table: the
	// issue's bar (drain without a failed request, nginx dead within 1.2 s)
	// is set at advert_int 1 (TestDrain). Here a drain's handover can cost a
	// probe (measured: 0–1 of 9 per node), which failover-test reports as a
	// failed scenario; everything else must pass and everything be restored.
	if len(doc.Scenarios) != 15 {
		t.Fatalf("failover-test --mode all at advert_int 0.1: exit %d, %d scenarios\n%s", code, len(doc.Scenarios), errOut)
	}
	for _, s := range doc.Scenarios {
		switch {
		case !s.Restored:
			t.Errorf("%s %s at advert_int 0.1: not restored: %s", s.Node, s.Mode, s.Error)
		case s.Mode == "drain" && !s.Pass:
			t.Logf("%s drain at advert_int 0.1: %d failed of %d (fail-back %d)", s.Node, s.Failed, s.Requests, s.FailbackFailed)
		case !s.Pass:
			t.Errorf("%s %s at advert_int 0.1: %s", s.Node, s.Mode, s.Error)
		}
	}
}
