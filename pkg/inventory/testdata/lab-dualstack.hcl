# The 3-host lab as a dual-stack cluster: every host is MASTER of one IPv4
# and one IPv6 VIP, and the two move together (one VRRP instance per host:
# the IPv4 one, VRRPv2 as in the seed, with the IPv6 VIP as an excluded
# address). Lab addresses: host i = 198.18.0.(10+i) and 2001:db8:18::1i,
# the bridge 198.18.0.1 and 2001:db8:18::1.

ssh {
  user             = "root"
  private_key_file = "/var/lib/hactl-lab/id_ed25519"
  known_hosts_file = "/var/lib/hactl-lab/known_hosts"
}

cluster "lab" {
  interface              = "eth0"
  gateway                = "198.18.0.1"
  gateway6               = "2001:db8:18::1"
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
    vip6    = "2001:db8:18::201/64"
  }
  host "lab2" {
    address = "198.18.0.12"
    vip     = "198.18.0.202/24"
    vip6    = "2001:db8:18::202/64"
  }
  host "lab3" {
    address = "198.18.0.13"
    vip     = "198.18.0.203/24"
    vip6    = "2001:db8:18::203/64"
  }
}
