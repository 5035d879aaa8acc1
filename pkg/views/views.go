// Package views turns the results of pkg/ops into what hactl prints: per
// verb a human view (tables on stdout, progress on stderr) and a JSON view
// (one document on stdout). The format is chosen once per run, in New; no
// code outside this package asks which one it is.
package views

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hactl/hactl/pkg/drain"
	"github.com/hactl/hactl/pkg/failover"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/ops"
	"github.com/hactl/hactl/pkg/ui"
	"github.com/hactl/hactl/pkg/vrrp"
)

// Formats are the values of --output, the default first.
var Formats = []string{"text", "json"}

// View shows one run's results. Each method shows one verb's result.
type View interface {
	// Events is the sink for a verb's progress (stderr).
	Events(verbose bool) ops.Events
	Validate(*ops.ValidateResult) error
	Render(*ops.RenderResult) error
	// Layout is plan --offline.
	Layout(*inventory.Inventory, *vrrp.Layout) error
	// Apply is apply's and plan's result; verbose (-v) lists every VIP.
	Apply(r *ops.ApplyResult, verbose bool) error
	Destroy(*ops.DestroyResult) error
	// Status shows status's result (verbose: -v's round trips too) and returns the run's outcome: r.Err,
	// except where the output itself carries the verdict (openmetrics).
	Status(r *ops.StatusResult, verbose bool) error
	// Watch is the sink of status --watch.
	Watch() ops.WatchSink
	// Timeline is `hactl events`.
	Timeline(*ops.TimelineResult) error
	// FailoverProgress shows the engine's steps as they happen; Say shows
	// a line on stderr beside them (interrupts), safely from any goroutine.
	FailoverProgress() (progress func(failover.Step), say func(warn bool, msg string))
	Failover(*ops.FailoverResult) error
	DrainProgress() func(string)
	Drain(res *drain.Result, undrain bool) error
	// Wrote says whether the run's JSON document is written.
	Wrote() bool
}

// OpenMetrics is the format of --output only status has (the fleet's
// invariants for Prometheus).
const OpenMetrics = "openmetrics"

// New is the view of format (one of Formats; for the command status also
// OpenMetrics).
func New(io *ui.IO, format, command string) (View, error) {
	switch strings.ToLower(format) {
	case "text":
		return newHuman(io), nil
	case "json":
		return &jsonView{io: io, human: newHuman(io)}, nil
	case OpenMetrics:
		if command == "status" {
			return openMetrics{newHuman(io)}, nil
		}
	}
	if command == "status" {
		return nil, fmt.Errorf("--output must be text, json or %s, not %q", OpenMetrics, strings.ToLower(format))
	}
	return nil, fmt.Errorf("--output must be text or json, not %q", strings.ToLower(format))
}

// WantsJSON reads --output from raw args, for errors cobra reports before
// the flags are parsed (the run then still ends with one JSON document).
func WantsJSON(args []string) bool {
	for i, a := range args {
		if a == "--" {
			break
		}
		if v, ok := strings.CutPrefix(a, "--output="); ok {
			return strings.EqualFold(v, "json")
		}
		if a == "--output" && i+1 < len(args) {
			return strings.EqualFold(args[i+1], "json")
		}
	}
	return false
}

// errorDoc is the document of a run that ended before its command could
// report: a usage error or an invalid inventory.
type errorDoc struct {
	ui.Envelope
}

// ErrorDoc writes the JSON document of a run that ended with err before
// its view wrote one.
func ErrorDoc(io *ui.IO, err error) error {
	env := ui.Result(err)
	var de *ops.DiagError
	if errors.As(err, &de) && de.Listed {
		env.Error = DiagsJSON(de.Diags)
	}
	return ui.JSON(io.Out, errorDoc{Envelope: env})
}
