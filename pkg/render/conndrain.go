package render

import (
	"bytes"
	"fmt"
	"net/netip"
	"regexp"
	"text/template"

	"github.com/hactl/hactl/templates"
)

// ConnDrain is one host's part in a connection drain (pkg/drain): the VIPs
// it keeps on lo for its open connections (Local), and the VIPs whose
// unknown mid-stream packets it forwards to the host that keeps them
// (Forward).
type ConnDrain struct {
	Host      string
	Interface string
	Unit      string // the transient systemd unit that runs the script
	Table     string // the nftables table (family ip) of the forwarding
	Local     []netip.Addr
	Forward   []ConnForward
}

// ConnForward sends VIP's packets of connections this host does not know to
// To, the address of the host that has their sockets.
type ConnForward struct {
	VIP netip.Addr
	To  netip.Addr
}

// ConnDrainTemplate is the script's template in package templates. It is
// parsed on its own, not through a Renderer: a playbook's own template
// directory (-p) need not carry it.
const ConnDrainTemplate = "conndrain.sh.tmpl"

var shellWord = regexp.MustCompile(`^[A-Za-z0-9_.@:-]+$`)

// ConnDrainScript renders the host-side script of c. Every value lands in
// shell and nftables text unquoted, so each is checked to be one plain word.
func ConnDrainScript(c ConnDrain) ([]byte, error) {
	for what, v := range map[string]string{"host": c.Host, "interface": c.Interface, "unit": c.Unit, "table": c.Table} {
		if !shellWord.MatchString(v) {
			return nil, fmt.Errorf("connection drain script for %s: %s %q is not a plain word", c.Host, what, v)
		}
	}
	for _, a := range c.Local {
		if !a.Is4() {
			return nil, fmt.Errorf("connection drain script for %s: %s is not IPv4", c.Host, a)
		}
	}
	for _, f := range c.Forward {
		if !f.VIP.Is4() || !f.To.Is4() {
			return nil, fmt.Errorf("connection drain script for %s: %s → %s is not IPv4", c.Host, f.VIP, f.To)
		}
	}
	t, err := template.New(ConnDrainTemplate).Option("missingkey=error").ParseFS(templates.FS, ConnDrainTemplate)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", ConnDrainTemplate, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, c); err != nil {
		return nil, fmt.Errorf("render %s for %s: %w", ConnDrainTemplate, c.Host, err)
	}
	return b.Bytes(), nil
}
