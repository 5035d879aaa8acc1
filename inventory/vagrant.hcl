# Three Rocky Linux 9 load balancers brought up by e2e/vagrant/Vagrantfile
# (`cd e2e/vagrant && vagrant up`). The Vagrantfile puts your
# ~/.ssh/id_ed25519.pub into the vagrant user's authorized_keys; hactl logs
# in as vagrant and becomes root with sudo -n. First run:
#   hactl apply -i inventory/vagrant.hcl --accept-new-host-keys
#   hactl failover-test -i inventory/vagrant.hcl

ssh {
  user             = "vagrant"
  private_key_file = "~/.ssh/id_ed25519"
  known_hosts_file = "~/.ssh/known_hosts"
  become           = true
}

cluster "vagrant" {
  # The private network's NIC in the generic/rocky9 box (eth0 is Vagrant's NAT).
  interface              = "eth1"
  # VirtualBox's host-only adapter (libvirt: the private network's bridge).
  gateway                = "192.168.56.1"
  advert_int             = 1
  virtual_router_id_base = 151
  auth_pass              = "vagrant1"

  health_check {
    interval = 2
    weight   = -5
    fall     = 2
    rise     = 1
  }

  nginx {
    listen = 80
  }

  host "lb1" {
    address = "192.168.56.11"
    vip     = "192.168.56.201/24"
  }
  host "lb2" {
    address = "192.168.56.12"
    vip     = "192.168.56.202/24"
  }
  host "lb3" {
    address = "192.168.56.13"
    vip     = "192.168.56.203/24"
  }
}
