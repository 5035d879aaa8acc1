package sitecheck

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hactl/hactl/internal/tlstest"
	"github.com/hactl/hactl/pkg/inventory"
)

// balancer stands in for one nginx host with the sites of fakeInventory:
// a TLS listener choosing the certificate by SNI and a plain one that
// redirects shop to HTTPS; faults are switched on by the tests.
type balancer struct {
	mu                     sync.Mutex
	wrongCert, sick, noRed bool
	shop, api              tls.Certificate
	plain, tls             net.Listener
}

func (b *balancer) set(f func(*balancer)) { b.mu.Lock(); f(b); b.mu.Unlock() }

func (b *balancer) get() balancer {
	b.mu.Lock()
	defer b.mu.Unlock()
	return balancer{wrongCert: b.wrongCert, sick: b.sick, noRed: b.noRed}
}

func pair(t *testing.T, p tlstest.Pair) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func startBalancer(t *testing.T, ca *tlstest.CA, shop, api tlstest.Pair) *balancer {
	t.Helper()
	b := &balancer{shop: pair(t, shop), api: pair(t, api)}
	var err error
	if b.plain, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if b.tls, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	tlsPort := b.tls.Addr().(*net.TCPAddr).Port
	host := func(r *http.Request) string { h, _, _ := strings.Cut(r.Host, ":"); return h }
	quiet := log.New(io.Discard, "", 0) // the refused handshakes are the test's
	plain := &http.Server{ErrorLog: quiet, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(host(r), "shop.example.test") && !b.get().noRed:
			http.Redirect(w, r, fmt.Sprintf("https://%s:%d%s", host(r), tlsPort, r.URL.Path), http.StatusMovedPermanently)
		case host(r) == "status.example.test" && r.URL.Path == "/healthz":
			fmt.Fprintln(w, "ok")
		default:
			http.NotFound(w, r)
		}
	})}
	secure := &http.Server{
		ErrorLog: quiet,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case b.get().sick:
				http.Error(w, "bad gateway", http.StatusBadGateway)
			case host(r) == "shop.example.test" && r.URL.Path == "/healthz", host(r) == "api.example.test" && r.URL.Path == "/v1/health":
				fmt.Fprintln(w, "ok")
			default:
				http.NotFound(w, r)
			}
		}),
		TLSConfig: &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if strings.HasSuffix(h.ServerName, "shop.example.test") && !b.get().wrongCert {
				return &b.shop, nil
			}
			return &b.api, nil
		}},
	}
	go func() { _ = plain.Serve(b.plain) }()
	go func() { _ = secure.ServeTLS(b.tls, "", "") }()
	t.Cleanup(func() { plain.Close(); secure.Close() })
	return b
}

// fakeInventory loads a cluster whose sites listen on the balancer's ports.
func fakeInventory(t *testing.T, b *balancer, dir string) *inventory.Cluster {
	t.Helper()
	plainPort, tlsPort := b.plain.Addr().(*net.TCPAddr).Port, b.tls.Addr().(*net.TCPAddr).Port
	src := fmt.Sprintf(`cluster "lab" {
  interface = "eth0"
  gateway   = "198.18.0.1"
  auth_pass = "p"
  host "lab1" {
    address = "198.18.0.11"
    vip     = "198.18.0.201/24"
  }
  host "lab2" {
    address = "198.18.0.12"
    vip     = "198.18.0.202/24"
  }
  pool "app" {
    server "198.18.0.21:8080" {}
  }
  site "shop" {
    server_names = ["shop.example.test", "*.shop.example.test"]
    health_path  = "/healthz"
    http         = %[1]d
    https        = %[2]d
    tls {
      certificate = "tls/shop.crt"
      key         = "tls/shop.key"
    }
    location "/" { pool = "app" }
  }
  site "api" {
    server_names = ["api.example.test"]
    health_path  = "/v1/health"
    http         = 0
    https        = %[2]d
    tls {
      certificate = "tls/api.crt"
      key         = "tls/api.key"
    }
    location "/" { pool = "app" }
  }
  site "status" {
    server_names = ["status.example.test"]
    health_path  = "/healthz"
    http         = %[1]d
    location "/" { pool = "app" }
  }
}
`, plainPort, tlsPort)
	inv, diags := inventory.NewLoader(inventory.Options{}).Load(filepath.Join(dir, "inv.hcl"), []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return inv.Clusters[0]
}

func failed(rs []Result) []string {
	var out []string
	for _, r := range rs {
		if r.Err != nil {
			out = append(out, r.Probe.String())
		}
	}
	return out
}

// TestCheckAll runs the probes of three sites against a stand-in balancer
// on loopback: all pass on a healthy host; a wrong certificate for one
// SNI name, a failing health path and a missing redirect each fail exactly
// the probes they concern, naming site and check.
func TestCheckAll(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t)
	shop := ca.Valid(t, "shop.example.test", "*.shop.example.test")
	api := ca.Valid(t, "api.example.test")
	shop.Write(t, filepath.Join(dir, "tls"), "shop")
	api.Write(t, filepath.Join(dir, "tls"), "api")
	b := startBalancer(t, ca, shop, api)
	c := fakeInventory(t, b, dir)
	probes := Probes(c)
	var kinds []string
	for _, p := range probes {
		kinds = append(kinds, p.Site+"/"+p.Kind+"/"+p.Name)
	}
	want := "shop/cert/shop.example.test shop/cert/hactl-probe.shop.example.test shop/health/shop.example.test shop/redirect/shop.example.test " +
		"api/cert/api.example.test api/health/api.example.test status/health/status.example.test"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("probes:\n%s\nwant\n%s", got, want)
	}
	ctx := context.Background()

	rs := CheckAll(ctx, "127.0.0.1", probes, Options{})
	if f := failed(rs); len(f) != 0 {
		for _, r := range rs {
			t.Log(r.Err)
		}
		t.Fatalf("healthy host failed %v", f)
	}
	if c := rs[0].Cert; c == nil || c.DaysLeft < 88 || c.DaysLeft > 90 || !strings.Contains(c.Subject, "shop.example.test") {
		t.Errorf("served certificate %+v", c)
	}

	for _, tc := range []struct {
		name  string
		fault func(*balancer)
		want  string
	}{
		{"wrong certificate for shop", func(b *balancer) { b.wrongCert = true }, `site "shop": cert shop.example.test site "shop": cert hactl-probe.shop.example.test site "shop": health shop.example.test`},
		{"health path fails", func(b *balancer) { b.sick = true }, `site "shop": health shop.example.test site "api": health api.example.test`},
		{"no redirect", func(b *balancer) { b.noRed = true }, `site "shop": redirect shop.example.test`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.set(tc.fault)
			defer b.set(func(b *balancer) { b.wrongCert, b.sick, b.noRed = false, false, false })
			rs := CheckAll(ctx, "127.0.0.1", probes, Options{})
			var got []string
			for _, f := range failed(rs) {
				got = append(got, f[:strings.LastIndex(f, ":")])
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("failed %q, want %q", got, tc.want)
			}
			for _, r := range rs {
				if r.Err != nil && !strings.Contains(r.Err.Error(), "site \""+r.Site+"\"") {
					t.Errorf("error does not name the site: %v", r.Err)
				}
				if tc.name == "wrong certificate for shop" && r.Kind == KindCert && r.Site == "shop" && !errors.Is(r.Err, ErrWrongCert) {
					t.Errorf("want ErrWrongCert, got %v", r.Err)
				}
			}
		})
	}

	// A host that does not answer fails every probe, naming the target.
	refuse := func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("connection refused") }
	for _, r := range CheckAll(ctx, "198.18.0.11", probes, Options{Dial: refuse}) {
		if r.Err == nil || !strings.Contains(r.Err.Error(), "198.18.0.11:") {
			t.Errorf("%s: %v", r.Probe, r.Err)
		}
	}
}
