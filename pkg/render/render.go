// Package render turns the VRRP layout into the files every load balancer
// needs. It is pure: templates and the layout in, file contents out.
package render

import (
	"bytes"
	"fmt"
	"io/fs"
	"math"
	"net/netip"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/vrrp"
	"github.com/hactl/hactl/templates"
)

// Paths of the managed files on a host.
const (
	KeepalivedConf = "/etc/keepalived/keepalived.conf"
	CheckScript    = "/etc/keepalived/check_nginx.sh"
	NotifyScript   = "/etc/keepalived/clean_arp.sh"
	NginxSite      = "/etc/nginx/conf.d/hactl.conf"
	KeepalivedDrop = "/etc/systemd/system/keepalived.service.d/hactl.conf"
	NginxDrop      = "/etc/systemd/system/nginx.service.d/hactl-track.conf"
	TrackScript    = "/etc/keepalived/hactl_track.sh"
	// DrainFile is `hactl drain`'s: keepalived tracks it, hactl never
	// renders it, so apply leaves a drained host drained.
	DrainFile = facts.DrainFile
	// NginxDownDir/NginxDownFile: nginx's drop-in writes 1 when nginx stops,
	// 0 when it starts. Under /run: a reboot starts from "up".
	NginxDownDir  = "/run/hactl"
	NginxDownFile = NginxDownDir + "/nginx-down"
	// The VRRP event recorder (hactl-events.service, see hactl_events.sh.tmpl).
	EventsScript = "/etc/keepalived/hactl_events.sh"
	EventsUnit   = "/etc/systemd/system/hactl-events.service"
	// EventsConf holds the webhook (URL, header): 0600, the header may be a secret.
	EventsConf = "/etc/hactl/events.conf"
	EventsFIFO = NginxDownDir + "/events.fifo"
	// EventsDir holds events.log (one JSON line per transition), events.log.1,
	// the recorder's state and the webhook's outbox; it survives reboots.
	EventsDir = "/var/lib/hactl/events"
	EventsLog = EventsDir + "/events.log"
	// EventsMaxBytes: events.log is rotated (one old file kept) at this size.
	EventsMaxBytes = 1 << 20
	// MetricsFile is read by prometheus-node-exporter's textfile collector
	// (Debian's default directory).
	MetricsFile = "/var/lib/prometheus/node-exporter/hactl.prom"
	// ClusterRecord is the membership the last apply left (vrrp.Record):
	// the next run reads it to keep router ids and to see departed hosts.
	ClusterRecord = vrrp.RecordPath
)

// Drain file values (track_file weight 1: the value is added to the priority).
const (
	DrainLow  = -253 // every instance at priority 1: the lowest first step
	DrainOut  = -254 // FAULT: holds nothing, not a backup either
	InService = 0
)

// Options are what the host itself decides about its files.
type Options struct {
	// KeepalivedVersion is the installed keepalived ("" when unknown).
	// Before 2.0 there is no track_file: Legacy polls the files instead.
	KeepalivedVersion string
	Legacy            bool
}

// LegacyTracking reports whether keepalived version v (e.g. "1.3.5") lacks
// track_file. An unknown version is not legacy.
func LegacyTracking(v string) bool {
	major, _, ok := strings.Cut(v, ".")
	return ok && (major == "0" || major == "1")
}

// File is one managed file for one host.
type File struct {
	Host    string      `json:"host"`
	Path    string      `json:"path"`
	Mode    fs.FileMode `json:"mode"`
	Owner   string      `json:"owner"`
	Group   string      `json:"group"`
	Content []byte      `json:"-"`
	// Sensitive files hold a secret: plans and diffs mask their secret values.
	Sensitive bool `json:"sensitive"`
	// Service is the unit whose behaviour the file changes ("keepalived",
	// "nginx"); the playbook notifies its handler when the file changes.
	Service string `json:"service"`
}

// Renderer holds the parsed templates; parse once, render many.
type Renderer struct {
	t *template.Template
}

// New parses the embedded templates. missingkey=error: a template that names a
// field the view lacks fails loudly instead of rendering "<no value>".
func New() (*Renderer, error) {
	return NewFromFS(templates.FS)
}

// NewFromFS parses *.tmpl from fsys (tests and `-p` playbooks can bring their own).
func NewFromFS(fsys fs.FS) (*Renderer, error) {
	t, err := template.New("hactl").Option("missingkey=error").ParseFS(fsys, "*.tmpl")
	if err != nil {
		return nil, fmt.Errorf("parse templates: %w", err)
	}
	return &Renderer{t: t}, nil
}

// Paths are the paths of the files HostWith renders for every host, in its
// order: what is on a host can be read before its files are rendered.
func Paths() []string {
	return []string{KeepalivedConf, CheckScript, NotifyScript, TrackScript, KeepalivedDrop, EventsScript, EventsUnit, EventsConf, NginxDrop, NginxSite, ClusterRecord}
}

// PathsOf are the paths of every file HostWith renders for host: Paths and,
// when its cluster serves sites, the serving layer's files. None of them
// depends on the host's facts, so they can be asked for in the facts' own
// round trip, before the files are rendered.
func (r *Renderer) PathsOf(inv *inventory.Inventory, host string) ([]string, error) {
	paths := Paths()
	c := inv.ClusterOf(host)
	if c == nil {
		return nil, fmt.Errorf("host %q is not in the inventory", host)
	}
	for _, h := range c.Hosts {
		if h.Name != host {
			continue
		}
		serving, err := r.servingFiles(c, h)
		if err != nil {
			return nil, err
		}
		for _, f := range serving {
			paths = append(paths, f.Path)
		}
	}
	return paths, nil
}

// Host renders every managed file of one host, in a fixed order.
func (r *Renderer) Host(inv *inventory.Inventory, l *vrrp.Layout, host string) ([]File, error) {
	return r.HostWith(inv, l, host, Options{})
}

// HostWith renders one host's files for what runs there (keepalived's version).
func (r *Renderer) HostWith(inv *inventory.Inventory, l *vrrp.Layout, host string, o Options) ([]File, error) {
	c := inv.ClusterOf(host)
	if c == nil {
		return nil, fmt.Errorf("host %q is not in the inventory", host)
	}
	var h *inventory.Host
	for _, x := range c.Hosts {
		if x.Name == host {
			h = x
		}
	}
	insts := l.ForCluster(c.Name)

	kv := keepalivedView{
		Cluster:   c.Name,
		Host:      h.Name,
		Interface: h.Interface,
		Address:   h.Address,
		Gateway:   c.Gateway,
		AdvertInt: formatSeconds(c.AdvertInt),
		Version:   c.VRRPVersion(),
		AuthPass:  c.AuthPass.Reveal(),
		Unicast:   c.Transport == inventory.TransportUnicast,
		Check:     c.HealthCheck,
		Legacy:    o.Legacy, KeepalivedVersion: o.KeepalivedVersion,
		DrainFile: DrainFile, NginxDownFile: NginxDownFile, TrackScript: TrackScript,
		EventsFIFO: EventsFIFO, EventsScript: EventsScript,
	}
	var vips []netip.Prefix
	var crash time.Duration
	ev := eventsView{Cluster: c.Name, Host: h.Name, Interface: h.Interface, Weight: c.HealthCheck.Weight}
	for _, in := range insts {
		vips = append(vips, in.Addrs()...)
		crash = max(crash, in.Bounds.Crash)
		for _, m := range in.Members {
			if m.Host == host {
				ev.add(in, m.Priority)
				kv.Instances = append(kv.Instances, instanceView{
					Name: in.Name, State: m.State, VRID: in.VRID, Priority: m.Priority, VIP: in.VIP, VIP6: in.VIP6,
					Notify: notifyArgs(c, in),
				})
			}
		}
		if in.Master == host {
			for i, p := range in.Addrs() {
				if i > 0 {
					kv.MasterOf += " + "
				}
				kv.MasterOf += p.String()
			}
		}
		kv.DualStack = kv.DualStack || in.VIP6.IsValid()
	}
	for _, x := range c.Hosts {
		if x.Name != host {
			kv.Peers = append(kv.Peers, x.Address.String())
		}
	}

	files := []struct {
		tmpl, path, service string
		mode                fs.FileMode
		view                any
		secret              bool
	}{
		{"keepalived.conf.tmpl", KeepalivedConf, "keepalived", 0o600, kv, true},
		{"check_nginx.sh.tmpl", CheckScript, "keepalived", 0o755,
			map[string]any{"Host": h.Name, "Weight": c.HealthCheck.Weight}, false},
		{"clean_arp.sh.tmpl", NotifyScript, "keepalived", 0o755,
			map[string]any{"Host": h.Name, "Interface": h.Interface, "IPv6": c.HasIPv6()}, false},
		{"hactl_track.sh.tmpl", TrackScript, "keepalived", 0o755, map[string]any{"Host": h.Name}, false},
		{"keepalived-dropin.conf.tmpl", KeepalivedDrop, "keepalived", 0o644, map[string]any{
			"Cluster": c.Name, "Host": h.Name, "Interface": h.Interface, "VIPs": vips,
			"CrashBound": crash.Round(10 * time.Millisecond).String(), "RestartSec": restartSec(crash),
			"NginxDownDir": NginxDownDir, "NginxDownFile": NginxDownFile, "EventsScript": EventsScript,
		}, false},
		{"hactl_events.sh.tmpl", EventsScript, "", 0o755, ev.view(), false},
		{"hactl-events.service.tmpl", EventsUnit, "", 0o644, map[string]any{
			"Cluster": c.Name, "Host": h.Name, "Dir": EventsDir, "Script": EventsScript,
		}, false},
		{"hactl-events.conf.tmpl", EventsConf, "", 0o600, webhookView(inv.Webhook), inv.Webhook != nil && inv.Webhook.Header != ""},
		{"nginx-dropin.conf.tmpl", NginxDrop, "nginx", 0o644, map[string]any{
			"Cluster": c.Name, "Host": h.Name, "NginxDownDir": NginxDownDir, "NginxDownFile": NginxDownFile,
		}, false},
		{"nginx-site.conf.tmpl", NginxSite, "nginx", 0o644, map[string]any{
			"Cluster": c.Name, "Host": h.Name, "Listen": c.Nginx.Listen, "IPv6": c.HasIPv6(),
			"Upstream": c.Nginx.Upstream, "UpstreamName": upstreamName(c.Name),
		}, false},
	}
	out := make([]File, 0, len(files))
	for _, f := range files {
		var b bytes.Buffer
		if err := r.t.ExecuteTemplate(&b, f.tmpl, f.view); err != nil {
			return nil, fmt.Errorf("render %s for host %q: %w", f.path, host, err)
		}
		file := File{Host: host, Path: f.path, Mode: f.mode, Owner: "root", Group: "root",
			Content: b.Bytes(), Service: f.service, Sensitive: f.secret}
		out = append(out, file)
	}
	// No service: nothing reads the record but hactl itself.
	out = append(out, File{Host: host, Path: ClusterRecord, Mode: 0o644, Owner: "root", Group: "root",
		Content: l.Record(inv, c.Name).Marshal()})
	serving, err := r.servingFiles(c, h)
	if err != nil {
		return nil, err
	}
	return append(out, serving...), nil
}

// All renders every host of the inventory, host by host in file order.
func (r *Renderer) All(inv *inventory.Inventory, l *vrrp.Layout) ([]File, error) {
	var out []File
	for _, h := range inv.Hosts() {
		fs, err := r.Host(inv, l, h.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, fs...)
	}
	return out, nil
}

type keepalivedView struct {
	Cluster, Host, Interface, AdvertInt, AuthPass, MasterOf  string
	KeepalivedVersion, DrainFile, NginxDownFile, TrackScript string
	EventsFIFO, EventsScript                                 string
	Legacy                                                   bool
	Address, Gateway                                         netip.Addr
	Version                                                  int
	Unicast, DualStack                                       bool
	Peers                                                    []string
	Check                                                    inventory.HealthCheck
	Instances                                                []instanceView
}

type instanceView struct {
	Name, State    string
	VRID, Priority int
	VIP, VIP6      netip.Prefix // VIP6: zero unless dual-stack
	// Notify is clean_arp.sh's arguments: VIP GATEWAY, then VIP6 [GATEWAY6].
	Notify string
}

// notifyArgs lists each address of the instance with the gateway to tell
// about it. Only the last pair can lack its gateway (gateway6 is optional,
// gateway is required with IPv4 VIPs, and the IPv4 pair comes first), so
// clean_arp.sh reads the arguments two by two.
func notifyArgs(c *inventory.Cluster, in *vrrp.Instance) string {
	var args []string
	for _, p := range in.Addrs() {
		gw := c.Gateway
		if p.Addr().Is6() {
			gw = c.Gateway6
		}
		args = append(args, p.Addr().String())
		if gw.IsValid() {
			args = append(args, gw.String())
		}
	}
	return strings.Join(args, " ")
}

// formatSeconds prints 1 as "1" (the seed's form) and 0.1 as "0.1".
func formatSeconds(s float64) string {
	if s == math.Trunc(s) {
		return fmt.Sprintf("%d", int(s))
	}
	return fmt.Sprintf("%g", s)
}

// restartSec waits longer than the crash bound (see the drop-in template) but
// not much longer: the host should come back into service soon.
func restartSec(crash time.Duration) string {
	s := int(math.Ceil(crash.Seconds())) + 1
	return fmt.Sprintf("%ds", max(s, 2))
}

var nonWord = regexp.MustCompile(`[^A-Za-z0-9_]`)

func upstreamName(cluster string) string { return nonWord.ReplaceAllString(cluster, "_") }

// Mask hides the secret values of a sensitive file's content (the file as
// rendered or as found on the host) so plans and diffs can show the rest.
// A live keepalived.conf may be hand-made, so every form keepalived reads an
// auth_pass from is covered: see maskKeepalived. A site's key and
// certificate are summarised: see maskServing.
func Mask(f File, content []byte) []byte {
	if m, ok := maskServing(f, content); ok {
		return m
	}
	if !f.Sensitive {
		return content
	}
	if f.Path == EventsConf {
		return maskEventsConf(content)
	}
	return maskKeepalived(content)
}

const masked = "(sensitive)"

var (
	// auth_pass as a keyword: keepalived splits tokens at blanks and
	// braces, and a parameter definition's value ("$P=auth_pass x") is
	// configuration text too.
	authPassKeyword = regexp.MustCompile(`(?:^|[\s{}=])auth_pass(?:[^A-Za-z0-9_]|$)`)
	// What stays visible after a masked value: closing braces and a
	// multiline definition's trailing backslash, each after a blank (an
	// unquoted value never holds a blank, so they cannot be part of it).
	maskKeep = regexp.MustCompile(`(?:\s+[}\\])*\s*$`)
	// "$NAME=value", optionally after "@id " or "@^id " (conditional lines).
	paramDef = regexp.MustCompile(`^(\s*(?:@\^?\S+\s+)?\$([A-Za-z_][A-Za-z0-9_]*)=)(.*)$`)
	paramRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)
)

// maskKeepalived replaces, in keepalived.conf text:
//   - everything after an auth_pass keyword up to the end of its line (but
//     closing braces): quoted values with blanks, one-line blocks
//     ("authentication { auth_type PASS auth_pass x }"), conditional lines
//     ("@node auth_pass x") and trailing comments;
//   - the values of the parameters an auth_pass uses ("$P=secret" with
//     "auth_pass $P" or "${P}"), transitively, multiline definitions
//     included: the secret may live there.
func maskKeepalived(content []byte) []byte {
	lines := strings.SplitAfter(string(content), "\n")
	type def struct{ first, last int } // line range of one definition
	defs := map[string][]def{}
	refs := map[string]bool{}
	var queue []string
	use := func(text string) {
		for _, m := range paramRef.FindAllStringSubmatch(text, -1) {
			if !refs[m[1]] {
				refs[m[1]] = true
				queue = append(queue, m[1])
			}
		}
	}
	for i := 0; i < len(lines); i++ {
		body := strings.TrimRight(lines[i], "\r\n")
		if start, ok := authPassValue(body); ok {
			use(body[start:])
		}
		m := paramDef.FindStringSubmatch(body)
		if m == nil {
			continue
		}
		d := def{first: i, last: i}
		for strings.HasSuffix(strings.TrimRight(lines[d.last], "\r\n"), "\\") && d.last+1 < len(lines) {
			d.last++
		}
		defs[m[2]] = append(defs[m[2]], d)
	}
	hide := map[int]bool{}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		for _, d := range defs[name] {
			for i := d.first; i <= d.last; i++ {
				hide[i] = true
				use(lines[i])
			}
		}
	}

	var b strings.Builder
	for i, line := range lines {
		body := strings.TrimRight(line, "\r\n")
		end := line[len(body):]
		switch {
		case hide[i]:
			start := len(body) - len(strings.TrimLeft(body, " \t"))
			if m := paramDef.FindStringSubmatchIndex(body); m != nil {
				start = m[3]
			}
			body = maskFrom(body, start)
		default:
			if start, ok := authPassValue(body); ok {
				body = maskFrom(body, start)
			}
		}
		b.WriteString(body)
		b.WriteString(end)
	}
	return []byte(b.String())
}

// authPassValue finds the first auth_pass keyword of a line and returns
// where its value starts.
func authPassValue(line string) (int, bool) {
	loc := authPassKeyword.FindStringIndex(line)
	if loc == nil {
		return 0, false
	}
	start := loc[0] + strings.Index(line[loc[0]:], "auth_pass") + len("auth_pass")
	for start < len(line) && (line[start] == ' ' || line[start] == '\t') {
		start++
	}
	return start, true
}

// maskFrom replaces body[start:] by the mask, keeping what maskKeep keeps.
func maskFrom(body string, start int) string {
	rest := body[start:]
	keep := maskKeep.FindStringIndex(rest)[0]
	return body[:start] + masked + rest[keep:]
}
