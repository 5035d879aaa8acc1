package render

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"

	"github.com/hactl/hactl/internal/tlstest"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/vrrp"
)

// sitesSeed is what FuzzSites varies: the values of a site, a pool server
// and a snippet variable that end up in nginx files.
type sitesSeed struct {
	site, serverName, location, poolAddr, failTimeout, healthPath, snippetVar string
}

func sitesSeeds() []sitesSeed {
	ok := sitesSeed{"shop", "shop.example.test", "/api/", "10.0.0.41:8080", "5s", "/healthz?full=1", "eu"}
	return []sitesSeed{
		ok,
		{"a.b-c_d", "*.example.test", "/", "[2001:db8::41]:80", "500ms", "/", "x y"},
		{"shop", "shop.example.test; include /etc/passwd", "/x { return 200; } location /y", "10.0.0.41:8080 down; server 1.2.3.4:80", "5s; x", "/h;", "a\nb"},
		{"../x", "_", "x", "[::1%x;}]:80", "", "h", "${x}"},
	}
}

// inventory writes the seed as an inventory (with every HCL escape its
// values need) next to a certificate, a key and a snippets directory.
func (s sitesSeed) inventory() []byte {
	q := func(v string) string { return string(hclwrite.TokensForValue(cty.StringVal(v)).Bytes()) }
	ft := ""
	if s.failTimeout != "" {
		ft = "fail_timeout = " + q(s.failTimeout)
	}
	return []byte(fmt.Sprintf(`cluster "lab" {
  interface = "eth0"
  gateway   = "198.18.0.1"
  auth_pass = "p"
  host "lab1" {
    address = "198.18.0.11"
    vip     = "198.18.0.201/24"
  }
  host "lab2" {
    address = "198.18.0.12"
    vip     = "198.18.0.202/24"
  }
  pool "app" {
    keepalive = 4
    server %s {
      weight = 2
      %s
    }
  }
  site %s {
    server_names = [%s, "fixed.example.test"]
    health_path  = %s
    include      = ["t.conf"]
    tls {
      certificate = "tls/x.crt"
      key         = "tls/x.key"
    }
    location %s { pool = "app" }
  }
  snippets {
    dir  = "snippets"
    vars = { v = %s }
  }
}
`, q(s.poolAddr), ft, q(s.site), q(s.serverName), q(s.healthPath), q(s.location), q(s.snippetVar)))
}

// FuzzSites runs serving inventories through load → layout → render: it
// never panics, an inventory that loads renders, and whatever the values,
// the nginx files mean what the inventory says: no control character, no
// quote or brace out of place (balanced blocks), server_name exactly the
// names, the location exactly its path, the pool server exactly its
// address and parameters. Snippets are the user's nginx text by design:
// only control characters are refused in them.
func FuzzSites(f *testing.F) {
	dir := f.TempDir()
	ca := tlstest.NewCA(f)
	ca.Valid(f, "x.example.test").Write(f, filepath.Join(dir, "tls"), "x")
	if err := os.MkdirAll(filepath.Join(dir, "snippets"), 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "snippets", "t.conf.tmpl"), []byte("# {{.Vars.v}}\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	for _, s := range sitesSeeds() {
		f.Add(s.site, s.serverName, s.location, s.poolAddr, s.failTimeout, s.healthPath, s.snippetVar)
	}
	r, err := New()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, site, serverName, location, poolAddr, failTimeout, healthPath, snippetVar string) {
		s := sitesSeed{site, serverName, location, poolAddr, failTimeout, healthPath, snippetVar}
		inv, diags := inventory.NewLoader(inventory.Options{}).Load(filepath.Join(dir, "inv.hcl"), s.inventory())
		if diags.HasErrors() {
			return
		}
		l, diags := vrrp.Build(inv)
		if diags.HasErrors() {
			return
		}
		files, err := r.All(inv, l)
		if err != nil {
			t.Fatalf("a valid inventory does not render: %v", err)
		}
		for _, file := range files {
			if !strings.HasPrefix(file.Path, SitesDir+"/") && file.Path != SitesInclude {
				continue
			}
			checkText(t, file)
			if filepath.Dir(file.Path) != SitesHTTPDir {
				continue
			}
			stmts := nginxStatements(t, file)
			switch file.Path {
			case SiteConf(site):
				checkStmt(t, file, stmts, "server_name", serverName+" fixed.example.test")
				checkStmt(t, file, stmts, "location", location)
			case PoolsConf:
				params := ` weight=2`
				if failTimeout != "" {
					params += " fail_timeout=" + failTimeout
				}
				checkStmt(t, file, stmts, "server", poolAddr+params)
			}
		}
	})
}

// TestSitesFuzzSeeds: the first seed is a valid inventory (the fuzzer
// starts from one that reaches the renderer), the injection seeds are not.
func TestSitesFuzzSeeds(t *testing.T) {
	dir := t.TempDir()
	tlstest.NewCA(t).Valid(t, "x.example.test").Write(t, filepath.Join(dir, "tls"), "x")
	if err := os.MkdirAll(filepath.Join(dir, "snippets"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "snippets", "t.conf.tmpl"), []byte("# {{.Vars.v}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, s := range sitesSeeds() {
		_, diags := inventory.NewLoader(inventory.Options{}).Load(filepath.Join(dir, "inv.hcl"), s.inventory())
		if valid := !diags.HasErrors(); valid != (i < 2) {
			t.Errorf("seed %d: valid %t: %v", i, valid, diags)
		}
	}
}

type nginxStmt struct {
	depth int
	words []string
}

var nginxWord = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s;{}#"']+`)

// nginxStatements splits a file with nginx's token rules (blanks, ';', '{',
// '}', '#' comments, quoted strings) into statements, failing on
// unbalanced blocks or stray quotes.
func nginxStatements(t *testing.T, f File) []nginxStmt {
	t.Helper()
	var out []nginxStmt
	depth := 0
	var words []string
	text := string(f.Content)
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '#':
			for i < len(text) && text[i] != '\n' {
				i++
			}
			continue
		case c == ' ' || c == '\t' || c == '\n':
			i++
			continue
		case c == ';' || c == '{':
			out = append(out, nginxStmt{depth, words})
			words = nil
			if c == '{' {
				depth++
			}
			i++
			continue
		case c == '}':
			if len(words) > 0 {
				t.Fatalf("%s: statement %q without ';'", f.Path, words)
			}
			depth--
			if depth < 0 {
				t.Fatalf("%s: unbalanced }:\n%s", f.Path, f.Content)
			}
			i++
			continue
		}
		w := nginxWord.FindString(text[i:])
		if w == "" {
			t.Fatalf("%s: stray %q at %d:\n%s", f.Path, c, i, f.Content)
		}
		words = append(words, w)
		i += len(w)
	}
	if depth != 0 || len(words) > 0 {
		t.Fatalf("%s: unbalanced or unterminated:\n%s", f.Path, f.Content)
	}
	return out
}

// checkStmt requires at least one statement named name, and every such
// statement to read exactly as name + " " + want.
func checkStmt(t *testing.T, f File, stmts []nginxStmt, name, want string) {
	t.Helper()
	n := 0
	for _, s := range stmts {
		if len(s.words) > 0 && s.words[0] == name {
			n++
			if got := strings.Join(s.words[1:], " "); got != want {
				t.Fatalf("%s: %s reads %q, want %q:\n%s", f.Path, name, got, want, f.Content)
			}
		}
	}
	if n == 0 {
		t.Fatalf("%s: no %s statement:\n%s", f.Path, name, f.Content)
	}
}
