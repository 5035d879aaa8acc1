package cli

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestMistypedSecretMasked is issue 23's fifth defect: a secret under a
// mistyped name (the very line that gets a diagnostic) is starred out of
// the snippet like auth_pass itself, with or without its '='.
func TestMistypedSecretMasked(t *testing.T) {
	src, err := os.ReadFile(prod)
	if err != nil {
		t.Fatal(err)
	}
	const orig = `auth_pass       = "1111"`
	if !strings.Contains(string(src), orig) {
		t.Fatalf("%s has no %s", prod, orig)
	}
	for i, line := range []string{
		`Auth_Pass = "Sekr1tXY"`,
		`auth-pass = "Sekr1tXY"`,
		`AUTHPASS = "Sekr1tXY"`,
		`authpas = "Sekr1tXY"`,
		`auth_pass "Sekr1tXY"`,
		`auth_pass: "Sekr1tXY"`,
	} {
		// Not named after the line: the temp dir's name would hold the secret.
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "inv.hcl")
			if err := os.WriteFile(p, []byte(strings.Replace(string(src), orig, line, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			r := runCLI(t, []string{"NO_COLOR=1"}, "validate", "-i", p)
			if r.code != ExitUsage {
				t.Fatalf("exit %d, want 2: %+v", r.code, r)
			}
			if strings.Contains(r.err, "Sekr1t") || strings.Contains(r.out, "Sekr1t") {
				t.Errorf("the secret was printed:\n%s", r.err)
			}
			if name, _, _ := strings.Cut(line, " "); !strings.Contains(r.err, strings.TrimSuffix(name, ":")) {
				t.Errorf("no snippet of the line:\n%s", r.err)
			}
		})
	}
}
