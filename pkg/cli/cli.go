// Package cli wires hactl's commands. Each command has an options struct that
// holds its IO and dependencies, so tests call it with buffers and fakes; the
// package keeps no state of its own.
package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/render"
	"github.com/hactl/hactl/pkg/ui"
	"github.com/hactl/hactl/pkg/vrrp"
)

// Version is set at build time with -ldflags "-X …/pkg/cli.Version=…".
var Version = "dev"

// Exit codes (DESIGN.md).
const (
	ExitOK     = 0
	ExitFailed = 1 // the operation ran and failed
	ExitUsage  = 2 // bad usage or invalid inventory
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

// IO is what a command reads and writes. Env replaces os.Getenv/os.Environ.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
	Env      []string
}

// LookupEnv looks a variable up in io.Env.
func (s IO) LookupEnv(name string) (string, bool) {
	for i := len(s.Env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(s.Env[i], "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

// Globals are the flags every command shares.
type Globals struct {
	IO        IO
	Inventory string
	Output    string
	Templates string // --templates DIR: render from DIR instead of the embedded templates
	// Dial opens SSH connections; nil means remote.Dial. Tests inject fakes.
	Dial fleet.DialFunc
}

// Main runs hactl and returns its exit code.
func Main(ctx context.Context, args []string, stdio IO) int {
	g := &Globals{IO: stdio}
	root := NewRoot(ctx, g)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil && !errors.Is(ee.Err, errReported) {
			fmt.Fprintf(stdio.Err, "hactl: %v\n", ee.Err)
		}
		return ee.Code
	}
	// Anything cobra itself returns is a usage problem (unknown flag, bad args).
	fmt.Fprintf(stdio.Err, "hactl: %v\nRun 'hactl --help' for usage.\n", err)
	return ExitUsage
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
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if g.Output != "text" && g.Output != "json" {
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--output must be text or json, not %q", g.Output)}
		}
		return nil
	}
	root.AddCommand(newValidate(g), newPlan(ctx, g), newRender(g))
	for _, c := range extraCommands(ctx, g) {
		root.AddCommand(c)
	}
	return root
}

// Loaded is an inventory with its layout: the input of every command.
type Loaded struct {
	Inv    *inventory.Inventory
	Layout *vrrp.Layout
}

// load reads the inventory, builds the layout and prints any diagnostics
// with source snippets. Invalid input is exit 2.
func (g *Globals) load() (*Loaded, error) {
	if g.Inventory == "" {
		return nil, &ExitError{Code: ExitUsage, Err: errors.New("no inventory: pass -i FILE")}
	}
	loader := inventory.NewLoader(inventory.Options{LookupEnv: g.IO.LookupEnv})
	inv, diags := loader.LoadFile(g.Inventory)
	var layout *vrrp.Layout
	if !diags.HasErrors() {
		var more hcl.Diagnostics
		layout, more = vrrp.Build(inv)
		diags = append(diags, more...)
	}
	if len(diags) > 0 {
		g.printDiags(loader.Files(), diags)
	}
	if diags.HasErrors() {
		fmt.Fprintf(g.IO.Err, "hactl: %s: %d error(s) in the inventory; nothing was changed\n", g.Inventory, countErrors(diags))
		return nil, &ExitError{Code: ExitUsage, Err: errReported}
	}
	return &Loaded{Inv: inv, Layout: layout}, nil
}

func (g *Globals) printDiags(files map[string]*hcl.File, diags hcl.Diagnostics) {
	p := ui.NewPrinter(g.IO.Err, g.IO.Env)
	wr := hcl.NewDiagnosticTextWriter(p.Writer(), maskFiles(files), 100, p.Color())
	for _, d := range diags {
		// FILE:LINE,COL first, so editors and CI logs can jump to it; the
		// writer adds the snippet.
		if d.Subject != nil {
			p.Printf("%s: ", d.Subject)
		}
		_ = wr.WriteDiagnostic(d)
	}
}

var secretAttr = regexp.MustCompile(`(auth_pass\s*=\s*)"[^"\n]*"`)

// maskFiles returns copies of the sources with literal auth_pass values
// starred out (same length, so columns stay right): snippets in error
// messages end up in CI logs.
func maskFiles(files map[string]*hcl.File) map[string]*hcl.File {
	out := make(map[string]*hcl.File, len(files))
	for name, f := range files {
		c := *f
		c.Bytes = secretAttr.ReplaceAllFunc(f.Bytes, func(m []byte) []byte {
			sub := secretAttr.FindSubmatch(m)
			stars := bytes.Repeat([]byte("*"), len(m)-len(sub[1])-2)
			return append(append(append([]byte{}, sub[1]...), '"'), append(stars, '"')...)
		})
		out[name] = &c
	}
	return out
}

func countErrors(d hcl.Diagnostics) int {
	n := 0
	for _, x := range d {
		if x.Severity == hcl.DiagError {
			n++
		}
	}
	return n
}

func (g *Globals) stdout() *ui.Printer { return ui.NewPrinter(g.IO.Out, g.IO.Env) }

// --- validate ---------------------------------------------------------------

func newValidate(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate -i FILE",
		Short: "Check an inventory without connecting to any host",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.load()
			if err != nil {
				return err
			}
			hosts := len(l.Inv.Hosts())
			if g.Output == "json" {
				return ui.JSON(g.IO.Out, map[string]any{"valid": true, "clusters": len(l.Inv.Clusters), "hosts": hosts, "vips": len(l.Layout.Instances)})
			}
			p := g.stdout()
			p.Printf("%s %s: %d cluster(s), %d host(s), %d VIP(s)\n", p.Styles.OK.Render("valid"), g.Inventory, len(l.Inv.Clusters), hosts, len(l.Layout.Instances))
			return nil
		},
	}
}

// --- render -----------------------------------------------------------------

// RenderOptions is `hactl render`.
type RenderOptions struct {
	Dir string
}

func newRender(g *Globals) *cobra.Command {
	o := &RenderOptions{}
	cmd := &cobra.Command{
		Use:   "render -i FILE -o DIR",
		Short: "Write every managed file to DIR/<host>/<path on the host>",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.load()
			if err != nil {
				return err
			}
			files, err := g.renderAll(l)
			if err != nil {
				return &ExitError{Code: ExitFailed, Err: err}
			}
			if err := writeTree(o.Dir, files); err != nil {
				return &ExitError{Code: ExitFailed, Err: err}
			}
			if g.Output == "json" {
				return ui.JSON(g.IO.Out, map[string]any{"dir": o.Dir, "files": files})
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

// writeTree writes DIR/<host>/<path> with each file's intended mode. Host
// names are validated (no '/' or '..'), so paths stay inside DIR.
func writeTree(dir string, files []render.File) error {
	for _, f := range files {
		p := dir + "/" + f.Host + f.Path
		if err := os.MkdirAll(p[:strings.LastIndex(p, "/")], 0o755); err != nil {
			return fmt.Errorf("render: %w", err)
		}
		if err := os.WriteFile(p, f.Content, f.Mode); err != nil {
			return fmt.Errorf("render: %w", err)
		}
		// WriteFile's mode is filtered by umask and ignored for existing files.
		if err := os.Chmod(p, f.Mode); err != nil {
			return fmt.Errorf("render: %w", err)
		}
	}
	return nil
}
