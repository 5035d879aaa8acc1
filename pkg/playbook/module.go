package playbook

import (
	"context"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/render"
)

// Target is one host as the modules see it.
type Target struct {
	Name  string
	Conn  remote.Conn
	Facts *facts.Facts
	Files map[string]render.File // the files hactl renders for this host, by path
	Stamp string                 // backup suffix shared by the whole run (UTC time)
	// Vars are per-host values from the inventory that module attributes
	// may name as "{name}" (e.g. "{nginx_listen}/tcp"): the playbook is
	// parsed once, the values differ per cluster and host.
	Vars map[string]string
	// Touched is set once an operation changed the host in this run: facts
	// gathered before may then be stale for modules that read them. A plan
	// never sets it (nothing ran).
	Touched bool
}

// Swap records a replaced file so a failed restart can put it back.
type Swap struct {
	Path    string
	Backup  string // "" when there was no previous file
	Service string
}

// Outcome is what a step did (or, in a plan, would do).
type Outcome struct {
	Changed bool
	Summary string
	Diff    string // unified diff for plans; secrets masked
	Swaps   []Swap
	// Refresh asks the runner to gather facts again (packages changed what
	// later steps decide on, e.g. keepalived's version).
	Refresh bool
	// Recorded: the executor wrote the step's pending-handler records, so
	// its handlers run even when the ops found nothing left to change.
	Recorded bool
}

// Module is one idempotent operation.
type Module interface {
	// Kind names the module ("package", "template", …).
	Kind() string
	// Needs lists the facts the module decides on, so the runner gathers all
	// of them in one round trip.
	Needs() facts.Request
	// Plan decides, from the facts and read-only queries, what the host
	// needs. It changes nothing: an empty Plan.Ops means "converged".
	Plan(ctx context.Context, t *Target) (Plan, error)
}

// serial is implemented by modules that touch running daemons: the runner
// runs them one host at a time, never in the parallel phase.
type serial interface{ Serial() bool }

// run runs a read-only query (or a restore) on the target; a non-zero exit
// is a *remote.ExitError. Everything that changes a host is an Op.
func run(ctx context.Context, t *Target, cmd string) (string, error) {
	return remote.Output(ctx, t.Conn, cmd)
}

// --- package ------------------------------------------------------------------
