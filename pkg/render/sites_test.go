package render

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/hactl/hactl/internal/tlstest"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/vrrp"
	"github.com/hactl/hactl/templates"
)

func loadSitesExample(t *testing.T) (*inventory.Inventory, *vrrp.Layout) {
	t.Helper()
	path, _ := tlstest.SitesExample(t)
	l := inventory.NewLoader(inventory.Options{LookupEnv: func(n string) (string, bool) { return "labpass1", n == "HACTL_VRRP_PASS" }})
	inv, d := l.LoadFile(path)
	if d.HasErrors() {
		t.Fatalf("load %s: %v", path, d)
	}
	lay, d := vrrp.Build(inv)
	if d.HasErrors() {
		t.Fatalf("layout: %v", d)
	}
	return inv, lay
}

// TestGoldenSites renders the example inventory/sites.hcl: the nginx files
// per host are golden; the TLS files (made at test time) are the
// inventory's own bytes, the key 0600 and Sensitive.
func TestGoldenSites(t *testing.T) {
	inv, l := loadSitesExample(t)
	files := renderAll(t, inv, l)
	var golden []File
	perHost := map[string]map[string]File{}
	for _, f := range files {
		if perHost[f.Host] == nil {
			perHost[f.Host] = map[string]File{}
		}
		perHost[f.Host][f.Path] = f
		if strings.HasPrefix(f.Path, SitesDir+"/") || f.Path == SitesInclude {
			if f.Service != "nginx" || f.Owner != "root" {
				t.Errorf("%s: service %q owner %q", f.Path, f.Service, f.Owner)
			}
			if path := filepath.Dir(f.Path); path != SitesTLSDir {
				golden = append(golden, f)
			}
		}
	}
	goldenTree(t, "sites", golden)
	c := inv.Clusters[0]
	for _, h := range c.Hosts {
		got := perHost[h.Name]
		for _, p := range []string{SitesInclude, PoolsConf, SiteConf("status"), SiteConf("shop"), SiteConf("api"), StreamConf,
			SitesHTTPDir + "/snippets.conf", SnippetsDir + "/logging.conf", SnippetsDir + "/security-headers.conf"} {
			if _, ok := got[p]; !ok {
				t.Errorf("%s: no %s", h.Name, p)
			}
		}
		for _, s := range c.Serving.Sites {
			if s.TLS == nil {
				continue
			}
			crt, key := got[CertFile(s.Name)], got[KeyFile(s.Name)]
			if !bytes.Equal(crt.Content, s.TLS.CertPEM) || crt.Mode != 0o644 || crt.Sensitive {
				t.Errorf("%s: certificate %s mode %04o sensitive %t", h.Name, crt.Path, crt.Mode, crt.Sensitive)
			}
			if string(key.Content) != s.TLS.Key.Reveal() || key.Mode != 0o600 || !key.Sensitive {
				t.Errorf("%s: key %s mode %04o sensitive %t", h.Name, key.Path, key.Mode, key.Sensitive)
			}
		}
	}
	// The per-host template value.
	if s := perHost["lab1"][SnippetsDir+"/logging.conf"].Content; !bytes.Contains(s, []byte("'lab-first $host")) {
		t.Errorf("lab1 logging snippet:\n%s", s)
	}
	if s := perHost["lab2"][SnippetsDir+"/logging.conf"].Content; !bytes.Contains(s, []byte("'lab $host")) {
		t.Errorf("lab2 logging snippet:\n%s", s)
	}
}

// TestSitesVariants: IPv6 listeners, a non-default HTTPS port in the
// redirect, HTTPS only, ip_hash in both contexts (hash in stream), UDP.
func TestSitesVariants(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t)
	ca.Valid(t, "x.example.test").Write(t, filepath.Join(dir, "tls"), "x")
	src := `cluster "v6" {
  interface = "eth0"
  auth_pass = "p"
  host "a" {
    address = "2001:db8:18::11"
    vip     = "2001:db8:18::201/64"
  }
  host "b" {
    address = "2001:db8:18::12"
    vip     = "2001:db8:18::202/64"
  }
  pool "dns" {
    balance = "ip_hash"
    server "[2001:db8:18::21]:53" { weight = 3 }
  }
  site "x" {
    server_names = ["x.example.test", "*.x.example.test"]
    https        = 8443
    http2        = false
    tls {
      certificate = "tls/x.crt"
      key         = "tls/x.key"
    }
    location "/" { pool = "dns" }
  }
  site "only-tls" {
    server_names = ["y.x.example.test"]
    http         = 0
    https        = 9443
    tls {
      certificate = "tls/x.crt"
      key         = "tls/x.key"
    }
    location "/" { pool = "dns" }
  }
  stream "dns" {
    listen   = 53
    protocol = "udp"
    pool     = "dns"
  }
}
`
	l := inventory.NewLoader(inventory.Options{})
	inv, d := l.Load(filepath.Join(dir, "inv.hcl"), []byte(src))
	if d.HasErrors() {
		t.Fatal(d)
	}
	lay, d := vrrp.Build(inv)
	if d.HasErrors() {
		t.Fatal(d)
	}
	files := renderAll(t, inv, lay)
	var golden []File
	for _, f := range files {
		if f.Host == "a" && (strings.HasPrefix(f.Path, SitesHTTPDir) || strings.HasPrefix(f.Path, StreamDir)) {
			golden = append(golden, f)
		}
	}
	goldenTree(t, "sites-variants", golden)
}

// TestSitesTemplatesMissing: a --templates directory without the serving
// templates fails loudly for an inventory with sites, and renders an
// inventory without them as before.
func TestSitesTemplatesMissing(t *testing.T) {
	inv, l := loadSitesExample(t)
	own := fstestWithout(t, "nginx-sites-")
	r, err := NewFromFS(own)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.All(inv, l); err == nil || !strings.Contains(err.Error(), "nginx-sites-") {
		t.Errorf("want an error naming the missing template, got %v", err)
	}
	prod, pl := load(t, "../../inventory/prod.hcl", nil)
	if _, err := r.All(prod, pl); err != nil {
		t.Errorf("prod without sites: %v", err)
	}
}

// TestMaskTLS: in plans and diffs a key is "(sensitive)" plus its public
// key's fingerprint, a certificate its subject, names, SHA-256 fingerprint
// and dates; never PEM.
func TestMaskTLS(t *testing.T) {
	ca := tlstest.NewCA(t)
	p := ca.Valid(t, "shop.example.test")
	key := Mask(File{Path: KeyFile("shop"), Sensitive: true}, p.KeyPEM)
	if bytes.Contains(key, []byte("PRIVATE KEY")) || bytes.Contains(key, p.KeyPEM[30:60]) || !bytes.HasPrefix(key, []byte("(sensitive) private key; public key SHA-256 ")) {
		t.Errorf("key masked as %q", key)
	}
	other := Mask(File{Path: KeyFile("shop"), Sensitive: true}, ca.Valid(t, "shop.example.test").KeyPEM)
	if bytes.Equal(key, other) {
		t.Errorf("two keys mask alike: a key change would not show in a diff")
	}
	if got := Mask(File{Path: KeyFile("shop"), Sensitive: true}, []byte("garbage that is not PEM\n")); string(got) != "(sensitive)\n" {
		t.Errorf("unreadable key masked as %q", got)
	}
	crt := string(Mask(File{Path: CertFile("shop")}, p.CertPEM))
	blk, _ := pem.Decode(p.CertPEM)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(c.Raw)
	for _, want := range []string{"subject CN=shop.example.test", "names:   shop.example.test", "issuer:  CN=hactl test CA",
		"sha256:  " + fingerprint(sum[:]), c.NotAfter.UTC().Format("2006-01-02T15:04:05Z")} {
		if !strings.Contains(crt, want) {
			t.Errorf("certificate summary lacks %q:\n%s", want, crt)
		}
	}
	if strings.Contains(crt, "BEGIN") {
		t.Errorf("certificate summary shows PEM:\n%s", crt)
	}
	if len(fingerprint(sum[:])) != 95 {
		t.Errorf("fingerprint %q", fingerprint(sum[:]))
	}
	// Other files of the serving layer are shown as they are.
	if got := Mask(File{Path: SiteConf("shop")}, []byte("server {}\n")); string(got) != "server {}\n" {
		t.Errorf("site conf masked: %q", got)
	}
}

// fstestWithout is the embedded templates minus those whose name starts with prefix.
func fstestWithout(t *testing.T, prefix string) fs.FS {
	t.Helper()
	ents, err := fs.ReadDir(templates.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	m := fstest.MapFS{}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		b, err := fs.ReadFile(templates.FS, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = &fstest.MapFile{Data: b}
	}
	return m
}
