package render

import (
	"strings"
	"testing"
)

// TestMaskForms: every way keepalived.conf can carry an auth_pass (a live
// file may be hand-made) is masked in plans and diffs; the rest stays
// readable.
func TestMaskForms(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		secrets  []string // must not survive
		keep     []string // must survive
	}{
		{"rendered form", "    authentication {\n        auth_type PASS\n        auth_pass 1111\n    }\n",
			[]string{"1111"}, []string{"auth_type PASS\n", "        auth_pass (sensitive)\n    }\n"}},
		{"quoted with a blank", "auth_pass \"my secret\"\n", []string{"my", "secret"}, []string{"auth_pass (sensitive)\n"}},
		{"single quotes", "auth_pass 'my secret'\n", []string{"my", "secret"}, nil},
		{"one-line block", "    authentication { auth_type PASS auth_pass x1y2 }\n",
			[]string{"x1y2"}, []string{"authentication { auth_type PASS auth_pass (sensitive) }\n"}},
		{"one-line block without blank", "authentication {auth_type PASS\tauth_pass x1y2}\n", []string{"x1y2"}, []string{"auth_type PASS"}},
		{"brace glued to the keyword", "authentication {auth_pass x1y2 }\n", []string{"x1y2"}, []string{"{auth_pass (sensitive) }"}},
		{"tab", "\tauth_pass\tt4bsecr\n", []string{"t4bsecr"}, nil},
		{"closing brace glued to the value", "auth_pass x1y2}\n", []string{"x1y2"}, nil},
		{"trailing comment", "auth_pass x1y2 # was: old5ecr\n", []string{"x1y2", "old5ecr"}, nil},
		{"commented out", "# auth_pass old5ecr\n! auth_pass 0ld2\n", []string{"old5ecr", "0ld2"}, nil},
		{"conditional line", "@lb1 auth_pass x1y2\n@^lb1 auth_pass z9z9\n", []string{"x1y2", "z9z9"}, []string{"@lb1 auth_pass (sensitive)\n"}},
		{"CRLF", "auth_pass x1y2\r\nauth_type PASS\r\n", []string{"x1y2"}, []string{"auth_pass (sensitive)\r\nauth_type PASS\r\n"}},
		{"no newline at the end", "auth_pass x1y2", []string{"x1y2"}, nil},
		{"parameter", "$PASS=x1y2\nvrrp_instance VI_1 {\n  authentication {\n    auth_pass $PASS\n  }\n}\n",
			[]string{"x1y2"}, []string{"$PASS=(sensitive)\n", "auth_pass (sensitive)\n"}},
		{"parameter in braces, conditional, through another", "@lb1 $P=${Q}z\n$Q=x1y2\n$OTHER=10.0.0.1\nauth_pass ${P}\n",
			[]string{"x1y2"}, []string{"@lb1 $P=(sensitive)\n", "$Q=(sensitive)\n", "$OTHER=10.0.0.1\n"}},
		{"multiline definition", "$AUTH= \\\n  auth_type PASS \\\n  auth_pass x1y2\nauthentication {\n  $AUTH\n}\n",
			[]string{"x1y2"}, []string{"$AUTH= \\\n", "auth_type PASS \\\n"}},
		{"definition holding the keyword", "$A=auth_pass x1y2\nauthentication {\n  $A\n}\n", []string{"x1y2"}, []string{"$A=auth_pass (sensitive)\n"}},
		{"multiline parameter used by auth_pass", "$P= \\\n  x1y2\nauth_pass $P\n", []string{"x1y2"}, []string{"$P=(sensitive) \\\n"}},
		{"other keywords untouched", "auth_type PASS\nmy_auth_pass_file x\nauth_passive y\n", nil,
			[]string{"auth_type PASS\nmy_auth_pass_file x\nauth_passive y\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(Mask(File{Sensitive: true}, []byte(tc.in)))
			for _, s := range tc.secrets {
				if strings.Contains(got, s) {
					t.Errorf("%q survives masking:\n%s", s, got)
				}
			}
			for _, s := range tc.keep {
				if !strings.Contains(got, s) {
					t.Errorf("masked text lacks %q:\n%s", s, got)
				}
			}
			if len(tc.secrets) > 0 && !strings.Contains(got, masked) {
				t.Errorf("nothing masked:\n%s", got)
			}
		})
	}
	if got := string(Mask(File{}, []byte("auth_pass x1y2\n"))); got != "auth_pass x1y2\n" {
		t.Errorf("a file that is not sensitive was changed: %q", got)
	}
}
