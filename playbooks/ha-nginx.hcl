# The default playbook of `hactl apply`: the seed's active-active nginx +
# keepalived. Steps run top to bottom on every host; package, template and
# file steps run on all hosts in parallel, service steps and handlers run one
# host at a time (hactl waits for the VIPs to settle after each host).
#
# Modules: package, template (a file hactl renders), file (state = "absent"),
# service, command, firewall, nginx_sites (the serving layer's files as one
# tested change). `notify` names handlers that run once, after the
# steps, only when a notifying step changed something. `when = "os:KEY"` runs a
# step only on hosts whose OS has that key: "el", "el7", "el8", "el9",
# "debian", "debian11", "debian12", "ubuntu22.04" … (others report "skipped").
# Attribute values may name per-host inventory values as {nginx_listen},
# {interface}, {vrrp_transport}, {ipv6} and {vrrp_ipv6} ("yes"/"no": the
# cluster has IPv6 VIPs / its VRRP instances are IPv6). `when = "ipv6"` runs a
# step only on hosts of clusters with IPv6 VIPs; `when = "webhook"` only when
# the inventory has a webhook block.

step "epel" {
  # CentOS 7 has no nginx in base; EPEL has it, and epel-release is in
  # CentOS extras. Only when nginx is not installed yet: a host that got nginx
  # elsewhere (e.g. nginx.org's repository) keeps its repositories as they are.
  when = "os:el7"
  package {
    names            = ["epel-release"]
    unless_installed = ["nginx"]
  }
}

step "packages" {
  package {
    # "a|b": either satisfies; a is installed when neither is. Both arping
    # flavours work: clean_arp.sh detects which one it runs.
    # nftables: connection draining needs nft on every member. While a VIP
    # moves (hactl drain/undrain, failover-test --mode drain, a sites
    # rollout's canary) the host taking it forwards the packets of
    # connections it does not know to the host it left, which keeps serving
    # them; without a drain_grace a drain still does that for 2 s, so a
    # request in flight at the switch completes instead of being reset. The
    # package's own service stays disabled: installing it loads no ruleset
    # and changes no firewall.
    names = ["nginx", "keepalived", "arping|iputils-arping", "nftables"]
    # EL: arping is part of iputils (in every EL install).
    names_by_family = {
      el = ["nginx", "keepalived", "iputils", "nftables"]
    }
  }
}

step "ndisc6" {
  # Clusters with IPv6 VIPs: clean_arp.sh's IPv6 path (`ndisc6 -s VIP6
  # GATEWAY6`, the IPv6 form of `arping -s`) needs it. Debian has it in main,
  # Ubuntu in universe. EL has it only in EPEL: installed where EPEL is
  # (epel-release installed, e.g. CentOS 7 for nginx), else skipped — hactl
  # does not add EPEL for it, keepalived's own unsolicited neighbour adverts do
  # the work and the script skips ndisc6 when it is missing.
  when = "ipv6"
  package {
    names = ["ndisc6"]
    requires_by_family = {
      el = ["epel-release"]
    }
  }
}

step "firewall" {
  # Only when firewalld or ufw is active: VRRP between the balancers and the
  # nginx port for clients. hactl never turns a firewall on.
  firewall {
    vrrp      = true
    interface = "{interface}"
    ports     = ["{nginx_listen}/tcp"]
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

step "track script" {
  # keepalived before 2.0 has no track_file; its vrrp_scripts poll the drain
  # and nginx event files with this script (rendered on every host).
  template {
    path = "/etc/keepalived/hactl_track.sh"
  }
}

step "nginx unit drop-in" {
  # Tells keepalived the moment nginx stops or starts (/run/hactl/nginx-down).
  template {
    path = "/etc/systemd/system/nginx.service.d/hactl-track.conf"
  }
  notify = ["systemd"]
}

step "keepalived unit drop-in" {
  template {
    path = "/etc/systemd/system/keepalived.service.d/hactl.conf"
  }
  notify = ["systemd"]
}

step "event recorder" {
  # Records every VRRP transition of the host (keepalived's notify FIFO and
  # the VIPs on the interface) in /var/lib/hactl/events, for `hactl events`
  # and `hactl status --watch`; also writes the node exporter's textfile and
  # posts to the inventory's webhook.
  template {
    path = "/etc/keepalived/hactl_events.sh"
  }
  notify = ["events"]
}

step "event recorder unit" {
  template {
    path = "/etc/systemd/system/hactl-events.service"
  }
  notify = ["systemd", "events"]
}

step "curl" {
  # The recorder posts to the webhook with curl (minimal images lack it).
  when = "webhook"
  package {
    names = ["curl"]
  }
}

step "event recorder webhook" {
  # 0600: the webhook's header may carry a secret. Read at every delivery.
  template {
    path = "/etc/hactl/events.conf"
  }
}

step "event recorder running" {
  # Before keepalived reads notify_fifo: the recorder creates the FIFO.
  service {
    name = "hactl-events"
  }
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

step "distro default server (EL)" {
  # EL's /etc/nginx/nginx.conf has its own `server { listen 80 default_server; }`
  # (EL 7 EPEL and EL 8): with hactl's site also default_server, `nginx -t`
  # fails with "a duplicate default server". The flag is removed from
  # nginx.conf's listen lines (original kept as nginx.conf.hactl-orig); hactl's
  # site stays the catch-all, so requests to a VIP by any name reach it. The
  # edit is tested with `nginx -t` and undone if the test fails.
  when = "os:el"
  command {
    run     = <<-EOT
      f=/etc/nginx/nginx.conf; [ -e $f.hactl-orig ] || cp -p $f $f.hactl-orig || exit 1; cp -p $f $f.hactl-prev && sed -i -E 's/^([^#]*listen[^;]*)[[:space:]]+default_server/\1/' $f && { ! selinuxenabled 2>/dev/null || restorecon $f; } && if nginx -t >/dev/null 2>&1; then rm -f $f.hactl-prev; else mv -f $f.hactl-prev $f; nginx -t; exit 1; fi
    EOT
    summary = "removed default_server from /etc/nginx/nginx.conf (original: nginx.conf.hactl-orig), nginx -t passed"
    unless  = "! grep -Eq '^[^#]*listen[^;]*[[:space:]]default_server' /etc/nginx/nginx.conf"
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

step "nginx sites" {
  # The inventory's sites, pools, certificates (keys 0600), stream proxies
  # and snippets, under /etc/nginx/hactl (hactl's own: files no longer
  # rendered are removed). All of them change as one: staged next to their
  # places, swapped in together, `nginx -t` on the whole configuration, and
  # every file put back if it fails; nginx is then reloaded, never
  # restarted. Stream proxies add one include line to nginx.conf's main
  # context. Without sites in the inventory this step does nothing.
  nginx_sites {
    dir       = "/etc/nginx/hactl"
    include   = "/etc/nginx/conf.d/hactl-sites.conf"
    main_conf = "/etc/nginx/nginx.conf"
    check     = "nginx -t"
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

step "cluster record" {
  # The cluster as this apply leaves it (hosts, addresses, VIPs, router ids;
  # no secret). The next run reads it back: a VIP that stays keeps its VRID,
  # and a host that left the inventory is seen by name and address.
  template {
    path = "/etc/keepalived/hactl-cluster.json"
  }
}

handler "systemd" {
  command {
    run = "systemctl daemon-reload"
  }
}

handler "events" {
  # The FIFO outlives the restart (keepalived keeps it open); lines written
  # meanwhile wait in it.
  service {
    name   = "hactl-events"
    action = "restart"
  }
}

handler "nginx" {
  # Reload, never restart: a restart runs the unit's ExecStopPost, which
  # tells keepalived nginx is down and moves this host's VIPs away and back.
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
