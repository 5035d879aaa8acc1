# The seed's fleet ("Nginx 双机热备-主主模式"): three CentOS 7.6 load balancers,
# each MASTER of one VIP and BACKUP of the two others.
#   hactl validate -i inventory/prod.hcl
#   hactl plan     -i inventory/prod.hcl --offline
#   hactl render   -i inventory/prod.hcl -o out

ssh {
  user             = "root"
  port             = 22
  known_hosts_file = "~/.ssh/known_hosts"
}

cluster "web" {
  interface              = "ens192"
  gateway                = "10.11.7.2"
  advert_int             = 1
  virtual_router_id_base = 51
  # The seed's value. In a real deployment keep it out of the file:
  #   auth_pass = env("HACTL_VRRP_PASS")
  auth_pass       = "1111"
  backup_order    = "inventory"
  master_priority = 101
  priority_step   = 2

  health_check {
    interval = 2
    weight   = -5
    fall     = 2
    rise     = 1
  }

  nginx {
    listen = 80
  }

  host "master-node" {
    address = "10.11.7.231"
    vip     = "10.11.7.235/24"
  }
  host "slave-node-1" {
    address = "10.11.7.232"
    vip     = "10.11.7.236/24"
  }
  host "slave-node-2" {
    address = "10.11.7.233"
    vip     = "10.11.7.237/24"
  }
}
