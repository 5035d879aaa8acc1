// Package sitecheck verifies what one balancer serves, through its own
// address: each site's health path answers, each HTTPS name presents the
// certificate the inventory gives it (chosen by SNI), and a redirecting
// plain listener sends clients to HTTPS. It is what a canary rollout asks
// before a host serves clients again, and what `status` can read a served
// certificate's expiry and fingerprint from. It never follows a redirect
// and opens a new connection per probe.
package sitecheck

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hactl/hactl/pkg/inventory"
)

// Kinds of probe.
const (
	KindHealth   = "health"   // GET the site's health path: 2xx passes
	KindCert     = "cert"     // TLS handshake with SNI: the expected leaf
	KindRedirect = "redirect" // plain GET: 301/308 to https://NAME
)

// Probe is one check of one site, independent of the host it is run on.
type Probe struct {
	Site string
	Kind string
	// Name is the Host header and, over TLS, the SNI name.
	Name string
	Port int
	TLS  bool
	Path string
	// WantCert is the SHA-256 of the leaf certificate the site must
	// present (TLS probes).
	WantCert [sha256.Size]byte
	// RedirectPort is the HTTPS port a redirect must name (443: none).
	RedirectPort int
}

// String names the probe for messages: `site "shop": cert shop.example.test:443`.
func (p Probe) String() string {
	what := p.Kind + " " + p.Name + ":" + strconv.Itoa(p.Port)
	if p.Kind != KindCert {
		what += p.Path
	}
	return fmt.Sprintf("site %q: %s", p.Site, what)
}

// Probes lists what proves that a host serves cluster c's sites: per site,
// its health path (over HTTPS when it has TLS); per HTTPS server name, the
// certificate presented for it; per redirecting site, the redirect. A
// wildcard name is probed as "hactl-probe.<domain>".
func Probes(c *inventory.Cluster) []Probe {
	var out []Probe
	for _, s := range c.Serving.Sites {
		names := make([]string, len(s.ServerNames))
		for i, n := range s.ServerNames {
			names[i] = n
			if strings.HasPrefix(n, "*.") {
				names[i] = "hactl-probe" + n[1:]
			}
		}
		if len(names) == 0 {
			continue
		}
		health := Probe{Site: s.Name, Kind: KindHealth, Name: names[0], Port: s.HTTP, Path: s.HealthPath}
		if s.TLS != nil {
			health.Port, health.TLS = s.HTTPS, true
			if leaf := s.TLS.Leaf(); leaf != nil {
				health.WantCert = sha256.Sum256(leaf.Raw)
			}
			for _, n := range names {
				p := health
				p.Kind, p.Name, p.Path = KindCert, n, ""
				out = append(out, p)
			}
		}
		out = append(out, health)
		if s.RedirectHTTPS {
			out = append(out, Probe{Site: s.Name, Kind: KindRedirect, Name: names[0], Port: s.HTTP, Path: s.HealthPath, RedirectPort: s.HTTPS})
		}
	}
	return out
}

// Cert is a certificate as a host presented it.
type Cert struct {
	Subject  string
	SHA256   string // hex
	NotAfter time.Time
	DaysLeft int
}

// Result is one probe run against one host.
type Result struct {
	Probe
	Target string // host:port dialled
	Status int    // HTTP status; 0 without a response
	Cert   *Cert  // the leaf presented (TLS probes that got one)
	Err    error  // nil: passed
}

// Options tune a run. Zero values: 5 s timeout, time.Now.
type Options struct {
	Timeout time.Duration
	Now     func() time.Time
	// Dial connects to the target; nil: a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// ErrWrongCert is wrapped by a probe that got another certificate than the
// inventory's.
var ErrWrongCert = errors.New("wrong certificate")

// Check runs p against the host listening at host (an address, without
// port): the connection goes there whatever the name says, the name is
// only the Host header and SNI.
func Check(ctx context.Context, host string, p Probe, o Options) Result {
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Dial == nil {
		o.Dial = (&net.Dialer{}).DialContext
	}
	target := net.JoinHostPort(host, strconv.Itoa(p.Port))
	res := Result{Probe: p, Target: target}
	var leaf *x509.Certificate
	tlsConf := &tls.Config{
		ServerName: p.Name,
		// The chain is not checked against a CA (the balancers may serve
		// a private one): the leaf is pinned to the inventory's instead.
		InsecureSkipVerify: true, //nolint:gosec // pinned in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no certificate presented")
			}
			leaf = cs.PeerCertificates[0]
			if got := sha256.Sum256(leaf.Raw); got != p.WantCert {
				return fmt.Errorf("%w: %s (SHA-256 %s), want SHA-256 %s", ErrWrongCert, leaf.Subject, hex.EncodeToString(got[:]), hex.EncodeToString(p.WantCert[:]))
			}
			return nil
		},
	}
	client := &http.Client{
		Timeout: o.Timeout,
		Transport: &http.Transport{
			DialContext:       func(ctx context.Context, network, _ string) (net.Conn, error) { return o.Dial(ctx, network, target) },
			TLSClientConfig:   tlsConf,
			DisableKeepAlives: true,
			ForceAttemptHTTP2: false,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	scheme := "http"
	if p.TLS {
		scheme = "https"
	}
	url := scheme + "://" + net.JoinHostPort(p.Name, strconv.Itoa(p.Port)) + p.Path
	if p.Kind == KindCert {
		url = scheme + "://" + net.JoinHostPort(p.Name, strconv.Itoa(p.Port)) + "/"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		res.Err = err
		return res
	}
	resp, err := client.Do(req)
	if leaf != nil {
		sum := sha256.Sum256(leaf.Raw)
		res.Cert = &Cert{Subject: leaf.Subject.String(), SHA256: hex.EncodeToString(sum[:]), NotAfter: leaf.NotAfter,
			DaysLeft: int(leaf.NotAfter.Sub(o.Now()).Hours() / 24)}
	}
	if err != nil {
		res.Err = fmt.Errorf("%s on %s: %w", p, target, err)
		return res
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	res.Status = resp.StatusCode
	switch p.Kind {
	case KindHealth:
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			res.Err = fmt.Errorf("%s on %s: HTTP %d, want 2xx", p, target, resp.StatusCode)
		}
	case KindRedirect:
		want := "https://" + p.Name
		if p.RedirectPort != 443 {
			want += ":" + strconv.Itoa(p.RedirectPort)
		}
		loc := resp.Header.Get("Location")
		if (resp.StatusCode != http.StatusMovedPermanently && resp.StatusCode != http.StatusPermanentRedirect) || !strings.HasPrefix(loc, want+"/") {
			res.Err = fmt.Errorf("%s on %s: HTTP %d to %q, want 301 to %s/…", p, target, resp.StatusCode, loc, want)
		}
	}
	// KindCert: the handshake was the check; any HTTP answer will do.
	return res
}

// CheckAll runs every probe against host, in order, and returns every
// result; the first failure does not stop the others (a report names all).
func CheckAll(ctx context.Context, host string, probes []Probe, o Options) []Result {
	out := make([]Result, 0, len(probes))
	for _, p := range probes {
		out = append(out, Check(ctx, host, p, o))
	}
	return out
}
