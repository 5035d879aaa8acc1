package inventory

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// TestRefusedInput: values that keepalived, nginx, known_hosts or a terminal
// would read differently from what the inventory says are refused, at the
// line that holds them.
func TestRefusedInput(t *testing.T) {
	const pass = `  auth_pass              = "1111"`
	const user = `  user             = "root"`
	const upstream = `    upstream = ["10.11.7.41:8080"]`
	cases := []struct {
		name, old, new, summary, detail string
	}{
		{"auth_pass with braces", pass, `  auth_pass = "ab{cd}" #HERE`, "Invalid auth_pass", AuthPassChars},
		{"auth_pass with a closing brace", pass, `  auth_pass = "ab}" #HERE`, "Invalid auth_pass", ""},
		{"auth_pass with a parameter", pass, `  auth_pass = "$_RANDOM" #HERE`, "Invalid auth_pass", ""},
		{"auth_pass with a quote", pass, `  auth_pass = "a\"b" #HERE`, "Invalid auth_pass", ""},
		{"auth_pass with a comment", pass, `  auth_pass = "ab#cd" #HERE`, "Invalid auth_pass", ""},
		{"auth_pass with a bang", pass, `  auth_pass = "ab!cd" #HERE`, "Invalid auth_pass", ""},
		{"auth_pass with ESC", pass, `  auth_pass = "a\u001bb" #HERE`, "Invalid auth_pass", ""},
		{"auth_pass with a non-ASCII letter", pass, `  auth_pass = "paß" #HERE`, "Invalid auth_pass", ""},
		{"jump_host zone with a newline", user, `  jump_host = "[::1%x\n*]:22" #HERE`, "Invalid jump_host", "control"},
		{"jump_host zone wildcard", user, `  jump_host = "[fe80::1%*]:22" #HERE`, "Invalid jump_host", "zone"},
		{"jump_host zone without port", user, `  jump_host = "fe80::1%a;b" #HERE`, "Invalid jump_host", "zone"},
		{"jump_host user with ESC", user, `  jump_host = "o\u001b[2Jps@bastion" #HERE`, "Invalid jump_host", "control"},
		{"upstream zone", upstream, `    upstream = ["[fe80::1%eth0]:8080"] #HERE`, "Invalid nginx upstream", "zone"},
		{"upstream zone with nginx text", upstream, `    upstream = ["[::1%x;}server{listen 81;}]:80"] #HERE`, "Invalid nginx upstream", "zone"},
		{"user with ESC", user, `  user = "ro\u001b[31mot" #HERE`, "Control character in user", "U+001B"},
		{"user with a newline", user, `  user = "root\nx" #HERE`, "Control character in user", "U+000A"},
		{"known_hosts_file with NUL", `  known_hosts_file = "/tmp/kh"`, `  known_hosts_file = "/tmp/k\u0000h" #HERE`, "Control character in known_hosts_file", "U+0000"},
		{"private_key_file with C1 CSI", user, `  private_key_file = "/k\u009b2J" #HERE`, "Control character in private_key_file", "U+009B"},
		{"host label with ESC", `  host "b" {`, `  host "b\u001b" { #HERE`, "Control character in name", ""},
		{"interface with a bidi override", `  interface              = "eth1"`, `  interface = "eth\u202e1" #HERE`, "Control character in interface", "U+202E"},
		{"upstream with DEL", upstream, `    upstream = ["a\u007f:80"] #HERE`, "Control character in upstream", "U+007F"},
		{"raw ESC in a comment", `cluster "api" {`, "cluster \"api\" { # \x1b[2J #HERE", "Control character in the inventory", "U+001B"},
		{"raw NUL in a string", user, "  user = \"ro\x00ot\" #HERE", "Control character in the inventory", "U+0000"},
		{"raw CR alone", user, "  user = \"root\" #HERE\rx", "Control character in the inventory", "U+000D"},
		{"raw bidi override", user, "  user = \"root\" # \u202e #HERE", "Control character in the inventory", "U+202E"},
		{"not UTF-8", user, "  user = \"ro\xffot\" #HERE", "Control character in the inventory", "not UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.old) {
				t.Fatalf("base has no %q", tc.old)
			}
			src := strings.Replace(base, tc.old, tc.new, 1)
			loader := NewLoader(Options{LookupEnv: testEnv})
			inv, diags := loader.Load("inv.hcl", []byte(src))
			if inv != nil || !diags.HasErrors() {
				t.Fatalf("accepted:\n%s", src)
			}
			var hit *hcl.Diagnostic
			for _, d := range diags {
				if strings.Contains(d.Summary, tc.summary) && strings.Contains(d.Detail, tc.detail) {
					hit = d
				}
			}
			if hit == nil {
				t.Fatalf("no diagnostic %q / %q among:\n%s", tc.summary, tc.detail, diagList(diags))
			}
			if want := markerLine(src); hit.Subject == nil || hit.Subject.Filename != "inv.hcl" || hit.Subject.Start.Line != want {
				t.Errorf("diagnostic points at %v, want inv.hcl:%d", hit.Subject, want)
			}
			assertPrintable(t, loader, diags)
		})
	}
}

// assertPrintable prints diags the way the CLI does (with source snippets)
// and requires the text to hold no control character but newlines.
func assertPrintable(t *testing.T, loader *Loader, diags hcl.Diagnostics) {
	t.Helper()
	var out bytes.Buffer
	wr := hcl.NewDiagnosticTextWriter(&out, loader.Files(), 100, false)
	if err := wr.WriteDiagnostics(diags); err != nil {
		t.Fatal(err)
	}
	for _, r := range out.String() {
		if r != '\n' && unsafeRune(r) {
			t.Fatalf("diagnostics print %U raw:\n%q", r, out.String())
		}
	}
}

func TestAcceptedInput(t *testing.T) {
	for _, tc := range []struct{ name, old, new string }{
		{"every auth_pass character", `  auth_pass              = "1111"`, `  auth_pass = "` + strings.ReplaceAll(AuthPassChars[:8], `\`, `\\`) + `"`},
		{"auth_pass with backslash and backquote", `  auth_pass              = "1111"`, "  auth_pass = \"a\\\\b`|&'\""},
		{"jump_host link-local with interface zone", `  user             = "root"`, `  jump_host = "ops@[fe80::1%eth0]:2222"`},
		{"jump_host IPv6 without port", `  user             = "root"`, `  jump_host = "fe80::1%eth0"`},
		{"CRLF line ends", "\n", "\r\n"},
		{"tabs", `  user             = "root"`, "\tuser = \"root\""},
		{"non-ASCII comment", `cluster "api" {`, `cluster "api" { # 双机热备`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.ReplaceAll(base, tc.old, tc.new)
			if _, diags := loadString(t, src); diags.HasErrors() {
				t.Fatalf("refused:\n%s", diagList(diags))
			}
		})
	}
	for i := 0; i < len(AuthPassChars); i += 8 {
		pass := AuthPassChars[i:min(i+8, len(AuthPassChars))]
		lit := strings.NewReplacer(`\`, `\\`, `%{`, `%%{`).Replace(pass)
		src := strings.Replace(base, `  auth_pass              = "1111"`, `  auth_pass = "`+lit+`"`, 1)
		inv, diags := loadString(t, src)
		if diags.HasErrors() {
			t.Fatalf("auth_pass %q refused:\n%s", pass, diagList(diags))
		}
		if got := inv.Clusters[0].AuthPass.Reveal(); got != pass {
			t.Fatalf("auth_pass %q loaded as %q", pass, got)
		}
	}
}

func TestControlCharacterFromEnv(t *testing.T) {
	src := strings.Replace(base, `  user             = "root"`, `  user = env("U") #HERE`, 1)
	env := func(name string) (string, bool) {
		if name == "U" {
			return "root\x1b]0;owned\x07", true
		}
		return testEnv(name)
	}
	loader := NewLoader(Options{LookupEnv: env})
	inv, diags := loader.Load("inv.hcl", []byte(src))
	if inv != nil || !strings.Contains(diagList(diags), "Control character in user") {
		t.Fatalf("accepted a user with an escape from env():\n%s", diagList(diags))
	}
	assertPrintable(t, loader, diags)
}
