package failover

import (
	"context"
	"net/http"
	"net/http/httptest"
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
