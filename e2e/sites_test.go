//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hactl/hactl/e2e/labkit"
	"github.com/hactl/hactl/internal/tlstest"
	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/render"
)

// siteClient asks one VIP for one site the way `curl --resolve NAME:PORT:VIP
// --cacert CA` does: the connection goes to the VIP, the name is the Host
// header and the SNI, the chain is verified against the test CA. A new
// connection per request.
type siteClient struct {
	vip  string
	pool *x509.CertPool
}

type siteAnswer struct {
	app, node string
	leaf      string // SHA-256 of the presented leaf (HTTPS)
}

func (c siteClient) get(url string) (siteAnswer, error) {
	var leaf string
	tr := &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, net.JoinHostPort(c.vip, port))
		},
		TLSClientConfig: &tls.Config{RootCAs: c.pool, VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 {
				s := sha256.Sum256(cs.PeerCertificates[0].Raw)
				leaf = hex.EncodeToString(s[:])
			}
			return nil
		}},
	}
	cl := &http.Client{Timeout: 3 * time.Second, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Get(url)
	if err != nil {
		return siteAnswer{}, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		return siteAnswer{}, fmt.Errorf("%s via %s: %s", url, c.vip, resp.Status)
	}
	return siteAnswer{app: resp.Header.Get("X-App"), node: resp.Header.Get("X-Hactl-Node"), leaf: leaf}, nil
}

// siteProbe asks every (VIP, URL) pair every 50 ms (20 Hz each) until
// stopped, a new connection per request, and counts failures per VIP.
type siteProbe struct {
	mu       sync.Mutex
	requests map[string]int
	failed   map[string]int
	errs     []string
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startSiteProbe(vips []string, pool *x509.CertPool, urls ...string) *siteProbe {
	p := &siteProbe{requests: map[string]int{}, failed: map[string]int{}, stop: make(chan struct{})}
	for _, vip := range vips {
		for _, url := range urls {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				c := siteClient{vip: vip, pool: pool}
				tick := time.NewTicker(50 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-p.stop:
						return
					case <-tick.C:
					}
					_, err := c.get(url)
					p.mu.Lock()
					p.requests[vip]++
					if err != nil {
						p.failed[vip]++
						if len(p.errs) < 10 {
							p.errs = append(p.errs, time.Now().Format("15:04:05.000")+" "+err.Error())
						}
					}
					p.mu.Unlock()
				}
			}()
		}
	}
	return p
}

func (p *siteProbe) end() (requests, failed map[string]int, errs []string) {
	close(p.stop)
	p.wg.Wait()
	return p.requests, p.failed, p.errs
}

// report fails the test when any request to any VIP failed, logging each
// VIP's count and the first failures with their time.
func (p *siteProbe) report(t *testing.T, what string) (total, failed int) {
	t.Helper()
	req, fail, errs := p.end()
	for vip, n := range req {
		total += n
		failed += fail[vip]
		t.Logf("%s: VIP %s: %d requests, %d failed", what, vip, n, fail[vip])
		if fail[vip] > 0 {
			t.Errorf("%s: %d of %d requests to %s failed: %v", what, fail[vip], n, vip, errs)
		}
	}
	return total, failed
}

// connDrained fails the test unless both of the canary's VIP moves (its
// drain and undrain, shown by apply -v) kept the connections open at the
// move until they ended, and logs those lines (how long each waited).
func connDrained(t *testing.T, what, out string) {
	t.Helper()
	if strings.Contains(out, "open connections not kept") {
		t.Errorf("%s moved the canary's VIPs without connection draining:\n%s", what, out)
	}
	for _, move := range []string{"canary: drained: ", "canary: undrained: "} {
		found := false
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, move) {
				found = true
				t.Logf("%s: %s", what, strings.TrimSpace(l))
				if !strings.Contains(l, "every connection open at the move ended") {
					t.Errorf("%s: the move cut connections: %s", what, l)
				}
			}
		}
		if !found {
			t.Errorf("%s: apply -v does not show %q:\n%s", what, move, out)
		}
	}
}

func leafSHA(t *testing.T, certFile string) string {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", certFile)
	}
	s := sha256.Sum256(blk.Bytes)
	return hex.EncodeToString(s[:])
}

func editFile(t *testing.T, path, from, to string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), from) {
		t.Fatalf("%s has no %q", path, from)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), from, to, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSites is issue 20 on a 3-balancer, 2-app-server lab: inventory/sites.hcl
// (status: HTTP; shop and api: HTTPS on 443, certificates chosen by SNI;
// postgres: a TCP stream) with certificates from a CA made now.
func TestSites(t *testing.T) {
	lab := labkit.Fresh(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	apps, err := lab.Apps(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("HACTL_VRRP_PASS", "labpass1")
	inv, ca := tlstest.SitesExample(t)
	dir := filepath.Dir(inv)
	// sites.hcl names the default lab's key and known_hosts; this test may run in another lane's lab.
	if src, err := os.ReadFile(inv); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(inv, []byte(strings.ReplaceAll(string(src), labkit.DefaultDir+"/", lab.Dir+"/")), 0o644); err != nil {
		t.Fatal(err)
	}
	keyLines := func() []string {
		var out []string
		for _, s := range []string{"shop", "api"} {
			b, err := os.ReadFile(filepath.Join(dir, "tls", s+".key"))
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.Split(string(b), "\n") {
				if l != "" && !strings.HasPrefix(l, "-----") {
					out = append(out, l)
				}
			}
		}
		return out
	}
	var outputs strings.Builder // every output of every command, checked for the key at the end
	run := func(args ...string) (string, string, int, time.Duration) {
		t0 := time.Now()
		out, errOut, code := hactl(t, args...)
		outputs.WriteString(out + errOut)
		return out, errOut, code, time.Since(t0)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	var vips []string
	for _, h := range lab.Hosts {
		vips = append(vips, h.VIP)
	}
	const (
		statusURL = "http://status.example.test/healthz"
		shopURL   = "https://shop.example.test/"
		apiURL    = "https://api.example.test/v1/health"
	)

	// --- apply: every site on every VIP, proxied to both app servers.
	out, errOut, code, took := run("apply", "-i", inv, "--output", "json")
	if code != 0 {
		t.Fatalf("first apply exit %d:\n%s\n%s", code, out, errOut)
	}
	t.Logf("first apply: %s", took.Round(100*time.Millisecond))
	shopSHA, apiSHA := leafSHA(t, filepath.Join(dir, "tls", "shop.crt")), leafSHA(t, filepath.Join(dir, "tls", "api.crt"))
	for _, vip := range vips {
		c := siteClient{vip: vip, pool: pool}
		for _, x := range []struct{ url, leaf string }{{statusURL, ""}, {shopURL, shopSHA}, {apiURL, apiSHA}} {
			seen := map[string]bool{}
			for range 6 {
				a, err := c.get(x.url)
				if err != nil {
					t.Fatalf("after apply: %v", err)
				}
				if a.leaf != x.leaf {
					t.Errorf("%s via %s: certificate %s, want %s (SNI)", x.url, vip, a.leaf, x.leaf)
				}
				seen[a.app] = true
			}
			if !seen[apps[0].Name] || !seen[apps[1].Name] {
				t.Errorf("%s via %s reached app servers %v, want both", x.url, vip, seen)
			}
		}
		// The stream proxy: app1 (app2 is its backup).
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(vip, "5432"), 2*time.Second)
		if err != nil {
			t.Fatalf("stream via %s: %v", vip, err)
		}
		line, _ := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if strings.TrimSpace(line) != apps[0].Name {
			t.Errorf("stream via %s answered %q, want %s", vip, line, apps[0].Name)
		}
	}

	// --- one app server stops: no request lost.
	p := startSiteProbe(vips, pool, statusURL, shopURL)
	time.Sleep(time.Second)
	if err := lab.StopApp(ctx, apps[0].Name); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := lab.StartApp(ctx, apps[0].Name); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	n, f := p.report(t, "app1 stopped")
	t.Logf("FIGURE app server stopped: %d requests, %d failed", n, f)

	// --- a good change: a pool, a location and a renewed certificate.
	editFile(t, inv, `    server "198.18.0.21:8080" {
      max_fails    = 2`, `    server "198.18.0.21:8080" {
      weight       = 2
      max_fails    = 2`)
	editFile(t, inv, `    location "/" { pool = "app" }
  }

  # Two HTTPS`, `    location "/" { pool = "app" }
    location "/extra/" { pool = "app" }
  }

  # Two HTTPS`)
	renewed := ca.Valid(t, "shop.example.test")
	renewed.Write(t, filepath.Join(dir, "tls"), "shop")
	newShop := leafSHA(t, filepath.Join(dir, "tls", "shop.crt"))
	// The canary's two VIP moves (drain, undrain) keep the connections open
	// at the move (a connection drain, nft installed by the first apply):
	// no request may fail, on any VIP.
	p = startSiteProbe(vips, pool, statusURL, shopURL, apiURL)
	time.Sleep(500 * time.Millisecond)
	out, errOut, code, took = run("apply", "-i", inv, "-v")
	time.Sleep(500 * time.Millisecond)
	n, f = p.report(t, "good rollout")
	connDrained(t, "good rollout", out+errOut)
	t.Logf("FIGURE good rollout: exit %d in %s, %d requests, %d failed\n%s", code, took.Round(100*time.Millisecond), n, f, out)
	if code != 0 {
		t.Fatalf("good change: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, vip := range vips {
		a, err := siteClient{vip: vip, pool: pool}.get(shopURL)
		if err != nil || a.leaf != newShop {
			t.Errorf("after renewal %s serves %s (%v), want the renewed %s", vip, a.leaf, err, newShop)
		}
		if _, err := (siteClient{vip: vip, pool: pool}).get("http://status.example.test/extra/x"); err != nil {
			t.Errorf("new location: %v", err)
		}
	}

	// --- a bad change: nginx -t passes, api's health path fails (404).
	apiFile := "/etc/nginx/hactl/http/site-api.conf"
	before := map[string]string{}
	for _, h := range lab.Hosts {
		before[h.Name] = ssh(t, lab, h.Name, "sha256sum "+apiFile)
	}
	editFile(t, inv, `location "/v1/" { pool = "app" }`, `location "/v2/" { pool = "app" }`)
	p = startSiteProbe(vips, pool, statusURL, shopURL, apiURL)
	time.Sleep(500 * time.Millisecond)
	out, errOut, code, took = run("apply", "-i", inv, "-v")
	time.Sleep(500 * time.Millisecond)
	n, f = p.report(t, "bad rollout")
	connDrained(t, "bad rollout", out+errOut)
	t.Logf("FIGURE bad rollout: exit %d in %s, %d requests, %d failed\n%s%s", code, took.Round(100*time.Millisecond), n, f, out, errOut)
	if code != 1 {
		t.Errorf("bad change: exit %d, want 1", code)
	}
	for _, s := range []string{"canary lab1", `site "api"`, "health api.example.test:443/v1/health", "404"} {
		if !strings.Contains(out+errOut, s) {
			t.Errorf("bad change output does not say %q", s)
		}
	}
	for _, h := range lab.Hosts {
		if got := ssh(t, lab, h.Name, "sha256sum "+apiFile); got != before[h.Name] {
			t.Errorf("%s: %s changed by the failed rollout (%s → %s)", h.Name, apiFile, before[h.Name], got)
		}
		if got := ssh(t, lab, h.Name, "cat "+facts.DrainFile+" 2>/dev/null || echo 0"); strings.TrimSpace(got) != "0" && got != "" {
			t.Errorf("%s left drained (%q)", h.Name, got)
		}
	}
	for _, vip := range vips {
		if _, err := (siteClient{vip: vip, pool: pool}).get(apiURL); err != nil {
			t.Errorf("after the failed rollout: %v", err)
		}
	}
	editFile(t, inv, `location "/v2/" { pool = "app" }`, `location "/v1/" { pool = "app" }`)

	// --- keys: 0600 on every host and in every backup; in no output.
	for _, h := range lab.Hosts {
		modes := ssh(t, lab, h.Name, "find /etc/nginx/hactl /var/backups/hactl \\( -name '*.key*' -o -name '*.tar' \\) 2>/dev/null | xargs -r stat -c '%a %n'; true")
		for _, l := range strings.Split(modes, "\n") {
			if l != "" && !strings.HasPrefix(l, "600 ") {
				t.Errorf("%s: %s", h.Name, l)
			}
		}
	}

	// --- status: a certificate replaced by hand on lab2 is drift; expiry per site.
	other := ca.Valid(t, "shop.example.test")
	ssh(t, lab, "lab2", "printf '%s' '"+string(other.CertPEM)+"' > "+render.CertFile("shop"))
	out, errOut, _, _ = run("status", "-i", inv, "--output", "json")
	var st struct {
		Hosts []struct {
			Name  string   `json:"name"`
			Drift []string `json:"drift"`
		} `json:"hosts"`
		Sites []struct {
			Site     string   `json:"site"`
			DaysLeft *int     `json:"cert_days_left"`
			Same     *bool    `json:"consistent"`
			Drift    []string `json:"drift_hosts"`
		} `json:"sites"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status JSON: %v\n%s\n%s", err, out, errOut)
	}
	for _, h := range st.Hosts {
		has := strings.Contains(strings.Join(h.Drift, " "), render.CertFile("shop"))
		if has != (h.Name == "lab2") {
			t.Errorf("%s drift %v", h.Name, h.Drift)
		}
	}
	sites := map[string]bool{}
	for _, s := range st.Sites {
		sites[s.Site] = true
		if s.Site == "shop" && (s.Same == nil || *s.Same || strings.Join(s.Drift, ",") != "lab2") {
			t.Errorf("status site shop: consistent %v, drift %v; want lab2 named", s.Same, s.Drift)
		}
		if s.Site != "status" && (s.DaysLeft == nil || *s.DaysLeft < 80) {
			t.Errorf("status site %s: days left %v", s.Site, s.DaysLeft)
		}
	}
	if !sites["shop"] || !sites["api"] || !sites["status"] {
		t.Errorf("status sites: %s", out)
	}
	text, _, _, _ := run("status", "-i", inv)
	t.Logf("status:\n%s", text)
	for _, l := range keyLines() {
		if strings.Contains(outputs.String(), l[:16]) {
			t.Fatal("a TLS key appears in hactl's output")
		}
	}
}
