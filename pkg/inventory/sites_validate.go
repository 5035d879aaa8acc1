package inventory

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/hashicorp/hcl/v2"
)

var (
	// A server name nginx matches literally, or a leading-wildcard name
	// ("*.example.com"). Regular-expression names (~...) and "_" are not
	// offered: they would need nginx's own syntax checks, and the catch-all
	// is hactl's site.
	serverNameRE = regexp.MustCompile(`^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
	// A location prefix or health path: the characters of a URL path that
	// need no quoting in nginx.conf (no blanks, ';', '{', '}', quotes, '$' or '#').
	urlPathRE = regexp.MustCompile(`^/[A-Za-z0-9._~/%:@!*+,=-]*$`)
	// health_path may carry a query string too.
	healthPathRE = regexp.MustCompile(`^/[A-Za-z0-9._~/%:@!*+,=-]*(\?[A-Za-z0-9._~/%:@!*+,=&-]*)?$`)
	// nginx time: digits and a unit (ms, s, m, h, d); no unit means seconds.
	nginxTimeRE = regexp.MustCompile(`^[0-9]{1,6}(ms|s|m|h|d)?$`)
	snippetRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	varNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)
)

// LongServerName is the longest server name that fits nginx's default
// server_names_hash bucket on x86-64 (64 bytes: a pointer, then the name
// and 2 bytes aligned to 8, then the bucket's end pointer).
const LongServerName = 46

// ExpiryWarning is how close to its end a certificate gets a warning.
const ExpiryWarning = 14 * 24 * time.Hour

// validateServing checks a cluster's sites, pools, streams and snippets:
// everything nginx would refuse (or silently do differently) that can be
// known without a host. now decides whether a certificate is valid.
func validateServing(c *Cluster, now time.Time) hcl.Diagnostics {
	var diags hcl.Diagnostics
	add := func(r hcl.Range, summary, format string, args ...any) {
		diags = append(diags, errAt(r, summary, fmt.Sprintf(format, args...)))
	}
	warn := func(r hcl.Range, summary, format string, args ...any) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: rangePtr(r)})
	}
	s := &c.Serving
	used := map[string]bool{}
	// Block names become file and upstream names: a safe alphabet, unique per kind.
	defined := map[string]hcl.Range{}
	named := func(kind, name string, r hcl.Range) {
		if !nameRE.MatchString(name) {
			add(r, "Invalid "+kind+" name", "%s %q: use letters, digits, '.', '_' and '-' only (it becomes a file or upstream name on every host).", kind, name)
		}
		if prev, ok := defined[kind+" "+name]; ok {
			add(r, "Duplicate "+kind, "%s %q is already defined at %s.", kind, name, prev)
			return
		}
		defined[kind+" "+name] = r
	}

	pools := map[string]*Pool{}
	for _, p := range s.Pools {
		named("pool", p.Name, p.DefRange)
		pools[p.Name] = p
		diags = append(diags, validatePool(c, p)...)
	}
	poolRef := func(r hcl.Range, who, name string) {
		if name == "" {
			add(r, "Missing pool", "%s needs pool = \"<name of a pool block>\".", who)
			return
		}
		used[name] = true
		if pools[name] == nil {
			add(r, "Undefined pool", "%s proxies to pool %q, which cluster %q does not define (pools: %s).", who, name, c.Name, poolNames(s.Pools))
		}
	}

	type listen struct {
		port int
		name string
	}
	names := map[listen]*Site{}
	// What each port is, for the listening socket must agree across servers.
	type portUse struct {
		https bool
		http2 bool
		site  *Site
	}
	ports := map[int]portUse{}
	for _, site := range s.Sites {
		who := fmt.Sprintf("site %q", site.Name)
		named("site", site.Name, site.DefRange)
		if len(site.ServerNames) == 0 {
			add(site.Range("server_names"), "Missing server_names", "%s needs server_names = [\"example.com\", ...]: the names it answers to.", who)
		}
		for _, n := range site.ServerNames {
			switch {
			case len(n) > 253 || !serverNameRE.MatchString(n):
				add(site.Range("server_names"), "Invalid server name",
					"%s: %q is not a host name (letters, digits, '-' and '.', optionally a leading \"*.\").", who, n)
			case len(n) > LongServerName && !strings.HasPrefix(n, "*."): // wildcards go to another hash, level by level
				warn(site.Range("server_names"), "Long server name",
					"%s: %q has %d characters; with nginx's default server_names_hash_bucket_size (64 on most x86-64 CPUs) names over %d fail `nginx -t` "+
						"(\"could not build server_names_hash\"). Put server_names_hash_bucket_size 128; in an http_include snippet if nginx.conf does not set it.",
					who, n, len(n), LongServerName)
			}
		}
		for _, p := range []struct {
			attr string
			v    int
			zero bool
		}{{"http", site.HTTP, true}, {"https", site.HTTPS, site.TLS == nil}} {
			if (p.v == 0 && !p.zero) || p.v < 0 || p.v > 65535 {
				add(site.Range(p.attr), "Invalid "+p.attr+" port", "%s: %s = %d is outside 1-65535.", who, p.attr, p.v)
			}
		}
		switch {
		case site.TLS == nil && site.HTTPS != 0:
			add(site.Range("https"), "https without tls", "%s listens for HTTPS on %d but has no tls block with its certificate and key.", who, site.HTTPS)
		case site.HTTP == 0 && site.HTTPS == 0:
			add(site.Range("http"), "Site without a listener", "%s has http = 0 and no tls block: it would listen nowhere.", who)
		case site.HTTP != 0 && site.HTTP == site.HTTPS:
			add(site.Range("https"), "Same port for HTTP and HTTPS", "%s: http and https are both %d.", who, site.HTTP)
		}
		if site.HTTP2 && site.HTTPS == 0 {
			add(site.Range("http2"), "http2 without HTTPS", "%s: hactl enables HTTP/2 on the HTTPS listener only (browsers speak HTTP/2 over TLS only).", who)
		}
		if site.RedirectHTTPS && (site.HTTPS == 0 || site.HTTP == 0) {
			add(site.Range("redirect_https"), "redirect_https needs both listeners", "%s: redirect_https sends plain HTTP (http) to HTTPS (https); it needs both ports.", who)
		}
		if !healthPathRE.MatchString(site.HealthPath) {
			add(site.Range("health_path"), "Invalid health_path",
				"%s: health_path %q must start with '/' and hold only URL path characters (no blanks, quotes, ';', '{', '}', '$', '#').", who, site.HealthPath)
		}
		for _, inc := range site.Includes {
			if s.Snippets.File(inc) == nil {
				add(site.Range("include"), "Unknown snippet", "%s includes %q, which is not a file of the snippets dir (%s).", who, inc, snippetNames(s.Snippets))
			}
		}
		if len(site.Locations) == 0 {
			add(site.DefRange, "Site without locations", "%s needs at least one location block, e.g. location \"/\" { pool = \"app\" }.", who)
		}
		paths := map[string]*Location{}
		for _, l := range site.Locations {
			if !urlPathRE.MatchString(l.Path) {
				add(l.DefRange, "Invalid location", "%s: location %q must start with '/' and hold only URL path characters (no blanks, quotes, ';', '{', '}', '$', '#', '?').", who, l.Path)
			}
			if prev, ok := paths[l.Path]; ok {
				add(l.DefRange, "Duplicate location", "%s: location %q is already defined at %s; nginx refuses duplicate locations.", who, l.Path, prev.DefRange)
			}
			paths[l.Path] = l
			poolRef(l.Range("pool"), fmt.Sprintf("%s location %q", who, l.Path), l.Pool)
		}
		if site.TLS != nil {
			diags = append(diags, validateTLS(site, now)...)
		}
		for _, port := range site.Ports() {
			https := port == site.HTTPS
			for _, n := range site.ServerNames {
				k := listen{port, strings.ToLower(n)}
				if prev, ok := names[k]; ok && prev != site {
					add(site.Range("server_names"), "Duplicate server name",
						"%s: %q on port %d is already served by site %q (%s); nginx would ignore one of them (\"conflicting server name\").", who, n, port, prev.Name, prev.Range("server_names"))
				} else {
					names[k] = site
				}
			}
			if port == c.Nginx.Listen && https {
				add(site.Range("https"), "HTTPS on the catch-all port",
					"%s: port %d is cluster %q's plain-HTTP nginx listen (hactl's catch-all site); one port cannot be plain and TLS at once.", who, port, c.Name)
			}
			if prev, ok := ports[port]; ok && prev.site != site {
				switch {
				case prev.https != https:
					add(site.Range(map[bool]string{true: "https", false: "http"}[https]), "Port used for HTTP and HTTPS",
						"%s: port %d is %s here but %s in site %q (%s); a listening socket is either TLS or not.",
						who, port, scheme(https), scheme(prev.https), prev.site.Name, prev.site.DefRange)
				case https && prev.http2 != site.HTTP2:
					add(site.Range("http2"), "http2 differs on one port",
						"%s: http2 is %t but site %q on the same port %d has %t; before nginx 1.25 HTTP/2 is a property of the listening socket, so set it alike.",
						who, site.HTTP2, prev.site.Name, port, prev.http2)
				}
				continue
			}
			ports[port] = portUse{https: https, http2: site.HTTP2 && https, site: site}
		}
	}

	type sock struct {
		proto string
		port  int
	}
	streams := map[sock]*Stream{}
	for _, st := range s.Streams {
		who := fmt.Sprintf("stream %q", st.Name)
		named("stream", st.Name, st.DefRange)
		if st.Protocol != ProtoTCP && st.Protocol != ProtoUDP {
			add(st.Range("protocol"), "Invalid protocol", "%s: protocol is %q; use \"tcp\" or \"udp\".", who, st.Protocol)
		}
		if st.Listen < 1 || st.Listen > 65535 {
			add(st.Range("listen"), "Invalid stream listen", "%s needs listen = <port 1-65535>; got %d.", who, st.Listen)
		}
		k := sock{st.Protocol, st.Listen}
		if prev, ok := streams[k]; ok {
			add(st.Range("listen"), "Duplicate stream listen", "%s: %s port %d is already stream %q's (%s).", who, st.Protocol, st.Listen, prev.Name, prev.Range("listen"))
		}
		streams[k] = st
		if st.Protocol == ProtoTCP {
			if u, ok := ports[st.Listen]; ok {
				add(st.Range("listen"), "Stream port used by a site", "%s: TCP port %d is site %q's; nginx cannot bind one port twice.", who, st.Listen, u.site.Name)
			} else if st.Listen == c.Nginx.Listen {
				add(st.Range("listen"), "Stream port used by a site", "%s: TCP port %d is cluster %q's nginx listen (hactl's catch-all site).", who, st.Listen, c.Name)
			}
		}
		poolRef(st.Range("pool"), who, st.Pool)
	}
	for _, p := range s.Pools {
		if !used[p.Name] {
			warn(p.DefRange, "Unused pool", "pool %q is used by no location and no stream; it is rendered all the same.", p.Name)
		}
	}
	diags = append(diags, validateSnippets(c)...)
	return diags
}

func scheme(https bool) string {
	if https {
		return "HTTPS"
	}
	return "plain HTTP"
}

func poolNames(ps []*Pool) string {
	var n []string
	for _, p := range ps {
		n = append(n, strconv.Quote(p.Name))
	}
	if len(n) == 0 {
		return "none"
	}
	return strings.Join(n, ", ")
}

func snippetNames(s *Snippets) string {
	if s == nil {
		return "the cluster has no snippets block"
	}
	var n []string
	for _, f := range s.Files {
		n = append(n, f.Name)
	}
	if len(n) == 0 {
		return "it holds none"
	}
	return "it holds " + strings.Join(n, ", ")
}

func validatePool(c *Cluster, p *Pool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	add := func(r hcl.Range, summary, format string, args ...any) {
		diags = append(diags, errAt(r, summary, fmt.Sprintf(format, args...)))
	}
	who := fmt.Sprintf("pool %q", p.Name)
	switch p.Balance {
	case BalanceRoundRobin, BalanceLeastConn, BalanceIPHash:
	default:
		add(p.Range("balance"), "Invalid balance", "%s: balance is %q; use %q, %q or %q.", who, p.Balance, BalanceRoundRobin, BalanceLeastConn, BalanceIPHash)
	}
	if p.Keepalive < 0 || p.Keepalive > 10000 {
		add(p.Range("keepalive"), "Invalid keepalive", "%s: keepalive %d must be 1-10000 idle connections (or absent).", who, p.Keepalive)
	} else if _, set := p.Ranges["keepalive"]; set && p.Keepalive == 0 {
		add(p.Range("keepalive"), "Invalid keepalive", "%s: keepalive = 0 is refused by nginx; leave it out for no keepalive.", who)
	}
	if len(p.Servers) == 0 {
		add(p.DefRange, "Pool without servers", "%s needs at least one server block, e.g. server \"10.0.0.41:8080\" {}; nginx refuses an empty upstream.", who)
	}
	primaries := 0
	seen := map[string]*PoolServer{}
	for _, sv := range p.Servers {
		what := fmt.Sprintf("%s server %q", who, sv.Address)
		if err := checkUpstream(sv.Address); err != nil {
			add(sv.DefRange, "Invalid pool server", "%s: %v.", what, err)
		} else if a, err := netip.ParseAddrPort(sv.Address); err == nil {
			for _, x := range c.Hosts {
				for _, v := range x.VIPs() {
					if v.Addr() == a.Addr() {
						add(sv.DefRange, "Pool server is a VIP", "%s: %s is host %q's VIP; the balancers would proxy to themselves.", what, a.Addr(), x.Name)
					}
				}
			}
		}
		if prev, ok := seen[sv.Address]; ok {
			add(sv.DefRange, "Duplicate pool server", "%s is already listed at %s.", what, prev.DefRange)
		}
		seen[sv.Address] = sv
		if sv.Weight != nil && (*sv.Weight < 1 || *sv.Weight > 1000) {
			add(sv.Range("weight"), "Invalid weight", "%s: weight %d must be 1-1000.", what, *sv.Weight)
		}
		if sv.MaxFails != nil && (*sv.MaxFails < 0 || *sv.MaxFails > 1000) {
			add(sv.Range("max_fails"), "Invalid max_fails", "%s: max_fails %d must be 0-1000 (0: never marked down).", what, *sv.MaxFails)
		}
		if _, set := sv.Ranges["fail_timeout"]; set && !nginxTimeRE.MatchString(sv.FailTimeout) {
			add(sv.Range("fail_timeout"), "Invalid fail_timeout", "%s: fail_timeout %q is not an nginx time such as \"10s\", \"500ms\" or \"1m\".", what, sv.FailTimeout)
		}
		if sv.Backup && p.Balance == BalanceIPHash {
			add(sv.Range("backup"), "backup with ip_hash", "%s: nginx refuses backup servers in an ip_hash pool (\"invalid parameter backup\").", what)
		}
		if !sv.Backup {
			primaries++
		}
	}
	if len(p.Servers) > 0 && primaries == 0 {
		add(p.DefRange, "Pool of backups only", "%s: every server is a backup, and nginx sends to a backup only when the other servers are down; mark at least one as not a backup.", who)
	}
	return diags
}

// validateTLS checks what nginx (or the first client) would refuse: a key
// that is not the certificate's, a certificate outside its validity, an
// encrypted key (nginx would ask for a passphrase at every reload).
func validateTLS(site *Site, now time.Time) hcl.Diagnostics {
	var diags hcl.Diagnostics
	t := site.TLS
	who := fmt.Sprintf("site %q", site.Name)
	leaf := t.Leaf()
	key := t.Key.Reveal()
	if leaf == nil || key == "" {
		return nil // reading them failed: already reported
	}
	if strings.Contains(key, "ENCRYPTED") || strings.Contains(key, "Proc-Type: 4,ENCRYPTED") {
		return hcl.Diagnostics{errAt(t.Range("key"), "Encrypted private key",
			fmt.Sprintf("%s: the key (%s) is encrypted; nginx would ask for its passphrase on every start and reload. Store it decrypted (it is 0600 on the hosts).", who, t.KeyFrom))}
	}
	if _, err := tls.X509KeyPair(t.CertPEM, []byte(key)); err != nil {
		// The error names the mismatch or the key's format, never the key.
		summary := "Invalid private key"
		if strings.Contains(err.Error(), "does not match") {
			summary = "Certificate and key do not match"
		}
		diags = append(diags, errAt(t.Range("key"), summary,
			fmt.Sprintf("%s: the key (%s) does not go with the certificate (%s): %v.", who, t.KeyFrom, t.CertFrom, err)))
	}
	switch {
	case now.Before(leaf.NotBefore):
		diags = append(diags, errAt(t.Range("certificate"), "Certificate not yet valid",
			fmt.Sprintf("%s: %s (%s) is valid from %s only; clients would refuse it until then.", who, t.CertFrom, subject(leaf), leaf.NotBefore.UTC().Format(time.RFC3339))))
	case !now.Before(leaf.NotAfter):
		diags = append(diags, errAt(t.Range("certificate"), "Certificate expired",
			fmt.Sprintf("%s: %s (%s) expired on %s; renew it before applying.", who, t.CertFrom, subject(leaf), leaf.NotAfter.UTC().Format(time.RFC3339))))
	case leaf.NotAfter.Sub(now) < ExpiryWarning:
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Certificate expires soon",
			Detail:  fmt.Sprintf("%s: %s (%s) expires on %s, in %d day(s).", who, t.CertFrom, subject(leaf), leaf.NotAfter.UTC().Format(time.RFC3339), int(leaf.NotAfter.Sub(now).Hours()/24)),
			Subject: rangePtr(t.Range("certificate"))})
	}
	for _, n := range site.ServerNames {
		probe := n
		if strings.HasPrefix(n, "*.") {
			probe = "hactl-probe" + n[1:]
		}
		if leaf.VerifyHostname(probe) != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Server name not in the certificate",
				Detail:  fmt.Sprintf("%s: %q is not among the names of %s (%s); clients asking for it would see a certificate error.", who, n, t.CertFrom, certNames(leaf)),
				Subject: rangePtr(t.Range("certificate"))})
		}
	}
	return diags
}

func subject(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return "CN=" + c.Subject.CommonName
	}
	return c.Subject.String()
}

func certNames(c *x509.Certificate) string {
	if len(c.DNSNames) == 0 {
		return "it has no DNS names"
	}
	return strings.Join(c.DNSNames, ", ")
}

// SnippetView is what a *.conf.tmpl snippet sees for one host.
type SnippetView struct {
	Cluster, Host, Address string
	VIPs                   []string
	// Vars: the snippets block's vars, overridden by host_vars[Host].
	Vars map[string]string
}

// SnippetViewFor builds host h's view (h is a host of c).
func SnippetViewFor(c *Cluster, h *Host) SnippetView {
	v := SnippetView{Cluster: c.Name, Host: h.Name, Address: h.Address.String(), Vars: map[string]string{}}
	for _, p := range h.VIPs() {
		v.VIPs = append(v.VIPs, p.Addr().String())
	}
	if sn := c.Serving.Snippets; sn != nil {
		for k, x := range sn.Vars {
			v.Vars[k] = x
		}
		for k, x := range sn.HostVars[h.Name] {
			v.Vars[k] = x
		}
	}
	return v
}

// Render gives the snippet's content for one host: a *.conf as it is, a
// *.conf.tmpl executed with v (a missing key is an error, never "<no value>").
func (f *SnippetFile) Render(v SnippetView) ([]byte, error) {
	if !f.Template {
		return []byte(f.Text), nil
	}
	t, err := template.New(f.Source).Option("missingkey=error").Parse(f.Text)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func validateSnippets(c *Cluster) hcl.Diagnostics {
	sn := c.Serving.Snippets
	if sn == nil {
		return nil
	}
	var diags hcl.Diagnostics
	add := func(r hcl.Range, summary, format string, args ...any) {
		diags = append(diags, errAt(r, summary, fmt.Sprintf(format, args...)))
	}
	for _, n := range sn.HTTP {
		if sn.File(n) == nil {
			add(sn.Range("http_include"), "Unknown snippet", "http_include names %q, which is not a file of the snippets dir (%s).", n, snippetNames(sn))
		}
	}
	checkVars := func(attr string, vars map[string]string) {
		for _, k := range sortedStrings(vars) {
			if !varNameRE.MatchString(k) {
				add(sn.Range(attr), "Invalid variable name", "%s: %q: use letters, digits and '_' (templates read it as .Vars.%s).", attr, k, k)
			}
			if i := strings.IndexFunc(vars[k], unsafeRune); i >= 0 {
				add(sn.Range(attr), "Control character in "+attr, "%s %q holds %s; control characters are refused in every value.", attr, k, describeRune([]rune(vars[k][i:])[0]))
			}
		}
	}
	checkVars("vars", sn.Vars)
	hosts := map[string]bool{}
	for _, h := range c.Hosts {
		hosts[h.Name] = true
	}
	for _, h := range sortedStrings(sn.HostVars) {
		if !hosts[h] {
			add(sn.Range("host_vars"), "Unknown host in host_vars", "host_vars names %q, which is not a host of cluster %q.", h, c.Name)
		}
		checkVars("host_vars", sn.HostVars[h])
	}
	for _, f := range sn.Files {
		if i := strings.IndexFunc(strings.NewReplacer("\t", "", "\n", "", "\r\n", "").Replace(f.Text), unsafeRune); i >= 0 {
			add(sn.Range("dir"), "Control character in a snippet", "%s holds a control character or bytes that are not UTF-8; snippets are text.", f.Source)
			continue
		}
		if !f.Template {
			continue
		}
		// Every host's rendering, now: a template that fails on one host
		// would otherwise stop the apply halfway.
		for _, h := range c.Hosts {
			if _, err := f.Render(SnippetViewFor(c, h)); err != nil {
				add(sn.Range("dir"), "Snippet template fails", "%s for host %q: %v.", f.Source, h.Name, err)
				break
			}
		}
	}
	return diags
}

func sortedStrings[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
