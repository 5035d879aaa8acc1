# What the balancers serve (issue 20): three sites, one stream proxy, pools and
# the user's own snippets, on the 3-host lab's addresses. hactl renders them
# to /etc/nginx/hactl/ on every balancer; `apply` stages them, runs `nginx -t`
# and reloads nginx (never restarts it).
#
# The certificates and keys are files on the control machine, relative to
# this file (tls/…); nothing secret is committed. To try it, make a
# throwaway pair per HTTPS site:
#   mkdir -p inventory/tls
#   for s in shop api; do openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
#     -days 30 -subj "/CN=$s.example.test" -addext "subjectAltName=DNS:$s.example.test" \
#     -keyout inventory/tls/$s.key -out inventory/tls/$s.crt; done
#   hactl validate -i inventory/sites.hcl
#
# The app servers 198.18.0.21 and .22 are the lab's: make lab-up N=3 APPS=2.

ssh {
  user             = "root"
  private_key_file = "/var/lib/hactl-lab/id_ed25519"
  known_hosts_file = "/var/lib/hactl-lab/known_hosts"
}

cluster "lab" {
  interface = "eth0"
  gateway   = "198.18.0.1"
  auth_pass = env("HACTL_VRRP_PASS")

  # hactl's own catch-all site (failover tests ask it for /hactl-health) keeps
  # port 80 as the default server; the sites below answer by name.
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

  # Upstream pools. A server block may set weight, max_fails, fail_timeout
  # and backup; nginx's defaults (1, 1, 10s, no) apply otherwise.
  pool "app" {
    keepalive = 16 # idle connections kept open to the app servers
    server "198.18.0.21:8080" {
      max_fails    = 2
      fail_timeout = "5s"
    }
    server "198.18.0.22:8080" {
      max_fails    = 2
      fail_timeout = "5s"
    }
  }

  pool "postgres" {
    balance = "least_conn"
    server "198.18.0.21:5432" {}
    server "198.18.0.22:5432" { backup = true }
  }

  # Plain HTTP only.
  site "status" {
    server_names = ["status.example.test"]
    health_path  = "/healthz"
    location "/" { pool = "app" }
  }

  # Two HTTPS names on the same port with different certificates, chosen by
  # SNI. With a tls block a site listens on 443 (http2) and answers plain
  # HTTP on 80 with a redirect to HTTPS.
  site "shop" {
    server_names = ["shop.example.test"]
    health_path  = "/healthz"
    include      = ["security-headers.conf"]
    tls {
      certificate = "tls/shop.crt"
      key         = "tls/shop.key" # a secret: 0600 on the hosts, masked in every output
    }
    location "/" { pool = "app" }
  }

  site "api" {
    server_names = ["api.example.test"]
    health_path  = "/v1/health"
    tls {
      certificate = "tls/api.crt"
      key         = "tls/api.key" # or env("API_TLS_KEY"): a path or the PEM itself
    }
    location "/v1/" { pool = "app" }
  }

  # TCP pass-through (nginx's stream module).
  stream "postgres" {
    listen   = 5432
    protocol = "tcp"
    pool     = "postgres"
  }

  # The escape hatch: nginx files of your own. *.conf is copied as it is,
  # *.conf.tmpl is a Go template rendered per host (.Host, .Cluster,
  # .Address, .VIPs, .Vars). http_include puts files at nginx's http level;
  # a site's include puts them in its server blocks.
  snippets {
    dir          = "sites-snippets"
    http_include = ["logging.conf"]
    vars         = { log_tag = "lab" }
    host_vars    = { lab1 = { log_tag = "lab-first" } }
  }
}
