package playbook

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/remote"
)

// Plan is what a module decided a host needs: the operations, in order, and
// how to describe them. Modules decide, the executor acts: a plan, a dry
// run and an apply all start from the same Plan, and "would change" is
// simply len(Ops) > 0.
type Plan struct {
	// Summary is the step's line: what the ops would do, or the state the
	// host is in when there is nothing to do ("up to date").
	Summary string
	// Diff, when set, computes the unified diff a plan shows (secrets
	// masked). It may read the live file, so only plans call it.
	Diff func(ctx context.Context) (string, error)
	Ops  []Op
	// Done is the step's line after the ops ran, from their outputs (one per
	// op; "" for uploads). It may report no change: an op that asks the host
	// again when it runs can find nothing left to do. nil: Summary, changed.
	Done func(outs []string) (summary string, changed bool)
	// Refresh asks the runner to gather facts again after the ops ran
	// (packages changed what later steps decide on, e.g. keepalived's version).
	Refresh bool
}

// Op is one change to a host: a command or an upload.
type Op struct {
	Cmd    string
	Upload *Upload
	// Swap, on the op that replaces or removes a live file, is what a failed
	// handler restores. This op is the point after which the host runs a
	// file its daemon has not loaded yet.
	Swap *Swap
	// Fail explains a failure (a script's exit codes, the unit's journal);
	// nil returns the error as it is.
	Fail func(ctx context.Context, err error) error
}

// Upload writes a file (a swap's candidate: never a live path).
type Upload struct {
	Path    string
	Content []byte
	Mode    fs.FileMode
}

// done is a Plan.Done with a fixed line.
func done(summary string) func([]string) (string, bool) {
	return func([]string) (string, bool) { return summary, true }
}

// prefix is an Op.Fail that names what failed.
func prefix(what string) func(context.Context, error) error {
	return func(_ context.Context, err error) error { return fmt.Errorf("%s: %w", what, err) }
}

// preview is a plan's Outcome: what would change, with the diff, and
// nothing sent but Diff's read-only queries.
func preview(ctx context.Context, p Plan) (Outcome, error) {
	o := Outcome{Changed: len(p.Ops) > 0, Summary: p.Summary, Refresh: p.Refresh}
	if o.Changed && p.Diff != nil {
		d, err := p.Diff(ctx)
		if err != nil {
			return Outcome{}, err
		}
		o.Diff = d
	}
	return o, nil
}

// execute runs a plan's ops in order and stops at the first failure. It is
// the only code that changes a host. When the step notifies handlers, their
// pending records (facts.PendingDir) are written right before the first op
// with Swap (or, for a plan without one, such as a command that edits a
// file in place, before its first op): from that op on, the file on disk is
// one its daemon has not loaded, and whatever happens next (a later step
// fails, Ctrl-C, the host is lost) the next run finds the record and runs
// the handler. The runner clears a record once its handler succeeded.
func execute(ctx context.Context, t *Target, p Plan, notify []string) (Outcome, error) {
	if len(p.Ops) == 0 {
		return Outcome{Summary: p.Summary}, nil
	}
	recordAt := slices.IndexFunc(p.Ops, func(op Op) bool { return op.Swap != nil })
	if recordAt < 0 {
		recordAt = 0
	}
	outs := make([]string, len(p.Ops))
	var swaps []Swap
	recorded := false
	for i, op := range p.Ops {
		if i == recordAt && len(notify) > 0 {
			if _, err := run(ctx, t, RecordPendingCommand(notify)); err != nil {
				return Outcome{}, fmt.Errorf("record pending handlers %s: %w", strings.Join(notify, ", "), err)
			}
			recorded = true
		}
		var err error
		if op.Upload != nil {
			err = t.Conn.Upload(ctx, op.Upload.Path, op.Upload.Content, op.Upload.Mode)
		} else {
			outs[i], err = run(ctx, t, op.Cmd)
		}
		if err != nil {
			if op.Fail != nil {
				err = op.Fail(ctx, err)
			}
			return Outcome{Recorded: recorded}, err
		}
		if op.Swap != nil {
			swaps = append(swaps, *op.Swap)
		}
	}
	o := Outcome{Changed: true, Summary: p.Summary, Swaps: swaps, Refresh: p.Refresh, Recorded: recorded}
	if p.Done != nil {
		o.Summary, o.Changed = p.Done(outs)
	}
	return o, nil
}

// RecordPendingCommand writes each handler's pending record unless one is
// there already (the earliest run that left it unhandled is the one to
// name). Each record is written to a dot file and renamed into place, so
// facts never read half a record.
func RecordPendingCommand(handlers []string) string {
	var b strings.Builder
	b.WriteString("mkdir -p " + remote.Quote(facts.PendingDir) + " && now=$(date -u +%Y-%m-%dT%H:%M:%SZ)")
	for _, h := range handlers {
		f := facts.PendingFile(h)
		tmp := path.Dir(f) + "/." + path.Base(f) + ".new"
		fmt.Fprintf(&b, " && { [ -e %[1]s ] || { printf '%%s\\n' \"$now\" > %[2]s && mv -f %[2]s %[1]s; }; }", remote.Quote(f), remote.Quote(tmp))
	}
	return b.String()
}

// ClearPendingCommand removes a handler's record once it ran.
func ClearPendingCommand(handler string) string {
	return "rm -f " + remote.Quote(facts.PendingFile(handler))
}
