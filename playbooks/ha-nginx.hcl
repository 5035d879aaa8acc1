# The default playbook of `hactl apply`: the seed's active-active nginx +
# keepalived. Steps run top to bottom on every host; package, template and
# file steps run on all hosts in parallel, service steps and handlers run one
# host at a time (hactl waits for the VIPs to settle after each host).
#
# Modules: package, template (a file hactl renders), file (state = "absent"),
# service, command. `notify` names handlers that run once, after the steps,
# only when a notifying step changed something.

step "packages" {
  package {
    # "a|b": either satisfies; a is installed when neither is. Both arping
    # flavours work: clean_arp.sh detects which one it runs.
    names = ["nginx", "keepalived", "arping|iputils-arping"]
  }
}

step "check script" {
  template {
    path = "/etc/keepalived/check_nginx.sh"
  }
}

step "notify script" {
  template {
    path = "/etc/keepalived/clean_arp.sh"
  }
}

step "keepalived unit drop-in" {
  template {
    path = "/etc/systemd/system/keepalived.service.d/hactl.conf"
  }
  notify = ["systemd"]
}

step "keepalived config" {
  template {
    path = "/etc/keepalived/keepalived.conf"
    # The candidate is tested before it replaces the live file (%s is its path).
    # keepalived before 2.0.4 (CentOS 7's 1.3.5) has no config test.
    validate    = "keepalived -t -f %s"
    validate_if = "keepalived_config_test"
  }
  notify = ["keepalived"]
}

step "distro default site" {
  # Debian's default site also claims `listen 80 default_server`; hactl's site
  # must be the default one so that requests to a VIP reach it.
  file {
    path  = "/etc/nginx/sites-enabled/default"
    state = "absent"
  }
  notify = ["nginx"]
}

step "nginx site" {
  template {
    path = "/etc/nginx/conf.d/hactl.conf"
    # nginx can only test the whole installed configuration: test after the
    # swap, and put the previous file back if the test fails.
    check = "nginx -t"
  }
  notify = ["nginx"]
}

step "nginx running" {
  service {
    name = "nginx"
  }
}

step "keepalived running" {
  service {
    name = "keepalived"
  }
}

handler "systemd" {
  command {
    run = "systemctl daemon-reload"
  }
}

handler "nginx" {
  service {
    name   = "nginx"
    action = "reload"
  }
}

handler "keepalived" {
  # A reload (SIGHUP) keeps VRRP state; a restart would drop and re-elect
  # every VIP this host holds. A stopped keepalived is started instead.
  service {
    name   = "keepalived"
    action = "reload"
  }
}
