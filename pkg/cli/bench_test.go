package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bigInventory writes one cluster of n hosts. Past 255 hosts every further
// VIP gets an out-of-range router id: n-255 diagnostics, the worst case for
// the diagnostic printer.
func bigInventory(t testing.TB, n int) string {
	var b strings.Builder
	b.WriteString("ssh {\n  user = \"root\"\n}\n\ncluster \"big\" {\n  interface = \"eth0\"\n  gateway = \"10.1.255.254\"\n" +
		"  advert_int = 1\n  virtual_router_id_base = 1\n  auth_pass = \"pass1234\"\n")
	for i := 0; i < n; i++ {
		a := 10 + i
		fmt.Fprintf(&b, "  host \"h%d\" {\n    address = \"10.1.%d.%d\"\n    vip     = \"10.1.%d.%d/16\"\n  }\n", i, a/256, a%256, 128+a/256, a%256)
	}
	b.WriteString("}\n")
	p := filepath.Join(t.TempDir(), "big.hcl")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// BenchmarkValidate2000: `hactl validate` of 2000 hosts (1745 diagnostics).
func BenchmarkValidate2000(b *testing.B) {
	p := bigInventory(b, 2000)
	for b.Loop() {
		if r := runCLI(b, nil, "validate", "-i", p); r.code != ExitUsage {
			b.Fatalf("exit %d", r.code)
		}
	}
}

func TestManyDiagnosticsCapped(t *testing.T) {
	p := bigInventory(t, 300)
	r := runCLI(t, nil, "validate", "-i", p)
	if r.code != ExitUsage {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	if n := strings.Count(r.err, "must be 1-255"); n != maxShownDiags {
		t.Errorf("%d diagnostics printed, want the first %d", n, maxShownDiags)
	}
	for _, want := range []string{`host "h255": VIP`, fmt.Sprintf("… and %d more (%d error(s)) not shown", 45-maxShownDiags, 45-maxShownDiags), "45 error(s) in the inventory"} {
		if !strings.Contains(r.err, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.err)
		}
	}
}
