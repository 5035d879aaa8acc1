package inventory

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// base is a valid two-cluster inventory. Test cases replace one line of it;
// the line to blame carries the marker "#HERE" after replacement.
const base = `ssh {
  user             = "root"
  known_hosts_file = "/tmp/kh"
}

cluster "web" {
  interface              = "ens192"
  gateway                = "10.11.7.2"
  advert_int             = 1
  virtual_router_id_base = 51
  auth_pass              = "1111"

  health_check {
    interval = 2
    weight   = -5
    fall     = 2
    rise     = 1
  }

  nginx {
    listen   = 80
    upstream = ["10.11.7.41:8080"]
  }

  host "a" {
    address = "10.11.7.231"
    vip     = "10.11.7.235/24"
  }
  host "b" {
    address = "10.11.7.232"
    vip     = "10.11.7.236/24"
  }
}

cluster "api" {
  interface              = "eth1"
  gateway                = "10.11.8.1"
  virtual_router_id_base = 61
  auth_pass              = env("PASS")

  host "c" {
    address = "10.11.8.10"
    vip     = "10.11.8.20/24"
  }
  host "d" {
    address = "10.11.8.11"
    vip     = "10.11.8.21/24"
    virtual_router_id = 70
    ssh {
      user   = "ops"
      become = true
    }
  }
}
`

func testEnv(name string) (string, bool) {
	if name == "PASS" {
		return "s3cret", true
	}
	return "", false
}

func loadString(t *testing.T, src string) (*Inventory, hcl.Diagnostics) {
	t.Helper()
	return NewLoader(Options{LookupEnv: testEnv}).Load("inv.hcl", []byte(src))
}

func TestLoadValid(t *testing.T) {
	inv, diags := loadString(t, base)
	if diags.HasErrors() {
		t.Fatalf("unexpected diagnostics: %v", diags)
	}
	if len(inv.Clusters) != 2 || len(inv.Hosts()) != 4 {
		t.Fatalf("clusters=%d hosts=%d", len(inv.Clusters), len(inv.Hosts()))
	}
	web, api := inv.Clusters[0], inv.Clusters[1]
	if web.Hosts[1].VRID != 52 || api.Hosts[0].VRID != 61 || api.Hosts[1].VRID != 70 {
		t.Errorf("vrids: %d %d %d", web.Hosts[1].VRID, api.Hosts[0].VRID, api.Hosts[1].VRID)
	}
	if api.AuthPass.Reveal() != "s3cret" || fmt.Sprint(api.AuthPass) != "(sensitive)" || fmt.Sprintf("%#v", api.AuthPass) != "(sensitive)" {
		t.Errorf("secret handling: %v", api.AuthPass)
	}
	if api.HealthCheck.Weight != -5 || api.HealthCheck.Interval != 2 || api.Nginx.Listen != 80 || api.AdvertInt != 1 {
		t.Errorf("defaults not applied: %+v %+v", api.HealthCheck, api.Nginx)
	}
	d := api.Hosts[1].SSH
	if d.User != "ops" || !d.Become || d.KnownHostsFile != "/tmp/kh" || d.Port != 22 {
		t.Errorf("ssh override merge: %+v", d)
	}
	if c := api.Hosts[0].SSH; c.User != "root" || c.Become {
		t.Errorf("ssh defaults: %+v", c)
	}
	if web.Hosts[0].VIP != netip.MustParsePrefix("10.11.7.235/24") || web.Gateway != netip.MustParseAddr("10.11.7.2") {
		t.Errorf("addresses: %v %v", web.Hosts[0].VIP, web.Gateway)
	}
	if r := web.Hosts[0].Range("vip"); r.Start.Line != 27 {
		t.Errorf("vip range line = %d, want 27", r.Start.Line)
	}
}

// TestLoadExamples keeps the shipped inventories valid.
func TestLoadExamples(t *testing.T) {
	for _, p := range []string{"../../inventory/prod.hcl", "../../inventory/lab.hcl", "testdata/lab-dualstack.hcl", "testdata/lab-ipv6.hcl"} {
		if _, diags := NewLoader(Options{LookupEnv: testEnv}).LoadFile(p); diags.HasErrors() {
			t.Errorf("%s: %v", p, diags)
		}
	}
}

// validationCase is one bad inventory: a line of a base inventory replaced.
type validationCase struct {
	name    string
	old     string // a line of base (or a fragment), replaced by new
	new     string
	summary string // substring of the diagnostic's summary
	detail  string // substring of the detail, optional
}

// TestValidation has one bad inventory per validation class: each asserts the
// summary and the line the diagnostic points at.
func TestValidation(t *testing.T) {
	cases := []validationCase{
		{"syntax error", `  advert_int             = 1`, `  advert_int = = 1 #HERE`, "Invalid expression", ""},
		{"unknown attribute", `  advert_int             = 1`, `  advert_intt = 1 #HERE`, "Unsupported argument", ""},
		{"unknown block", `  nginx {`, "  nginks { #HERE\n  }\n  nginx {", "Unsupported block type", ""},
		{"duplicate host name", `  host "b" {`, `  host "a" { #HERE`, "Duplicate host name", `"a" is already used at inv.hcl:25`},
		{"duplicate host name across clusters", `  host "c" {`, `  host "a" { #HERE`, "Duplicate host name", ""},
		{"duplicate address", `    address = "10.11.7.232"`, `    address = "10.11.7.231" #HERE`, "Duplicate host address", "10.11.7.231"},
		{"duplicate VIP", `    vip     = "10.11.7.236/24"`, `    vip     = "10.11.7.235/24" #HERE`, "Duplicate VIP", "10.11.7.235"},
		{"VIP without prefix", `    vip     = "10.11.7.236/24"`, `    vip     = "10.11.7.236" #HERE`, "VIP without prefix length", "10.11.7.236/24"},
		{"invalid address", `    address = "10.11.7.232"`, `    address = "10.11.7.300" #HERE`, "Invalid address", ""},
		{"IPv6 address", `    address = "10.11.7.232"`, `    address = "fe80::1" #HERE`, "Invalid address", ""},
		{"invalid VIP", `    vip     = "10.11.7.236/24"`, `    vip     = "ten/24" #HERE`, "Invalid VIP", ""},
		{"host outside subnet", `    address = "10.11.7.232"`, `    address = "10.128.2.106" #HERE`, "Host outside the cluster's subnet", "does not cross subnets"},
		{"VIP outside subnet", `    vip     = "10.11.7.236/24"`, `    vip     = "10.11.9.236/24" #HERE`, "VIP outside the cluster's subnet", ""},
		{"gateway outside subnet", `  gateway                = "10.11.7.2"`, `  gateway = "10.11.6.1" #HERE`, "Gateway outside the cluster's subnet", ""},
		{"invalid gateway", `  gateway                = "10.11.7.2"`, `  gateway = "gw" #HERE`, "Invalid gateway", ""},
		{"missing gateway", "  gateway                = \"10.11.7.2\"\n", "", "Missing gateway", ""},
		{"vrid out of range", `    virtual_router_id = 70`, `    virtual_router_id = 256 #HERE`, "virtual_router_id out of range", "1-255"},
		{"vrid base out of range", `  virtual_router_id_base = 61`, `  virtual_router_id_base = 256 #HERE`, "virtual_router_id out of range", ""},
		{"vrid zero", `    virtual_router_id = 70`, `    virtual_router_id = 0 #HERE`, "virtual_router_id out of range", ""},
		{"vrid twice in file", `    virtual_router_id = 70`, `    virtual_router_id = 52 #HERE`, "Duplicate virtual_router_id", `host "b"`},
		{"vrid base overlap", `  virtual_router_id_base = 61`, `  virtual_router_id_base = 52 #HERE`, "Duplicate virtual_router_id", ""},
		{"auth_pass empty", `  auth_pass              = "1111"`, `  auth_pass = "" #HERE`, "Empty auth_pass", ""},
		{"auth_pass missing", "  auth_pass              = \"1111\"\n", "", "Empty auth_pass", ""},
		{"auth_pass too long", `  auth_pass              = "1111"`, `  auth_pass = "123456789" #HERE`, "auth_pass too long", "truncates"},
		{"auth_pass blank", `  auth_pass              = "1111"`, `  auth_pass = "a b" #HERE`, "Invalid auth_pass", ""},
		{"env unset", `  auth_pass              = env("PASS")`, `  auth_pass = env("NOPE") #HERE`, "Error in function call", `"NOPE" is not set`},
		{"unknown function", `  auth_pass              = env("PASS")`, `  auth_pass = file("x") #HERE`, "Call to unknown function", ""},
		{"empty interface", `  interface              = "ens192"`, `  interface = "" #HERE`, "Empty interface", ""},
		{"bad interface", `  interface              = "ens192"`, `  interface = "eth0; reboot" #HERE`, "Invalid interface", ""},
		{"advert_int zero", `  advert_int             = 1`, `  advert_int = 0 #HERE`, "Invalid advert_int", ""},
		{"advert_int negative", `  advert_int             = 1`, `  advert_int = -1 #HERE`, "Invalid advert_int", ""},
		{"advert_int v3 step", `  advert_int             = 1`, `  advert_int = 0.005 #HERE`, "Invalid advert_int", "VRRPv3"},
		{"one host", "  host \"b\" {\n    address = \"10.11.7.232\"\n    vip     = \"10.11.7.236/24\"\n  }\n", "", "Too few hosts", `"web" has 1`},
		{"wrong type", `    interval = 2`, `    interval = "often" #HERE`, "Unsuitable value type", ""},
		{"bad interval", `    interval = 2`, `    interval = 0 #HERE`, "Invalid health_check interval", ""},
		{"bad listen", `    listen   = 80`, `    listen   = 70000 #HERE`, "Invalid nginx listen port", ""},
		{"bad upstream", `    upstream = ["10.11.7.41:8080"]`, `    upstream = ["10.11.7.41"] #HERE`, "Invalid nginx upstream", "host:port"},
		{"bad backup_order", `  advert_int             = 1`, `  backup_order = "random" #HERE`, "Invalid backup_order", ""},
		{"bad transport", `  advert_int             = 1`, `  vrrp_transport = "broadcast" #HERE`, "Invalid vrrp_transport", ""},
		{"bad host name", `  host "b" {`, `  host "../b" { #HERE`, "Invalid host name", ""},
		{"VIP is host address", `    vip     = "10.11.7.236/24"`, `    vip     = "10.11.7.232/24" #HERE`, "VIP equals the host address", ""},
		{"VIP is gateway", `    vip     = "10.11.7.236/24"`, `    vip     = "10.11.7.2/24" #HERE`, "VIP equals the gateway", ""},
		{"duplicate ssh block", `cluster "web" {`, "ssh { #HERE\n}\ncluster \"web\" {", "Duplicate ssh block", ""},
		{"bad ssh port", `  user             = "root"`, `  port = 0 #HERE`, "Invalid SSH port", ""},
		{"missing address", `    address = "10.11.7.232"`, ``, "Missing address", ""},
		{"cross subnet without unicast", `  advert_int             = 1`, `  allow_cross_subnet = true #HERE`, "allow_cross_subnet needs unicast", "multicast"},
		{"cross subnet still keeps VIPs together", `    vip     = "10.11.7.236/24"`, "    vip     = \"10.11.9.236/24\" #HERE", "VIP outside the cluster's subnet", ""},
		{"cross subnet: gateway still on the VIPs' segment", `  gateway                = "10.11.7.2"`, "  gateway = \"10.11.6.1\" #HERE\n  vrrp_transport = \"unicast\"\n  allow_cross_subnet = true", "Gateway outside the cluster's subnet", "clean_arp.sh"},
		{"bad jump_host", `  user             = "root"`, `  jump_host = "ops@bastion:99999" #HERE`, "Invalid jump_host", "1-65535"},
		{"jump chain", `      become = true`, "      become = true\n      jump_host = \"a,b\" #HERE", "Invalid jump_host", "only one jump host"},
		{"VIP prefix /0", `    vip     = "10.11.7.236/24"`, `    vip     = "10.11.7.236/0" #HERE`, "Invalid VIP", "/0"},
		{"gateway is a host address", `  gateway                = "10.11.7.2"`, `  gateway = "10.11.7.232" #HERE`, "Gateway equals a host address", `host "b"`},
		{"gateway is another cluster's host", `  gateway                = "10.11.8.1"`, `  gateway = "10.11.8.11" #HERE`, "Gateway equals a host address", `host "d"`},
		{"multicast VIP", `    vip     = "10.11.7.236/24"`, `    vip     = "224.0.0.18/4" #HERE`, "Invalid VIP", "multicast"},
		{"link-local IPv4 VIP", `    vip     = "10.11.7.236/24"`, `    vip     = "169.254.7.236/16" #HERE`, "Invalid VIP", "link-local"},
		{"loopback address", `    address = "10.11.7.232"`, `    address = "127.0.0.1" #HERE`, "Invalid address", "loopback"},
		{"IPv6 gateway in gateway", `  gateway                = "10.11.7.2"`, `  gateway = "2001:db8::1" #HERE`, "Invalid gateway", "gateway6"},
		{"IPv6 address without IPv6 VIPs", `    address = "10.11.7.232"`, `    address = "2001:db8::232" #HERE`, "Host outside the cluster's subnet", "no IPv6 VIP"},
		{"gateway6 without IPv6 VIPs", `  gateway                = "10.11.7.2"`, "  gateway = \"10.11.7.2\"\n  gateway6 = \"2001:db8::1\" #HERE", "Gateway without VIPs of its family", "no VIP"},
	}
	runCases(t, base, cases)
}

func runCases(t *testing.T, base string, cases []validationCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.old) {
				t.Fatalf("base has no %q", tc.old)
			}
			src := strings.Replace(base, tc.old, tc.new, 1)
			inv, diags := loadString(t, src)
			if !diags.HasErrors() {
				t.Fatalf("no error for:\n%s", src)
			}
			if inv != nil {
				t.Errorf("an invalid inventory must not be returned")
			}
			var hit *hcl.Diagnostic
			for _, d := range diags {
				if strings.Contains(d.Summary, tc.summary) && strings.Contains(d.Detail, tc.detail) {
					hit = d
					break
				}
			}
			if hit == nil {
				t.Fatalf("no diagnostic %q / %q among:\n%s", tc.summary, tc.detail, diagList(diags))
			}
			if want := markerLine(src); want > 0 {
				if hit.Subject == nil || hit.Subject.Start.Line != want || hit.Subject.Filename != "inv.hcl" {
					t.Errorf("diagnostic points at %v, want inv.hcl:%d", hit.Subject, want)
				}
			} else if hit.Subject == nil || hit.Subject.Start.Line == 0 {
				t.Errorf("diagnostic has no position: %v", hit)
			}
		})
	}
}

// TestHostRangeForDerivedValues: a VRID derived from the base is blamed on the base.
func TestCollectsAllErrors(t *testing.T) {
	src := strings.Replace(base, `  auth_pass              = "1111"`, `  auth_pass = "123456789"`, 1)
	src = strings.Replace(src, `    address = "10.11.7.232"`, `    address = "10.11.7.231"`, 1)
	src = strings.Replace(src, `  interface              = "eth1"`, `  interface = ""`, 1)
	_, diags := loadString(t, src)
	if n := len(diags.Errs()); n != 3 {
		t.Fatalf("want all 3 errors at once, got %d:\n%s", n, diagList(diags))
	}
	// Sorted by position: top of the file first.
	for i := 1; i < len(diags); i++ {
		if diags[i].Subject.Start.Byte < diags[i-1].Subject.Start.Byte {
			t.Errorf("diagnostics not in file order")
		}
	}
}

func TestSecretNeverInDiagnostics(t *testing.T) {
	src := strings.Replace(base, `  auth_pass              = "1111"`, `  auth_pass = "topsecret99"`, 1)
	_, diags := loadString(t, src)
	if strings.Contains(diagList(diags), "topsecret99") {
		t.Fatalf("secret leaked: %s", diagList(diags))
	}
}

func markerLine(src string) int {
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, "#HERE") {
			return i + 1
		}
	}
	return 0
}

func diagList(d hcl.Diagnostics) string {
	var b strings.Builder
	for _, x := range d {
		fmt.Fprintf(&b, "  %v: %s: %s\n", x.Subject, x.Summary, x.Detail)
	}
	return b.String()
}

// TestCrossSubnet: hosts in different subnets need unicast AND the explicit
// allow_cross_subnet; then host addresses may differ (a warning remains),
// the VIPs and the gateway may not.
func TestCrossSubnet(t *testing.T) {
	moveB := func(src string) string {
		return strings.Replace(src, `    address = "10.11.7.232"`, `    address = "10.128.2.106" #HERE`, 1)
	}
	unicast := func(src string, allow bool) string {
		add := "  vrrp_transport = \"unicast\"\n"
		if allow {
			add += "  allow_cross_subnet = true\n"
		}
		return strings.Replace(src, "  advert_int             = 1\n", "  advert_int             = 1\n"+add, 1)
	}
	for _, tc := range []struct {
		name, src       string
		summary, detail string
		severity        hcl.DiagnosticSeverity
	}{
		{"multicast refuses", moveB(base), "Host outside the cluster's subnet", "does not cross subnets", hcl.DiagError},
		{"unicast alone refuses", unicast(moveB(base), false), "Host outside the cluster's subnet", "allow_cross_subnet = true", hcl.DiagError},
		{"unicast + allow warns", unicast(moveB(base), true), "Host address outside the VIPs' subnet", "never cross a router", hcl.DiagWarning},
		{"VIP must stay on the segment", unicast(strings.Replace(base, `    vip     = "10.11.7.236/24"`, `    vip     = "10.11.9.236/24" #HERE`, 1), true),
			"VIP outside the cluster's subnet", "a segment its holder is attached to", hcl.DiagError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv, diags := loadString(t, tc.src)
			var hit *hcl.Diagnostic
			for _, d := range diags {
				if d.Summary == tc.summary && strings.Contains(d.Detail, tc.detail) {
					hit = d
				}
			}
			if hit == nil || hit.Severity != tc.severity {
				t.Fatalf("want %q (%v) among:\n%s", tc.summary, tc.severity, diagList(diags))
			}
			if want := markerLine(tc.src); hit.Subject == nil || hit.Subject.Start.Line != want {
				t.Errorf("points at %v, want line %d", hit.Subject, want)
			}
			if (tc.severity == hcl.DiagWarning) != (inv != nil) {
				t.Errorf("inventory returned = %v with %s", inv != nil, diagList(diags))
			}
			if tc.severity == hcl.DiagWarning && !inv.Clusters[0].AllowCrossSubnet {
				t.Errorf("AllowCrossSubnet not set")
			}
		})
	}
}

func TestSSHSetTracksExplicitFields(t *testing.T) {
	inv, diags := loadString(t, base)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	a, d := inv.Clusters[0].Hosts[0].SSH.Set, inv.Clusters[1].Hosts[1].SSH.Set
	if !a.User || !a.KnownHostsFile || a.Port || a.PrivateKeyFile || a.JumpHost || a.Become {
		t.Errorf("host a: %+v", a)
	}
	if !d.User || !d.Become || !d.KnownHostsFile || d.Port {
		t.Errorf("host d: %+v", d)
	}
}

// base6 is a valid dual-stack cluster plus an IPv6-only one.
const base6 = `cluster "ds" {
  interface              = "eth0"
  gateway                = "198.18.0.1"
  gateway6               = "2001:db8:18::1"
  auth_pass              = "1111"

  host "a" {
    address = "198.18.0.11"
    vip     = "198.18.0.201/24"
    vip6    = "2001:db8:18::201/64"
  }
  host "b" {
    address = "198.18.0.12"
    vip     = "198.18.0.202/24"
    vip6    = "2001:db8:18::202/64"
  }
}

cluster "v6" {
  interface              = "eth1"
  gateway6               = "fe80::1"
  virtual_router_id_base = 61
  vrrp_transport         = "unicast"
  auth_pass              = "2222"

  host "c" {
    address = "2001:db8:19::11"
    vip     = "2001:db8:19::201/64"
  }
  host "d" {
    address = "2001:db8:19::12"
    vip     = "2001:db8:19::202/64"
  }
}
`

func TestLoadIPv6(t *testing.T) {
	inv, diags := loadString(t, base6)
	if diags.HasErrors() {
		t.Fatalf("unexpected diagnostics:\n%s", diagList(diags))
	}
	ds, v6 := inv.Clusters[0], inv.Clusters[1]
	a := ds.Hosts[0]
	if a.VIP != netip.MustParsePrefix("198.18.0.201/24") || a.VIP6 != netip.MustParsePrefix("2001:db8:18::201/64") || len(a.VIPs()) != 2 {
		t.Errorf("dual-stack host: %v %v %v", a.VIP, a.VIP6, a.VIPs())
	}
	if ds.Gateway6 != netip.MustParseAddr("2001:db8:18::1") || !ds.HasIPv6() || ds.IPv6() || ds.VRRPVersion() != 2 {
		t.Errorf("dual-stack cluster: gw6 %v HasIPv6 %v IPv6 %v version %d", ds.Gateway6, ds.HasIPv6(), ds.IPv6(), ds.VRRPVersion())
	}
	if !v6.IPv6() || v6.VRRPVersion() != 3 || v6.Gateway.IsValid() || v6.Hosts[1].Address != netip.MustParseAddr("2001:db8:19::12") {
		t.Errorf("IPv6 cluster: IPv6 %v version %d gateway %v address %v", v6.IPv6(), v6.VRRPVersion(), v6.Gateway, v6.Hosts[1].Address)
	}
	if r := ds.Hosts[1].Range("vip6"); r.Start.Line != 15 {
		t.Errorf("vip6 range line = %d, want 15", r.Start.Line)
	}
	// A dual-stack multicast cluster may be managed over IPv6: the address
	// lies in the IPv6 VIPs' /64.
	src := strings.Replace(base6, `    address = "198.18.0.12"`, `    address = "2001:db8:18::12"`, 1)
	if _, diags := loadString(t, src); diags.HasErrors() {
		t.Errorf("IPv6 address in a dual-stack multicast cluster:\n%s", diagList(diags))
	}
}

// TestValidationIPv6: the IPv6 and dual-stack rules, one case per class.
func TestValidationIPv6(t *testing.T) {
	b6 := `    vip6    = "2001:db8:18::202/64"`
	cases := []validationCase{
		{"vip6 not IPv6", b6, `    vip6 = "198.18.0.210/24" #HERE`, "Invalid VIP", "vip6 adds an IPv6 VIP"},
		{"vip6 without prefix", b6, `    vip6 = "2001:db8:18::202" #HERE`, "VIP without prefix length", "2001:db8:18::202/64"},
		{"vip6 with zone", b6, `    vip6 = "2001:db8:18::202%eth0/64" #HERE`, "Invalid VIP", "zone identifier"},
		{"vip6 link-local", b6, `    vip6 = "fe80::202/64" #HERE`, "Invalid VIP", "link-local"},
		{"vip6 multicast", b6, `    vip6 = "ff02::12/64" #HERE`, "Invalid VIP", "multicast"},
		{"vip6 prefix /0", b6, `    vip6 = "2001:db8:18::202/0" #HERE`, "Invalid VIP", "/0"},
		{"vip6 mapped IPv4", b6, `    vip6 = "::ffff:198.18.0.9/120" #HERE`, "Invalid VIP", "IPv4-mapped"},
		{"vip6 outside the /64", b6, `    vip6 = "2001:db8:99::202/64" #HERE`, "VIP outside the cluster's subnet", "2001:db8:18::/64"},
		{"vip6 other prefix length", b6, `    vip6 = "2001:db8:18::202/80" #HERE`, "VIP outside the cluster's subnet", ""},
		{"vip6 duplicate", b6, `    vip6 = "2001:db8:18::201/64" #HERE`, "Duplicate VIP", "2001:db8:18::201"},
		{"vip6 duplicate across clusters", `    vip     = "2001:db8:19::202/64"`, `    vip = "2001:db8:19::201/64" #HERE`, "Duplicate VIP", ""},
		{"vip6 subnet-router anycast", b6, `    vip6 = "2001:db8:18::/64" #HERE`, "VIP is a network or broadcast address", "Subnet-Router"},
		{"vip6 is another host's address", `    vip     = "2001:db8:19::202/64"`, `    vip = "2001:db8:19::11/64" #HERE`, "VIP equals a host address", `host "c"`},
		{"IPv6 vip is own address", `    vip     = "2001:db8:19::202/64"`, `    vip = "2001:db8:19::12/64" #HERE`, "VIP equals the host address", ""},
		{"vip6 is gateway6", b6, `    vip6 = "2001:db8:18::1/64" #HERE`, "VIP equals the gateway", ""},
		{"vip6 next to IPv6 vip", `    vip     = "2001:db8:19::202/64"`, "    vip = \"2001:db8:19::202/64\"\n    vip6 = \"2001:db8:19::203/64\" #HERE", "vip6 next to an IPv6 vip", ""},
		{"mixed vip families", `    vip     = "2001:db8:19::202/64"`, `    vip = "198.18.0.99/24" #HERE`, "Mixed VIP families", "vip6"},
		{"address with zone", `    address = "2001:db8:19::12"`, `    address = "2001:db8:19::12%eth1" #HERE`, "Invalid address", "zone"},
		{"link-local address", `    address = "2001:db8:19::12"`, `    address = "fe80::12" #HERE`, "Invalid address", "link-local"},
		{"multicast address", `    address = "2001:db8:19::12"`, `    address = "ff02::1" #HERE`, "Invalid address", "multicast"},
		{"IPv6 address duplicate", `    address = "2001:db8:19::12"`, `    address = "2001:db8:19::11" #HERE`, "Duplicate host address", ""},
		{"IPv6 host outside the /64", `    address = "2001:db8:19::12"`, `    address = "2001:db8:20::12" #HERE`, "Host outside the cluster's subnet", "2001:db8:19::/64"},
		{"unicast peer of the other family", `    address = "2001:db8:19::12"`, `    address = "198.18.1.12" #HERE`, "Unicast peer of the other family", "unicast_peer"},
		{"dual-stack unicast needs IPv4 addresses", "  gateway6               = \"2001:db8:18::1\"\n  auth_pass              = \"1111\"",
			"  gateway6               = \"2001:db8:18::1\"\n  auth_pass              = \"1111\"\n  vrrp_transport = \"unicast\"\n\n  host \"e\" {\n    address = \"2001:db8:18::13\" #HERE\n    vip = \"198.18.0.203/24\"\n  }", "Unicast peer of the other family", "IPv4"},
		{"gateway6 with zone", `  gateway6               = "fe80::1"`, `  gateway6 = "fe80::1%eth1" #HERE`, "Invalid gateway6", "zone"},
		{"gateway6 multicast", `  gateway6               = "fe80::1"`, `  gateway6 = "ff02::2" #HERE`, "Invalid gateway6", "multicast"},
		{"gateway6 IPv4", `  gateway6               = "fe80::1"`, `  gateway6 = "198.18.0.1" #HERE`, "Invalid gateway6", "not an IPv6 address"},
		{"gateway6 outside the /64", `  gateway6               = "2001:db8:18::1"`, `  gateway6 = "2001:db8:77::1" #HERE`, "Gateway outside the cluster's subnet", "neighbour solicitation"},
		{"gateway6 is a host address", `  gateway6               = "fe80::1"`, `  gateway6 = "2001:db8:19::11" #HERE`, "Gateway equals a host address", `host "c"`},
		{"IPv4 gateway in an IPv6 cluster", `  gateway6               = "fe80::1"`, "  gateway6 = \"fe80::1\"\n  gateway = \"198.18.0.1\" #HERE", "Gateway without VIPs of its family", ""},
		{"dual-stack still needs gateway", "  gateway                = \"198.18.0.1\"\n", "", "Missing gateway", ""},
	}
	runCases(t, base6, cases)
}

// TestUnsetEnvHidesNothing: an unset env() is reported together with every
// other problem of the file, in one pass; the stand-in value used to find
// them is never the subject of a diagnostic.
func TestUnsetEnvHidesNothing(t *testing.T) {
	src, err := os.ReadFile("../../inventory/prod.hcl")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(src), `auth_pass       = "1111"`, `auth_pass       = env("HACTL_NOT_SET")`, 1)
	bad = strings.Replace(bad, `vip     = "10.11.7.236/24"`, `vip     = "10.11.7.235/24"`, 1)
	_, diags := NewLoader(Options{LookupEnv: func(string) (string, bool) { return "", false }}).Load("prod.hcl", []byte(bad))
	var got []string
	for _, d := range diags {
		got = append(got, d.Summary+": "+d.Detail)
	}
	all := strings.Join(got, "\n")
	if !strings.Contains(all, `"HACTL_NOT_SET" is not set`) || !strings.Contains(all, "10.11.7.235") {
		t.Errorf("want the unset variable and the duplicate VIP, got:\n%s", all)
	}
	if strings.Contains(all, "auth_pass must be") {
		t.Errorf("a diagnostic about the stand-in value:\n%s", all)
	}
}
