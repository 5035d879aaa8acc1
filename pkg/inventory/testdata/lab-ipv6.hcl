# The 3-host lab as an IPv6-only cluster: SSH, VRRP and the VIPs all IPv6.
# IPv6 VRRP instances are always VRRPv3 (no authentication in VRRPv3, so
# auth_pass is not used on the wire). No IPv4 gateway: gateway6 only.

ssh {
  user             = "root"
  private_key_file = "/var/lib/hactl-lab/id_ed25519"
  known_hosts_file = "/var/lib/hactl-lab/known_hosts"
}

cluster "lab6" {
  interface              = "eth0"
  gateway6               = "2001:db8:18::1"
  advert_int             = 1
  virtual_router_id_base = 51
  auth_pass              = "labpass1"

  nginx {
    listen = 80
  }

  host "lab1" {
    address = "2001:db8:18::11"
    vip     = "2001:db8:18::201/64"
  }
  host "lab2" {
    address = "2001:db8:18::12"
    vip     = "2001:db8:18::202/64"
  }
  host "lab3" {
    address = "2001:db8:18::13"
    vip     = "2001:db8:18::203/64"
  }
}
