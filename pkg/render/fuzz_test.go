package render

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"

	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/vrrp"
)

// FuzzRender runs inventories through load → layout → render. The
// fuzzer varies the values a user writes (each one written as an HCL string
// with every escape it needs, so arbitrary bytes reach the validator, and
// mostly valid inventories reach the renderer; FuzzLoad covers arbitrary
// files). It must never panic; an inventory that loads and lays out must
// render; and whatever the values, the rendered files must mean what the
// inventory means: no control character in any file, balanced blocks in
// keepalived.conf and the nginx site, auth_pass as exactly one token equal
// to the secret, every upstream as exactly one server line, and Mask
// hiding each auth_pass while leaving every other line alone.
// Seed corpus: fuzzSeeds and testdata/fuzz/FuzzRender.
func FuzzRender(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s.cluster, s.iface, s.pass, s.upstream, s.host, s.address, s.vip, s.jump, s.user, s.advert, s.unicast)
	}
	r, err := New()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cluster, iface, pass, upstream, host, address, vip, jump, user string, advert float64, unicast bool) {
		src := fuzzSeed{cluster, iface, pass, upstream, host, address, vip, jump, user, advert, unicast}.inventory()
		inv, diags := inventory.NewLoader(inventory.Options{LookupEnv: fuzzEnv}).Load("fuzz.hcl", src)
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
			checkText(t, file)
			c := inv.ClusterOf(file.Host)
			switch file.Path {
			case KeepalivedConf:
				checkKeepalived(t, file, c, len(l.ForCluster(c.Name)))
			case NginxSite:
				checkNginx(t, file, c.Nginx.Upstream)
			}
		}
	})
}

// fuzzSeed is what FuzzRender varies: the first host and the cluster's
// values; two more hosts stay fixed.
type fuzzSeed struct {
	cluster, iface, pass, upstream, host, address, vip, jump, user string
	advert                                                         float64
	unicast                                                        bool
}

func fuzzSeeds() []fuzzSeed {
	lab := fuzzSeed{"lab", "eth0", "labpass1", "", "lab1", "198.18.0.11", "198.18.0.201/24", "", "root", 1, false}
	v3 := lab
	v3.advert, v3.unicast = 0.1, true
	up := lab
	up.upstream, up.jump, up.user = "[2001:db8::1]:8080", "ops@[fe80::1%eth0]:2222", "ops"
	odd := lab
	odd.pass, odd.upstream, odd.jump = `a\'&|~9`, "app.example:80", "bastion.example"
	prod := fuzzSeed{"web", "ens192", "1111", "10.11.7.41:8080", "master-node", "198.18.0.11", "198.18.0.235/24", "none", "root", 1, false}
	return []fuzzSeed{lab, v3, up, odd, prod}
}

// inventory writes the seed as an inventory file.
func (s fuzzSeed) inventory() []byte {
	q := func(v string) string { return string(hclwrite.TokensForValue(cty.StringVal(v)).Bytes()) }
	transport := "multicast"
	if s.unicast {
		transport = "unicast"
	}
	var up, jump string
	if s.upstream != "" {
		up = "upstream = [" + q(s.upstream) + ", \"10.0.0.9:80\"]"
	}
	if s.jump != "" {
		jump = "jump_host = " + q(s.jump)
	}
	return []byte(fmt.Sprintf(`ssh {
  user             = %s
  known_hosts_file = "/tmp/kh"
  %s
}
cluster %s {
  interface      = %s
  gateway        = "198.18.0.1"
  advert_int     = %s
  vrrp_transport = %q
  auth_pass      = %s
  nginx {
    %s
  }
  host %s {
    address = %s
    vip     = %s
  }
  host "fixed2" {
    vip     = "198.18.0.222/24"
    address = "198.18.0.22"
  }
  host "fixed3" {
    vip     = "198.18.0.223/24"
    address = "198.18.0.23"
  }
}
`, q(s.user), jump, q(s.cluster), q(s.iface), strconv.FormatFloat(s.advert, 'g', -1, 64), transport, q(s.pass), up, q(s.host), q(s.address), q(s.vip)))
}

func fuzzEnv(string) (string, bool) { return "", false }

// TestFuzzSeedsRender: every seed is a valid inventory, so the fuzzer starts
// from inputs that reach the renderer.
func TestFuzzSeedsRender(t *testing.T) {
	for i, seed := range fuzzSeeds() {
		inv, diags := inventory.NewLoader(inventory.Options{LookupEnv: fuzzEnv}).Load("seed.hcl", seed.inventory())
		if diags.HasErrors() {
			t.Fatalf("seed %d: %v\n%s", i, diags, seed.inventory())
		}
		if _, diags := vrrp.Build(inv); diags.HasErrors() {
			t.Fatalf("seed %d: %v", i, diags)
		}
	}
}

func checkText(t *testing.T, f File) {
	t.Helper()
	if !utf8.Valid(f.Content) {
		t.Fatalf("%s for %s is not UTF-8", f.Path, f.Host)
	}
	for _, r := range string(f.Content) {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			t.Fatalf("%s for %s holds %U:\n%s", f.Path, f.Host, r, f.Content)
		}
	}
}

func checkKeepalived(t *testing.T, f File, c *inventory.Cluster, instances int) {
	t.Helper()
	root := parseKeepalived(t, string(f.Content)) // fails on unbalanced braces
	if got := len(root.all("vrrp_instance")); got != instances {
		t.Fatalf("%s: %d vrrp_instance blocks, want %d:\n%s", f.Host, got, instances, f.Content)
	}
	pass := c.AuthPass.Reveal()
	for _, line := range strings.Split(string(f.Content), "\n") {
		toks := tokenize(line)
		if len(toks) > 0 && toks[0] == "auth_pass" && (len(toks) != 2 || toks[1] != pass) {
			t.Fatalf("%s: auth_pass line %q does not read as the secret", f.Host, line)
		}
	}
	if c.VRRPVersion() == 2 && strings.Count(string(f.Content), "auth_pass ") != instances {
		t.Fatalf("%s: want one auth_pass per instance:\n%s", f.Host, f.Content)
	}
	hid := strings.Split(string(Mask(f, f.Content)), "\n")
	orig := strings.Split(string(f.Content), "\n")
	if len(hid) != len(orig) {
		t.Fatalf("%s: masking changed the number of lines", f.Host)
	}
	for i := range orig {
		isPass := strings.HasPrefix(strings.TrimSpace(orig[i]), "auth_pass ")
		switch {
		case isPass && strings.TrimSpace(hid[i]) != "auth_pass "+masked:
			t.Fatalf("%s: %q masked as %q", f.Host, orig[i], hid[i])
		case !isPass && hid[i] != orig[i]:
			t.Fatalf("%s: masking changed %q into %q", f.Host, orig[i], hid[i])
		}
	}
}

// checkNginx reads the site with nginx's own token rules (blanks, ';', '{',
// '}', '#' comments, quoted strings) and requires balanced blocks and one
// "server <upstream>;" per upstream, in order.
func checkNginx(t *testing.T, f File, upstream []string) {
	t.Helper()
	var servers []string
	depth := 0
	var stmt []string
	var cur strings.Builder
	inQuote, comment := false, false
	flush := func() {
		if cur.Len() > 0 {
			stmt = append(stmt, cur.String())
			cur.Reset()
		}
	}
	for _, r := range string(f.Content) {
		switch {
		case comment:
			comment = r != '\n'
		case inQuote:
			if r == '"' {
				inQuote = false
			}
			cur.WriteRune(r)
		case r == '"':
			inQuote = true
			cur.WriteRune(r)
		case r == '#':
			flush()
			comment = true
		case r == ' ' || r == '\t' || r == '\n':
			flush()
		case r == '{', r == '}', r == ';':
			flush()
			if r == ';' && depth == 1 && len(stmt) == 2 && stmt[0] == "server" {
				servers = append(servers, stmt[1])
			} else if r == ';' && depth == 1 && len(stmt) > 0 && stmt[0] == "server" {
				t.Fatalf("%s: upstream statement %q", f.Host, stmt)
			}
			if r == '{' {
				depth++
			}
			if r == '}' {
				depth--
			}
			if depth < 0 {
				t.Fatalf("%s: unbalanced }:\n%s", f.Host, f.Content)
			}
			stmt = stmt[:0]
		default:
			cur.WriteRune(r)
		}
	}
	if depth != 0 || inQuote {
		t.Fatalf("%s: unbalanced nginx site:\n%s", f.Host, f.Content)
	}
	if strings.Join(servers, "\n") != strings.Join(upstream, "\n") {
		t.Fatalf("%s: upstream servers %q, want %q", f.Host, servers, upstream)
	}
}
