package render

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/hactl/hactl/pkg/inventory"
)

// The serving layer's files on a host. Everything lives under SitesDir,
// which hactl owns (a file there that the inventory no longer renders is
// removed by apply); nginx reads it through SitesInclude (http context) and,
// for stream proxies, through an include of StreamDir/*.conf that the
// playbook's nginx_sites step adds to nginx.conf's main context.
const (
	SitesDir     = "/etc/nginx/hactl"
	SitesInclude = "/etc/nginx/conf.d/hactl-sites.conf"
	SitesHTTPDir = SitesDir + "/http"
	SitesTLSDir  = SitesDir + "/tls"
	SnippetsDir  = SitesDir + "/snippets"
	StreamDir    = SitesDir + "/stream"
	StreamConf   = StreamDir + "/stream.conf"
	PoolsConf    = SitesHTTPDir + "/pools.conf"
)

// SiteConf is the file of site name.
func SiteConf(name string) string { return SitesHTTPDir + "/site-" + name + ".conf" }

// CertFile and KeyFile are a site's certificate chain and private key.
func CertFile(site string) string { return SitesTLSDir + "/" + site + ".crt" }

// KeyFile is a site's private key (0600, a Sensitive file).
func KeyFile(site string) string { return SitesTLSDir + "/" + site + ".key" }

// Upstream is the nginx upstream name of a pool. The '-' keeps it apart
// from the catch-all site's "hactl_<cluster>" whatever the names.
func Upstream(pool string) string { return "hactl-pool-" + pool }

type siteView struct {
	Cluster, Host, Name, ServerNames, HealthPath string
	IPv6, HTTP2, Redirect                        bool
	HTTP, HTTPS                                  int
	RedirectPort, Cert, Key                      string
	Includes                                     []string
	Locations                                    []locationView
}

type locationView struct{ Path, Upstream string }

type poolView struct {
	Upstream, Method string
	Servers          []string
	Keepalive        int
}

type streamView struct {
	Name, Upstream string
	Listen         int
	UDP            bool
}

// servingFiles renders what cluster c serves on host h; nothing when the
// cluster has no serving blocks (the host's files are exactly those of
// before the serving layer).
func (r *Renderer) servingFiles(c *inventory.Cluster, h *inventory.Host) ([]File, error) {
	s := &c.Serving
	if s.Empty() {
		return nil, nil
	}
	var out []File
	add := func(p string, mode fs.FileMode, content []byte, secret bool) {
		out = append(out, File{Host: h.Name, Path: p, Mode: mode, Owner: "root", Group: "root",
			Content: content, Service: "nginx", Sensitive: secret})
	}
	exec := func(p, tmpl string, view any) error {
		var b bytes.Buffer
		if err := r.t.ExecuteTemplate(&b, tmpl, view); err != nil {
			return fmt.Errorf("render %s for host %q: %w", p, h.Name, err)
		}
		add(p, 0o644, b.Bytes(), false)
		return nil
	}
	base := map[string]any{"Cluster": c.Name, "Host": h.Name, "Dir": SitesDir}
	if err := exec(SitesInclude, "nginx-sites-include.conf.tmpl", base); err != nil {
		return nil, err
	}

	// Pools in the context that uses them: a pool is an http upstream when
	// a site proxies to it, a stream upstream when a stream does (or both).
	httpPools, streamPools := map[string]bool{}, map[string]bool{}
	for _, site := range s.Sites {
		for _, l := range site.Locations {
			httpPools[l.Pool] = true
		}
	}
	for _, st := range s.Streams {
		streamPools[st.Pool] = true
	}
	var hp, sp []poolView
	for _, p := range s.Pools {
		if httpPools[p.Name] || !streamPools[p.Name] { // an unused pool renders as http
			hp = append(hp, poolFor(p, false))
		}
		if streamPools[p.Name] {
			sp = append(sp, poolFor(p, true))
		}
	}
	if len(hp) > 0 {
		if err := exec(PoolsConf, "nginx-sites-pools.conf.tmpl", map[string]any{"Cluster": c.Name, "Host": h.Name, "Pools": hp}); err != nil {
			return nil, err
		}
	}

	for _, site := range s.Sites {
		v := siteView{Cluster: c.Name, Host: h.Name, Name: site.Name, ServerNames: strings.Join(site.ServerNames, " "),
			HealthPath: site.HealthPath, IPv6: c.HasIPv6(), HTTP2: site.HTTP2, Redirect: site.RedirectHTTPS,
			HTTP: site.HTTP, HTTPS: site.HTTPS}
		if site.HTTPS != inventory.DefaultHTTPSPort {
			v.RedirectPort = fmt.Sprintf(":%d", site.HTTPS)
		}
		for _, inc := range site.Includes {
			v.Includes = append(v.Includes, SnippetsDir+"/"+inc)
		}
		for _, l := range site.Locations {
			v.Locations = append(v.Locations, locationView{Path: l.Path, Upstream: Upstream(l.Pool)})
		}
		if site.TLS != nil {
			v.Cert, v.Key = CertFile(site.Name), KeyFile(site.Name)
		}
		if err := exec(SiteConf(site.Name), "nginx-sites-site.conf.tmpl", v); err != nil {
			return nil, err
		}
		if site.TLS != nil {
			add(v.Cert, 0o644, site.TLS.CertPEM, false)
			add(v.Key, 0o600, []byte(site.TLS.Key.Reveal()), true)
		}
	}

	if sn := s.Snippets; sn != nil {
		view := inventory.SnippetViewFor(c, h)
		for _, f := range sn.Files {
			b, err := f.Render(view)
			if err != nil {
				return nil, fmt.Errorf("render snippet %s for host %q: %w", f.Source, h.Name, err)
			}
			add(SnippetsDir+"/"+f.Name, 0o644, b, false)
		}
		if len(sn.HTTP) > 0 {
			var incs []string
			for _, n := range sn.HTTP {
				incs = append(incs, SnippetsDir+"/"+n)
			}
			if err := exec(SitesHTTPDir+"/snippets.conf", "nginx-sites-snippets.conf.tmpl",
				map[string]any{"Cluster": c.Name, "Host": h.Name, "Includes": incs}); err != nil {
				return nil, err
			}
		}
	}

	if len(s.Streams) > 0 {
		var sv []streamView
		for _, st := range s.Streams {
			sv = append(sv, streamView{Name: st.Name, Upstream: Upstream(st.Pool), Listen: st.Listen, UDP: st.Protocol == inventory.ProtoUDP})
		}
		if err := exec(StreamConf, "nginx-sites-stream.conf.tmpl",
			map[string]any{"Cluster": c.Name, "Host": h.Name, "IPv6": c.HasIPv6(), "Pools": sp, "Streams": sv}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// poolFor renders a pool's server lines for the http or the stream context
// (the stream module has no keepalive, and no ip_hash: hash $remote_addr).
func poolFor(p *inventory.Pool, stream bool) poolView {
	v := poolView{Upstream: Upstream(p.Name)}
	switch p.Balance {
	case inventory.BalanceLeastConn:
		v.Method = "least_conn"
	case inventory.BalanceIPHash:
		v.Method = "ip_hash"
		if stream {
			v.Method = "hash $remote_addr consistent"
		}
	}
	if !stream {
		v.Keepalive = p.Keepalive
	}
	for _, s := range p.Servers {
		line := s.Address
		if s.Weight != nil {
			line += fmt.Sprintf(" weight=%d", *s.Weight)
		}
		if s.MaxFails != nil {
			line += fmt.Sprintf(" max_fails=%d", *s.MaxFails)
		}
		if s.FailTimeout != "" {
			line += " fail_timeout=" + s.FailTimeout
		}
		if s.Backup {
			line += " backup"
		}
		v.Servers = append(v.Servers, line)
	}
	return v
}

// maskServing shows the serving layer's TLS files the way plans and diffs
// may: a private key as a fixed line naming its public key's fingerprint (a
// key change shows, the key never does); a certificate as subject,
// SHA-256 fingerprint and dates, never PEM. ok is false for other files.
//
// It goes by the file's kind, not its directory (a playbook or a test may
// place the files elsewhere): a Sensitive ".key" file, or any Sensitive
// content holding a PEM private key, is a key; a ".crt" file a certificate.
func maskServing(f File, content []byte) ([]byte, bool) {
	switch {
	case f.Sensitive && (path.Ext(f.Path) == ".key" || bytes.Contains(content, []byte("PRIVATE KEY-----"))):
		return []byte(KeySummary(content) + "\n"), true
	case path.Ext(f.Path) == ".crt":
		return []byte(CertSummary(content)), true
	}
	return nil, false
}

// KeySummary describes a private key without any of its secret: "(sensitive)"
// and, when the key parses, the SHA-256 of its public key.
func KeySummary(content []byte) string {
	blk, _ := pem.Decode(content)
	if blk == nil {
		return masked
	}
	var pub any
	if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		pub = publicOf(k)
	} else if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		pub = &k.PublicKey
	} else if k, err := x509.ParseECPrivateKey(blk.Bytes); err == nil {
		pub = &k.PublicKey
	}
	if pub == nil {
		return masked
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return masked
	}
	sum := sha256.Sum256(der)
	return masked + " private key; public key SHA-256 " + hex.EncodeToString(sum[:])
}

// publicOf returns the public half of a parsed private key.
func publicOf(k any) any {
	if p, ok := k.(crypto.Signer); ok {
		return p.Public()
	}
	return nil
}

// CertSummary describes each certificate of a PEM chain in a few lines;
// text that is not a certificate is counted, never shown.
func CertSummary(content []byte) string {
	var b strings.Builder
	rest := content
	n := 0
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		n++
		c, err := x509.ParseCertificate(blk.Bytes)
		if blk.Type != "CERTIFICATE" || err != nil {
			fmt.Fprintf(&b, "PEM block %d: %s (not a readable certificate)\n", n, blk.Type)
			continue
		}
		sum := sha256.Sum256(c.Raw)
		fmt.Fprintf(&b, "certificate %d: subject %s\n", n, c.Subject)
		if len(c.DNSNames) > 0 {
			fmt.Fprintf(&b, "  names:   %s\n", strings.Join(c.DNSNames, ", "))
		}
		fmt.Fprintf(&b, "  issuer:  %s\n", c.Issuer)
		fmt.Fprintf(&b, "  sha256:  %s\n", fingerprint(sum[:]))
		fmt.Fprintf(&b, "  valid:   %s to %s\n", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	}
	if n == 0 && len(bytes.TrimSpace(content)) > 0 {
		fmt.Fprintf(&b, "(%d bytes that are not PEM)\n", len(content))
	}
	return b.String()
}

// fingerprint is the colon-separated upper-case hex openssl prints.
func fingerprint(b []byte) string {
	h := strings.ToUpper(hex.EncodeToString(b))
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}
