package views

import (
	"fmt"
	"strings"

	"charm.land/lipgloss/v2"

	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/ui"
	"github.com/hactl/hactl/pkg/vrrp"
)

// layoutJSON is plan --offline's JSON document.
type layoutJSON struct {
	ui.Envelope
	Clusters []clusterJSON `json:"clusters"`
	VIPs     []vipPlanJSON `json:"vips"`
}

type clusterJSON struct {
	Name        string           `json:"name"`
	Interface   string           `json:"interface"`
	Gateway     string           `json:"gateway"`
	Gateway6    string           `json:"gateway6,omitempty"`
	AdvertInt   float64          `json:"advert_int"`
	VRRPVersion int              `json:"vrrp_version"`
	Transport   string           `json:"vrrp_transport"`
	BackupOrder string           `json:"backup_order"`
	AuthPass    inventory.Secret `json:"auth_pass"`
	Check       checkJSON        `json:"health_check"`
	Hosts       []string         `json:"hosts"`
}

type checkJSON struct {
	Interval int `json:"interval"`
	Weight   int `json:"weight"`
	Fall     int `json:"fall"`
	Rise     int `json:"rise"`
}

type vipPlanJSON struct {
	VIP       string        `json:"vip"`
	VIP6      string        `json:"vip6,omitempty"` // a dual-stack instance's IPv6 VIP (moves with vip)
	Cluster   string        `json:"cluster"`
	Instance  string        `json:"instance"`
	VRID      int           `json:"vrid"`
	VRIDFrom  string        `json:"vrid_from"`
	Master    string        `json:"master"`
	Members   []vrrp.Member `json:"members"`
	GracefulS float64       `json:"graceful_s"`
	CrashS    float64       `json:"crash_s"`
}

// LayoutJSON is the stable JSON form of the layout.
func LayoutJSON(inv *inventory.Inventory, layout *vrrp.Layout) any {
	doc := layoutJSON{Envelope: ui.Result(nil)}
	for _, c := range inv.Clusters {
		cj := clusterJSON{
			Name: c.Name, Interface: c.Interface, Gateway: c.Gateway.String(), AdvertInt: c.AdvertInt,
			VRRPVersion: c.VRRPVersion(), Transport: c.Transport, BackupOrder: c.BackupOrder, AuthPass: c.AuthPass,
			Check: checkJSON{c.HealthCheck.Interval, c.HealthCheck.Weight, c.HealthCheck.Fall, c.HealthCheck.Rise},
		}
		if c.Gateway6.IsValid() {
			cj.Gateway6 = c.Gateway6.String()
		}
		for _, h := range c.Hosts {
			cj.Hosts = append(cj.Hosts, h.Name)
		}
		doc.Clusters = append(doc.Clusters, cj)
	}
	for _, in := range layout.Instances {
		v := vipPlanJSON{
			VIP: in.VIP.String(), Cluster: in.Cluster, Instance: in.Name, VRID: in.VRID, VRIDFrom: in.VRIDFrom, Master: in.Master,
			Members: in.Members, GracefulS: round2(in.Bounds.Graceful.Seconds()), CrashS: round2(in.Bounds.Crash.Seconds()),
		}
		if in.VIP6.IsValid() {
			v.VIP6 = in.VIP6.String()
		}
		doc.VIPs = append(doc.VIPs, v)
	}
	return doc
}

func round2(f float64) float64 { return float64(int(f*100+0.5)) / 100 }

// PrintLayout prints, per cluster, a summary line and the VRRP table.
func PrintLayout(p *ui.Printer, inv *inventory.Inventory, layout *vrrp.Layout) {
	for i, c := range inv.Clusters {
		if i > 0 {
			p.Println()
		}
		printClusterLine(p, c)
		printVRRPTable(p, layout.ForCluster(c.Name))
		p.Paragraph("%s\n", vridLegend(layout.ForCluster(c.Name)))
	}
}

// printClusterLine is the cluster's summary: interface, gateways, VRRP,
// health check.
func printClusterLine(p *ui.Printer, c *inventory.Cluster) {
	auth := "PASS (sensitive)"
	if c.VRRPVersion() == 3 {
		auth = "none (VRRPv3 has no authentication)"
	}
	gw := "gateway " + c.Gateway.String()
	switch {
	case !c.Gateway.IsValid() && c.Gateway6.IsValid():
		gw = "gateway6 " + c.Gateway6.String()
	case c.Gateway6.IsValid():
		gw += ", gateway6 " + c.Gateway6.String()
	}
	p.Paragraph("%s %s: interface %s, %s, advert_int %gs (VRRPv%d, %s), backup order %s, auth %s\n",
		p.Styles.Bold.Render("cluster"), c.Name, c.Interface, gw, c.AdvertInt, c.VRRPVersion(), c.Transport, c.BackupOrder, auth)
	p.Paragraph("health check: nginx every %ds, weight %d, fall %d, rise %d; nginx listens on :%d; "+
		"BACKUPS in takeover order; BOUNDS: failover after a graceful stop/a crash\n",
		c.HealthCheck.Interval, c.HealthCheck.Weight, c.HealthCheck.Fall, c.HealthCheck.Rise, c.Nginx.Listen)
}

// printVRRPTable is one row per VIP of a cluster.
func printVRRPTable(p *ui.Printer, insts []*vrrp.Instance) {
	// A VIP6 column only for dual-stack clusters: an IPv4 or IPv6-only
	// cluster's table is as before. A FROM column only where some router
	// id is not the new-cluster allocation (the legend says how that one
	// is made).
	dual, from := false, false
	for _, in := range insts {
		dual = dual || in.VIP6.IsValid()
		from = from || in.VRIDFrom != vrrp.VRIDAllocated
	}
	var rows [][]string
	for _, in := range insts {
		var backups []string
		for _, m := range in.Backups() {
			backups = append(backups, fmt.Sprintf("%s (%d)", m.Host, m.Priority))
		}
		row := []string{in.VIP.String()}
		if dual {
			v6 := "-"
			if in.VIP6.IsValid() {
				v6 = in.VIP6.String()
			}
			row = append(row, v6)
		}
		row = append(row, in.Name, fmt.Sprint(in.VRID))
		if from {
			row = append(row, in.VRIDFrom)
		}
		rows = append(rows, append(row,
			fmt.Sprintf("%s (%d)", in.Master, in.Members[0].Priority),
			strings.Join(backups, " → "),
			ui.Seconds(in.Bounds.Graceful.Seconds())+"/"+ui.Seconds(in.Bounds.Crash.Seconds()),
		))
	}
	head := []string{"VIP"}
	if dual {
		head = append(head, "VIP6")
	}
	head = append(head, "INSTANCE", "VRID")
	if from {
		head = append(head, "FROM")
	}
	head = append(head, "MASTER", "BACKUPS", "BOUNDS")
	master, masterCol := p.Styles.OK, len(head)-3
	p.Table(head, rows, func(_, col int) *lipgloss.Style {
		if col == masterCol {
			return &master
		}
		return nil
	})
}

// vridLegend explains the FROM column for the sources the table shows.
func vridLegend(insts []*vrrp.Instance) string {
	seen := map[string]bool{}
	for _, in := range insts {
		seen[in.VRIDFrom] = true
	}
	var parts []string
	for _, k := range []struct{ from, why string }{
		{vrrp.VRIDAllocated, "allocated = virtual_router_id_base + position (a new cluster; once applied, each VIP keeps its id)"},
		{vrrp.VRIDOverride, "override = the host's virtual_router_id"},
		{vrrp.VRIDRecorded, "recorded = kept from the last apply (read from the hosts)"},
		{vrrp.VRIDNew, "new = a VIP new to the cluster: the lowest id ≥ the base that no recorded or configured VIP uses"},
	} {
		if seen[k.from] {
			parts = append(parts, k.why)
		}
	}
	return "VRID " + strings.Join(parts, "; ")
}
