package inventory

import (
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// The HCL schema. Optional attributes are pointers so "absent" and "zero" stay
// distinct (a missing advert_int gets the default; advert_int = 0 is an error).
type fileSchema struct {
	SSH      []*sshSchema     `hcl:"ssh,block"`
	Clusters []*clusterSchema `hcl:"cluster,block"`
	Webhook  []*webhookSchema `hcl:"webhook,block"`
}

type sshSchema struct {
	User           *string   `hcl:"user,optional"`
	Port           *int      `hcl:"port,optional"`
	PrivateKeyFile *string   `hcl:"private_key_file,optional"`
	KnownHostsFile *string   `hcl:"known_hosts_file,optional"`
	Become         *bool     `hcl:"become,optional"`
	JumpHost       *string   `hcl:"jump_host,optional"`
	Body           hcl.Body  `hcl:",body"`
	DefRange       hcl.Range `hcl:",def_range"`
}

type clusterSchema struct {
	Name           string          `hcl:"name,label"`
	Interface      *string         `hcl:"interface,optional"`
	Gateway        *string         `hcl:"gateway,optional"`
	Gateway6       *string         `hcl:"gateway6,optional"`
	AdvertInt      *float64        `hcl:"advert_int,optional"`
	VRIDBase       *int            `hcl:"virtual_router_id_base,optional"`
	AuthPass       *string         `hcl:"auth_pass,optional"`
	BackupOrder    *string         `hcl:"backup_order,optional"`
	Transport      *string         `hcl:"vrrp_transport,optional"`
	CrossSubnet    *bool           `hcl:"allow_cross_subnet,optional"`
	MasterPriority *int            `hcl:"master_priority,optional"`
	PriorityStep   *int            `hcl:"priority_step,optional"`
	DrainGrace     *float64        `hcl:"drain_grace,optional"`
	HealthCheck    []*healthSchema `hcl:"health_check,block"`
	Nginx          []*nginxSchema  `hcl:"nginx,block"`
	Hosts          []*hostSchema   `hcl:"host,block"`
	// The serving layer (sites.go).
	Sites    []*siteSchema     `hcl:"site,block"`
	Pools    []*poolSchema     `hcl:"pool,block"`
	Streams  []*streamSchema   `hcl:"stream,block"`
	Snippets []*snippetsSchema `hcl:"snippets,block"`
	Body     hcl.Body          `hcl:",body"`
	DefRange hcl.Range         `hcl:",def_range"`
}

type healthSchema struct {
	Interval *int      `hcl:"interval,optional"`
	Weight   *int      `hcl:"weight,optional"`
	Fall     *int      `hcl:"fall,optional"`
	Rise     *int      `hcl:"rise,optional"`
	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type nginxSchema struct {
	Listen   *int      `hcl:"listen,optional"`
	Upstream []string  `hcl:"upstream,optional"`
	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type hostSchema struct {
	Name      string       `hcl:"name,label"`
	Address   *string      `hcl:"address,optional"`
	VIP       *string      `hcl:"vip,optional"`
	VIP6      *string      `hcl:"vip6,optional"`
	Interface *string      `hcl:"interface,optional"`
	VRID      *int         `hcl:"virtual_router_id,optional"`
	SSH       []*sshSchema `hcl:"ssh,block"`
	Body      hcl.Body     `hcl:",body"`
	DefRange  hcl.Range    `hcl:",def_range"`
}

// Options carries what the loader needs from the outside world. LookupEnv
// backs the env() function; passing it in keeps the loader pure and testable.
type Options struct {
	LookupEnv func(string) (string, bool)
	// ReadFile and ReadDir read what sites name (certificates, keys,
	// snippets); Now decides whether a certificate is valid. nil: the os
	// functions and the clock.
	ReadFile func(string) ([]byte, error)
	ReadDir  func(string) ([]os.DirEntry, error)
	Now      func() time.Time
	// Stat looks at local files the inventory names (known_hosts_file);
	// nil means os.Stat.
	Stat func(string) (fs.FileInfo, error)
}

// Loader parses inventory files. Its parser keeps every file it has read so
// that diagnostics can be printed with source snippets.
type Loader struct {
	parser *hclparse.Parser
	opts   Options
	// standIn: see StandIn.
	standIn *Inventory
}

// NewLoader returns a loader. A nil LookupEnv means os.LookupEnv.
func NewLoader(opts Options) *Loader {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.ReadFile == nil {
		opts.ReadFile = os.ReadFile
	}
	if opts.ReadDir == nil {
		opts.ReadDir = os.ReadDir
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Stat == nil {
		opts.Stat = os.Stat
	}
	return &Loader{parser: hclparse.NewParser(), opts: opts}
}

// Files returns every source file read so far, for hcl.NewDiagnosticTextWriter.
func (l *Loader) Files() map[string]*hcl.File { return l.parser.Files() }

// LoadFile reads and validates path.
func (l *Loader) LoadFile(path string) (*Inventory, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read inventory",
			Detail:   fmt.Sprintf("%s: %v", path, err),
		}}
	}
	return l.Load(path, src)
}

// Load parses src (named path in diagnostics) and validates it. On any error
// the returned inventory is nil: a partly valid inventory is never used.
func (l *Loader) Load(path string, src []byte) (*Inventory, hcl.Diagnostics) {
	if diags := checkSource(path, src); diags.HasErrors() {
		return nil, diags
	}
	f, diags := l.parser.ParseHCL(src, path)
	if diags.HasErrors() {
		return nil, diags
	}
	var raw fileSchema
	diags = append(diags, gohcl.DecodeBody(f.Body, evalContext(l.opts.LookupEnv), &raw)...)
	if diags.HasErrors() {
		return nil, append(diags, l.behindUnsetEnv(f.Body, path, diags)...)
	}
	inv, more := build(path, &raw)
	diags = append(diags, more...)
	diags = append(diags, l.serving(path, inv, &raw)...)
	diags = append(diags, l.checkKnownHosts(&raw)...)
	sortDiags(diags)
	redactSecrets(diags, inv)
	if diags.HasErrors() {
		return nil, diags
	}
	inv.Files = l.parser.Files()
	return inv, diags
}

// behindUnsetEnv finds the problems an unset env() would hide until it is
// set: when that is the only decoding error, the file is decoded again with
// a stand-in value for every variable and checked; what the check says
// about the env() calls themselves (the stand-in) is left out.
func (l *Loader) behindUnsetEnv(body hcl.Body, path string, diags hcl.Diagnostics) hcl.Diagnostics {
	var calls []hcl.Range
	for _, d := range diags {
		if d.Subject != nil && strings.Contains(d.Detail, `Call to function "env" failed`) {
			calls = append(calls, *d.Subject)
		}
	}
	onCall := func(d *hcl.Diagnostic) bool {
		for _, c := range calls {
			if d.Subject != nil && d.Subject.Overlaps(c) {
				return true
			}
		}
		return false
	}
	for _, d := range diags {
		if d.Severity == hcl.DiagError && !onCall(d) {
			return nil // another decoding error: the file's shape is unknown
		}
	}
	var raw fileSchema
	standIn := func(string) (string, bool) { return "x", true }
	if gohcl.DecodeBody(body, evalContext(standIn), &raw).HasErrors() {
		return nil
	}
	inv, more := build(path, &raw)
	var out hcl.Diagnostics
	for _, d := range more {
		if !onCall(d) {
			out = append(out, d)
		}
	}
	if !more.HasErrors() {
		inv.Files = l.parser.Files()
		l.standIn = inv
	}
	return out
}

// StandIn is, after a Load that failed only because env() variables are
// unset, the inventory as it would be with each of them set (to a stand-in
// value): for the checks that follow loading (the VRRP layout's), so that
// one run reports every problem. Never use it for anything else. nil
// otherwise.
func (l *Loader) StandIn() *Inventory { return l.standIn }

// evalContext exposes env() and nothing else: an inventory is data, not a program.
func evalContext(lookup func(string) (string, bool)) *hcl.EvalContext {
	env := function.New(&function.Spec{
		Params: []function.Parameter{{Name: "name", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			name := args[0].AsString()
			v, ok := lookup(name)
			if !ok {
				// Never an empty string: an unset secret must stop the run.
				return cty.NilVal, fmt.Errorf("environment variable %q is not set", name)
			}
			return cty.StringVal(v), nil
		},
	})
	return &hcl.EvalContext{Functions: map[string]function.Function{"env": env}}
}

// attrRanges returns where each attribute of a native-syntax body was written.
func attrRanges(body hcl.Body) map[string]hcl.Range {
	m := map[string]hcl.Range{}
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return m
	}
	for name, a := range sb.Attributes {
		m[name] = a.Expr.Range()
	}
	return m
}

func build(path string, raw *fileSchema) (*Inventory, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	inv := &Inventory{Path: path}

	defaults := SSH{User: DefaultUser, Port: DefaultPort, KnownHostsFile: DefaultKnownHosts}
	switch len(raw.SSH) {
	case 0:
	case 1:
		defaults = mergeSSH(defaults, raw.SSH[0])
	default:
		diags = append(diags, dupBlock("ssh", raw.SSH[1].DefRange, raw.SSH[0].DefRange))
	}
	if len(raw.SSH) > 0 {
		diags = append(diags, checkSSH(defaults, raw.SSH[0])...)
	}
	if len(raw.Clusters) == 0 {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No cluster",
			Detail:   "An inventory needs at least one cluster block with its hosts.",
			Subject:  &hcl.Range{Filename: path, Start: hcl.InitialPos, End: hcl.InitialPos},
		})
	}
	for _, rc := range raw.Clusters {
		c, d := buildCluster(rc, defaults)
		diags = append(diags, d...)
		inv.Clusters = append(inv.Clusters, c)
	}
	diags = append(diags, validateFleet(inv)...)
	wh, d := buildWebhook(raw.Webhook)
	inv.Webhook, diags = wh, append(diags, d...)
	diags = append(diags, checkValues(raw)...)
	sortDiags(diags)
	return inv, diags
}

func mergeSSH(base SSH, s *sshSchema) SSH {
	if s.User != nil {
		base.User, base.Set.User = *s.User, true
	}
	if s.Port != nil {
		base.Port, base.Set.Port = *s.Port, true
	}
	if s.PrivateKeyFile != nil {
		base.PrivateKeyFile, base.Set.PrivateKeyFile = *s.PrivateKeyFile, true
	}
	if s.KnownHostsFile != nil {
		base.KnownHostsFile, base.Set.KnownHostsFile = *s.KnownHostsFile, true
	}
	if s.Become != nil {
		base.Become, base.Set.Become = *s.Become, true
	}
	if s.JumpHost != nil {
		base.JumpHost, base.Set.JumpHost = *s.JumpHost, true
	}
	return base
}

func checkSSH(merged SSH, s *sshSchema) hcl.Diagnostics {
	var diags hcl.Diagnostics
	r := attrRanges(s.Body)
	if s.Port != nil && (merged.Port < 1 || merged.Port > 65535) {
		diags = append(diags, errAt(r["port"], "Invalid SSH port", fmt.Sprintf("port %d is outside 1-65535.", merged.Port)))
	}
	if s.User != nil && merged.User == "" {
		diags = append(diags, errAt(r["user"], "Empty SSH user", "user must not be empty."))
	}
	if s.KnownHostsFile != nil && merged.KnownHostsFile == "" {
		diags = append(diags, errAt(r["known_hosts_file"], "Empty known_hosts_file",
			"Host keys are always verified: known_hosts_file must name a file."))
	}
	if s.JumpHost != nil {
		if _, _, _, err := ParseJumpHost(merged.JumpHost); err != nil {
			diags = append(diags, errAt(r["jump_host"], "Invalid jump_host",
				fmt.Sprintf("jump_host %q: %v; write \"[user@]host[:port]\" (one hop) or \"none\".", merged.JumpHost, err)))
		}
	}
	return diags
}

func buildCluster(rc *clusterSchema, defaults SSH) (*Cluster, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	c := &Cluster{
		Name:           rc.Name,
		AdvertInt:      DefaultAdvertInt,
		VRIDBase:       DefaultVRIDBase,
		BackupOrder:    BackupOrderInventory,
		Transport:      TransportMulticast,
		MasterPriority: DefaultMasterPriority,
		PriorityStep:   DefaultPriorityStep,
		HealthCheck:    HealthCheck{Interval: 2, Weight: -5, Fall: 2, Rise: 1, Ranges: map[string]hcl.Range{}},
		Nginx:          Nginx{Listen: DefaultListen, Ranges: map[string]hcl.Range{}},
		DefRange:       rc.DefRange,
		Ranges:         attrRanges(rc.Body),
	}
	setStr(&c.Interface, rc.Interface)
	setF(&c.AdvertInt, rc.AdvertInt)
	setInt(&c.VRIDBase, rc.VRIDBase)
	setStr(&c.BackupOrder, rc.BackupOrder)
	setStr(&c.Transport, rc.Transport)
	if rc.CrossSubnet != nil {
		c.AllowCrossSubnet = *rc.CrossSubnet
	}
	setInt(&c.MasterPriority, rc.MasterPriority)
	setInt(&c.PriorityStep, rc.PriorityStep)
	diags = append(diags, setDrainGrace(c, rc.DrainGrace)...)
	if rc.AuthPass != nil {
		c.AuthPass = NewSecret(*rc.AuthPass)
	}
	if rc.Gateway != nil {
		gw, err := netip.ParseAddr(*rc.Gateway)
		switch {
		case err == nil && gw.Is6() && !gw.Is4In6():
			diags = append(diags, errAt(c.Range("gateway"), "Invalid gateway",
				fmt.Sprintf("gateway %q is IPv6; gateway is the IPv4 gateway, an IPv6 one goes in gateway6.", *rc.Gateway)))
		case err != nil || !gw.Is4():
			diags = append(diags, errAt(c.Range("gateway"), "Invalid gateway",
				fmt.Sprintf("gateway %q is not an IPv4 address.", *rc.Gateway)))
		default:
			c.Gateway = gw
		}
	}
	if rc.Gateway6 != nil {
		gw, err := netip.ParseAddr(*rc.Gateway6)
		if why := addrProblem(gw, err, addrGateway); why != "" || !gw.Is6() {
			if why == "" {
				why = "it is not an IPv6 address (the IPv4 gateway goes in gateway)"
			}
			diags = append(diags, errAt(c.Range("gateway6"), "Invalid gateway6",
				fmt.Sprintf("cluster %q: gateway6 %q: %s.", c.Name, *rc.Gateway6, why)))
		} else {
			c.Gateway6 = gw
		}
	}

	switch len(rc.HealthCheck) {
	case 0:
	default:
		if len(rc.HealthCheck) > 1 {
			diags = append(diags, dupBlock("health_check", rc.HealthCheck[1].DefRange, rc.HealthCheck[0].DefRange))
		}
		hc := rc.HealthCheck[0]
		c.HealthCheck.Ranges = attrRanges(hc.Body)
		setInt(&c.HealthCheck.Interval, hc.Interval)
		setInt(&c.HealthCheck.Weight, hc.Weight)
		setInt(&c.HealthCheck.Fall, hc.Fall)
		setInt(&c.HealthCheck.Rise, hc.Rise)
	}
	switch len(rc.Nginx) {
	case 0:
	default:
		if len(rc.Nginx) > 1 {
			diags = append(diags, dupBlock("nginx", rc.Nginx[1].DefRange, rc.Nginx[0].DefRange))
		}
		ng := rc.Nginx[0]
		c.Nginx.Ranges = attrRanges(ng.Body)
		setInt(&c.Nginx.Listen, ng.Listen)
		c.Nginx.Upstream = ng.Upstream
	}

	for i, rh := range rc.Hosts {
		h := &Host{
			Name:      rh.Name,
			Interface: c.Interface,
			VRID:      c.VRIDBase + i,
			SSH:       defaults,
			DefRange:  rh.DefRange,
			Ranges:    attrRanges(rh.Body),
		}
		setStr(&h.Interface, rh.Interface)
		setInt(&h.VRID, rh.VRID)
		h.VRIDSet = rh.VRID != nil
		if rh.VRID == nil {
			// A derived VRID is blamed on the base that produced it.
			h.Ranges["virtual_router_id"] = c.Range("virtual_router_id_base")
		}
		if rh.Interface == nil {
			h.Ranges["interface"] = c.Range("interface")
		}
		switch len(rh.SSH) {
		case 0:
		default:
			if len(rh.SSH) > 1 {
				diags = append(diags, dupBlock("ssh", rh.SSH[1].DefRange, rh.SSH[0].DefRange))
			}
			h.SSH = mergeSSH(defaults, rh.SSH[0])
			diags = append(diags, checkSSH(h.SSH, rh.SSH[0])...)
		}
		if rh.Address == nil {
			diags = append(diags, errAt(rh.DefRange, "Missing address",
				fmt.Sprintf("host %q needs address = \"<IPv4 or IPv6 address>\".", rh.Name)))
		} else if a, err := netip.ParseAddr(*rh.Address); err != nil {
			diags = append(diags, errAt(h.Range("address"), "Invalid address",
				fmt.Sprintf("host %q: address %q is not an IP address (no prefix length here).", rh.Name, *rh.Address)))
		} else if why := addrProblem(a, nil, addrHost); why != "" {
			diags = append(diags, errAt(h.Range("address"), "Invalid address",
				fmt.Sprintf("host %q: address %q: %s.", rh.Name, *rh.Address, why)))
		} else {
			h.Address = a
		}
		if rh.VIP == nil {
			diags = append(diags, errAt(rh.DefRange, "Missing vip",
				fmt.Sprintf("host %q needs vip = \"<address>/<prefix>\", the VIP it is MASTER of.", rh.Name)))
		} else {
			diags = append(diags, parseVIP(h, "vip", *rh.VIP)...)
		}
		if rh.VIP6 != nil {
			diags = append(diags, parseVIP(h, "vip6", *rh.VIP6)...)
		}
		c.Hosts = append(c.Hosts, h)
	}
	diags = append(diags, validateCluster(c)...)
	return c, diags
}

// The shortest VIP prefixes hactl takes: a /16 (65536 addresses) is already
// a very large LAN, a /48 an IPv6 site; anything shorter puts a range on-link
// that no single segment holds.
const (
	MinVIPBits4 = 16
	MinVIPBits6 = 48
)

// parseVIP reads a host's vip or vip6 attribute into h.
func parseVIP(h *Host, attr, s string) hcl.Diagnostics {
	r := h.Range(attr)
	bad := func(summary, format string, args ...any) hcl.Diagnostics {
		return hcl.Diagnostics{errAt(r, summary, fmt.Sprintf("host %q: %s %q ", h.Name, attr, s)+fmt.Sprintf(format, args...))}
	}
	if strings.Contains(s, "%") {
		return bad("Invalid VIP", "has a zone identifier; a VIP is a global address, its NIC is the host's interface (%s).", h.Interface)
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil {
			example := s + "/24"
			if a.Is6() {
				example = s + "/64"
			}
			return bad("VIP without prefix length",
				"needs its prefix length, e.g. %q; keepalived would otherwise add it as a host route (/32 or /128).", example)
		}
		return bad("Invalid VIP", "is not an IP address with a prefix length.")
	}
	a := p.Addr()
	switch {
	case attr == "vip6" && !a.Is6():
		return bad("Invalid VIP", "is not IPv6; vip6 adds an IPv6 VIP to a host whose vip is IPv4.")
	case p.Bits() == 0:
		return bad("Invalid VIP", "has prefix length /0: the whole address space would be on-link on %s. Use the subnet's own length (/24, /64, ...).", h.Interface)
	}
	if why := addrProblem(a, nil, addrVIP); why != "" {
		return bad("Invalid VIP", "cannot be a VIP: %s.", why)
	}
	if a.Is4() && p.Bits() < MinVIPBits4 || a.Is6() && p.Bits() < MinVIPBits6 {
		return bad("Invalid VIP", "has prefix length /%d: keepalived adds that whole range as on-link on %s, so the holder would answer for (and ARP for) addresses far beyond its LAN. hactl takes /%d or longer for IPv4, /%d or longer for IPv6: use the subnet's own length.",
			p.Bits(), h.Interface, MinVIPBits4, MinVIPBits6)
	}
	if attr == "vip6" {
		h.VIP6 = p
	} else {
		h.VIP = p
	}
	return nil
}

func setStr(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

func setInt(dst *int, v *int) {
	if v != nil {
		*dst = *v
	}
}

func setF(dst *float64, v *float64) {
	if v != nil {
		*dst = *v
	}
}

func errAt(r hcl.Range, summary, detail string) *hcl.Diagnostic {
	rr := r
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: &rr}
}

func dupBlock(name string, r, first hcl.Range) *hcl.Diagnostic {
	return errAt(r, "Duplicate "+name+" block",
		fmt.Sprintf("Only one %s block is allowed here; the first one is at %s.", name, first.String()))
}

// sortDiags orders findings by file position so the output reads top to bottom.
func sortDiags(d hcl.Diagnostics) {
	sort.SliceStable(d, func(i, j int) bool {
		a, b := d[i].Subject, d[j].Subject
		if a == nil || b == nil {
			return a == nil && b != nil
		}
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
}
