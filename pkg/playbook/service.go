package playbook

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/remote"
)

// Service manages a systemd unit: "started" (enabled and running),
// "reload" (reload when running, else start: a first start is a restart), or
// "restart".
type Service struct {
	Name   string
	Action string
}

func (m *Service) Kind() string         { return "service" }
func (m *Service) Serial() bool         { return true }
func (m *Service) Needs() facts.Request { return facts.Request{Services: []string{m.Name}} }

func (m *Service) Plan(_ context.Context, t *Target) (Plan, error) {
	u := remote.Unit(m.Name)
	switch m.Action {
	case "reload":
		return Plan{
			Summary: "reload or start " + m.Name,
			Done:    func(outs []string) (string, bool) { return strings.TrimSpace(outs[0]), true },
			Ops: []Op{{
				Cmd:  "if " + u.Active() + "; then " + u.Reload() + " && echo reloaded; else " + u.ResetFailed() + "; " + u.Restart() + " && echo started; fi",
				Fail: m.failed(t),
			}},
		}, nil
	case "restart":
		return Plan{
			Summary: "restart " + m.Name, Done: done("restarted"),
			Ops: []Op{{Cmd: u.ResetFailed() + "; " + u.Restart(), Fail: m.failed(t)}},
		}, nil
	}
	s := t.Facts.Services[m.Name]
	var todo []string
	if s.Enabled != "enabled" {
		todo = append(todo, "enable")
	}
	if s.Active != "active" {
		todo = append(todo, "start")
	}
	if len(todo) == 0 && !t.Touched {
		return Plan{Summary: "running"}, nil
	}
	// The command asks systemd again when it runs: package installs and
	// handlers earlier in this run may have changed the unit's state since
	// the facts were read, so it may find nothing left to do.
	return Plan{
		Summary: strings.Join(todo, " and "),
		Done: func(outs []string) (string, bool) {
			if s := strings.TrimSpace(outs[0]); s != "" {
				return s, true
			}
			return "running", false
		},
		Ops: []Op{{
			Cmd: `c=""; ` + u.Enabled() + ` || { ` + u.Enable() + ` || exit 3; c="$c enabled"; }; ` +
				u.Active() + ` || { ` + u.ResetFailed() + `; ` + u.Start() + ` || exit 4; c="$c started"; }; echo "$c"`,
			Fail: m.failed(t),
		}},
	}, nil
}

// failed adds the unit's last journal lines: "failed to start" alone never
// tells an operator why.
func (m *Service) failed(t *Target) func(context.Context, error) error {
	return func(ctx context.Context, err error) error { return m.journal(ctx, t, err) }
}

func (m *Service) journal(ctx context.Context, t *Target, err error) error {
	res, jerr := t.Conn.Run(ctx, "journalctl -u "+remote.Quote(m.Name)+" -n 8 --no-pager -o cat 2>/dev/null", nil)
	detail := ""
	if jerr == nil && len(bytes.TrimSpace(res.Stdout)) > 0 {
		detail = "\njournal:\n" + strings.TrimSpace(string(res.Stdout))
	}
	if t.Facts != nil && t.Facts.SELinuxEnabled() {
		detail += avcHint(ctx, t, m.Name)
	}
	return fmt.Errorf("%s %s: %w%s", m.Action, m.Name, err, detail)
}

// avcHint looks for recent SELinux denials of the unit's process (cheap,
// optional: ausearch comes with audit, which EL installs by default). hactl
// never relaxes SELinux; it shows the denial so the operator can fix labels.
func avcHint(ctx context.Context, t *Target, comm string) string {
	res, err := t.Conn.Run(ctx, "command -v ausearch >/dev/null 2>&1 && ausearch -m avc -ts recent -c "+remote.Quote(comm)+" 2>/dev/null | grep -m 3 'avc:'", nil)
	if err != nil || len(bytes.TrimSpace(res.Stdout)) == 0 {
		return ""
	}
	return "\nSELinux denied " + comm + " something (ausearch -m avc -ts recent -c " + comm + "); check the labels with `ls -Z` and `restorecon -v`:\n" +
		strings.TrimSpace(string(res.Stdout))
}

// --- command ------------------------------------------------------------------
