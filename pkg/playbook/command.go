package playbook

import (
	"context"

	"github.com/hactl/hactl/pkg/facts"
)

// Command runs a shell command; with Unless, only when that command fails.
// Summary, when set, replaces the command text in the step output (long
// scripts make unreadable progress lines).
type Command struct {
	Cmd     string
	Unless  string
	Summary string
}

func (m *Command) Kind() string         { return "command" }
func (m *Command) Needs() facts.Request { return facts.Request{} }

func (m *Command) Plan(ctx context.Context, t *Target) (Plan, error) {
	if m.Unless != "" {
		res, err := t.Conn.Run(ctx, m.Unless, nil)
		if err != nil {
			return Plan{}, err
		}
		if res.ExitCode == 0 {
			return Plan{Summary: "not needed"}, nil
		}
	}
	what := m.Cmd
	if m.Summary != "" {
		what = m.Summary
	}
	return Plan{Summary: "run: " + what, Done: done("ran " + what), Ops: []Op{{Cmd: m.Cmd, Fail: prefix(what)}}}, nil
}

// --- firewall -----------------------------------------------------------------
