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
	}
	runCases(t, base, cases)
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
