package ops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// OpenMetricsType is the Content-Type of an OpenMetrics scrape; Prometheus
// picks its parser from it (the text format has no stateset).
const OpenMetricsType = "application/openmetrics-text; version=1.0.0; charset=utf-8"

// Serve is `status --serve`: an exporter for Prometheus on ln until ctx
// ends (the interrupt; no error then). Every GET /metrics asks the hosts
// anew, as one `hactl status` does, and answers with write's rendering of
// the result, so a scrape is never older than itself. A status that cannot
// be gathered at all answers 500 (Prometheus marks the target down);
// unreachable hosts are in the metrics (hactl_host_reachable 0).
func Serve(ctx context.Context, s *Session, o StatusOptions, ln net.Listener, write func(io.Writer, *StatusResult) error) error {
	// One status at a time: scrapes that overlap (two Prometheus servers)
	// wait rather than multiply the SSH sessions on the hosts.
	var one sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		// The scrape's own context: Prometheus giving up (scrape_timeout)
		// ends the round trips too.
		one.Lock()
		res, err := Status(r.Context(), s, o)
		one.Unlock()
		var b bytes.Buffer
		if err == nil {
			err = write(&b, res)
		}
		if err != nil {
			http.Error(w, fmt.Sprintf("hactl status: %v", err), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", OpenMetricsType)
		_, _ = w.Write(b.Bytes())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return FailedError(fmt.Errorf("status --serve %s: %w", ln.Addr(), err))
	case <-ctx.Done():
		// A scrape in flight ends with ctx (BaseContext); wait for it briefly.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return FailedError(fmt.Errorf("status --serve %s: %w", ln.Addr(), err))
		}
		return nil
	}
}
