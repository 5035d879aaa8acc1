package verify

import (
	"context"
	"strings"
	"testing"

	"github.com/hactl/hactl/internal/testinv"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
)

// TestFailedCommandsAreExitErrors: every command verify runs that exits
// non-zero comes back as the exec layer's *remote.ExitError (code and
// output readable with remote.AsExit), with verify's context in the text.
func TestFailedCommandsAreExitErrors(t *testing.T) {
	fail := &remotetest.Fake{Handler: func(string, []byte) remote.Result {
		return remote.Result{ExitCode: 3, Stderr: []byte("Device \"eth9\" does not exist.")}
	}}
	inv, _ := testinv.Load(t, "lab.hcl")
	h := inv.Hosts()[0]
	host := &fleet.Host{Host: h, Cluster: inv.ClusterOf(h.Name), Conn: fail}
	_, addrErr := Addrs(context.Background(), fail, "eth9")
	for name, err := range map[string]error{
		"Addrs":       addrErr,
		"ObserveVRRP": ObserveVRRP(context.Background(), []*fleet.Host{host})[0].Err,
	} {
		e, ok := remote.AsExit(err)
		if !ok || e.Code != 3 || !strings.Contains(e.Output, "does not exist") {
			t.Errorf("%s: %v is not the exec layer's exit error", name, err)
		}
	}
	if err := ObserveVRRP(context.Background(), []*fleet.Host{host})[0].Err; !strings.Contains(err.Error(), h.Name+": ip addr show dev") {
		t.Errorf("ObserveVRRP's error lost its context: %v", err)
	}
}
