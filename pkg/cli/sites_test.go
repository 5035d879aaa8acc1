package cli

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hactl/hactl/internal/tlstest"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
	"github.com/hactl/hactl/pkg/render"
	"github.com/hactl/hactl/pkg/vrrp"
)

// keyLines are the lines of a PEM key file that carry key material.
func keyLines(t *testing.T, keyFile string) []string {
	t.Helper()
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pemLines(b)
}

func pemLines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	return out
}

func noKey(t *testing.T, what, out string, lines []string) {
	t.Helper()
	for _, l := range lines {
		if strings.Contains(out, l[:16]) {
			t.Errorf("%s shows the TLS key:\n%s", what, out)
			return
		}
	}
}

// TestSitesExample: the shipped inventory/sites.hcl (with certificates
// made at test time) validates, plans offline and renders through the
// ordinary commands; the key is 0600 in the rendered tree and in no output.
func TestSitesExample(t *testing.T) {
	inv, _ := tlstest.SitesExample(t)
	env := []string{"HACTL_VRRP_PASS=labpass1", "NO_COLOR=1"}
	key := filepath.Join(filepath.Dir(inv), "tls", "shop.key")
	lines := append(keyLines(t, key), keyLines(t, filepath.Join(filepath.Dir(inv), "tls", "api.key"))...)

	r := runCLI(t, env, "validate", "-i", inv)
	if r.code != 0 || !strings.Contains(r.out, "3 host(s), 3 VIP(s)") {
		t.Fatalf("validate: %+v", r)
	}
	noKey(t, "validate", r.out+r.err, lines)
	r = runCLI(t, env, "plan", "-i", inv, "--offline", "--output", "json")
	if r.code != 0 {
		t.Fatalf("plan: %+v", r)
	}
	noKey(t, "plan --offline", r.out+r.err, lines)

	dir := t.TempDir()
	r = runCLI(t, env, "render", "-i", inv, "-o", dir, "--output", "json")
	if r.code != 0 {
		t.Fatalf("render: %+v", r)
	}
	noKey(t, "render", r.out+r.err, lines)
	var doc struct {
		Files []struct {
			Host, Path, Mode string
			Sensitive        bool
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatal(err)
	}
	keys := 0
	for _, f := range doc.Files {
		if strings.HasSuffix(f.Path, ".key") {
			keys++
			if f.Mode != "0600" || !f.Sensitive {
				t.Errorf("%s %s: mode %s sensitive %t", f.Host, f.Path, f.Mode, f.Sensitive)
			}
			st, err := os.Stat(filepath.Join(dir, f.Host, f.Path))
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("rendered %s: mode %04o", f.Path, st.Mode().Perm())
			}
		}
	}
	if keys != 6 {
		t.Errorf("%d keys rendered, want 2 sites × 3 hosts", keys)
	}
}

// TestSitesBadKeyInline: a key written into the inventory itself (a
// heredoc) that does not match its certificate fails validation with exit
// 2 and file:line, and neither the text nor the JSON diagnostics show it.
func TestSitesBadKeyInline(t *testing.T) {
	inv, ca := tlstest.SitesExample(t)
	other := ca.Valid(t, "shop.example.test")
	src, err := os.ReadFile(inv)
	if err != nil {
		t.Fatal(err)
	}
	const old = `key         = "tls/shop.key"`
	if !strings.Contains(string(src), old) {
		t.Fatalf("%s has no %s", inv, old)
	}
	bad := strings.Replace(string(src), old, "key = <<EOT\n"+string(other.KeyPEM)+"EOT\n", 1)
	if err := os.WriteFile(inv, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	lines := pemLines(other.KeyPEM)
	env := []string{"HACTL_VRRP_PASS=labpass1", "NO_COLOR=1"}
	r := runCLI(t, env, "validate", "-i", inv)
	if r.code != ExitUsage || !strings.Contains(r.err, "Certificate and key do not match") || !strings.Contains(r.err, "sites.hcl:") {
		t.Fatalf("validate: %+v", r)
	}
	noKey(t, "validate", r.out+r.err, lines)
	r = runCLI(t, env, "validate", "-i", inv, "--output", "json")
	if r.code != ExitUsage || !strings.Contains(r.out, "Certificate and key do not match") {
		t.Fatalf("validate json: %+v", r)
	}
	noKey(t, "validate --output json", r.out+r.err, lines)
}

// TestSitesStatusDrift: `status` on the example's fleet, where lab2's
// certificate of site "shop" was replaced by hand, names exactly that
// file as lab2's drift; the others have none.
func TestSitesStatusDrift(t *testing.T) {
	inv, ca := tlstest.SitesExample(t)
	handMade := ca.Valid(t, "shop.example.test").CertPEM
	loaded, diags := inventory.NewLoader(inventory.Options{LookupEnv: func(string) (string, bool) { return "labpass1", true }}).LoadFile(inv)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	lay, diags := vrrp.Build(loaded)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	r, err := render.New()
	if err != nil {
		t.Fatal(err)
	}
	pathRE := regexp.MustCompile(`for f in (.*?); do`)
	dial := func(_ context.Context, cfg remote.Config) (remote.Conn, error) {
		files, err := r.Host(loaded, lay, cfg.Name)
		if err != nil {
			return nil, err
		}
		byPath := map[string][]byte{}
		for _, f := range files {
			byPath[f.Path] = f.Content
			if cfg.Name == "lab2" && f.Path == render.CertFile("shop") {
				byPath[f.Path] = handMade
			}
		}
		modes := map[string]render.File{}
		for _, f := range files {
			modes[f.Path] = f
		}
		n := cfg.Name[len(cfg.Name)-1:]
		addrs := "2: eth0    inet 198.18.0.1" + n + "/24 brd 198.18.0.255 scope global eth0\n2: eth0    inet 198.18.0.20" + n + "/24 scope global secondary eth0\n"
		return &remotetest.Fake{Handler: func(cmd string, _ []byte) remote.Result {
			switch {
			case strings.HasPrefix(cmd, "LC_ALL=C"):
				var b strings.Builder
				b.WriteString("@@os\nID=debian\nVERSION_ID=\"12\"\n@@systemd\nyes\n@@addrs\n" + addrs +
					"@@services\nkeepalived\tactive\tenabled\nnginx\tactive\tenabled\n@@files\n")
				if m := pathRE.FindStringSubmatch(cmd); m != nil {
					for _, q := range strings.Fields(m[1]) {
						p := strings.Trim(q, "'")
						content, ok := byPath[p]
						if !ok {
							fmt.Fprintf(&b, "%s\tabsent\n", p)
							continue
						}
						sum := sha256.Sum256(content)
						fmt.Fprintf(&b, "%s\tfile\t%o root root\t%x\n", p, modes[p].Mode, sum)
					}
				}
				b.WriteString("@@end\n")
				return remote.Result{Stdout: []byte(b.String())}
			case strings.HasPrefix(cmd, "ip -o"):
				return remote.Result{Stdout: []byte(addrs)}
			}
			return remote.Result{}
		}}, nil
	}
	res := runWith(t, Deps{Dial: dial}, []string{"HACTL_VRRP_PASS=labpass1"}, "status", "-i", inv, "--output", "json")
	var doc statusJSON
	if err := json.Unmarshal([]byte(res.out), &doc); err != nil {
		t.Fatalf("%v\n%s\n%s", err, res.out, res.err)
	}
	if len(doc.Hosts) != 3 {
		t.Fatalf("hosts: %s", res.out)
	}
	for _, h := range doc.Hosts {
		want := ""
		if h.Name == "lab2" {
			want = render.CertFile("shop") + " (content)"
		}
		if got := strings.Join(h.Drift, ", "); got != want {
			t.Errorf("%s drift %q, want %q", h.Name, got, want)
		}
	}
	// Per site: the certificate's days left, and the one host serving
	// another certificate named.
	var sites struct {
		Sites []struct {
			Site       string   `json:"site"`
			DaysLeft   *int     `json:"cert_days_left"`
			Warning    bool     `json:"cert_warning"`
			Consistent *bool    `json:"consistent"`
			DriftHosts []string `json:"drift_hosts"`
		} `json:"sites"`
	}
	if err := json.Unmarshal([]byte(res.out), &sites); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range sites.Sites {
		days := "null"
		if s.DaysLeft != nil {
			days = fmt.Sprint(*s.DaysLeft)
		}
		got[s.Site] = fmt.Sprintf("days=%s warn=%v consistent=%v drift=%v", days, s.Warning, s.Consistent != nil && *s.Consistent, s.DriftHosts)
	}
	want := map[string]string{
		"status": "days=null warn=false consistent=true drift=[]",
		"shop":   "days=89 warn=false consistent=false drift=[lab2]",
		"api":    "days=89 warn=false consistent=true drift=[]",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("status sites:\n got %v\nwant %v", got, want)
	}
	text := runWith(t, Deps{Dial: dial}, []string{"HACTL_VRRP_PASS=labpass1"}, "status", "-i", inv)
	for _, s := range []string{"CERT EXPIRES", "DAYS LEFT", "DRIFT lab2: tls/shop.crt (content)", "same on every host"} {
		if !strings.Contains(text.out, s) {
			t.Errorf("status text lacks %q:\n%s", s, text.out)
		}
	}
	noKey(t, "status", res.out+res.err+text.out, keyLines(t, filepath.Join(filepath.Dir(inv), "tls", "shop.key")))
}
