// Package cli is hactl's command layer, cobra only: each command turns its
// flags into the options of a verb of pkg/ops, runs the verb on the run's
// session, shows the result through the view chosen once per run
// (pkg/views, --output) and turns the outcome into an exit code, in one
// place (Globals.exit). Globals hold the run's IO and dependencies, so tests
// call Main with buffers and fakes; the package keeps no state of its own.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hactl/hactl/pkg/clock"
	"github.com/hactl/hactl/pkg/failover"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/hostlock"
	"github.com/hactl/hactl/pkg/ops"
	"github.com/hactl/hactl/pkg/ui"
	"github.com/hactl/hactl/pkg/views"
)

// Version is set at build time with -ldflags "-X …/pkg/cli.Version=…".
var Version = "dev"

// Exit codes (README.md, "Exit codes:").
const (
	ExitOK          = 0
	ExitFailed      = 1   // the operation ran and failed
	ExitUsage       = 2   // bad usage or invalid inventory
	ExitInterrupted = 130 // stopped by SIGINT/SIGTERM (128 + SIGINT, as shells report it)
)

// ExitError carries an exit code through cobra.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// errReported marks an error whose details were already printed.
var errReported = errors.New("reported")

// Deps are what a run takes from its process and the world outside; tests
// replace them. A nil field is the real thing, or none.
type Deps struct {
	// Dial opens SSH connections; nil means remote.Dial.
	Dial fleet.DialFunc
	// Signals delivers SIGINT/SIGTERM (main: signal.Notify). The first
	// cancels the run, which then exits 130; the second ends the process
	// through Kill, unless a command took interrupts over (failover-test
	// restores the fleet on the first and abandons restoring on the
	// second). nil: no interrupts.
	Signals <-chan os.Signal
	// Kill ends the process on a second interrupt; nil: os.Exit(130).
	Kill func()
	// Clock and Prober replace failover-test's; nil: wall clock, HTTP.
	Clock  clock.Clock
	Prober failover.Prober
	// Locker is the host lock apply and failover-test take; the zero value
	// is the production lock (tests point it elsewhere).
	Locker hostlock.Locker
}

// Globals are the flags every command shares, the run's IO and its deps.
type Globals struct {
	IO        *ui.IO
	Deps      Deps
	Inventory string
	Output    string
	Templates string // --templates DIR: render from DIR instead of the embedded templates

	interrupts *interrupts
	// view shows every result of the run; chosen once, from --output.
	view views.View
}

// Main runs hactl with args and returns its exit code. io is built once per
// run (ui.System() in main, ui.Test() in tests). In JSON mode stdout gets
// exactly one document, also when the run ends in an error before its
// command reported (usage, inventory diagnostics).
func Main(ctx context.Context, args []string, io *ui.IO, deps Deps) int {
	ctx, in := watchInterrupts(ctx, deps.Signals, deps.Kill, io.Stderr())
	defer in.stop()
	g := &Globals{IO: io, Deps: deps, interrupts: in}
	root := NewRoot(ctx, g)
	root.SetArgs(args)
	err := g.exit(helpTopic(root, args))
	if err == nil {
		err = root.ExecuteContext(ctx)
	}
	code := exitCode(ctx, io, root, args, err)
	if code != ExitOK && views.WantsJSON(args) && (g.view == nil || !g.view.Wrote()) {
		if err == nil {
			err = errors.New("interrupted")
		}
		var ee *ExitError
		if errors.As(err, &ee) && ee.Err != nil {
			err = ee.Err
		}
		_ = views.ErrorDoc(io, err)
	}
	return code
}

// exitCode prints err (unless already reported) and returns the run's code.
func exitCode(ctx context.Context, io *ui.IO, root *cobra.Command, args []string, err error) int {
	interrupted := errors.Is(context.Cause(ctx), errInterrupted)
	if err == nil {
		if interrupted {
			return ExitInterrupted
		}
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil && !errors.Is(ee.Err, errReported) {
			fmt.Fprintf(io.Err, "hactl: %v\n", ee.Err)
		}
		if interrupted {
			return ExitInterrupted
		}
		return ee.Code
	}
	// Anything cobra itself returns is a usage problem (unknown flag, bad args).
	fmt.Fprintf(io.Err, "hactl: %v\n%sRun 'hactl --help' for usage.\n", err, flagSuggestion(root, args, err))
	return ExitUsage
}

// helpTopic refuses `hactl help nosuch` (cobra prints the usage and exits 0).
func helpTopic(root *cobra.Command, args []string) error {
	if len(args) < 2 || args[0] != "help" {
		return nil
	}
	if c, _, err := root.Find(args[1:]); err != nil || c == root {
		return ops.UsageError(fmt.Errorf("no help topic %q; commands: %s", strings.Join(args[1:], " "), commandNames(root)))
	}
	return nil
}

func commandNames(root *cobra.Command) string {
	var names []string
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return strings.Join(names, ", ")
}

// flagSuggestion is "Did you mean --x?" for an unknown flag close to a real one.
func flagSuggestion(root *cobra.Command, args []string, err error) string {
	_, name, ok := strings.Cut(err.Error(), "unknown flag: --")
	if !ok {
		return ""
	}
	name, _, _ = strings.Cut(name, "=")
	cmd, _, ferr := root.Find(args)
	if ferr != nil || cmd == nil {
		cmd = root
	}
	var best []string
	seen := map[string]bool{}
	visit := func(f *pflag.Flag) {
		if seen[f.Name] {
			return
		}
		seen[f.Name] = true
		if d := editDistance(name, f.Name); d <= 2 || strings.HasPrefix(f.Name, name) {
			best = append(best, "--"+f.Name)
		}
	}
	cmd.Flags().VisitAll(visit)
	cmd.InheritedFlags().VisitAll(visit)
	if len(best) == 0 {
		return ""
	}
	return "Did you mean " + strings.Join(best, " or ") + "?\n"
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// exit is the one place an outcome becomes an exit code: from the error's
// kind (ops.Kind). Diagnostics it carries are printed first.
func (g *Globals) exit(err error) error {
	if err == nil {
		return nil
	}
	var de *ops.DiagError
	if errors.As(err, &de) {
		g.printDiags(de.Files, de.Diags)
	}
	code := ExitFailed
	if ops.KindOf(err) == ops.Usage {
		code = ExitUsage
	}
	return &ExitError{Code: code, Err: err}
}

// usage is a bad-usage exit with this message.
func (g *Globals) usage(format string, args ...any) error {
	return g.exit(ops.UsageError(fmt.Errorf(format, args...)))
}

// NewRoot builds the command tree.
func NewRoot(ctx context.Context, g *Globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "hactl",
		Short: "Provision active-active nginx + keepalived load balancers over SSH",
		Long: `hactl reads an HCL inventory of load balancers, renders keepalived and nginx
configs with an active-active master rotation (host i is MASTER of VIP i),
applies them over SSH, and proves where every VIP sits.`,
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(g.IO.Out)
	root.SetErr(g.IO.Err)
	root.SetIn(g.IO.In)
	pf := root.PersistentFlags()
	pf.StringVarP(&g.Inventory, "inventory", "i", "", "inventory file (HCL)")
	pf.StringVar(&g.Output, "output", views.Formats[0], "output format: "+strings.Join(views.Formats, " or "))
	pf.StringVar(&g.Templates, "templates", "", "render from the *.tmpl files in DIR instead of the embedded templates/")
	root.SuggestionsMinimumDistance = 2
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error { return g.preRun(cmd, args) }
	root.AddCommand(newValidate(ctx, g), newPlan(ctx, g), newRender(ctx, g), newApply(ctx, g), newStatus(ctx, g),
		newFailoverTest(ctx, g), newDrain(ctx, g, false), newDrain(ctx, g, true), newDestroy(ctx, g), newEvents(ctx, g))
	_ = root.RegisterFlagCompletionFunc("output", fixedCompletion(views.Formats...))
	for _, c := range root.Commands() {
		registerCompletions(c, g)
		switch c.Name() {
		case "validate", "plan", "render", "apply", "status", "failover-test", "destroy", "events":
			inventoryArgs(c)
		}
	}
	return root
}

// preRun checks what every command shares and picks the run's view.
func (g *Globals) preRun(cmd *cobra.Command, args []string) error {
	v, err := views.New(g.IO, g.Output, cmd.Name())
	if err != nil {
		return g.exit(ops.UsageError(err))
	}
	g.view = v
	if len(args) == 1 && cmd.Annotations[annInventoryArg] != "" {
		if g.Inventory != "" && g.Inventory != args[0] {
			return g.usage("two inventories: -i %s and %s; pass one", g.Inventory, args[0])
		}
		g.Inventory = args[0]
	}
	if g.Templates != "" {
		if st, err := os.Stat(g.Templates); err != nil || !st.IsDir() {
			return g.usage("--templates %s: not a directory of *.tmpl files", g.Templates)
		}
	}
	return nil
}

// load reads the inventory into the run's session and prints its
// diagnostics (warnings; errors come back as a DiagError) with snippets.
func (g *Globals) load(ctx context.Context) (*ops.Session, error) {
	s, in, err := ops.Load(ctx, g.Inventory, g.opsDeps())
	if err == nil && len(in.Diags) > 0 {
		writeDiags(ctx, g.stderr(), g.IO.Width, in.Files, in.Diags)
	}
	return s, g.exit(err)
}

// opsDeps are the run's dependencies as the verbs take them.
func (g *Globals) opsDeps() ops.Deps {
	return ops.Deps{Dial: g.Deps.Dial, Locker: g.Deps.Locker, Clock: g.Deps.Clock, Prober: g.Deps.Prober,
		LookupEnv: g.IO.LookupEnv, Templates: g.Templates}
}

func (g *Globals) stderr() *ui.Printer { return g.IO.Stderr() }

// inventoryArg accepts the inventory as the one positional argument
// (`hactl validate FILE`), the same as -i FILE; a command that takes it
// says so with inventoryArgs (its Annotations).
var inventoryArg = cobra.MaximumNArgs(1)

const annInventoryArg = "hactl-inventory-arg"

// inventoryArgs marks commands whose one argument is the inventory.
func inventoryArgs(cmds ...*cobra.Command) {
	for _, c := range cmds {
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[annInventoryArg] = "yes"
	}
}
