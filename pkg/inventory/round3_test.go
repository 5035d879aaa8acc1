package inventory

import (
	"strings"
	"testing"
)

// TestValidationRound3 has issue 23's inventory holes, each refused with
// the line to blame.
func TestValidationRound3(t *testing.T) {
	cases := []validationCase{
		{"host named like a cluster", `  host "c" {`, `  host "web" { #HERE`, "Host named like a cluster", `cluster "web" (inv.hcl:6,`},
		{"host named like a later cluster", `  host "b" {`, `  host "api" { #HERE`, "Host named like a cluster", `--limit api`},
		{"known_hosts_file /dev/null", `  known_hosts_file = "/tmp/kh"`, `  known_hosts_file = "/dev/null" #HERE`, "known_hosts_file is not a regular file", "character device"},
		{"known_hosts_file a directory", `      become = true`, "      become = true\n      known_hosts_file = \"/\" #HERE", "known_hosts_file is not a regular file", "directory"},
		// addresses that cannot be a host or a router
		{"host address is the network", `    address = "10.11.7.232"`, `    address = "10.11.7.0" #HERE`, "Host address is not a host's", "network"},
		{"host address is the broadcast", `    address = "10.11.7.232"`, `    address = "10.11.7.255" #HERE`, "Host address is not a host's", "broadcast"},
		{"gateway is the network", `  gateway                = "10.11.7.2"`, `  gateway = "10.11.7.0" #HERE`, "Gateway is not a router's address", "network"},
		{"gateway is the broadcast", `  gateway                = "10.11.7.2"`, `  gateway = "10.11.7.255" #HERE`, "Gateway is not a router's address", "broadcast"},
		{"VIP is another cluster's gateway", `    vip     = "10.11.8.21/24"`, `    vip     = "10.11.8.1/24" #HERE`, "VIP equals the gateway", ""},
		{"VIP is a gateway of a cluster on the same LAN", `  gateway                = "10.11.8.1"`, "  gateway                = \"10.11.7.236\"", "VIP equals another cluster's gateway", `cluster "api"`},
		// interface names the kernel refuses
		{"interface .", `  interface              = "ens192"`, `  interface = "." #HERE`, "Invalid interface", ""},
		{"interface ..", `  interface              = "eth1"`, `  interface = ".." #HERE`, "Invalid interface", ""},
		{"host interface ..", `    virtual_router_id = 70`, "    virtual_router_id = 70\n    interface = \"..\" #HERE", "Invalid interface", ""},
		{"interface too long", `  interface              = "ens192"`, `  interface = "abcdefghijklmnop" #HERE`, "Invalid interface", ""},
		{"interface with a slash", `  interface              = "ens192"`, `  interface = "eth/0" #HERE`, "Invalid interface", ""},
		{"interface with a blank", `  interface              = "ens192"`, `  interface = "eth 0" #HERE`, "Invalid interface", ""},
		{"interface like an option", `  interface              = "ens192"`, `  interface = "-eth0" #HERE`, "Invalid interface", ""},
		// upstreams
		{"upstream is the cluster's own VIP", `    upstream = ["10.11.7.41:8080"]`, `    upstream = ["10.11.7.41:8080", "10.11.7.236:80"] #HERE`, "Upstream loops back", "10.11.7.236"},
		{"upstream is a member's own address", `    upstream = ["10.11.7.41:8080"]`, `    upstream = ["10.11.7.231:80"] #HERE`, "Upstream loops back", `host "a"`},
		{"upstream is loopback on the listen port", `    upstream = ["10.11.7.41:8080"]`, `    upstream = ["127.0.0.1:80"] #HERE`, "Upstream loops back", ""},
		{"upstream is localhost on the listen port", `    upstream = ["10.11.7.41:8080"]`, `    upstream = ["LocalHost:80"] #HERE`, "Upstream loops back", "itself"},
		{"unix upstream", `    upstream = ["10.11.7.41:8080"]`, `    upstream = ["unix:80"] #HERE`, "Invalid nginx upstream", "unix:"},
		{"unix socket upstream", `    upstream = ["10.11.7.41:8080"]`, `    upstream = ["unix:/run/app.sock"] #HERE`, "Invalid nginx upstream", "unix:"},
		{"listen on the SSH port", `    listen   = 80`, `    listen   = 22 #HERE`, "nginx listen port is the SSH port", ""},
		// VIP prefixes that put a huge range on-link
		{"IPv4 VIP prefix /8", `    vip     = "10.11.7.236/24"`, `    vip     = "10.11.7.236/8" #HERE`, "Invalid VIP", "/16"},
	}
	runCases(t, base, cases)
}

// TestValidationRound3IPv6 is the IPv6 side of issue 23's holes.
func TestValidationRound3IPv6(t *testing.T) {
	b6 := `    vip6    = "2001:db8:18::202/64"`
	cases := []validationCase{
		{"host address Subnet-Router anycast", `    address = "2001:db8:19::12"`, `    address = "2001:db8:19::" #HERE`, "Host address is not a host's", "Subnet-Router"},
		{"host address reserved anycast", `    address = "2001:db8:19::12"`, `    address = "2001:db8:19:0:fdff:ffff:ffff:ff80" #HERE`, "Host address is not a host's", "anycast"},
		{"vip6 reserved anycast", b6, `    vip6 = "2001:db8:18:0:fdff:ffff:ffff:fffe/64" #HERE`, "VIP is a network or broadcast address", "anycast"},
		{"gateway6 Subnet-Router anycast", `  gateway6               = "2001:db8:18::1"`, `  gateway6 = "2001:db8:18::" #HERE`, "Gateway is not a router's address", "Subnet-Router"},
		{"vip6 prefix /32", b6, `    vip6 = "2001:db8:18::202/32" #HERE`, "Invalid VIP", "/48"},
	}
	runCases(t, base6, cases)
}

// TestSecretName: what may hold a secret is judged by its normalised name
// and its closeness to auth_pass, so typos are masked too; the inventory's
// other attributes are not.
func TestSecretName(t *testing.T) {
	for _, n := range []string{"auth_pass", "Auth_Pass", "auth-pass", "AUTHPASS", "authpas", "auth_pss", "atuh_pass", "password", "vrrp_secret", "api_token"} {
		if !SecretName(n) {
			t.Errorf("%q is not taken for a secret", n)
		}
	}
	for _, n := range []string{"user", "port", "private_key_file", "known_hosts_file", "become", "jump_host", "interface", "gateway",
		"gateway6", "advert_int", "virtual_router_id_base", "virtual_router_id", "backup_order", "vrrp_transport", "allow_cross_subnet",
		"master_priority", "priority_step", "interval", "weight", "fall", "rise", "listen", "upstream", "address", "vip", "vip6", "host", "cluster"} {
		if SecretName(n) {
			t.Errorf("%q is taken for a secret", n)
		}
	}
}

// TestSecretValueNeverEchoed: a message that echoes another value (an
// interface read from the password's own env()) prints (sensitive).
func TestSecretValueNeverEchoed(t *testing.T) {
	src := strings.Replace(base, `  interface              = "eth1"`, `  interface = env("PASS")`, 1)
	src = strings.Replace(src, `auth_pass              = env("PASS")`, `auth_pass = "s3c!ret"`, 1)
	_, diags := NewLoader(Options{LookupEnv: func(n string) (string, bool) { return "s3c!ret", n == "PASS" }}).Load("inv.hcl", []byte(src))
	if !diags.HasErrors() {
		t.Fatal("no error")
	}
	if l := diagList(diags); strings.Contains(l, "s3c!ret") || !strings.Contains(l, "(sensitive)") {
		t.Errorf("secret echoed or not masked:\n%s", l)
	}
}
