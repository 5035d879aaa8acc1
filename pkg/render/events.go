package render

import (
	"regexp"
	"strings"

	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/vrrp"
)

// Webhook delivery bounds of hactl_events.sh: a failed POST is retried
// after 1, 2, 4 … WebhookBackoffMax seconds; an event not delivered within
// WebhookMaxAge seconds is dropped, and at most WebhookMaxQueue wait.
const (
	WebhookBackoffMax = 30
	WebhookMaxAge     = 3600
	WebhookMaxQueue   = 1000
	// eventsTick: seconds between two refreshes of the metrics file.
	eventsTick = 15
)

// eventsView is hactl_events.sh's: the instances this host is a member of.
type eventsView struct {
	Cluster, Host, Interface string
	Weight                   int
	Instances                []eventsInstance
}

type eventsInstance struct {
	Name     string
	VIPs     string // "198.18.0.201/24" or, dual-stack, both prefixes
	Addrs    string // a sh case pattern: "198.18.0.201" or "198.18.0.201 | 2001:db8::1"
	Priority int
}

func (v *eventsView) add(in *vrrp.Instance, priority int) {
	var vips, addrs []string
	for _, p := range in.Addrs() {
		vips = append(vips, p.String())
		addrs = append(addrs, p.Addr().String())
	}
	v.Instances = append(v.Instances, eventsInstance{
		Name: in.Name, VIPs: strings.Join(vips, " "), Addrs: strings.Join(addrs, " | "), Priority: priority,
	})
}

func (v *eventsView) view() map[string]any {
	var names []string
	for _, in := range v.Instances {
		names = append(names, in.Name)
	}
	return map[string]any{
		"Cluster": v.Cluster, "Host": v.Host, "Interface": v.Interface, "Weight": v.Weight,
		"Instances": v.Instances, "Names": strings.Join(names, " "),
		"FIFO": EventsFIFO, "Dir": EventsDir, "RunDir": NginxDownDir, "MaxBytes": EventsMaxBytes,
		"Prom": MetricsFile, "Conf": EventsConf, "DrainFile": DrainFile, "NginxDownFile": NginxDownFile,
		"BackoffMax": WebhookBackoffMax, "MaxAge": WebhookMaxAge, "MaxQueue": WebhookMaxQueue, "Tick": eventsTick,
	}
}

// webhookView renders events.conf: sh assignments, single-quoted (the
// inventory refuses single quotes in both values).
func webhookView(w *inventory.Webhook) map[string]any {
	v := map[string]any{"Script": EventsScript, "URL": "''", "Header": "''"}
	if w == nil {
		return v
	}
	v["URL"] = "'" + w.URL + "'"
	if w.Header != "" {
		v["Header"] = "'" + w.Header + ": " + w.Secret.Reveal() + "'"
	}
	return v
}

var webhookHeaderLine = regexp.MustCompile(`(?m)^(WEBHOOK_HEADER='[^:']*:).*$`)

// maskEventsConf hides the header's value in plans and diffs.
func maskEventsConf(content []byte) []byte {
	return webhookHeaderLine.ReplaceAll(content, []byte("${1} "+masked+"'"))
}
