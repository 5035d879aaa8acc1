package inventory

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the loader: it must return diagnostics,
// never panic, and never return an inventory together with errors.
// Seed corpus: the shipped inventories, the test base and testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	for _, p := range []string{"../../inventory/prod.hcl", "../../inventory/lab.hcl", "testdata/lab-dualstack.hcl", "testdata/lab-ipv6.hcl"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(base))
	f.Add([]byte(base6))
	// Sites: the files they name exist (a certificate, keys, snippets), so
	// the fuzzer reaches the serving layer's checks.
	f.Add([]byte(sitesBase))
	fx := newSitesFixture(f)
	lookup := func(n string) (string, bool) {
		if v, ok := fx.env[n]; ok {
			return v, true
		}
		return testEnv(n)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		inv, diags := NewLoader(Options{LookupEnv: lookup}).Load(filepath.Join(fx.dir, "fuzz.hcl"), src)
		if diags.HasErrors() && inv != nil {
			t.Fatalf("inventory returned with errors")
		}
		if !diags.HasErrors() && inv == nil {
			t.Fatalf("no inventory and no error")
		}
		if inv != nil {
			for _, h := range inv.Hosts() {
				if !h.Address.IsValid() || !h.VIP.IsValid() || h.VRID < 1 || h.VRID > 255 {
					t.Fatalf("invalid host passed validation: %+v", h)
				}
			}
		}
	})
}
