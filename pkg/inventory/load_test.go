package inventory

import (
	"fmt"
	"net/netip"
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
	for _, p := range []string{"../../inventory/prod.hcl", "../../inventory/lab.hcl"} {
		if _, diags := NewLoader(Options{LookupEnv: testEnv}).LoadFile(p); diags.HasErrors() {
			t.Errorf("%s: %v", p, diags)
		}
	}
}

// TestValidation has one bad inventory per validation class: each asserts the
// summary and the line the diagnostic points at.
func TestValidation(t *testing.T) {
	cases := []struct {
		name    string
		old     string // a line of base (or a fragment), replaced by new
		new     string
		summary string // substring of the diagnostic's summary
		detail  string // substring of the detail, optional
	}{
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
	}
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
