package render

import (
	"bufio"
	"strings"
	"testing"
)

// node is one statement of a keepalived config: a keyword, its arguments and,
// for blocks, its children. This small parser exists only to compare configs
// by meaning (the seed's are hand-indented and order attributes freely).
type node struct {
	Key      string
	Args     []string
	Children []*node
}

func parseKeepalived(t *testing.T, src string) *node {
	t.Helper()
	root := &node{Key: "root"}
	stack := []*node{root}
	sc := bufio.NewScanner(strings.NewReader(src))
	line := 0
	for sc.Scan() {
		line++
		toks := tokenize(sc.Text())
		if len(toks) == 0 {
			continue
		}
		if toks[0] == "}" {
			if len(stack) == 1 {
				t.Fatalf("line %d: unbalanced }", line)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		n := &node{Key: toks[0]}
		open := false
		for _, tk := range toks[1:] {
			if tk == "{" {
				open = true
				continue
			}
			n.Args = append(n.Args, tk)
		}
		top := stack[len(stack)-1]
		top.Children = append(top.Children, n)
		if open {
			stack = append(stack, n)
		}
	}
	if len(stack) != 1 {
		t.Fatalf("unclosed block %q", stack[len(stack)-1].Key)
	}
	return root
}

// tokenize splits a line into words, keeps "quoted strings" whole (without
// quotes) and drops comments starting with ! or #.
func tokenize(s string) []string {
	var toks []string
	var cur strings.Builder
	inQuote := false
	flush := func() {
		if cur.Len() > 0 {
			toks = append(toks, cur.String())
			cur.Reset()
		}
	}
	for _, r := range s {
		switch {
		case inQuote && r == '"':
			inQuote = false
			toks = append(toks, cur.String())
			cur.Reset()
		case inQuote:
			cur.WriteRune(r)
		case r == '"':
			flush()
			inQuote = true
		case r == '!' || r == '#':
			flush()
			return toks
		case r == '{' || r == '}':
			flush()
			toks = append(toks, string(r))
		case r == ' ' || r == '\t':
			flush()
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	return toks
}

func (n *node) child(key string) *node {
	for _, c := range n.Children {
		if c.Key == key {
			return c
		}
	}
	return nil
}

func (n *node) all(key string) []*node {
	var out []*node
	for _, c := range n.Children {
		if c.Key == key {
			out = append(out, c)
		}
	}
	return out
}

func (n *node) arg(key string) string {
	if c := n.child(key); c != nil && len(c.Args) > 0 {
		return strings.Join(c.Args, " ")
	}
	return ""
}

// vrrpSemantics is what must match the seed per VIP.
type vrrpSemantics struct {
	State, Priority, VRID, AdvertInt, Interface string
	AuthType, AuthPass, TrackScript, Notify     string
	Prefix                                      string
}

type scriptSemantics struct{ Script, Interval, Weight, Fall, Rise string }

func semantics(t *testing.T, src string) (map[string]vrrpSemantics, map[string]scriptSemantics) {
	t.Helper()
	root := parseKeepalived(t, src)
	scripts := map[string]scriptSemantics{}
	for _, s := range root.all("vrrp_script") {
		scripts[s.Args[0]] = scriptSemantics{
			Script: s.arg("script"), Interval: s.arg("interval"), Weight: s.arg("weight"),
			Fall: s.arg("fall"), Rise: s.arg("rise"),
		}
	}
	out := map[string]vrrpSemantics{}
	for _, in := range root.all("vrrp_instance") {
		vips := in.child("virtual_ipaddress")
		if vips == nil || len(vips.Children) != 1 {
			t.Fatalf("instance %v: want exactly one VIP", in.Args)
		}
		vip := vips.Children[0].Key
		addr, prefix, _ := strings.Cut(vip, "/")
		var track []string
		if ts := in.child("track_script"); ts != nil {
			for _, c := range ts.Children {
				track = append(track, c.Key)
			}
		}
		auth := in.child("authentication")
		if auth == nil {
			t.Fatalf("instance %v: no authentication block", in.Args)
		}
		// notify_master "script VIP GW": compare the words, not the spacing
		// (the seed has double blanks in places).
		notify := strings.Join(strings.Fields(in.arg("notify_master")), " ")
		out[addr] = vrrpSemantics{
			State: in.arg("state"), Priority: in.arg("priority"), VRID: in.arg("virtual_router_id"),
			AdvertInt: in.arg("advert_int"), Interface: in.arg("interface"),
			AuthType: auth.arg("auth_type"), AuthPass: auth.arg("auth_pass"),
			TrackScript: strings.Join(track, ","), Notify: notify, Prefix: prefix,
		}
	}
	return out, scripts
}

func TestTokenize(t *testing.T) {
	got := tokenize(`  notify_master "/etc/keepalived/clean_arp.sh 10.11.7.236  10.11.7.2" ! note`)
	if len(got) != 2 || got[0] != "notify_master" || got[1] != "/etc/keepalived/clean_arp.sh 10.11.7.236  10.11.7.2" {
		t.Fatalf("tokenize: %q", got)
	}
}
