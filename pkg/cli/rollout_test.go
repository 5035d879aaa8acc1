package cli

import (
	"testing"

	"github.com/hactl/hactl/pkg/verify"
)

func TestRolledOut(t *testing.T) {
	vip := func(v, master string, holders ...string) verify.VIPState {
		return verify.VIPState{VIP: v, Cluster: "c", Master: master, Holders: holders}
	}
	served := map[string]bool{"v1": true, "v3": true}
	for _, tc := range []struct {
		name  string
		vs    []verify.VIPState
		held  map[string]bool
		known bool
		want  bool
	}{
		{"first host of a dark cluster: others may stay unheld", []verify.VIPState{vip("v1", "h1", "h1"), vip("v2", "h2"), vip("v3", "h3")}, map[string]bool{}, true, true},
		{"own VIP not held yet", []verify.VIPState{vip("v1", "h1"), vip("v2", "h2")}, map[string]bool{}, true, false},
		{"own VIP still on a backup", []verify.VIPState{vip("v1", "h1", "h2"), vip("v2", "h2", "h2")}, served, true, false},
		{"a VIP on two hosts", []verify.VIPState{vip("v1", "h1", "h1"), vip("v2", "h2", "h1", "h2")}, map[string]bool{}, true, false},
		{"a served VIP dropped by the restart", []verify.VIPState{vip("v1", "h1", "h1"), vip("v3", "h3")}, served, true, false},
		{"served VIP back, on a backup", []verify.VIPState{vip("v1", "h1", "h1"), vip("v3", "h3", "h2")}, served, true, true},
		{"no snapshot: every VIP must be held", []verify.VIPState{vip("v1", "h1", "h1"), vip("v2", "h2")}, nil, false, false},
		{"other clusters do not count", []verify.VIPState{vip("v1", "h1", "h1"), {VIP: "x", Cluster: "d", Master: "y"}}, nil, false, true},
	} {
		if got := rolledOut(tc.vs, "c", "h1", tc.held, tc.known); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
