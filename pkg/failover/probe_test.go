package failover

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestHTTPProber(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case HealthPath:
			w.Header().Set(NodeHeader, "lab2")
			_, _ = w.Write([]byte("lab2\n"))
		case "/slow":
			time.Sleep(500 * time.Millisecond)
		default:
			w.Header().Set(NodeHeader, "lab2")
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	p := NewHTTPProber(100 * time.Millisecond)
	ctx := context.Background()
	if r := p.Probe(ctx, srv.URL+HealthPath); !r.OK() || r.Node != "lab2" || r.Status != 200 {
		t.Errorf("%+v", r)
	}
	if r := p.Probe(ctx, srv.URL+"/x"); r.OK() || r.Status != 502 || r.Node != "lab2" {
		t.Errorf("%+v", r)
	}
	start := time.Now()
	if r := p.Probe(ctx, srv.URL+"/slow"); r.OK() || r.Err == nil {
		t.Errorf("%+v", r)
	}
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Errorf("timeout not honoured: %s", d)
	}
}

func TestProbeURL(t *testing.T) {
	for _, tc := range []struct {
		vip  string
		port int
		want string
	}{
		{"198.18.0.201", 80, "http://198.18.0.201:80/hactl-health"},
		{"198.18.0.201", 8080, "http://198.18.0.201:8080/hactl-health"},
		{"2001:db8:18::201", 80, "http://[2001:db8:18::201]:80/hactl-health"},
		{"2001:db8:18::201", 8080, "http://[2001:db8:18::201]:8080/hactl-health"},
	} {
		if got := ProbeURL(netip.MustParseAddr(tc.vip), tc.port, HealthPath); got != tc.want {
			t.Errorf("ProbeURL(%s, %d) = %s, want %s", tc.vip, tc.port, got, tc.want)
		}
	}
}

// TestHTTPProberIPv6: the prober reaches a site on an IPv6 address through
// the bracketed URL (the loopback ::1 stands in for an IPv6 VIP).
func TestHTTPProberIPv6(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(NodeHeader, "lab1")
		_, _ = w.Write([]byte("lab1\n"))
	}))
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	url := ProbeURL(netip.IPv6Loopback(), port, HealthPath)
	if r := NewHTTPProber(time.Second).Probe(context.Background(), url); !r.OK() || r.Node != "lab1" {
		t.Fatalf("%s: %+v", url, r)
	}
}
