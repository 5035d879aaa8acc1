// Package playbook is hactl's small configuration engine: ordered steps of
// idempotent modules (package, template, file, service, command, firewall)
// and handlers that run only when a notifying step changed something; a
// step's `when` limits it to hosts where a fact condition holds. The engine is
// general; what makes a host an HA load balancer lives in the playbook file
// (playbooks/ha-nginx.hcl) and the templates.
package playbook

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// Step is one named module invocation.
type Step struct {
	Name   string
	Module Module
	Notify []string
}

// Handler runs at most once per host, after the steps, when notified.
type Handler struct {
	Name   string
	Module Module
}

// Book is a parsed playbook.
type Book struct {
	Name     string
	Steps    []Step
	Handlers []Handler // in file order: handlers run in this order
}

type bookSchema struct {
	Steps    []*stepSchema    `hcl:"step,block"`
	Handlers []*handlerSchema `hcl:"handler,block"`
}

type modulesSchema struct {
	Package  []*packageSchema  `hcl:"package,block"`
	Template []*templateSchema `hcl:"template,block"`
	File     []*fileSchema     `hcl:"file,block"`
	Service  []*serviceSchema  `hcl:"service,block"`
	Command  []*commandSchema  `hcl:"command,block"`
	Firewall []*firewallSchema `hcl:"firewall,block"`
	// NginxSites: the serving layer's files as one tested change (sites.go).
	NginxSites []*nginxSitesSchema `hcl:"nginx_sites,block"`
}

type stepSchema struct {
	Name     string    `hcl:"name,label"`
	Notify   []string  `hcl:"notify,optional"`
	When     *string   `hcl:"when,optional"`
	Modules  hcl.Body  `hcl:",remain"`
	DefRange hcl.Range `hcl:",def_range"`
}

type handlerSchema struct {
	Name     string    `hcl:"name,label"`
	Modules  hcl.Body  `hcl:",remain"`
	DefRange hcl.Range `hcl:",def_range"`
}

type packageSchema struct {
	Names           []string            `hcl:"names"`
	NamesByFamily   map[string][]string `hcl:"names_by_family,optional"`
	UnlessInstalled []string            `hcl:"unless_installed,optional"`
	// RequiresByFamily: per OS key, packages that must already be installed
	// for the step to install anything (e.g. epel-release for an EPEL-only
	// package); without them it is skipped, saying why.
	RequiresByFamily map[string][]string `hcl:"requires_by_family,optional"`
}

type firewallSchema struct {
	VRRP      *bool    `hcl:"vrrp,optional"`
	Interface *string  `hcl:"interface,optional"`
	Ports     []string `hcl:"ports,optional"`
}

type templateSchema struct {
	Path       string  `hcl:"path"`
	Validate   *string `hcl:"validate,optional"`
	ValidateIf *string `hcl:"validate_if,optional"`
	Check      *string `hcl:"check,optional"`
}

type fileSchema struct {
	Path  string `hcl:"path"`
	State string `hcl:"state"`
}

type serviceSchema struct {
	Name   string  `hcl:"name"`
	Action *string `hcl:"action,optional"`
}

type commandSchema struct {
	Run     string  `hcl:"run"`
	Unless  *string `hcl:"unless,optional"`
	Summary *string `hcl:"summary,optional"`
}

// Parse reads a playbook. name is used in diagnostics. The parser is
// returned for printing diagnostics with snippets.
func Parse(name string, src []byte) (*Book, *hclparse.Parser, hcl.Diagnostics) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, name)
	if diags.HasErrors() {
		return nil, p, diags
	}
	var raw bookSchema
	if diags = gohcl.DecodeBody(f.Body, nil, &raw); diags.HasErrors() {
		return nil, p, diags
	}
	b := &Book{Name: name}
	handlers := map[string]bool{}
	for _, h := range raw.Handlers {
		if handlers[h.Name] {
			diags = append(diags, errAt(h.DefRange, "Duplicate handler", fmt.Sprintf("handler %q is defined twice.", h.Name)))
		}
		handlers[h.Name] = true
		m, d := decodeModule(h.Modules, h.DefRange, "handler "+h.Name)
		diags = append(diags, d...)
		b.Handlers = append(b.Handlers, Handler{Name: h.Name, Module: m})
	}
	for _, s := range raw.Steps {
		m, d := decodeModule(s.Modules, s.DefRange, "step "+s.Name)
		diags = append(diags, d...)
		if s.When != nil && m != nil {
			if condition(*s.When) == nil {
				diags = append(diags, errAt(s.DefRange, "Unknown condition", fmt.Sprintf("step %q: when %q is not one of: %s.", s.Name, *s.When, conditionNames())))
			}
			m = &When{Cond: *s.When, Module: m}
		}
		for _, n := range s.Notify {
			if !handlers[n] {
				diags = append(diags, errAt(s.DefRange, "Unknown handler",
					fmt.Sprintf("step %q notifies %q, which no handler block defines.", s.Name, n)))
			}
		}
		b.Steps = append(b.Steps, Step{Name: s.Name, Module: m, Notify: s.Notify})
	}
	if len(b.Steps) == 0 && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Empty playbook", Detail: name + " has no step blocks."})
	}
	if diags.HasErrors() {
		return nil, p, diags
	}
	return b, p, nil
}

func decodeModule(body hcl.Body, r hcl.Range, where string) (Module, hcl.Diagnostics) {
	var ms modulesSchema
	diags := gohcl.DecodeBody(body, nil, &ms)
	if diags.HasErrors() {
		return nil, diags
	}
	var mods []Module
	for _, x := range ms.Package {
		mods = append(mods, &Package{Names: x.Names, NamesByFamily: x.NamesByFamily, UnlessInstalled: x.UnlessInstalled, RequiresByFamily: x.RequiresByFamily})
	}
	for _, x := range ms.Firewall {
		f := &Firewall{Ports: x.Ports}
		if x.VRRP != nil {
			f.VRRP = *x.VRRP
		}
		setStr(&f.Interface, x.Interface)
		mods = append(mods, f)
	}
	for _, x := range ms.Template {
		t := &Template{Path: x.Path}
		setStr(&t.Validate, x.Validate)
		setStr(&t.ValidateIf, x.ValidateIf)
		setStr(&t.Check, x.Check)
		if t.Validate != "" && !strings.Contains(t.Validate, "%s") {
			diags = append(diags, errAt(r, "Invalid validate", where+": validate must contain %s, the candidate file's path."))
		}
		if t.ValidateIf != "" && condition(t.ValidateIf) == nil {
			diags = append(diags, errAt(r, "Unknown condition", fmt.Sprintf("%s: validate_if %q is not one of: %s.", where, t.ValidateIf, conditionNames())))
		}
		mods = append(mods, t)
	}
	for _, x := range ms.File {
		if x.State != "absent" {
			diags = append(diags, errAt(r, "Invalid file state", where+`: the file module supports state = "absent" (use template for contents).`))
		}
		mods = append(mods, &Absent{Path: x.Path})
	}
	for _, x := range ms.Service {
		s := &Service{Name: x.Name, Action: "started"}
		setStr(&s.Action, x.Action)
		if s.Action != "started" && s.Action != "reload" && s.Action != "restart" {
			diags = append(diags, errAt(r, "Invalid service action", where+`: action must be "started", "reload" or "restart".`))
		}
		mods = append(mods, s)
	}
	for _, x := range ms.Command {
		c := &Command{Cmd: x.Run}
		setStr(&c.Unless, x.Unless)
		setStr(&c.Summary, x.Summary)
		mods = append(mods, c)
	}
	for _, x := range ms.NginxSites {
		mods = append(mods, &NginxSites{Dir: x.Dir, Include: x.Include, MainConf: x.MainConf, Check: x.Check})
	}
	if len(mods) != 1 {
		diags = append(diags, errAt(r, "One module per step", fmt.Sprintf("%s has %d module blocks; give it exactly one.", where, len(mods))))
		return nil, diags
	}
	return mods[0], diags
}

func setStr(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

func errAt(r hcl.Range, summary, detail string) *hcl.Diagnostic {
	rr := r
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: &rr}
}
