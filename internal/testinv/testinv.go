// Package testinv loads the repository's example inventories for tests.
package testinv

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/vrrp"
)

// Path returns inventory/<name> in this repository, wherever the test runs.
func Path(name string) string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..", "inventory", name)
}

// Load loads inventory/<name> and builds its layout, failing the test on
// any diagnostic.
func Load(t testing.TB, name string) (*inventory.Inventory, *vrrp.Layout) {
	t.Helper()
	return LoadFile(t, Path(name))
}

// LoadFile is Load for any inventory file (testdata inventories).
func LoadFile(t testing.TB, path string) (*inventory.Inventory, *vrrp.Layout) {
	t.Helper()
	inv, d := inventory.NewLoader(inventory.Options{}).LoadFile(path)
	if d.HasErrors() {
		t.Fatal(d)
	}
	l, d := vrrp.Build(inv)
	if d.HasErrors() {
		t.Fatal(d)
	}
	return inv, l
}
