package inventory

import (
	"strings"
	"testing"
	"time"
)

// TestDrainGrace: drain_grace is seconds, 0 by default, refused outside
// 0–3600 naming the file and line.
func TestDrainGrace(t *testing.T) {
	inv, diags := loadString(t, base)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if g := inv.Clusters[0].DrainGrace; g != 0 {
		t.Errorf("default drain_grace %v, want 0", g)
	}
	with := func(v string) string {
		return strings.Replace(base, "  advert_int             = 1\n", "  advert_int             = 1\n  drain_grace = "+v+"\n", 1)
	}
	inv, diags = loadString(t, with("90.5"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if g := inv.Clusters[0].DrainGrace; g != 90500*time.Millisecond {
		t.Errorf("drain_grace %v, want 1m30.5s", g)
	}
	for _, bad := range []string{"-1", "3601"} {
		_, diags = loadString(t, with(bad))
		if !diags.HasErrors() || !strings.Contains(diags.Error(), "inv.hcl:10,") || !strings.Contains(diags.Error(), "Invalid drain_grace") {
			t.Errorf("drain_grace = %s: %v", bad, diags)
		}
	}
}
