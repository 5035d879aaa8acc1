package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"syscall"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/hactl/hactl/pkg/failover"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/vrrp"

	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/ui"
)

// jsonOut writes a command's one --output json document to stdout; Main
// writes an error document only when no command did. Every reporting
// command ends through here, with its document embedding ui.Envelope
// filled by ui.Result(err).
func (g *Globals) jsonOut(doc any) error {
	g.wroteJSON = true
	return ui.JSON(g.IO.Out, doc)
}

// errorDoc is the document of a run that ended before its command could
// report: a usage error or an invalid inventory.
type errorDoc struct {
	ui.Envelope
}

// diagJSON is one inventory (or playbook) problem in JSON.
type diagJSON struct {
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail"`
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
}

// diagsError is an invalid input whose diagnostics were printed to stderr;
// in JSON they are the document's error list.
type diagsError struct {
	summary string
	diags   []diagJSON
}

func (e *diagsError) Error() string { return e.summary }

func (e *diagsError) Is(target error) bool { return target == errReported }

func newDiagsError(summary string, diags hcl.Diagnostics) *diagsError {
	return &diagsError{summary: summary, diags: diagsJSON(diags)}
}

// diagsJSON is diags as JSON, never null.
func diagsJSON(diags hcl.Diagnostics) []diagJSON {
	out := []diagJSON{}
	for _, d := range diags {
		dj := diagJSON{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			dj.Severity = "warning"
		}
		if d.Subject != nil {
			dj.File, dj.Line, dj.Column = d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column
		}
		out = append(out, dj)
	}
	return out
}

// envelopeFor is the envelope of a run that ended with err.
func envelopeFor(err error) ui.Envelope {
	env := ui.Result(err)
	var de *diagsError
	if errors.As(err, &de) {
		env.Error = de.diags
	}
	return env
}

// wantsJSON reads --output from raw args, for errors cobra reports before
// the flags are parsed.
func wantsJSON(args []string) bool {
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

// connMessage is a connect failure said once, without the "connect HOST:"
// prefix the host column already says, and with a hint at the likely cause.
func connMessage(host string, err error) string {
	msg := strings.TrimPrefix(err.Error(), "connect "+host+": ")
	// "HOST (ADDR): connect: … dial tcp ADDR: …" names the address twice.
	msg = dialAddr.ReplaceAllString(msg, "")
	if hint := connHint(err); hint != "" {
		msg += " (" + hint + ")"
	}
	return msg
}

// dialAddr is net's "dial tcp ADDR: " inside a message that named ADDR already.
var dialAddr = regexp.MustCompile(`dial tcp \S+: `)

func connHint(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, remote.ErrHostKeyUnknown), errors.Is(err, remote.ErrHostKeyChanged):
		return "" // the message says what to do
	case errors.Is(err, context.Canceled):
		return ""
	case errors.Is(err, syscall.ECONNREFUSED):
		return "is sshd running, and the port right?"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route: check the address"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "host down or filtered"
	case errors.Is(err, remote.ErrAuth):
		return "check the key (private_key_file, agent, ~/.ssh/id_*) and the user"
	}
	return ""
}

// checkPositive refuses a numeric flag of 0 or less.
func checkPositive(name string, v int64) error {
	if v <= 0 {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--%s must be more than 0, not %d", name, v)}
	}
	return nil
}

// layoutOf is the layout of the clusters that hold these hosts.
func layoutOf(all *vrrp.Layout, hosts []string, inv *inventory.Inventory) *vrrp.Layout {
	in := map[string]bool{}
	for _, h := range hosts {
		in[inv.ClusterOf(h).Name] = true
	}
	out := &vrrp.Layout{}
	for _, i := range all.Instances {
		if in[i.Cluster] {
			out.Instances = append(out.Instances, i)
		}
	}
	return out
}

// layoutHosts are the hosts of the layout's clusters, in inventory order.
func layoutHosts(l *Loaded) []string {
	in := map[string]bool{}
	for _, i := range l.Layout.Instances {
		in[i.Cluster] = true
	}
	var names []string
	for _, c := range l.Inv.Clusters {
		if in[c.Name] {
			for _, h := range c.Hosts {
				names = append(names, h.Name)
			}
		}
	}
	return names
}

// registerCompletions offers values for --mode, --output, --node and
// --limit (hosts and clusters from the inventory given with -i).
func registerCompletions(cmd *cobra.Command, g *Globals) {
	fixed := func(vals ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return vals, cobra.ShellCompDirectiveNoFileComp
		}
	}
	names := func(clusters bool) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			path := g.Inventory
			if path == "" && len(args) == 1 {
				path = args[0]
			}
			if path == "" {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			inv, diags := inventory.NewLoader(inventory.Options{LookupEnv: g.IO.LookupEnv}).LoadFile(path)
			if inv == nil || diags.HasErrors() {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []string
			for _, c := range inv.Clusters {
				if clusters {
					out = append(out, c.Name)
				}
				for _, h := range c.Hosts {
					out = append(out, h.Name)
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		}
	}
	if cmd.Flag("mode") != nil {
		_ = cmd.RegisterFlagCompletionFunc("mode", fixed(failover.ModeNames()...))
	}
	if cmd.Flag("node") != nil {
		_ = cmd.RegisterFlagCompletionFunc("node", names(false))
	}
	if cmd.Flag("limit") != nil {
		_ = cmd.RegisterFlagCompletionFunc("limit", names(true))
	}
}
