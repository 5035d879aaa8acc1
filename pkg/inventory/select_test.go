package inventory

import (
	"slices"
	"strings"
	"testing"
)

func hostNames(hs []*Host) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return out
}

// TestSelect resolves --limit names to hosts: hosts and clusters, in file
// order, each once; unknown names and a name that is both a host and a
// cluster are errors (issue 23: `destroy --limit edge` meant host "edge"
// and took the whole cluster "edge").
func TestSelect(t *testing.T) {
	inv, diags := loadString(t, base)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, tc := range []struct {
		names []string
		want  []string
		err   string
	}{
		{nil, []string{"a", "b", "c", "d"}, ""},
		{[]string{"d", " a "}, []string{"a", "d"}, ""},
		{[]string{"api"}, []string{"c", "d"}, ""},
		{[]string{"c", "api", "web"}, []string{"a", "b", "c", "d"}, ""},
		{[]string{"a", "nope", "zz"}, nil, "no host or cluster named nope, zz in inv.hcl"},
	} {
		got, err := Select(inv, tc.names)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: err %v, want %q", tc.names, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(hostNames(got), tc.want) {
			t.Errorf("%q: %v %v, want %v", tc.names, hostNames(got), err, tc.want)
		}
	}
	// An inventory that got past validate with a host named like a
	// cluster: neither meaning is taken.
	inv.Clusters[1].Hosts[0].Name = "web"
	for _, names := range [][]string{{"web"}, {"d", "web"}} {
		got, err := Select(inv, names)
		if err == nil || !strings.Contains(err.Error(), "web names both a host and a cluster") {
			t.Errorf("%q: %v %v, want an ambiguity error", names, hostNames(got), err)
		}
	}
}
