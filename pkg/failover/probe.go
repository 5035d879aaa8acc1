package failover

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// HealthPath is the location every hactl nginx site answers with 200 and its
// host name (templates/nginx-site.conf.tmpl).
const HealthPath = "/hactl-health"

// NodeHeader names the balancer that answered (templates/nginx-site.conf.tmpl).
const NodeHeader = "X-Hactl-Node"

// ProbeURL is the URL of path on a VIP's site: http://198.18.0.201:80/… for
// an IPv4 VIP, http://[2001:db8:18::201]:80/… for an IPv6 one (RFC 3986
// brackets; net.JoinHostPort adds them).
func ProbeURL(vip netip.Addr, port int, path string) string {
	return "http://" + net.JoinHostPort(vip.String(), strconv.Itoa(port)) + path
}

// ProbeResult is one HTTP request to a VIP.
type ProbeResult struct {
	Status int    // 0 when no answer came
	Node   string // X-Hactl-Node of the answer
	Err    error
}

// OK reports whether the site answered 200.
func (p ProbeResult) OK() bool { return p.Err == nil && p.Status == http.StatusOK }

// Prober asks a VIP's site once. It must return within its own timeout:
// the engine starts one probe per poll period and does not wait for slow ones.
type Prober interface {
	Probe(ctx context.Context, url string) ProbeResult
}

// DefaultProbeTimeout keeps one dead request from hiding the next ones: three
// poll periods, so a probe that gets no answer is a failure well before the
// user would notice, and probes in flight stay few.
const DefaultProbeTimeout = 300 * time.Millisecond

// HTTPProber probes over plain HTTP from the control machine.
type HTTPProber struct {
	client *http.Client
}

// NewHTTPProber returns a prober with the given per-request timeout.
func NewHTTPProber(timeout time.Duration) *HTTPProber {
	tr := &http.Transport{
		// No proxy from the environment: the VIP must be reached directly,
		// or the measurement is of the proxy.
		Proxy: nil,
		// A fresh connection per request: a kept-alive connection would stay
		// with the old holder (or be reset) and hide when the new one answers.
		DisableKeepAlives: true,
	}
	return &HTTPProber{client: &http.Client{
		Transport: tr,
		Timeout:   timeout,
		// A redirect is an answer of the site itself; do not follow it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Probe sends one GET.
func (p *HTTPProber) Probe(ctx context.Context, url string) ProbeResult {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return ProbeResult{Err: fmt.Errorf("probe %s: %w", url, err)}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return ProbeResult{Err: fmt.Errorf("probe %s: %w", url, err)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	return ProbeResult{Status: resp.StatusCode, Node: resp.Header.Get(NodeHeader)}
}
