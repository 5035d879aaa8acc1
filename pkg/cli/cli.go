// Package cli wires hactl's commands. Each command has an options struct that
// holds its IO and dependencies, so tests call it with buffers and fakes; the
// package keeps no state of its own.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hactl/hactl/pkg/clock"
	"github.com/hactl/hactl/pkg/failover"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/render"
	"github.com/hactl/hactl/pkg/ui"
	"github.com/hactl/hactl/pkg/vrrp"
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
	Locker playbook.Locker
}

// Globals are the flags every command shares, the run's IO and its deps.
type Globals struct {
	IO        *ui.IO
	Deps      Deps
	Inventory string
	Output    string
	Templates string // --templates DIR: render from DIR instead of the embedded templates

	interrupts *interrupts
	// wroteJSON: a command wrote its --output json document (jsonOut).
	wroteJSON bool
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
	err := helpTopic(root, args)
	if err == nil {
		err = root.ExecuteContext(ctx)
	}
	code := exitCode(ctx, io, root, args, err)
	if code != ExitOK && wantsJSON(args) && !g.wroteJSON {
		if err == nil {
			err = errors.New("interrupted")
		}
		var ee *ExitError
		if errors.As(err, &ee) && ee.Err != nil {
			err = ee.Err
		}
		_ = ui.JSON(io.Out, errorDoc{Envelope: envelopeFor(err)})
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
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("no help topic %q; commands: %s", strings.Join(args[1:], " "), commandNames(root))}
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
	pf.StringVar(&g.Output, "output", "text", "output format: text or json")
	pf.StringVar(&g.Templates, "templates", "", "render from the *.tmpl files in DIR instead of the embedded templates/")
	root.SuggestionsMinimumDistance = 2
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		g.Output = strings.ToLower(g.Output)
		if g.Output != "text" && g.Output != "json" && !(g.Output == "openmetrics" && cmd.Name() == "status") {
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--output must be text or json, not %q", g.Output)}
		}
		if len(args) == 1 && cmd.Annotations[annInventoryArg] != "" {
			if g.Inventory != "" && g.Inventory != args[0] {
				return &ExitError{Code: ExitUsage, Err: fmt.Errorf("two inventories: -i %s and %s; pass one", g.Inventory, args[0])}
			}
			g.Inventory = args[0]
		}
		if g.Templates != "" {
			if st, err := os.Stat(g.Templates); err != nil || !st.IsDir() {
				return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--templates %s: not a directory of *.tmpl files", g.Templates)}
			}
		}
		return nil
	}
	root.AddCommand(newValidate(ctx, g), newPlan(ctx, g), newRender(ctx, g))
	for _, c := range extraCommands(ctx, g) {
		root.AddCommand(c)
	}
	_ = root.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp
	})
	for _, c := range root.Commands() {
		if c.Name() != "failover-test" { // registers its own, with --mode
			registerCompletions(c, g)
		}
		switch c.Name() {
		case "validate", "plan", "render", "apply", "status", "failover-test", "destroy":
			inventoryArgs(c)
		}
	}
	return root
}

// Loaded is an inventory with its layout: the input of every command.
type Loaded struct {
	Inv    *inventory.Inventory
	Layout *vrrp.Layout
	// Warnings are the inventory's diagnostics that did not stop the load
	// (already printed to stderr).
	Warnings []diagJSON
}

// load reads the inventory, builds the layout and prints any diagnostics
// with source snippets. Invalid input is exit 2; an interrupt stops it
// between phases.
func (g *Globals) load(ctx context.Context) (*Loaded, error) {
	if g.Inventory == "" {
		return nil, &ExitError{Code: ExitUsage, Err: errors.New("no inventory: pass -i FILE (or FILE as the argument)")}
	}
	loader := inventory.NewLoader(inventory.Options{LookupEnv: g.IO.LookupEnv})
	inv, diags := loader.LoadFile(g.Inventory)
	if err := stopped(ctx); err != nil {
		return nil, err
	}
	var layout *vrrp.Layout
	switch {
	case !diags.HasErrors():
		var more hcl.Diagnostics
		layout, more = vrrp.Build(inv)
		diags = append(diags, more...)
	case loader.StandIn() != nil:
		// Only unset env() variables stopped the load: the layout's own
		// checks still run, so that one pass reports every problem.
		_, more := vrrp.Build(loader.StandIn())
		diags = append(diags, more...)
	}
	if len(diags) > 0 {
		writeDiags(ctx, g.stderr(), g.IO.Width, loader.Files(), diags)
	}
	if err := stopped(ctx); err != nil {
		return nil, err
	}
	if diags.HasErrors() {
		summary := fmt.Sprintf("%s: %d error(s) in the inventory; nothing was changed", g.Inventory, countErrors(diags))
		fmt.Fprintf(g.IO.Err, "hactl: %s\n", summary)
		return nil, &ExitError{Code: ExitUsage, Err: newDiagsError(summary, diags)}
	}
	return &Loaded{Inv: inv, Layout: layout, Warnings: diagsJSON(diags)}, nil
}

// stopped is the error of a run whose context ended, nil otherwise.
func stopped(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	return &ExitError{Code: ExitFailed, Err: fmt.Errorf("stopped: %w", context.Cause(ctx))}
}

func (g *Globals) stdout() *ui.Printer { return g.IO.Stdout() }

func (g *Globals) stderr() *ui.Printer { return g.IO.Stderr() }

// --- validate ---------------------------------------------------------------

func newValidate(ctx context.Context, g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [-i] FILE",
		Short: "Check an inventory without connecting to any host",
		Args:  inventoryArg,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.load(ctx)
			if err != nil {
				return err
			}
			hosts := len(l.Inv.Hosts())
			if g.Output == "json" {
				return g.jsonOut(validateJSON{Envelope: ui.Result(nil), Valid: true, Clusters: len(l.Inv.Clusters), Hosts: hosts, VIPs: len(l.Layout.Instances), Warnings: l.Warnings})
			}
			p := g.stdout()
			warn := ""
			if n := len(l.Warnings); n > 0 {
				warn = fmt.Sprintf(", %d warning(s) above", n)
			}
			p.Printf("%s %s: %d cluster(s), %d host(s), %d VIP(s)%s\n", p.Styles.OK.Render("valid"), g.Inventory, len(l.Inv.Clusters), hosts, len(l.Layout.Instances), warn)
			return nil
		},
	}
}

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

type validateJSON struct {
	ui.Envelope
	Valid    bool `json:"valid"`
	Clusters int  `json:"clusters"`
	Hosts    int  `json:"hosts"`
	VIPs     int  `json:"vips"`
	// Warnings: file/line/column like errors; [] when there are none.
	Warnings []diagJSON `json:"warnings"`
}

// --- render -----------------------------------------------------------------

type renderJSON struct {
	ui.Envelope
	Dir   string           `json:"dir"`
	Files []renderFileJSON `json:"files"`
}

// renderFileJSON is one written file; mode is octal as ls and chmod say it.
type renderFileJSON struct {
	Host      string `json:"host"`
	Path      string `json:"path"`
	Mode      string `json:"mode"`
	Owner     string `json:"owner"`
	Group     string `json:"group"`
	Sensitive bool   `json:"sensitive"`
}

// RenderOptions is `hactl render`.
type RenderOptions struct {
	Dir string
}

func newRender(ctx context.Context, g *Globals) *cobra.Command {
	o := &RenderOptions{}
	cmd := &cobra.Command{
		Use:   "render [-i] FILE -o DIR",
		Short: "Write every managed file to DIR/<host>/<path on the host>",
		Args:  inventoryArg,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.load(ctx)
			if err != nil {
				return err
			}
			files, err := g.renderAll(l)
			if err != nil {
				return &ExitError{Code: ExitFailed, Err: err}
			}
			if err := writeTree(ctx, o.Dir, files); err != nil {
				return &ExitError{Code: ExitFailed, Err: err}
			}
			if g.Output == "json" {
				doc := renderJSON{Envelope: ui.Result(nil), Dir: o.Dir, Files: []renderFileJSON{}}
				for _, f := range files {
					doc.Files = append(doc.Files, renderFileJSON{f.Host, f.Path, fmt.Sprintf("%04o", f.Mode.Perm()), f.Owner, f.Group, f.Sensitive})
				}
				return g.jsonOut(doc)
			}
			g.stdout().Printf("rendered %d files for %d hosts into %s\n", len(files), len(l.Inv.Hosts()), o.Dir)
			return nil
		},
	}
	// --output is the report format everywhere, so -o here is --out DIR.
	cmd.Flags().StringVarP(&o.Dir, "out", "o", "", "output directory")
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if o.Dir == "" {
			return &ExitError{Code: ExitUsage, Err: errors.New("render needs an output directory: -o DIR")}
		}
		return nil
	}
	return cmd
}

func (g *Globals) renderAll(l *Loaded) ([]render.File, error) {
	r, err := g.renderer()
	if err != nil {
		return nil, err
	}
	return r.All(l.Inv, l.Layout)
}

// renderer parses the embedded templates, or those of --templates DIR.
func (g *Globals) renderer() (*render.Renderer, error) {
	if g.Templates == "" {
		return render.New()
	}
	return render.NewFromFS(os.DirFS(g.Templates))
}

// writeTree writes DIR/<host>/<path> with each file's intended mode, so
// that no secret is ever readable by more than its mode allows and nothing
// outside DIR is touched: directories it creates are private (0700); each
// file is written to a fresh temp file (O_EXCL|O_NOFOLLOW, mode 0600 until
// written, then its own mode through the open descriptor) and renamed over
// the old name, so a planted symlink or a pre-existing world-writable file
// is replaced, never written through. All of it goes through an os.Root:
// a symlinked directory that leads out of DIR is refused. An interrupt stops
// it between files.
func writeTree(ctx context.Context, dir string, files []render.File) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("render: %w", err)
	}
	defer root.Close()
	made := map[string]bool{}
	for _, f := range files {
		if err := stopped(ctx); err != nil {
			return err
		}
		name := path.Clean(f.Host + "/" + strings.TrimPrefix(f.Path, "/"))
		if !made[path.Dir(name)] {
			if err := privateDirs(root, path.Dir(name)); err != nil {
				return fmt.Errorf("render: %s: %w", name, err)
			}
			made[path.Dir(name)] = true
		}
		if err := replaceFile(root, name, f.Content, f.Mode); err != nil {
			return fmt.Errorf("render: %s: %w", name, err)
		}
	}
	return nil
}

// privateDirs creates each directory of rel (inside root) as 0700, and
// closes up one that exists with a wider mode: the tree holds secrets.
func privateDirs(root *os.Root, rel string) error {
	p := ""
	for _, part := range strings.Split(rel, "/") {
		p = path.Join(p, part)
		err := root.Mkdir(p, 0o700)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		st, err := root.Lstat(p)
		if err != nil {
			return err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link: refused (render writes only into real directories under DIR)", p)
		}
		if !st.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", p)
		}
		if st.Mode().Perm() != 0o700 {
			if err := root.Chmod(p, 0o700); err != nil {
				return err
			}
		}
	}
	return nil
}

// replaceFile writes content to a new temp file next to name and renames it
// into place.
func replaceFile(root *os.Root, name string, content []byte, mode fs.FileMode) error {
	var tmp string
	var f *os.File
	for try := 0; ; try++ {
		tmp = fmt.Sprintf("%s/.%s.hactl-%d-%d", path.Dir(name), path.Base(name), os.Getpid(), try)
		var err error
		f, err = root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || try == 100 {
			return err
		}
	}
	err := func() error {
		if _, err := f.Write(content); err != nil {
			return err
		}
		// Through the descriptor: no path to race, and umask does not apply.
		if err := f.Chmod(mode); err != nil {
			return err
		}
		return f.Close()
	}()
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		_ = f.Close()
		_ = root.Remove(tmp)
	}
	return err
}
