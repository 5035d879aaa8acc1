package failover

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/verify"
)

// HostState is one host's part of Status (the JSON shape of `hactl status`).
type HostState struct {
	Name       string `json:"name"`
	Reachable  bool   `json:"reachable"`
	Keepalived string `json:"keepalived"`
	Nginx      string `json:"nginx"`
	Error      string `json:"error,omitempty"`
}

// Status is the fleet as `hactl status` sees it: where every VIP is and
// whether every host runs both services. A failover test starts only from,
// and restores only to, a Status that is OK.
type Status struct {
	VIPs  []verify.VIPState `json:"vips"`
	Hosts []HostState       `json:"hosts"`
}

// OK reports whether every host is reachable with keepalived and nginx active
// and every VIP sits on its master only.
func (s Status) OK() bool { return len(s.Reasons()) == 0 }

// Reasons lists, one line each, why the Status is not OK.
func (s Status) Reasons() []string {
	var out []string
	for _, h := range s.Hosts {
		switch {
		case !h.Reachable:
			out = append(out, fmt.Sprintf("%s unreachable: %s", h.Name, h.Error))
		case h.Keepalived != "active" || h.Nginx != "active":
			out = append(out, fmt.Sprintf("%s: keepalived %s, nginx %s", h.Name, h.Keepalived, h.Nginx))
		}
	}
	for _, v := range s.VIPs {
		if !v.OK() {
			out = append(out, fmt.Sprintf("VIP %s is %s: on [%s], want %s only",
				v.VIP, v.State, strings.Join(v.Holders, " "), v.Master))
		}
	}
	return out
}

// ServicesCommand asks systemd for both services at once; is-active prints one
// state per unit, in order, and exits non-zero unless all are active.
func ServicesCommand() string { return remote.IsActive(string(keepalivedUnit), string(nginxUnit)) }

// Status reads the whole fleet over the open connections.
func (r *Runner) Status(ctx context.Context) Status {
	hosts := r.o.Fleet.Hosts
	var st Status
	st.Hosts = make([]HostState, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		st.Hosts[i] = HostState{Name: h.Name(), Keepalived: "unknown", Nginx: "unknown"}
		if h.Conn == nil {
			st.Hosts[i].Error = errText(h.Err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := h.Conn.Run(ctx, ServicesCommand(), nil)
			if err != nil {
				st.Hosts[i].Error = err.Error()
				return
			}
			st.Hosts[i].Reachable = true
			states := strings.Fields(string(res.Stdout))
			if len(states) > 0 {
				st.Hosts[i].Keepalived = states[0]
			}
			if len(states) > 1 {
				st.Hosts[i].Nginx = states[1]
			}
		}()
	}
	obs := r.o.Observer.Observe(ctx, hosts)
	wg.Wait()
	for i, o := range obs {
		// A host that answered systemctl but not ip is not fully reachable.
		if o.Err != nil && st.Hosts[i].Reachable {
			st.Hosts[i].Reachable = false
			st.Hosts[i].Error = o.Err.Error()
		}
	}
	st.VIPs = verify.Classify(r.o.Layout, obs)
	return st
}

// unitState runs `systemctl is-active UNIT` and returns what it printed.
func unitState(ctx context.Context, c remote.Conn, unit string) string {
	res, err := c.Run(ctx, remote.Unit(unit).IsActive(), nil)
	if err != nil {
		return "unknown"
	}
	if s := strings.TrimSpace(string(res.Stdout)); s != "" {
		return s
	}
	return "unknown"
}

func errText(err error) string {
	if err == nil {
		return "not connected"
	}
	return err.Error()
}

// Observer reports which addresses every host carries on its VIP interface.
type Observer interface {
	Observe(ctx context.Context, hosts []*fleet.Host) []verify.Observation
}

// SSHObserver reads `ip -o -4 addr` over the hosts' open connections.
type SSHObserver struct{}

// Observe calls verify.Observe.
func (SSHObserver) Observe(ctx context.Context, hosts []*fleet.Host) []verify.Observation {
	return verify.Observe(ctx, hosts)
}
