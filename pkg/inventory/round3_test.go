package inventory

import "testing"

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
