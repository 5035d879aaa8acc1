// Package playbooks embeds the default playbook that `hactl apply` runs.
package playbooks

import _ "embed"

// HANginx is playbooks/ha-nginx.hcl: the seed's active-active nginx + keepalived.
//
//go:embed ha-nginx.hcl
var HANginx []byte

// HANginxName is the name diagnostics use for the embedded playbook.
const HANginxName = "playbooks/ha-nginx.hcl"
