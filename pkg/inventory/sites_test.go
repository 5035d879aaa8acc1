package inventory

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/hactl/hactl/internal/tlstest"
)

// sitesBase is a valid one-cluster inventory with every serving block. The
// files it names are made by sitesDir at test time.
const sitesBase = `cluster "web" {
  interface = "ens192"
  gateway   = "10.11.7.2"
  auth_pass = "1111"

  host "a" {
    address = "10.11.7.231"
    vip     = "10.11.7.235/24"
  }
  host "b" {
    address = "10.11.7.232"
    vip     = "10.11.7.236/24"
  }

  pool "shop" {
    keepalive = 16
    server "10.11.7.41:8080" { weight = 2 }
    server "10.11.7.42:8080" {
      max_fails    = 3
      fail_timeout = "5s"
    }
    server "10.11.7.43:8080" { backup = true }
  }
  pool "pg" {
    balance = "least_conn"
    server "10.11.7.51:5432" {}
  }

  site "shop" {
    server_names = ["shop.example.com", "www.shop.example.com"]
    health_path  = "/healthz"
    include      = ["limits.conf"]
    tls {
      certificate = "tls/shop.crt"
      key         = "tls/shop.key"
    }
    location "/" { pool = "shop" }
  }
  site "api" {
    server_names = ["api.example.com"]
    tls {
      certificate = "tls/api.crt"
      key         = env("API_KEY")
    }
    location "/v1/" { pool = "shop" }
  }
  site "plain" {
    server_names = ["plain.example.com"]
    http         = 8080
    location "/" { pool = "shop" }
  }

  stream "postgres" {
    listen = 5432
    pool   = "pg"
  }

  snippets {
    dir          = "snippets"
    http_include = ["gzip.conf"]
    vars         = { rate = "10r/s" }
    host_vars    = { b = { rate = "20r/s" } }
  }
}
`

// sitesFixture is a directory with the inventory's certificates, keys and
// snippets, made from a test CA; env holds API_KEY (the api site's key PEM).
type sitesFixture struct {
	dir string
	env map[string]string
	ca  *tlstest.CA
}

func newSitesFixture(t testing.TB) *sitesFixture {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t)
	ca.Valid(t, "shop.example.com", "www.shop.example.com").Write(t, filepath.Join(dir, "tls"), "shop")
	api := ca.Valid(t, "api.example.com")
	api.Write(t, filepath.Join(dir, "tls"), "api")
	ca.Issue(t, []string{"shop.example.com"}, time.Now().AddDate(0, -3, 0), time.Now().AddDate(0, 0, -1)).Write(t, filepath.Join(dir, "tls"), "expired")
	ca.Issue(t, []string{"shop.example.com"}, time.Now().AddDate(0, 0, 2), time.Now().AddDate(0, 3, 0)).Write(t, filepath.Join(dir, "tls"), "future")
	ca.Issue(t, []string{"shop.example.com"}, time.Now().Add(-time.Hour), time.Now().AddDate(0, 0, 5)).Write(t, filepath.Join(dir, "tls"), "soon")
	writeFile(t, filepath.Join(dir, "tls", "enc.key"), "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n")
	writeFile(t, filepath.Join(dir, "snippets", "gzip.conf"), "gzip on;\n")
	writeFile(t, filepath.Join(dir, "snippets", "limits.conf.tmpl"), "# {{.Host}}\nlimit_req zone=perip burst={{.Vars.rate}};\n")
	writeFile(t, filepath.Join(dir, "snippets", "README"), "not a snippet\n")
	return &sitesFixture{dir: dir, env: map[string]string{"API_KEY": string(api.KeyPEM)}, ca: ca}
}

func writeFile(t testing.TB, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *sitesFixture) load(t *testing.T, src string) (*Inventory, hcl.Diagnostics) {
	t.Helper()
	lookup := func(n string) (string, bool) { v, ok := f.env[n]; return v, ok }
	return NewLoader(Options{LookupEnv: lookup}).Load(filepath.Join(f.dir, "inv.hcl"), []byte(src))
}

// TestSitesLoad reads the whole model: defaults (HTTPS 443, redirect,
// http2), pool servers with nginx's defaults left unset, the key from env()
// held as a Secret, snippets read and ordered.
func TestSitesLoad(t *testing.T) {
	f := newSitesFixture(t)
	inv, diags := f.load(t, sitesBase)
	if diags.HasErrors() {
		t.Fatalf("unexpected errors:\n%s", diagList(diags))
	}
	s := inv.Clusters[0].Serving
	if len(s.Sites) != 3 || len(s.Pools) != 2 || len(s.Streams) != 1 || s.Snippets == nil {
		t.Fatalf("serving %+v", s)
	}
	shop := s.Sites[0]
	if shop.HTTP != 80 || shop.HTTPS != 443 || !shop.RedirectHTTPS || !shop.HTTP2 || shop.HealthPath != "/healthz" {
		t.Errorf("shop %+v", shop)
	}
	if got := shop.TLS.Leaf().DNSNames; len(got) != 2 || got[0] != "shop.example.com" {
		t.Errorf("shop leaf names %v", got)
	}
	if shop.TLS.CertFrom != filepath.Join(f.dir, "tls/shop.crt") {
		t.Errorf("cert from %q", shop.TLS.CertFrom)
	}
	api := s.Sites[1]
	if api.TLS.Key.Reveal() != f.env["API_KEY"] || api.TLS.KeyFrom != "the value of key" || api.TLS.Key.String() != "(sensitive)" {
		t.Errorf("api key from %q", api.TLS.KeyFrom)
	}
	plain := s.Sites[2]
	if plain.HTTP != 8080 || plain.HTTPS != 0 || plain.RedirectHTTPS || plain.HTTP2 || plain.TLS != nil || plain.HealthPath != "/" {
		t.Errorf("plain %+v", plain)
	}
	pool := s.Pools[0]
	if pool.Keepalive != 16 || pool.Balance != BalanceRoundRobin || len(pool.Servers) != 3 {
		t.Fatalf("pool %+v", pool)
	}
	if sv := pool.Servers[0]; *sv.Weight != 2 || sv.MaxFails != nil || sv.Backup {
		t.Errorf("server 0 %+v", sv)
	}
	if sv := pool.Servers[1]; *sv.MaxFails != 3 || sv.FailTimeout != "5s" || sv.Weight != nil {
		t.Errorf("server 1 %+v", sv)
	}
	if !pool.Servers[2].Backup {
		t.Errorf("server 2 not a backup")
	}
	if st := s.Streams[0]; st.Listen != 5432 || st.Protocol != ProtoTCP || st.Pool != "pg" {
		t.Errorf("stream %+v", st)
	}
	if n := len(s.Snippets.Files); n != 2 || s.Snippets.Files[0].Name != "gzip.conf" || s.Snippets.Files[1].Name != "limits.conf" || !s.Snippets.Files[1].Template {
		t.Errorf("snippets %+v", s.Snippets.Files)
	}
	b, err := s.Snippets.Files[1].Render(SnippetViewFor(inv.Clusters[0], inv.Clusters[0].Hosts[1]))
	if err != nil || string(b) != "# b\nlimit_req zone=perip burst=20r/s;\n" {
		t.Errorf("snippet for b: %q, %v", b, err)
	}
}

// TestSitesAbsent: without serving blocks the model is empty, and the
// loader reads no file.
func TestSitesAbsent(t *testing.T) {
	read := func(p string) ([]byte, error) { t.Errorf("read %s", p); return nil, os.ErrNotExist }
	inv, diags := NewLoader(Options{LookupEnv: testEnv, ReadFile: read}).Load("inv.hcl", []byte(base))
	if diags.HasErrors() {
		t.Fatal(diagList(diags))
	}
	for _, c := range inv.Clusters {
		if !c.Serving.Empty() {
			t.Errorf("cluster %s serves %+v", c.Name, c.Serving)
		}
	}
}

// TestSitesValidation has one bad serving inventory per class; each asserts
// the summary and the line the diagnostic points at.
func TestSitesValidation(t *testing.T) {
	cases := []validationCase{
		{"cert/key mismatch", `      key         = "tls/shop.key"`, `      key         = "tls/api.key" #HERE`, "Certificate and key do not match", "tls/api.key"},
		{"expired", `      certificate = "tls/shop.crt"
      key         = "tls/shop.key"`, "      certificate = \"tls/expired.crt\" #HERE\n      key = \"tls/expired.key\"", "Certificate expired", "expired on"},
		{"not yet valid", `      certificate = "tls/shop.crt"`, "      certificate = \"tls/future.crt\" #HERE", "Certificate not yet valid", "valid from"},
		{"missing cert file", `      certificate = "tls/shop.crt"`, `      certificate = "tls/nope.crt" #HERE`, "Cannot read certificate", "no such file"},
		{"encrypted key", `      key         = "tls/shop.key"`, `      key         = "tls/enc.key" #HERE`, "Encrypted private key", "passphrase"},
		{"missing key", `      key         = "tls/shop.key"`, ``, "Missing key", ""},
		{"key unset env", `      key         = env("API_KEY")`, `      key         = env("NOPE") #HERE`, "Error in function call", `"NOPE" is not set`},
		{"key in cert file", `      certificate = "tls/shop.crt"`, `      certificate = "tls/shop.key" #HERE`, "Invalid certificate", `"PRIVATE KEY"`},
		{"undefined pool", `    location "/v1/" { pool = "shop" }`, `    location "/v1/" { pool = "shpo" } #HERE`, "Undefined pool", `"shop", "pg"`},
		{"location without pool", `    location "/v1/" { pool = "shop" }`, `    location "/v1/" {} #HERE`, "Missing pool", ""},
		{"stream undefined pool", `    pool   = "pg"`, `    pool   = "pgg" #HERE`, "Undefined pool", ""},
		{"same name same listen", `    server_names = ["api.example.com"]`, `    server_names = ["API.example.com", "shop.example.com"] #HERE`, "Duplicate server name", `site "shop"`},
		{"site name charset", `  site "plain" {`, `  site "../plain" { #HERE`, "Invalid site name", ""},
		{"site name with blank", `  site "plain" {`, `  site "pl ain" { #HERE`, "Invalid site name", ""},
		{"server name injection", `    server_names = ["plain.example.com"]`, `    server_names = ["plain.example.com; include /etc/passwd"] #HERE`, "Invalid server name", ""},
		{"server name underscore", `    server_names = ["plain.example.com"]`, `    server_names = ["_"] #HERE`, "Invalid server name", ""},
		{"location injection", `    location "/v1/" { pool = "shop" }`, `    location "/v1/ { return 200; } location /x" { pool = "shop" } #HERE`, "Invalid location", ""},
		{"duplicate location", `    location "/v1/" { pool = "shop" }`, "    location \"/v1/\" { pool = \"shop\" }\n    location \"/v1/\" { pool = \"shop\" } #HERE", "Duplicate location", ""},
		{"health path", `    health_path  = "/healthz"`, `    health_path  = "/healthz; x" #HERE`, "Invalid health_path", ""},
		{"health path relative", `    health_path  = "/healthz"`, `    health_path  = "healthz" #HERE`, "Invalid health_path", ""},
		{"https without tls", `    http         = 8080`, "    http         = 8080\n    https = 8443 #HERE", "https without tls", ""},
		{"http2 without https", `    http         = 8080`, "    http         = 8080\n    http2 = true #HERE", "http2 without HTTPS", ""},
		{"no listener", `    http         = 8080`, `    http         = 0 #HERE`, "Site without a listener", ""},
		{"port out of range", `    http         = 8080`, `    http         = 70000 #HERE`, "Invalid http port", ""},
		{"https on catch-all port", `    server_names = ["api.example.com"]`, "    server_names = [\"api.example.com\"]\n    https = 80 #HERE", "HTTPS on the catch-all port", ""},
		{"port plain and TLS", `    http         = 8080`, "    http         = 443 #HERE", "Port used for HTTP and HTTPS", ""},
		{"http2 differs", `    server_names = ["api.example.com"]`, "    server_names = [\"api.example.com\"]\n    http2 = false #HERE", "http2 differs on one port", ""},
		{"redirect without http", `    server_names = ["api.example.com"]`, "    server_names = [\"api.example.com\"]\n    http = 0\n    redirect_https = true #HERE", "redirect_https needs both listeners", ""},
		{"no server names", `    server_names = ["plain.example.com"]`, ``, "Missing server_names", ""},
		{"no locations", `    location "/" { pool = "shop" }
  }
  site "api" {`, "  }\n  site \"api\" {", "Site without locations", ""},
		{"duplicate site", `  site "plain" {`, `  site "api" { #HERE`, "Duplicate site", ""},
		{"empty pool", `    server "10.11.7.51:5432" {}`, ``, "Pool without servers", ""},
		{"bad pool server", `    server "10.11.7.51:5432" {}`, `    server "10.11.7.51" {} #HERE`, "Invalid pool server", "host:port"},
		{"pool server injection", `    server "10.11.7.51:5432" {}`, `    server "10.11.7.51:5432 down; server 1.2.3.4:80" {} #HERE`, "Invalid pool server", ""},
		{"pool server is a VIP", `    server "10.11.7.51:5432" {}`, `    server "10.11.7.235:5432" {} #HERE`, "Pool server is a VIP", `host "a"`},
		{"duplicate pool server", `    server "10.11.7.51:5432" {}`, "    server \"10.11.7.51:5432\" {}\n    server \"10.11.7.51:5432\" {} #HERE", "Duplicate pool server", ""},
		{"weight zero", `    server "10.11.7.41:8080" { weight = 2 }`, `    server "10.11.7.41:8080" { weight = 0 } #HERE`, "Invalid weight", ""},
		{"max_fails negative", `      max_fails    = 3`, `      max_fails    = -1 #HERE`, "Invalid max_fails", ""},
		{"fail_timeout", `      fail_timeout = "5s"`, `      fail_timeout = "5 s" #HERE`, "Invalid fail_timeout", ""},
		{"keepalive zero", `    keepalive = 16`, `    keepalive = 0 #HERE`, "Invalid keepalive", ""},
		{"balance", `    balance = "least_conn"`, `    balance = "random" #HERE`, "Invalid balance", ""},
		{"ip_hash with backup", `    keepalive = 16`, "    keepalive = 16\n    balance = \"ip_hash\"", "backup with ip_hash", "invalid parameter backup"},
		{"backups only", `    server "10.11.7.51:5432" {}`, `    server "10.11.7.51:5432" { backup = true }`, "Pool of backups only", ""},
		{"duplicate pool", `  pool "pg" {`, `  pool "shop" { #HERE`, "Duplicate pool", ""},
		{"stream protocol", `    listen = 5432`, "    listen = 5432\n    protocol = \"sctp\" #HERE", "Invalid protocol", ""},
		{"stream on a site port", `    listen = 5432`, `    listen = 8080 #HERE`, "Stream port used by a site", `site "plain"`},
		{"stream on catch-all port", `    listen = 5432`, `    listen = 80 #HERE`, "Stream port used by a site", ""},
		{"stream without listen", `    listen = 5432`, ``, "Invalid stream listen", ""},
		{"unknown site snippet", `    include      = ["limits.conf"]`, `    include      = ["nope.conf"] #HERE`, "Unknown snippet", "gzip.conf, limits.conf"},
		{"unknown http snippet", `    http_include = ["gzip.conf"]`, `    http_include = ["gzip"] #HERE`, "Unknown snippet", ""},
		{"snippets dir missing", `    dir          = "snippets"`, `    dir          = "nope" #HERE`, "Cannot read snippets dir", ""},
		{"host_vars unknown host", `    host_vars    = { b = { rate = "20r/s" } }`, `    host_vars    = { z = { rate = "20r/s" } } #HERE`, "Unknown host in host_vars", ""},
		{"template misses a var", `    vars         = { rate = "10r/s" }`, `    vars         = { burst = "10r/s" }`, "Snippet template fails", `host "a"`},
		{"var with newline", `    vars         = { rate = "10r/s" }`, `    vars         = { rate = "10r/s;\ninclude x" } #HERE`, "Control character in vars", ""},
		{"control char in server name", `    server_names = ["plain.example.com"]`, `    server_names = ["plain.example.com\u001b[2J"] #HERE`, "Control character in server_names", ""},
		{"duplicate tls", `      key         = "tls/shop.key"
    }`, "      key         = \"tls/shop.key\"\n    }\n    tls { #HERE\n    }", "Duplicate tls block", ""},
	}
	f := newSitesFixture(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(sitesBase, tc.old) {
				t.Fatalf("base has no %q", tc.old)
			}
			src := strings.Replace(sitesBase, tc.old, tc.new, 1)
			inv, diags := f.load(t, src)
			if !diags.HasErrors() || inv != nil {
				t.Fatalf("no error (or an inventory) for:\n%s\n%s", src, diagList(diags))
			}
			var hit *hcl.Diagnostic
			for _, d := range diags {
				if d.Severity == hcl.DiagError && strings.Contains(d.Summary, tc.summary) && strings.Contains(d.Detail, tc.detail) {
					hit = d
					break
				}
			}
			if hit == nil {
				t.Fatalf("no diagnostic %q / %q among:\n%s", tc.summary, tc.detail, diagList(diags))
			}
			if want := markerLine(src); want > 0 {
				if hit.Subject == nil || hit.Subject.Start.Line != want || hit.Subject.Filename != filepath.Join(f.dir, "inv.hcl") {
					t.Errorf("diagnostic points at %v, want inv.hcl:%d", hit.Subject, want)
				}
			} else if hit.Subject == nil || hit.Subject.Start.Line == 0 {
				t.Errorf("diagnostic has no position: %v", hit)
			}
			// No diagnostic ever quotes a private key.
			if strings.Contains(diagList(diags), "PRIVATE KEY") && !strings.Contains(tc.name, "key in cert") {
				t.Errorf("a diagnostic shows key material:\n%s", diagList(diags))
			}
		})
	}
}

// TestSitesWarnings: a certificate close to its end, a name it does not
// cover and a name too long for nginx's default server-name hash are
// warnings, not errors: the inventory loads.
func TestSitesWarnings(t *testing.T) {
	f := newSitesFixture(t)
	src := strings.Replace(sitesBase, `      certificate = "tls/shop.crt"
      key         = "tls/shop.key"`, `      certificate = "tls/soon.crt"
      key         = "tls/soon.key"`, 1)
	inv, diags := f.load(t, src)
	if diags.HasErrors() || inv == nil {
		t.Fatalf("errors:\n%s", diagList(diags))
	}
	src = strings.Replace(src, `    server_names = ["plain.example.com"]`,
		`    server_names = ["plain.example.com", "a-rather-long-name-for-a-site.department.example.com"]`, 1)
	inv, diags = f.load(t, src)
	if diags.HasErrors() || inv == nil {
		t.Fatalf("errors:\n%s", diagList(diags))
	}
	want := map[string]bool{"Certificate expires soon": false, "Server name not in the certificate": false, "Long server name": false}
	for _, d := range diags {
		if _, ok := want[d.Summary]; ok && d.Severity == hcl.DiagWarning {
			want[d.Summary] = true
		}
	}
	for s, seen := range want {
		if !seen {
			t.Errorf("no warning %q among:\n%s", s, diagList(diags))
		}
	}
}

// TestSitesKeyNeverInDiagnostics: a key given as PEM through env() that
// does not match its certificate is reported without its value.
func TestSitesKeyNeverInDiagnostics(t *testing.T) {
	f := newSitesFixture(t)
	other := f.ca.Valid(t, "api.example.com")
	f.env["API_KEY"] = string(other.KeyPEM)
	_, diags := f.load(t, sitesBase)
	if !diags.HasErrors() {
		t.Fatal("mismatched key accepted")
	}
	body := strings.Split(strings.TrimSpace(string(other.KeyPEM)), "\n")[1]
	if list := diagList(diags); strings.Contains(list, body[:20]) || !strings.Contains(list, "the value of key") {
		t.Errorf("diagnostics:\n%s", list)
	}
}
