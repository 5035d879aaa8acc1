package fleet

import (
	"strconv"
	"strings"
	"testing"

	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/sshconfig"
)

const sshCfg = `
Host lab2
  User cfguser
  Port 2222
  IdentityFile ~/.ssh/id_lab
  ProxyJump ops@bastion:2200

Host 10.0.0.3
  HostName mgmt-lab3.internal
  User addruser
  ProxyJump bastion

Host bastion
  HostName 192.0.2.99
  User bastionuser
  Port 2022
  IdentityFile %d/.ssh/id_bastion

Host * !10.0.0.4
  User staruser
`

// The inventory for every case: the ssh block sets the user; host overrides
// below replace it per case.
const invSrc = `ssh {
  known_hosts_file = "/kh"
  %SSH%
}
cluster "c" {
  interface = "eth0"
  gateway   = "10.0.0.254"
  auth_pass = "x"
  host "lab1" {
    address = "10.0.0.1"
    vip     = "10.0.0.101/24"
  }
  host "lab2" {
    address = "10.0.0.2"
    vip     = "10.0.0.102/24"
    %HOST%
  }
  host "lab3" {
    address = "10.0.0.3"
    vip     = "10.0.0.103/24"
  }
  host "lab4" {
    address = "10.0.0.4"
    vip     = "10.0.0.104/24"
  }
}
`

func TestResolvePrecedence(t *testing.T) {
	cfgFile, err := sshconfig.Parse("cfg", sshCfg)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, ssh, host, target string
		want                    string // Address:Port user key | jump
	}{
		{"ssh_config fills what the inventory leaves unset", "", "", "lab2",
			"10.0.0.2:2222 cfguser /home/u/.ssh/id_lab | ops@192.0.2.99:2200 /home/u/.ssh/id_bastion"},
		{"inventory ssh block wins", `user = "root"
  port = 22
  private_key_file = "/k"`, "", "lab2",
			"10.0.0.2:22 root /k | ops@192.0.2.99:2200 /home/u/.ssh/id_bastion"},
		{"host override wins and jump none disables ProxyJump", "", `ssh {
      user = "hostuser"
      jump_host = "none"
    }`, "lab2", "10.0.0.2:2222 hostuser /home/u/.ssh/id_lab |"},
		{"inventory jump_host wins over ProxyJump", "", `ssh {
      jump_host = "root@10.0.0.1"
    }`, "lab2", "10.0.0.2:2222 cfguser /home/u/.ssh/id_lab | root@10.0.0.1:22 /home/u/.ssh/id_lab"},
		{"matched by address: HostName redirects SSH, bastion user from ssh_config", "", "", "lab3",
			"mgmt-lab3.internal:22 addruser  | bastionuser@192.0.2.99:2022 /home/u/.ssh/id_bastion"},
		{"Host * applies to the rest", "", "", "lab1", "10.0.0.1:22 staruser  |"},
		{"negated pattern excludes by address; defaults remain", "", "", "lab4", "10.0.0.4:22 root  |"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(strings.Replace(invSrc, "%SSH%", tc.ssh, 1), "%HOST%", tc.host, 1)
			inv, diags := inventory.NewLoader(inventory.Options{}).Load("inv.hcl", []byte(src))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			var h *inventory.Host
			for _, x := range inv.Hosts() {
				if x.Name == tc.target {
					h = x
				}
			}
			cfg, err := ResolveSSH(h, Options{SSHConfig: cfgFile, HomeDir: "/home/u"})
			if err != nil {
				t.Fatal(err)
			}
			got := strings.TrimSpace(strings.Join([]string{cfg.Address + ":" + itoa(cfg.Port), cfg.User, cfg.PrivateKeyFile, "|"}, " "))
			if j := cfg.Jump; j != nil {
				got += " " + j.User + "@" + j.Address + ":" + itoa(j.Port) + " " + j.PrivateKeyFile
				if j.KnownHostsFile != "/kh" {
					t.Errorf("bastion known_hosts = %q, want the target's", j.KnownHostsFile)
				}
			}
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			if cfg.KnownHostsFile != "/kh" {
				t.Errorf("known_hosts = %q", cfg.KnownHostsFile)
			}
		})
	}
}

func TestResolveNoSSHConfig(t *testing.T) {
	src := strings.Replace(strings.Replace(invSrc, "%SSH%", "", 1), "%HOST%", `ssh {
      jump_host = "10.0.0.1:2200"
    }`, 1)
	inv, diags := inventory.NewLoader(inventory.Options{}).Load("inv.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	cfg, err := ResolveSSH(inv.Hosts()[1], Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User != "root" || cfg.Port != 22 || cfg.Jump == nil || cfg.Jump.Address != "10.0.0.1" || cfg.Jump.Port != 2200 || cfg.Jump.User != "root" {
		t.Errorf("defaults: %+v jump %+v", cfg, cfg.Jump)
	}
}

func TestResolveChainRefused(t *testing.T) {
	f, err := sshconfig.Parse("cfg", "Host lab1\n  ProxyJump a,b\n")
	if err != nil {
		t.Fatal(err)
	}
	inv, _ := inventory.NewLoader(inventory.Options{}).Load("inv.hcl", []byte(strings.NewReplacer("%SSH%", "", "%HOST%", "").Replace(invSrc)))
	_, err = ResolveSSH(inv.Hosts()[0], Options{SSHConfig: f})
	if err == nil || !strings.Contains(err.Error(), "only one jump host") {
		t.Fatalf("err = %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
