//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hactl/hactl/e2e/labkit"
)

// The connection drain's test content: `seq 1 5000000 | head -c` this many
// bytes, the same on every host and never periodic, so a lost, repeated or
// reordered stretch changes the checksum.
const dlSize = 30 * 1024 * 1024

func dlContent() []byte {
	var b []byte
	for i := 1; len(b) < dlSize; i++ {
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, '\n')
	}
	return b[:dlSize]
}

// download is a 30 MB GET at 2 MB/s with curl (as the issue measured).
type download struct {
	done chan struct{}
	file string
	code int
	out  string
}

func startDownload(t *testing.T, url string) *download {
	d := &download{done: make(chan struct{}), file: filepath.Join(t.TempDir(), "dl")}
	go func() {
		defer close(d.done)
		cmd := exec.Command("curl", "-sS", "--noproxy", "*", "--limit-rate", "2M", "--speed-time", "10", "--speed-limit", "1000",
			"-m", "90", "-o", d.file, "-w", "%{size_download}", url)
		out, err := cmd.CombinedOutput()
		d.out = strings.TrimSpace(string(out))
		if ee, ok := err.(*exec.ExitError); ok {
			d.code = ee.ExitCode()
		} else if err != nil {
			d.code, d.out = -1, err.Error()
		}
	}()
	return d
}

// check waits for the download and says what is wrong with it ("" if nothing).
func (d *download) check(want string) string {
	<-d.done
	b, err := os.ReadFile(d.file)
	if d.code != 0 || err != nil {
		return fmt.Sprintf("curl exit %d after %d bytes (%s)", d.code, len(b), d.out)
	}
	sum := sha256.Sum256(b)
	if len(b) != dlSize || hex.EncodeToString(sum[:]) != want {
		return fmt.Sprintf("%d bytes, sha256 %x, want %d bytes %s", len(b), sum, dlSize, want)
	}
	return ""
}

// keepAlive sends a request every 100 ms on one TCP connection for dur and
// counts the errors; after an error it reconnects (and counts that
// connection). Raw HTTP/1.1: Go's http.Transport would retry a request
// whose reused connection was reset, hiding exactly what this measures.
type keepAlive struct {
	done            chan struct{}
	ok, errs, conns int
	firstErr, nodes string
	mu              sync.Mutex
}

func startKeepAlive(addr string, dur time.Duration) *keepAlive {
	k := &keepAlive{done: make(chan struct{})}
	go func() {
		defer close(k.done)
		var c net.Conn
		var r *bufio.Reader
		seen := map[string]bool{}
		end := time.Now().Add(dur)
		for time.Now().Before(end) {
			err := func() error {
				if c == nil {
					var err error
					if c, err = net.DialTimeout("tcp", addr, 2*time.Second); err != nil {
						return err
					}
					r = bufio.NewReader(c)
					k.conns++
				}
				_ = c.SetDeadline(time.Now().Add(3 * time.Second))
				if _, err := fmt.Fprintf(c, "GET /small HTTP/1.1\r\nHost: hactl\r\n\r\n"); err != nil {
					return err
				}
				resp, err := http.ReadResponse(r, nil)
				if err != nil {
					return err
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != 200 {
					err = fmt.Errorf("status %s", resp.Status)
				}
				if n := resp.Header.Get("X-Conndrain-Node"); n != "" && !seen[n] {
					seen[n] = true
					k.nodes += n + " "
				}
				return err
			}()
			k.mu.Lock()
			if err != nil {
				k.errs++
				if k.firstErr == "" {
					k.firstErr = err.Error()
				}
				if c != nil {
					c.Close()
				}
				c = nil
			} else {
				k.ok++
			}
			k.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
		if c != nil {
			c.Close()
		}
	}()
	return k
}

// TestConnDrain is issue 22's "done when" on the 3-host lab at advert_int 1,
// with drain_grace set in the inventory: through `hactl drain lab1` and
// `hactl undrain lab1`, a 30 MB download at 2 MB/s started before each
// completes with the right bytes, a keep-alive client (a request every
// 100 ms on one connection) sees no error, and new connections at 20 Hz see
// no failure, HACTL_CONNDRAIN_CYCLES times in a row (default 10). While a
// drain runs, status shows it and the host keeping the VIP forwards nothing
// (no loop); afterwards no host has any of it left, and a new connection is
// answered by the VIP's holder.
func TestConnDrain(t *testing.T) {
	cycles := 10
	if v := os.Getenv("HACTL_CONNDRAIN_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("HACTL_CONNDRAIN_CYCLES=%q", v)
		}
		cycles = n
	}
	lab := labkit.Fresh(t, 3)
	src, err := os.ReadFile(lab.InventoryPath())
	if err != nil {
		t.Fatal(err)
	}
	inv := writeInventory(t, string(src), "conndrain.hcl", "  advert_int             = 1\n", "  advert_int             = 1\n  drain_grace            = 40\n")
	applyOK(t, inv)
	content := dlContent()
	sum := sha256.Sum256(content)
	want := hex.EncodeToString(sum[:])
	vip := labkit.VIP(1)
	hosts := []string{"lab1", "lab2", "lab3"}
	for _, h := range hosts {
		// nftables on every host (hactl refuses a connection drain without
		// it), the test content, and a plain file server on :8080 that says
		// which host answered.
		ssh(t, lab, h, fmt.Sprintf(`set -e; apt-get install -y -q nftables >/dev/null 2>&1; mkdir -p /srv/hactl-dl
seq 1 5000000 | head -c %d > /srv/hactl-dl/f30; echo ok > /srv/hactl-dl/small
printf 'server { listen 8080; root /srv/hactl-dl; keepalive_timeout 300s; keepalive_requests 100000; add_header X-Conndrain-Node %s always; }\n' > /etc/nginx/conf.d/zz-conndrain-test.conf
nginx -t -q && systemctl reload nginx`, dlSize, h))
		if got := ssh(t, lab, h, "sha256sum /srv/hactl-dl/f30 | cut -d' ' -f1"); got != want {
			t.Fatalf("%s: test content sha256 %s, want %s", h, got, want)
		}
	}
	time.Sleep(time.Second)

	leftovers := func(t *testing.T, when string) {
		t.Helper()
		for _, h := range hosts {
			got := ssh(t, lab, h, fmt.Sprintf("systemctl is-active hactl-conndrain.service; nft list tables | grep -c hactl_conndrain; ip -o -4 addr show dev lo | grep -c ' %s/32 '; true", vip))
			if got != "inactive\n0\n0" {
				t.Errorf("%s: %s: connection drain left behind (unit, nft tables, VIP on lo): %q", when, h, got)
			}
		}
	}
	holder := func(t *testing.T, want string) {
		t.Helper()
		if got, err := httpNode("http://" + vip + "/hactl-health"); err != nil || got != want {
			t.Errorf("a new connection to %s answered by %q (%v), want %s", vip, got, err, want)
		}
	}
	// during checks, while hactl runs, that status shows the draining and
	// that the host keeping the VIP has no forwarding (no loop possible).
	during := func(t *testing.T, keeper string) func() string {
		var mu sync.Mutex
		var problems []string
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			select {
			case <-stop:
				return
			case <-time.After(7 * time.Second):
			}
			out, errOut, code := hactl(t, "status", "-i", inv)
			mu.Lock()
			defer mu.Unlock()
			if !strings.Contains(out, "connection drain") {
				problems = append(problems, fmt.Sprintf("status (exit %d) does not show the draining:\n%s\n%s", code, out, errOut))
			}
			h, _ := lab.Host(keeper)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if got, _ := lab.SSH(ctx, h, "nft list tables 2>/dev/null | grep -c hactl_conndrain; true"); strings.TrimSpace(got) != "0" {
				problems = append(problems, fmt.Sprintf("%s keeps the VIP and forwards too (a loop): %q", keeper, got))
			}
		}()
		return func() string {
			close(stop)
			<-done
			mu.Lock()
			defer mu.Unlock()
			return strings.Join(problems, "; ")
		}
	}
	type drainDoc struct {
		Moved       map[string]string `json:"moved"`
		Connections *struct {
			Grace  float64        `json:"grace_seconds"`
			Waited float64        `json:"waited_seconds"`
			Left   map[string]int `json:"left"`
		} `json:"connections"`
	}
	step := func(t *testing.T, verb, keeper, newHolder string) {
		t.Helper()
		dl := startDownload(t, "http://"+vip+":8080/f30")
		ka := startKeepAlive(vip+":8080", 13*time.Second)
		p := startProbe("http://" + vip + "/hactl-health")
		time.Sleep(3 * time.Second)
		check := during(t, keeper)
		start := time.Now()
		out, errOut, code := hactl(t, verb, "-i", inv, "--output", "json", "lab1")
		took := time.Since(start)
		if problems := check(); problems != "" {
			t.Error(problems)
		}
		if code != 0 {
			t.Fatalf("%s lab1: exit %d\n%s\n%s", verb, code, out, errOut)
		}
		var doc drainDoc
		decode(t, out, &doc)
		dlProblem := dl.check(want)
		<-ka.done
		n, failed := p.end()
		left := -1
		if doc.Connections != nil {
			left = doc.Connections.Left[keeper]
		}
		t.Logf("%s lab1: %.1fs; connections: %+v (left on %s: %d); download: %s; keep-alive: %d ok, %d errors on %d connection(s), served by %s; probes: %d failed of %d",
			verb, took.Seconds(), doc.Connections, keeper, left, map[bool]string{true: "complete, checksum ok", false: dlProblem}[dlProblem == ""],
			ka.ok, ka.errs, ka.conns, ka.nodes, failed, n)
		if dlProblem != "" {
			t.Errorf("%s: download: %s", verb, dlProblem)
		}
		if ka.errs != 0 || ka.conns != 1 {
			t.Errorf("%s: keep-alive client: %d errors (first: %s), %d connections, want 0 and 1", verb, ka.errs, ka.firstErr, ka.conns)
		}
		if failed != 0 || n < 20 {
			t.Errorf("%s: %d failed of %d new-connection probes (want 0 of ≥ 20)", verb, failed, n)
		}
		if doc.Connections == nil || left != 0 {
			t.Errorf("%s: connections %+v: want every one of %s's ended within the grace period", verb, doc.Connections, keeper)
		}
		if doc.Moved[vip+"/24"] != newHolder {
			t.Errorf("%s: moved %v, want %s on %s", verb, doc.Moved, vip, newHolder)
		}
		leftovers(t, verb)
		holder(t, newHolder)
	}
	for i := 1; i <= cycles; i++ {
		if !t.Run(fmt.Sprintf("cycle %d", i), func(t *testing.T) {
			step(t, "drain", "lab1", "lab2")
			step(t, "undrain", "lab2", "lab1")
		}) {
			return
		}
	}

	t.Run("a keepalived restart on either host ends a running connection drain", func(t *testing.T) {
		for _, restart := range []string{"lab2", "lab1"} {
			dl := startDownload(t, "http://"+vip+":8080/f30")
			time.Sleep(2 * time.Second)
			// Cancelled when the test ends, also by a failure: no hactl left running.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			t.Cleanup(cancel)
			cmd, stdout, stderr := hactlCmd(ctx, t, "drain", "-i", inv, "lab1")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the VIP on lab2 with the drain running", 30*time.Second, func() bool {
				hs := vipHolders(t, lab)[vip]
				return len(hs) == 1 && hs[0] == "lab2" && ssh(t, lab, "lab1", "systemctl is-active hactl-conndrain.service; true") == "active"
			})
			ssh(t, lab, restart, "systemctl restart keepalived")
			start := time.Now()
			waitFor(t, "the drain's unit on "+restart+" to stop", 5*time.Second, func() bool {
				return ssh(t, lab, restart, "systemctl is-active hactl-conndrain.service; true") != "active"
			})
			t.Logf("keepalived restart on %s: its connection drain ended after %s", restart, time.Since(start).Round(100*time.Millisecond))
			err := cmd.Wait()
			cancel()
			t.Logf("drain lab1 (restart on %s): %v\n%s%s", restart, err, stdout, stderr)
			<-dl.done
			leftovers(t, "after the restart on "+restart)
			if out, errOut, code := hactl(t, "undrain", "-i", inv, "--grace", "0", "lab1"); code != 0 {
				t.Fatalf("undrain: exit %d\n%s\n%s", code, out, errOut)
			}
			waitFor(t, vip+" back on lab1 alone", 20*time.Second, func() bool {
				hs := vipHolders(t, lab)[vip]
				return len(hs) == 1 && hs[0] == "lab1"
			})
		}
	})
}
