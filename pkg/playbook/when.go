package playbook

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hactl/hactl/pkg/facts"
)

// cond is a named fact test for validate_if and a step's when.
type cond struct {
	test func(*Target) bool
	why  func(*Target) string // why it does not hold, for the step output
}

// VarIPv6 is the Target variable that says whether the host's cluster has
// IPv6 VIPs ("yes" or "no"); VarVRRPIPv6 whether its VRRP instances are
// IPv6 (VRRPv3 adverts to ff02::12) rather than IPv4; VarWebhook whether
// the inventory has a webhook (the event recorder then posts with curl).
const (
	VarIPv6     = "ipv6"
	VarVRRPIPv6 = "vrrp_ipv6"
	VarWebhook  = "webhook"
)

// condition returns the named fact test, or nil for an unknown name:
// "keepalived_config_test" (keepalived >= 2.0.4 has -t), or "os:KEY", true
// when KEY is one of the host's facts.OS.Keys ("os:el", "os:el7",
// "os:debian", "os:ubuntu22.04" …).
func condition(name string) *cond {
	if key, ok := strings.CutPrefix(name, "os:"); ok && key != "" {
		return &cond{
			test: func(t *Target) bool { return slices.Contains(t.Facts.OS.Keys(), key) },
			why: func(t *Target) string {
				return fmt.Sprintf("only for %s; this host runs %s", key, orName(t.Facts.OS.PrettyName, t.Facts.OS.ID))
			},
		}
	}
	switch name {
	case "ipv6":
		return &cond{
			test: func(t *Target) bool { return t.Vars[VarIPv6] == "yes" },
			why:  func(*Target) string { return "only for clusters with IPv6 VIPs" },
		}
	case "webhook":
		return &cond{
			test: func(t *Target) bool { return t.Vars[VarWebhook] == "yes" },
			why:  func(*Target) string { return "only when the inventory has a webhook" },
		}
	case "keepalived_config_test":
		return &cond{
			test: func(t *Target) bool { return t.Facts.KeepalivedConfigTest() },
			why: func(t *Target) string {
				f := t.Facts
				if f.KeepalivedVersion == "" {
					return "keepalived is not installed, so it cannot test the file"
				}
				return "keepalived " + f.KeepalivedVersion + " has no config test (-t needs 2.0.4 or later); the file is installed untested"
			},
		}
	}
	return nil
}

func orName(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func conditionNames() string {
	return `ipv6, webhook, keepalived_config_test, os:KEY (e.g. "os:el", "os:el7", "os:debian")`
}

// When runs its module only when the condition holds on the host; else the
// step reports why it was skipped and touches nothing.
type When struct {
	Cond   string
	Module Module
}

func (w *When) Kind() string         { return w.Module.Kind() }
func (w *When) Needs() facts.Request { return w.Module.Needs() }

// Serial keeps the wrapped module's phase.
func (w *When) Serial() bool { s, ok := w.Module.(serial); return ok && s.Serial() }

func (w *When) Plan(ctx context.Context, t *Target) (Plan, error) {
	c := condition(w.Cond)
	if c == nil {
		return Plan{}, fmt.Errorf("unknown condition %q", w.Cond)
	}
	if !c.test(t) {
		return Plan{Summary: "skipped: " + c.why(t)}, nil
	}
	return w.Module.Plan(ctx, t)
}

// --- file (absent) ------------------------------------------------------------
