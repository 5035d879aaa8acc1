# The 3-host container-VM lab (e2e/lab/lab.sh), and the lab's template: `lab.sh up N`
# (make lab-up N=…) writes this file for N hosts, with the lab's own paths, to
# $HACTL_LAB_DIR/lab.hcl: host lab1's block repeated, one address and VIP further
# each time. The lab's addresses come from here; `lab.sh inventory N` prints it.

ssh {
  user             = "root"
  private_key_file = "/var/lib/hactl-lab/id_ed25519"
  known_hosts_file = "/var/lib/hactl-lab/known_hosts"
}

cluster "lab" {
  interface              = "eth0"
  gateway                = "198.18.0.1"
  advert_int             = 1
  virtual_router_id_base = 51
  auth_pass              = "labpass1"

  health_check {
    interval = 2
    weight   = -5
    fall     = 2
    rise     = 1
  }

  nginx {
    listen = 80
  }

  host "lab1" {
    address = "198.18.0.11"
    vip     = "198.18.0.201/24"
  }
  host "lab2" {
    address = "198.18.0.12"
    vip     = "198.18.0.202/24"
  }
  host "lab3" {
    address = "198.18.0.13"
    vip     = "198.18.0.203/24"
  }
}
