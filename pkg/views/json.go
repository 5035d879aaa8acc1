package views

import (
	"fmt"
	"time"

	"github.com/hactl/hactl/pkg/drain"
	"github.com/hactl/hactl/pkg/failover"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/ops"
	"github.com/hactl/hactl/pkg/ui"
	"github.com/hactl/hactl/pkg/verify"
	"github.com/hactl/hactl/pkg/vrrp"
)

// jsonView writes each result as the run's one JSON document on stdout;
// progress still goes to stderr as in the human view.
type jsonView struct {
	io    *ui.IO
	human *human
	wrote bool
}

// out writes the run's one document. Every result ends through here, with
// its document embedding ui.Envelope filled by ui.Result(err).
func (v *jsonView) out(doc any) error {
	v.wrote = true
	return ui.JSON(v.io.Out, doc)
}

func (v *jsonView) Wrote() bool { return v.wrote }

func (v *jsonView) Events(verbose bool) ops.Events {
	return newProgress(v.io.Stderr(), verbose, false)
}

type validateJSON struct {
	ui.Envelope
	Valid    bool `json:"valid"`
	Clusters int  `json:"clusters"`
	Hosts    int  `json:"hosts"`
	VIPs     int  `json:"vips"`
	// Warnings: file/line/column like errors; [] when there are none.
	Warnings []diagJSON `json:"warnings"`
}

func (v *jsonView) Validate(r *ops.ValidateResult) error {
	return v.out(validateJSON{Envelope: ui.Result(nil), Valid: true, Clusters: r.Clusters, Hosts: r.Hosts, VIPs: r.VIPs, Warnings: DiagsJSON(r.Warnings)})
}

type renderJSON struct {
	ui.Envelope
	Dir   string           `json:"dir"`
	Files []renderFileJSON `json:"files"`
}

// renderFileJSON is one written file; mode is octal as ls and chmod say it.
type renderFileJSON struct {
	Host      string `json:"host"`
	Path      string `json:"path"`
	Mode      string `json:"mode"`
	Owner     string `json:"owner"`
	Group     string `json:"group"`
	Sensitive bool   `json:"sensitive"`
}

func (v *jsonView) Render(r *ops.RenderResult) error {
	doc := renderJSON{Envelope: ui.Result(nil), Dir: r.Dir, Files: []renderFileJSON{}}
	for _, f := range r.Files {
		doc.Files = append(doc.Files, renderFileJSON{f.Host, f.Path, fmt.Sprintf("%04o", f.Mode.Perm()), f.Owner, f.Group, f.Sensitive})
	}
	return v.out(doc)
}

func (v *jsonView) Layout(inv *inventory.Inventory, l *vrrp.Layout) error {
	return v.out(LayoutJSON(inv, l))
}

// HostJSON is apply's and destroy's per-host JSON. What was not observed
// (an unreachable host's counts) is null.
type HostJSON struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Result is ok, changed, failed or unreachable.
	Result    string  `json:"result"`
	Reachable bool    `json:"reachable"`
	Changed   *int    `json:"changed"`
	Skipped   *int    `json:"skipped"`
	Error     *string `json:"error"`
}

// DepartedJSON is a host that left the inventory, in apply's and plan's JSON.
type DepartedJSON struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	Cluster   string `json:"cluster"`
	VIP       string `json:"vip"`
	VRID      int    `json:"vrid"`
	Reachable bool   `json:"reachable"`
	// Keepalived is its keepalived state; null when it cannot be reached.
	Keepalived *string `json:"keepalived"`
	// Action: "refused", "decommissioned", "would refuse", "would
	// decommission", "reserved".
	Action string `json:"action"`
}

// ApplyJSON is apply's, plan's and destroy's document.
type ApplyJSON struct {
	ui.Envelope
	Hosts []HostJSON `json:"hosts"`
	// Departed are the hosts that left the inventory since the last apply.
	Departed []DepartedJSON    `json:"departed"`
	VIPs     []verify.VIPState `json:"vips"`
	// Plan (plan only) is per host what would change; null for a host
	// that was never reached or failed before it could tell.
	Plan map[string][]Change `json:"plan,omitempty"`
}

// Change is one thing a plan would change on a host.
type Change struct {
	Step    string `json:"step"`
	Summary string `json:"summary"`
	Diff    string `json:"diff,omitempty"`
}

func hostsJSON(hosts []ops.HostResult, conn bool) []HostJSON {
	out := []HostJSON{}
	for _, h := range hosts {
		hj := HostJSON{Name: h.Name, OK: h.OK(), Result: h.Result, Reachable: h.Reachable, Changed: h.Changed, Skipped: h.Skipped}
		if h.Err != nil {
			msg := hostError(h.Name, h.Reachable, h.Err, conn)
			hj.Error = &msg
		}
		out = append(out, hj)
	}
	return out
}

func (v *jsonView) Apply(r *ops.ApplyResult, _ bool) error {
	doc := ApplyJSON{Envelope: ui.Result(r.Err), Hosts: hostsJSON(r.Hosts, true), Departed: []DepartedJSON{}, VIPs: r.VIPs}
	for _, d := range r.Departed {
		doc.Departed = append(doc.Departed, DepartedJSON(d))
	}
	if r.Dry {
		doc.Plan = map[string][]Change{}
		for _, h := range r.Hosts {
			if !h.Known {
				doc.Plan[h.Name] = nil // not known: the host never told
				continue
			}
			doc.Plan[h.Name] = []Change{}
			for _, c := range h.Changes {
				doc.Plan[h.Name] = append(doc.Plan[h.Name], Change{c.Step, c.Summary, c.Diff})
			}
		}
	}
	return v.out(doc)
}

func (v *jsonView) Destroy(r *ops.DestroyResult) error {
	doc := ApplyJSON{Envelope: ui.Result(r.Err), Hosts: hostsJSON(r.Hosts, false), Departed: []DepartedJSON{}}
	if r.Dry {
		doc.Plan = map[string][]Change{}
		for h, cs := range r.Plan {
			doc.Plan[h] = []Change{}
			for _, c := range cs {
				doc.Plan[h] = append(doc.Plan[h], Change{Step: "destroy", Summary: c})
			}
		}
	}
	return v.out(doc)
}

// StatusHostJSON is one host in status's JSON; what an unreachable host could
// not tell (services, enabled, drift) is null.
type StatusHostJSON struct {
	Name       string   `json:"name"`
	Reachable  bool     `json:"reachable"`
	Keepalived *string  `json:"keepalived"`
	Nginx      *string  `json:"nginx"`
	Enabled    *bool    `json:"enabled"`
	Drift      []string `json:"drift"`
	// Drained: `hactl drain` took the host out; null when it could not be read.
	Drained *bool `json:"drained"`
	// ConnectionDrain is what a running connection drain keeps or forwards
	// on the host (pkg/drain); absent when none runs.
	ConnectionDrain *string `json:"connection_drain,omitempty"`
	Error           *string `json:"error"`
}

// StatusSiteJSON is one site in status's JSON: its certificate (null for a
// plain HTTP site) and whether every host serves it alike.
type StatusSiteJSON struct {
	Cluster      string     `json:"cluster"`
	Site         string     `json:"site"`
	CertSubject  *string    `json:"cert_subject"`
	CertSHA256   *string    `json:"cert_sha256"`
	CertNotAfter *time.Time `json:"cert_not_after"`
	CertDaysLeft *int       `json:"cert_days_left"`
	CertWarning  bool       `json:"cert_warning"`
	Consistent   *bool      `json:"consistent"`
	DriftHosts   []string   `json:"drift_hosts"`
}

// StatusJSON is status's document.
type StatusJSON struct {
	ui.Envelope
	VIPs  []verify.VIPState `json:"vips"`
	Hosts []StatusHostJSON  `json:"hosts"`
	Sites []StatusSiteJSON  `json:"sites"`
}

func (v *jsonView) Status(r *ops.StatusResult, _ bool) error {
	doc := StatusJSON{Envelope: ui.Result(r.Err), VIPs: r.VIPs, Hosts: []StatusHostJSON{}, Sites: []StatusSiteJSON{}}
	for _, x := range r.Sites {
		sj := StatusSiteJSON{Cluster: x.Cluster, Site: x.Site, CertNotAfter: x.NotAfter, CertDaysLeft: x.DaysLeft,
			CertWarning: x.Warn, Consistent: x.Consistent, DriftHosts: append([]string{}, x.DriftHosts...)}
		if x.CertSHA256 != "" {
			sj.CertSubject, sj.CertSHA256 = &x.CertSubject, &x.CertSHA256
		}
		doc.Sites = append(doc.Sites, sj)
	}
	for _, h := range r.Hosts {
		sh := StatusHostJSON{Name: h.Name, Reachable: h.Reachable, Keepalived: h.Keepalived, Nginx: h.Nginx, Enabled: h.Enabled, Drift: h.Drift, Drained: h.Drained, ConnectionDrain: h.ConnectionDrain}
		if h.Err != nil {
			msg := hostError(h.Name, !h.Unreachable, h.Err, true)
			sh.Error = &msg
		}
		doc.Hosts = append(doc.Hosts, sh)
	}
	if err := v.out(doc); err != nil {
		return err
	}
	return r.Err
}

func (v *jsonView) FailoverProgress() (func(failover.Step), func(bool, string)) {
	return v.human.failoverProgress()
}

// failoverJSON is the failover-test document: {"scenarios":[…]} plus, when
// something went wrong, "left", "interrupted", "error", or "preflight".
type failoverJSON struct {
	ui.Envelope
	failover.Report
	Preflight *failover.Status `json:"preflight,omitempty"`
}

func (v *jsonView) Failover(r *ops.FailoverResult) error {
	if r.Refused != nil {
		return v.out(failoverJSON{Envelope: ui.Result(r.Refused), Report: r.Report, Preflight: r.Preflight})
	}
	_, say := v.human.failoverProgress()
	if r.ReportErr != nil {
		say(false, "hactl: "+r.ReportErr.Error())
	}
	doc := failoverJSON{Envelope: ui.Result(r.Err), Report: r.Report}
	if r.Err == nil && !r.Report.OK() {
		doc.Envelope.OK = false
		doc.Envelope.Error = "a scenario failed"
	}
	err := v.out(doc)
	v.human.notRestored(r)
	return err
}

// DrainProgress: the JSON document is the whole stdout.
func (v *jsonView) DrainProgress() func(string) { return nil }

// drainJSON is drain's and undrain's document.
type drainJSON struct {
	ui.Envelope
	*drain.Result
}

func (v *jsonView) Drain(res *drain.Result, _ bool) error {
	return v.out(drainJSON{Envelope: ui.Result(nil), Result: res})
}
