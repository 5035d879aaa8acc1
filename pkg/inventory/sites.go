package inventory

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// The serving layer: what the balancers of a cluster serve. A cluster
// without site, pool, stream and snippets blocks has an empty Serving and
// renders exactly the catch-all site of before.
//
//	pool "shop" {
//	  keepalive = 16
//	  server "10.0.0.41:8080" { weight = 2 }
//	  server "10.0.0.43:8080" { backup = true }
//	}
//	site "shop" {
//	  server_names = ["shop.example.com"]
//	  tls {
//	    certificate = "tls/shop.crt"        # relative to the inventory file
//	    key         = env("SHOP_TLS_KEY")   # a path, or the PEM itself
//	  }
//	  location "/" { pool = "shop" }
//	}
//	stream "postgres" { listen = 5432  pool = "pg" }
//	snippets { dir = "nginx-snippets" }

// Serving defaults.
const (
	DefaultHTTPPort   = 80
	DefaultHTTPSPort  = 443
	DefaultHealthPath = "/"

	BalanceRoundRobin = "round_robin"
	BalanceLeastConn  = "least_conn"
	BalanceIPHash     = "ip_hash"

	ProtoTCP = "tcp"
	ProtoUDP = "udp"
)

// Serving is one cluster's sites, pools, stream proxies and snippets.
type Serving struct {
	Sites    []*Site
	Pools    []*Pool
	Streams  []*Stream
	Snippets *Snippets // nil without a snippets block
}

// Empty reports whether the cluster serves only hactl's catch-all site.
func (s *Serving) Empty() bool {
	return len(s.Sites) == 0 && len(s.Pools) == 0 && len(s.Streams) == 0 && s.Snippets == nil
}

// Site is one nginx virtual server (a file of its own on every host).
type Site struct {
	Name        string
	ServerNames []string
	// HTTP is the plain listen port (0: none); HTTPS the TLS one (0: none,
	// which is the case exactly when TLS is nil).
	HTTP, HTTPS int
	HTTP2       bool
	// RedirectHTTPS: the plain listener only answers 301 to HTTPS.
	RedirectHTTPS bool
	// HealthPath is what a check of the site asks for (through the site).
	HealthPath string
	// Includes are snippet files included in the site's server blocks.
	Includes  []string
	TLS       *TLS
	Locations []*Location

	DefRange hcl.Range
	Ranges   map[string]hcl.Range
}

// Range returns where attribute name was set, falling back to the block header.
func (s *Site) Range(name string) hcl.Range { return rangeOr(s.Ranges, name, s.DefRange) }

// Ports lists the site's listen ports: HTTP, then HTTPS, those that are set.
func (s *Site) Ports() []int {
	var ps []int
	for _, p := range []int{s.HTTP, s.HTTPS} {
		if p != 0 {
			ps = append(ps, p)
		}
	}
	return ps
}

// TLS is a site's certificate (chain) and private key, read on the control
// machine. The key is a Secret: it prints as "(sensitive)".
type TLS struct {
	CertPEM []byte
	Key     Secret
	// Chain is the parsed certificate file, leaf first.
	Chain []*x509.Certificate
	// CertFrom and KeyFrom say where the PEM came from ("tls/shop.crt", or
	// "the value of certificate" when the inventory gave the PEM itself).
	CertFrom, KeyFrom string

	DefRange hcl.Range
	Ranges   map[string]hcl.Range
}

// Leaf is the site's own certificate (nil when the file held none).
func (t *TLS) Leaf() *x509.Certificate {
	if len(t.Chain) == 0 {
		return nil
	}
	return t.Chain[0]
}

// Location proxies a path prefix of a site to a pool.
type Location struct {
	Path     string
	Pool     string
	DefRange hcl.Range
	Ranges   map[string]hcl.Range
}

// Pool is an nginx upstream: the servers a site or a stream proxies to.
type Pool struct {
	Name      string
	Servers   []*PoolServer
	Keepalive int    // idle connections kept to the servers (HTTP only); 0: none
	Balance   string // BalanceRoundRobin, BalanceLeastConn or BalanceIPHash
	DefRange  hcl.Range
	Ranges    map[string]hcl.Range
}

// PoolServer is one upstream server; nil pointers keep nginx's defaults
// (weight 1, max_fails 1, fail_timeout 10s).
type PoolServer struct {
	Address     string
	Weight      *int
	MaxFails    *int
	FailTimeout string
	Backup      bool
	DefRange    hcl.Range
	Ranges      map[string]hcl.Range
}

// Stream is a TCP or UDP pass-through (nginx's stream module).
type Stream struct {
	Name     string
	Listen   int
	Protocol string
	Pool     string
	DefRange hcl.Range
	Ranges   map[string]hcl.Range
}

// Snippets is the escape hatch: the user's own nginx files, copied (*.conf)
// or rendered per host (*.conf.tmpl, Go text/template with SnippetView).
type Snippets struct {
	Dir   string // as written
	Files []*SnippetFile
	// HTTP names the files included at the http level (the others are
	// included by the sites that name them).
	HTTP     []string
	Vars     map[string]string
	HostVars map[string]map[string]string
	DefRange hcl.Range
	Ranges   map[string]hcl.Range
}

// SnippetFile is one file of the snippets directory.
type SnippetFile struct {
	Name     string // on the host: the file's name without ".tmpl"
	Source   string // the file on the control machine
	Text     string
	Template bool
}

// File returns the snippet named name, or nil.
func (s *Snippets) File(name string) *SnippetFile {
	if s == nil {
		return nil
	}
	for _, f := range s.Files {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// --- HCL schema -----------------------------------------------------------------

type siteSchema struct {
	Name          string            `hcl:"name,label"`
	ServerNames   []string          `hcl:"server_names,optional"`
	HTTP          *int              `hcl:"http,optional"`
	HTTPS         *int              `hcl:"https,optional"`
	HTTP2         *bool             `hcl:"http2,optional"`
	RedirectHTTPS *bool             `hcl:"redirect_https,optional"`
	HealthPath    *string           `hcl:"health_path,optional"`
	Include       []string          `hcl:"include,optional"`
	TLS           []*tlsSchema      `hcl:"tls,block"`
	Locations     []*locationSchema `hcl:"location,block"`
	Body          hcl.Body          `hcl:",body"`
	DefRange      hcl.Range         `hcl:",def_range"`
}

// tlsSchema keeps the expressions: they are evaluated by buildTLS, so a PEM
// given through env() (newlines and all) never passes the generic value
// checks that print what they refuse, and the key never leaves a Secret.
type tlsSchema struct {
	Certificate hcl.Expression `hcl:"certificate,optional"`
	Key         hcl.Expression `hcl:"key,optional"`
	Body        hcl.Body       `hcl:",body"`
	DefRange    hcl.Range      `hcl:",def_range"`
}

type locationSchema struct {
	Path     string    `hcl:"path,label"`
	Pool     *string   `hcl:"pool,optional"`
	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type poolSchema struct {
	Name      string              `hcl:"name,label"`
	Keepalive *int                `hcl:"keepalive,optional"`
	Balance   *string             `hcl:"balance,optional"`
	Servers   []*poolServerSchema `hcl:"server,block"`
	Body      hcl.Body            `hcl:",body"`
	DefRange  hcl.Range           `hcl:",def_range"`
}

type poolServerSchema struct {
	Address     string    `hcl:"address,label"`
	Weight      *int      `hcl:"weight,optional"`
	MaxFails    *int      `hcl:"max_fails,optional"`
	FailTimeout *string   `hcl:"fail_timeout,optional"`
	Backup      *bool     `hcl:"backup,optional"`
	Body        hcl.Body  `hcl:",body"`
	DefRange    hcl.Range `hcl:",def_range"`
}

type streamSchema struct {
	Name     string    `hcl:"name,label"`
	Listen   *int      `hcl:"listen,optional"`
	Protocol *string   `hcl:"protocol,optional"`
	Pool     *string   `hcl:"pool,optional"`
	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type snippetsSchema struct {
	Dir      *string                      `hcl:"dir,optional"`
	HTTP     []string                     `hcl:"http_include,optional"`
	Vars     map[string]string            `hcl:"vars,optional"`
	HostVars map[string]map[string]string `hcl:"host_vars,optional"`
	Body     hcl.Body                     `hcl:",body"`
	DefRange hcl.Range                    `hcl:",def_range"`
}

// servingInput is what buildServing needs besides the schema.
type servingInput struct {
	dir       string // the inventory file's directory: relative paths start here
	lookupEnv func(string) (string, bool)
	readFile  func(string) ([]byte, error)
	readDir   func(string) ([]os.DirEntry, error)
}

// buildServing turns a cluster's serving blocks into c.Serving, reading the
// certificates, keys and snippet files it names. Validation follows in
// validateServing.
func buildServing(c *Cluster, rc *clusterSchema, in servingInput) hcl.Diagnostics {
	var diags hcl.Diagnostics
	s := &c.Serving
	for _, rp := range rc.Pools {
		p := &Pool{Name: rp.Name, Balance: BalanceRoundRobin, DefRange: rp.DefRange, Ranges: attrRanges(rp.Body)}
		setInt(&p.Keepalive, rp.Keepalive)
		setStr(&p.Balance, rp.Balance)
		for _, rs := range rp.Servers {
			ps := &PoolServer{Address: rs.Address, Weight: rs.Weight, MaxFails: rs.MaxFails,
				DefRange: rs.DefRange, Ranges: attrRanges(rs.Body)}
			setStr(&ps.FailTimeout, rs.FailTimeout)
			if rs.Backup != nil {
				ps.Backup = *rs.Backup
			}
			p.Servers = append(p.Servers, ps)
		}
		s.Pools = append(s.Pools, p)
	}
	for _, rs := range rc.Sites {
		site := &Site{Name: rs.Name, ServerNames: rs.ServerNames, HTTP: DefaultHTTPPort, HealthPath: DefaultHealthPath,
			Includes: rs.Include, DefRange: rs.DefRange, Ranges: attrRanges(rs.Body)}
		setInt(&site.HTTP, rs.HTTP)
		setStr(&site.HealthPath, rs.HealthPath)
		if len(rs.TLS) > 1 {
			diags = append(diags, dupBlock("tls", rs.TLS[1].DefRange, rs.TLS[0].DefRange))
		}
		if len(rs.TLS) > 0 {
			t, d := buildTLS(rs.TLS[0], in)
			diags = append(diags, d...)
			site.TLS = t
			site.HTTPS = DefaultHTTPSPort
			site.RedirectHTTPS = site.HTTP != 0
			site.HTTP2 = true
		}
		setInt(&site.HTTPS, rs.HTTPS)
		if rs.RedirectHTTPS != nil {
			site.RedirectHTTPS = *rs.RedirectHTTPS
		}
		if rs.HTTP2 != nil {
			site.HTTP2 = *rs.HTTP2
		}
		for _, rl := range rs.Locations {
			l := &Location{Path: rl.Path, DefRange: rl.DefRange, Ranges: attrRanges(rl.Body)}
			setStr(&l.Pool, rl.Pool)
			site.Locations = append(site.Locations, l)
		}
		s.Sites = append(s.Sites, site)
	}
	for _, rs := range rc.Streams {
		st := &Stream{Name: rs.Name, Protocol: ProtoTCP, DefRange: rs.DefRange, Ranges: attrRanges(rs.Body)}
		setInt(&st.Listen, rs.Listen)
		setStr(&st.Protocol, rs.Protocol)
		setStr(&st.Pool, rs.Pool)
		s.Streams = append(s.Streams, st)
	}
	if len(rc.Snippets) > 1 {
		diags = append(diags, dupBlock("snippets", rc.Snippets[1].DefRange, rc.Snippets[0].DefRange))
	}
	if len(rc.Snippets) > 0 {
		sn, d := buildSnippets(rc.Snippets[0], in)
		diags = append(diags, d...)
		s.Snippets = sn
	}
	return diags
}

// pemPrefix tells a PEM value from a path: env("SHOP_TLS_KEY") may hold either.
const pemPrefix = "-----BEGIN "

// buildTLS reads a tls block's certificate and key: each is a path
// (relative to the inventory file) or, when it starts like PEM, the PEM
// itself. Nothing it reports quotes the key's value.
func buildTLS(rt *tlsSchema, in servingInput) (*TLS, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	t := &TLS{DefRange: rt.DefRange, Ranges: attrRanges(rt.Body)}
	read := func(attr string, expr hcl.Expression) ([]byte, string, bool) {
		if expr == nil || isNull(expr) {
			diags = append(diags, errAt(rt.DefRange, "Missing "+attr,
				fmt.Sprintf("a tls block needs %s = \"<file>\" (relative to the inventory) or env(\"NAME\").", attr)))
			return nil, "", false
		}
		v, d := expr.Value(evalContext(in.lookupEnv))
		if d.HasErrors() {
			diags = append(diags, d...)
			return nil, "", false
		}
		if v.IsNull() || !v.Type().Equals(cty.String) || !v.IsKnown() {
			diags = append(diags, errAt(t.Range(attr), "Invalid "+attr, attr+" must be a string: a file name, or the PEM itself."))
			return nil, "", false
		}
		s := v.AsString()
		if strings.HasPrefix(strings.TrimSpace(s), pemPrefix) {
			return []byte(s), "the value of " + attr, true
		}
		if s == "" {
			diags = append(diags, errAt(t.Range(attr), "Empty "+attr, attr+" must name a file."))
			return nil, "", false
		}
		if i := strings.IndexFunc(s, unsafeRune); i >= 0 {
			diags = append(diags, errAt(t.Range(attr), "Control character in "+attr,
				fmt.Sprintf("the file name holds %s; control characters are refused in every value.", describeRune([]rune(s[i:])[0]))))
			return nil, "", false
		}
		p := s
		if !filepath.IsAbs(p) {
			p = filepath.Join(in.dir, p)
		}
		b, err := in.readFile(p)
		if err != nil {
			diags = append(diags, errAt(t.Range(attr), "Cannot read "+attr,
				fmt.Sprintf("%s: %v (a relative path starts at the inventory file's directory).", p, unwrapPath(err))))
			return nil, "", false
		}
		return b, p, true
	}
	cert, certFrom, certOK := read("certificate", rt.Certificate)
	key, keyFrom, keyOK := read("key", rt.Key)
	if certOK {
		t.CertPEM, t.CertFrom = cert, certFrom
		chain, err := parseChain(cert)
		if err != nil {
			diags = append(diags, errAt(t.Range("certificate"), "Invalid certificate", fmt.Sprintf("%s: %v.", certFrom, err)))
		}
		t.Chain = chain
	}
	if keyOK {
		t.Key, t.KeyFrom = NewSecret(string(key)), keyFrom
	}
	return t, diags
}

// Range returns where attribute name was set, falling back to the block header.
func (t *TLS) Range(name string) hcl.Range { return rangeOr(t.Ranges, name, t.DefRange) }

// unwrapPath drops the *PathError's own path (the message names it already).
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// isNull reports an attribute that was not written (gohcl gives a null
// literal for an absent optional expression).
func isNull(expr hcl.Expression) bool {
	if lit, ok := expr.(*hclsyntax.LiteralValueExpr); ok {
		return lit.Val.IsNull()
	}
	v, d := expr.Value(nil)
	return !d.HasErrors() && v.IsNull()
}

// parseChain reads every CERTIFICATE block of a PEM file, in order, and
// refuses anything else in it (a key pasted into the certificate file would
// be served to nobody, but copied to every host world-readable).
func parseChain(b []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	rest := b
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("holds a %q PEM block; the certificate file holds certificates only (the key goes in key)", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("holds no PEM certificate")
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, fmt.Errorf("holds text after its last certificate that is not PEM")
	}
	return chain, nil
}

// snippet file names: what nginx include lines and file paths may carry.
func snippetName(n string) (string, bool) {
	base, tmpl := strings.CutSuffix(n, ".tmpl")
	return base, snippetRE.MatchString(base) && (tmpl || strings.HasSuffix(base, ".conf"))
}

func buildSnippets(rs *snippetsSchema, in servingInput) (*Snippets, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	sn := &Snippets{HTTP: rs.HTTP, Vars: rs.Vars, HostVars: rs.HostVars, DefRange: rs.DefRange, Ranges: attrRanges(rs.Body)}
	if rs.Dir == nil || *rs.Dir == "" {
		return sn, hcl.Diagnostics{errAt(rs.DefRange, "Missing snippets dir",
			"a snippets block needs dir = \"<directory>\" (relative to the inventory) holding *.conf and *.conf.tmpl files.")}
	}
	sn.Dir = *rs.Dir
	dir := sn.Dir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(in.dir, dir)
	}
	ents, err := in.readDir(dir)
	if err != nil {
		return sn, hcl.Diagnostics{errAt(sn.Range("dir"), "Cannot read snippets dir", fmt.Sprintf("%s: %v.", dir, unwrapPath(err)))}
	}
	seen := map[string]string{}
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		name, ok := snippetName(e.Name())
		if !ok {
			if strings.HasSuffix(e.Name(), ".conf") || strings.HasSuffix(e.Name(), ".tmpl") {
				diags = append(diags, errAt(sn.Range("dir"), "Invalid snippet file name",
					fmt.Sprintf("%s: %q: a snippet is NAME.conf or NAME.conf.tmpl, NAME of letters, digits, '.', '_' and '-'.", dir, e.Name())))
			}
			continue // a README or the like: not a snippet
		}
		src := filepath.Join(dir, e.Name())
		if prev, dup := seen[name]; dup {
			diags = append(diags, errAt(sn.Range("dir"), "Duplicate snippet",
				fmt.Sprintf("%s and %s both become %s on the hosts.", prev, src, name)))
			continue
		}
		seen[name] = src
		b, err := in.readFile(src)
		if err != nil {
			diags = append(diags, errAt(sn.Range("dir"), "Cannot read snippet", fmt.Sprintf("%s: %v.", src, unwrapPath(err))))
			continue
		}
		sn.Files = append(sn.Files, &SnippetFile{Name: name, Source: src, Text: string(b), Template: strings.HasSuffix(e.Name(), ".tmpl")})
	}
	sort.Slice(sn.Files, func(i, j int) bool { return sn.Files[i].Name < sn.Files[j].Name })
	return sn, diags
}

// Range returns where attribute name was set, falling back to the block header.
func (s *Snippets) Range(name string) hcl.Range { return rangeOr(s.Ranges, name, s.DefRange) }

// serving builds and validates every cluster's serving blocks (after the
// rest of the file: pool servers are checked against the VIPs).
func (l *Loader) serving(path string, inv *Inventory, raw *fileSchema) hcl.Diagnostics {
	var diags hcl.Diagnostics
	in := servingInput{dir: filepath.Dir(path), lookupEnv: l.opts.LookupEnv, readFile: l.opts.ReadFile, readDir: l.opts.ReadDir}
	for i, c := range inv.Clusters {
		d := buildServing(c, raw.Clusters[i], in)
		diags = append(diags, d...)
		if !d.HasErrors() {
			diags = append(diags, validateServing(c, l.opts.Now())...)
		}
	}
	return diags
}

// Range returns where attribute name was set, falling back to the block header.
func (l *Location) Range(name string) hcl.Range { return rangeOr(l.Ranges, name, l.DefRange) }

// Range returns where attribute name was set, falling back to the block header.
func (p *Pool) Range(name string) hcl.Range { return rangeOr(p.Ranges, name, p.DefRange) }

// Range returns where attribute name was set, falling back to the block header.
func (s *PoolServer) Range(name string) hcl.Range { return rangeOr(s.Ranges, name, s.DefRange) }

// Range returns where attribute name was set, falling back to the block header.
func (s *Stream) Range(name string) hcl.Range { return rangeOr(s.Ranges, name, s.DefRange) }
