//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hactl/hactl/e2e/labkit"
)

// TestMain takes down the lab that the run's last labkit.Reuse test handed on (a Fresh test's lab
// is already down by then), so that `go test -tags e2e` leaves no lab behind.
func TestMain(m *testing.M) {
	code := m.Run()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := labkit.Finish(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: taking down the handed-on lab: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
