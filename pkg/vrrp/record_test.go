package vrrp

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// labInv is a lab cluster with the given hosts; "name" is lab<i> at
// 198.18.0.1<i> with VIP .20<i>; "name=vrid" sets virtual_router_id.
func labInv(t *testing.T, hosts ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("cluster \"lab\" {\n  interface = \"eth0\"\n  gateway = \"198.18.0.1\"\n  auth_pass = \"labpass1\"\n")
	for _, h := range hosts {
		name, vrid, _ := strings.Cut(h, "=")
		i := strings.TrimPrefix(name, "lab")
		fmt.Fprintf(&b, "  host %q {\n    address = \"198.18.0.1%s\"\n    vip = \"198.18.0.20%s/24\"\n", name, i, i)
		if vrid != "" {
			fmt.Fprintf(&b, "    virtual_router_id = %s\n", vrid)
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// rec is the record of a lab cluster: "lab<i>:vrid" entries.
func rec(entries ...string) *Record {
	r := &Record{SchemaVersion: RecordVersion, Cluster: "lab"}
	for _, e := range entries {
		name, vrid, _ := strings.Cut(e, ":")
		i := strings.TrimPrefix(name, "lab")
		var v int
		fmt.Sscan(vrid, &v)
		r.Hosts = append(r.Hosts, RecordHost{
			Name: name, Address: netip.MustParseAddr("198.18.0.1" + i),
			VIP: netip.MustParsePrefix("198.18.0.20" + i + "/24"), VRID: v, Instance: "VI_" + i,
		})
	}
	return r
}

// summary is "host:vrid(from) …" over the layout.
func summary(l *Layout) string {
	var parts []string
	for _, in := range l.Instances {
		parts = append(parts, fmt.Sprintf("%s:%d(%s)", in.Master, in.VRID, in.VRIDFrom))
	}
	return strings.Join(parts, " ")
}

func TestBuildWithRecordedVRIDs(t *testing.T) {
	three := rec("lab1:51", "lab2:52", "lab3:53")
	cases := []struct {
		name    string
		hosts   []string
		recs    []*Record
		decom   []string
		want    string
		retired string // names of retired hosts, comma-separated
	}{
		{"new cluster: base + index", []string{"lab1", "lab2", "lab3"}, nil, nil,
			"lab1:51(allocated) lab2:52(allocated) lab3:53(allocated)", ""},
		{"converged: recorded", []string{"lab1", "lab2", "lab3"}, []*Record{three}, nil,
			"lab1:51(recorded) lab2:52(recorded) lab3:53(recorded)", ""},
		// The issue: base + index would give lab3 52, lab2's live VRID.
		{"remove lab2, pruned: lab3 keeps 53", []string{"lab1", "lab3"}, []*Record{three}, []string{"lab2"},
			"lab1:51(recorded) lab3:53(recorded)", ""},
		{"remove lab2, not decommissioned: retired", []string{"lab1", "lab3"}, []*Record{three}, nil,
			"lab1:51(recorded) lab3:53(recorded)", "lab2"},
		{"add lab4: lowest free not recorded", []string{"lab1", "lab2", "lab3", "lab4"}, []*Record{three}, nil,
			"lab1:51(recorded) lab2:52(recorded) lab3:53(recorded) lab4:54(new)", ""},
		// lab2's 52 is still recorded in this run: a new VIP never takes the
		// id of a VIP whose old holder may still advertise it.
		{"replace lab2 by lab4 in one apply", []string{"lab1", "lab3", "lab4"}, []*Record{three}, []string{"lab2"},
			"lab1:51(recorded) lab3:53(recorded) lab4:54(new)", ""},
		{"after the prune, 52 is free again", []string{"lab1", "lab3", "lab4"}, []*Record{rec("lab1:51", "lab3:53")}, nil,
			"lab1:51(recorded) lab3:53(recorded) lab4:52(new)", ""},
		{"override wins over record", []string{"lab1", "lab2=60", "lab3"}, []*Record{three}, nil,
			"lab1:51(recorded) lab2:60(override) lab3:53(recorded)", ""},
		{"nil records are hosts without one", []string{"lab1", "lab2"}, []*Record{nil, nil}, nil,
			"lab1:51(allocated) lab2:52(allocated)", ""},
		{"first record naming a VIP wins", []string{"lab1", "lab2"}, []*Record{rec("lab1:51", "lab2:57"), rec("lab1:51", "lab2:52")}, nil,
			"lab1:51(recorded) lab2:57(recorded)", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inv := loadInv(t, labInv(t, c.hosts...))
			l, diags := BuildWith(inv, Options{Records: c.recs, Decommissioned: c.decom})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if got := summary(l); got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
			var retired []string
			for _, h := range l.Record(inv, "lab").Retired {
				retired = append(retired, h.Name)
			}
			if got := strings.Join(retired, ","); got != c.retired {
				t.Errorf("retired %q, want %q", got, c.retired)
			}
		})
	}
}

func TestBuildWithReservedClash(t *testing.T) {
	// lab3 overrides onto lab2's recorded id while lab2 is retired.
	inv := loadInv(t, labInv(t, "lab1", "lab3=52"))
	_, diags := BuildWith(inv, Options{Records: []*Record{rec("lab1:51", "lab2:52", "lab3:53")}})
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "retired host lab2") {
		t.Fatalf("want a clash naming lab2, got %v", diags)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	inv := loadInv(t, labInv(t, "lab1", "lab3"))
	l, _ := BuildWith(inv, Options{Records: []*Record{rec("lab1:51", "lab2:52", "lab3:53")}})
	b := l.Record(inv, "lab").Marshal()
	r, err := ParseRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Hosts) != 2 || r.Hosts[1].VRID != 53 || r.Hosts[1].Address.String() != "198.18.0.13" ||
		len(r.Retired) != 1 || r.Retired[0].Name != "lab2" {
		t.Fatalf("round trip: %s", b)
	}
	if strings.Contains(string(b), "labpass1") {
		t.Fatal("record carries the secret")
	}
	if r, err := ParseRecord(nil); r != nil || err != nil {
		t.Fatalf("empty: %v %v", r, err)
	}
	if _, err := ParseRecord([]byte(`{"schema_version":9}`)); err == nil {
		t.Fatal("unknown schema accepted")
	}
	for _, bad := range []string{
		`{"name":"lab1","address":"198.18.0.11","vip":"198.18.0.201/24","vrid":51,"instance":"VI_1 {\n}"}`,
		`{"name":"lab1; rm","address":"198.18.0.11","vip":"198.18.0.201/24","vrid":51}`,
		`{"name":"lab1","address":"198.18.0.11","vip":"198.18.0.201/24","vrid":300}`,
		`{"name":"lab1","vip":"198.18.0.201/24","vrid":51}`,
	} {
		if _, err := ParseRecord([]byte(`{"schema_version":1,"cluster":"lab","hosts":[` + bad + `]}`)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	d := Removed(inv, []*Record{r})
	if len(d) != 1 || d[0].Name != "lab2" || d[0].Address.String() != "198.18.0.12" {
		t.Fatalf("removed: %+v", d)
	}
	// Renamed at the same address: not removed.
	ren := loadInv(t, strings.Replace(labInv(t, "lab1", "lab2", "lab3"), `"lab2"`, `"edge2"`, 1))
	if d := Removed(ren, []*Record{rec("lab1:51", "lab2:52", "lab3:53")}); len(d) != 0 {
		t.Fatalf("rename counted as removal: %+v", d)
	}
}

// TestInstanceNamesKept: keepalived matches instances by name on reload, so
// a VIP that stays keeps its vrrp_instance name too; a new one gets the
// lowest free VI_<n>.
func TestInstanceNamesKept(t *testing.T) {
	names := func(l *Layout) string {
		var p []string
		for _, in := range l.Instances {
			p = append(p, in.Master+"="+in.Name)
		}
		return strings.Join(p, " ")
	}
	inv := loadInv(t, labInv(t, "lab1", "lab3"))
	l, _ := BuildWith(inv, Options{Records: []*Record{rec("lab1:51", "lab2:52", "lab3:53")}, Decommissioned: []string{"lab2"}})
	if got := names(l); got != "lab1=VI_1 lab3=VI_3" {
		t.Errorf("after removing lab2: %s", got)
	}
	inv = loadInv(t, labInv(t, "lab1", "lab3", "lab4"))
	l, _ = BuildWith(inv, Options{Records: []*Record{l.Record(inv, "lab")}})
	if got := names(l); got != "lab1=VI_1 lab3=VI_3 lab4=VI_2" {
		t.Errorf("adding lab4: %s", got)
	}
}
