package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/hactl/hactl/pkg/clock"
	"github.com/hactl/hactl/pkg/failover"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/hostlock"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/render"
	"github.com/hactl/hactl/pkg/sshconfig"
	"github.com/hactl/hactl/pkg/vrrp"
	"github.com/hactl/hactl/playbooks"
)

// Deps are what the verbs take from the process and the world outside;
// tests replace them. A nil field is the real thing.
type Deps struct {
	// Dial opens SSH connections; nil means remote.Dial.
	Dial fleet.DialFunc
	// Locker is the host lock apply and failover-test take; the zero value
	// is the production lock.
	Locker hostlock.Locker
	// Clock and Prober replace failover-test's; nil: wall clock, HTTP.
	Clock  clock.Clock
	Prober failover.Prober
	// LookupEnv reads the run's environment (env() in the inventory, HOME,
	// SSH_AUTH_SOCK).
	LookupEnv func(string) (string, bool)
	// Templates is a directory of *.tmpl files to render from instead of
	// the embedded templates ("": embedded).
	Templates string
}

// Session is what every verb of one run shares: the inventory, its layout
// (router ids as the inventory alone gives them; verbs that reach the
// hosts rebuild it on the records they keep, through the same builder)
// and the run's dependencies.
type Session struct {
	// Path is the inventory file.
	Path   string
	Inv    *inventory.Inventory
	Layout *vrrp.Layout
	// Warnings are the inventory's diagnostics that did not stop the load.
	Warnings hcl.Diagnostics
	deps     Deps
}

// Input is what loading the inventory said: every diagnostic (warnings
// too) and the sources they point into.
type Input struct {
	Diags hcl.Diagnostics
	Files map[string]*hcl.File
}

// Load reads the inventory and builds its layout. Invalid input returns a
// DiagError (Usage) and Input carries the diagnostics either way, so one
// pass reports every problem.
func Load(ctx context.Context, path string, d Deps) (*Session, Input, error) {
	if path == "" {
		return nil, Input{}, UsageError(errors.New("no inventory: pass -i FILE (or FILE as the argument)"))
	}
	loader := inventory.NewLoader(inventory.Options{LookupEnv: d.LookupEnv})
	inv, diags := loader.LoadFile(path)
	if err := stopped(ctx); err != nil {
		return nil, Input{}, err
	}
	var layout *vrrp.Layout
	switch {
	case !diags.HasErrors():
		var more hcl.Diagnostics
		layout, more = buildLayout(inv, vrrp.Options{})
		diags = append(diags, more...)
	case loader.StandIn() != nil:
		// Only unset env() variables stopped the load: the layout's own
		// checks still run, so that one pass reports every problem.
		_, more := buildLayout(loader.StandIn(), vrrp.Options{})
		diags = append(diags, more...)
	}
	in := Input{Diags: diags, Files: loader.Files()}
	if diags.HasErrors() {
		summary := fmt.Sprintf("%s: %d error(s) in the inventory; nothing was changed", path, len(diags.Errs()))
		return nil, in, UsageError(&DiagError{Err: errors.New(summary), Diags: diags, Files: in.Files, Listed: true})
	}
	return &Session{Path: path, Inv: inv, Layout: layout, Warnings: diags, deps: d}, in, nil
}

// buildLayout is the one place a layout is built: from the inventory alone
// (no records) or with the router ids the hosts record.
func buildLayout(inv *inventory.Inventory, o vrrp.Options) (*vrrp.Layout, hcl.Diagnostics) {
	return vrrp.BuildWith(inv, o)
}

// backupStamp is the run's backup suffix (UTC time).
func backupStamp(now func() time.Time) string {
	if now == nil {
		now = time.Now
	}
	return now().UTC().Format(playbook.StampFormat)
}

// observe connects to the named hosts and reads the layout their records
// keep: the start of every verb that looks at a live fleet without
// changing its membership. The caller closes the fleet.
func (s *Session) observe(ctx context.Context, o ConnOptions, names []string) (*fleet.Fleet, *vrrp.Layout, error) {
	fl, err := s.connect(ctx, o, names)
	if err != nil {
		return nil, nil, err
	}
	layout, err := s.recordedLayout(ctx, fl, nil)
	if err != nil {
		fl.Close()
		return nil, nil, err
	}
	return fl, layout, nil
}

// renderer parses the embedded templates, or those of Deps.Templates.
func (s *Session) renderer() (*render.Renderer, error) {
	if s.deps.Templates == "" {
		return render.New()
	}
	return render.NewFromFS(os.DirFS(s.deps.Templates))
}

// loadBook parses the playbook at path, or the embedded one.
func loadBook(path string) (*playbook.Book, error) {
	name, src := playbooks.HANginxName, playbooks.HANginx
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, UsageError(fmt.Errorf("playbook: %w", err))
		}
		name, src = path, b
	}
	book, parser, diags := playbook.Parse(name, src)
	if diags.HasErrors() {
		return nil, UsageError(&DiagError{Err: errors.New(name + ": invalid playbook"), Diags: diags, Files: parser.Files(), Listed: true})
	}
	return book, nil
}

// ConnOptions say how to reach the hosts.
type ConnOptions struct {
	AcceptNewHostKeys bool
	Parallel          int
	Timeout           time.Duration
	// SSHConfig is the ssh_config file read for what the inventory leaves
	// unset; "" means ~/.ssh/config. A missing file is fine.
	SSHConfig string
}

// check refuses values that cannot mean anything.
func (o ConnOptions) check() error {
	if o.Parallel <= 0 {
		return UsageError(fmt.Errorf("--parallel must be more than 0, not %d", o.Parallel))
	}
	if o.Timeout <= 0 {
		return UsageError(fmt.Errorf("--connect-timeout must be more than 0s, not %s", o.Timeout))
	}
	return nil
}

// connect opens one SSH connection per named inventory host. Hosts that
// cannot be reached are in the fleet with Err set; verbs report them.
func (s *Session) connect(ctx context.Context, o ConnOptions, names []string) (*fleet.Fleet, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	hosts, err := fleet.Select(s.Inv, names)
	if err != nil {
		return nil, UsageError(err)
	}
	return s.connectHosts(ctx, hosts, o)
}

// connectHosts opens one SSH connection per host given, which need not be
// in the inventory (hosts that left it are reached with their old
// cluster's SSH settings).
func (s *Session) connectHosts(ctx context.Context, hosts []*inventory.Host, o ConnOptions) (*fleet.Fleet, error) {
	home, _ := s.lookupEnv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	sock, _ := s.lookupEnv("SSH_AUTH_SOCK")
	path := o.SSHConfig
	if path == "" {
		path = "~/.ssh/config"
	}
	if path == "~" || strings.HasPrefix(path, "~/") {
		if home == "" {
			return nil, UsageError(fmt.Errorf("--ssh-config %s: no home directory known", path))
		}
		path = filepath.Join(home, path[1:])
	}
	if o.SSHConfig != "" {
		// Given explicitly, it must be there: a typo would silently
		// drop the User, Port or ProxyJump the operator relies on.
		if _, err := os.Stat(path); err != nil {
			return nil, UsageError(fmt.Errorf("--ssh-config: %w", err))
		}
	}
	sc, err := sshconfig.Load(path)
	if err != nil {
		return nil, UsageError(err)
	}
	return fleet.Connect(ctx, s.Inv, hosts, fleet.Options{
		SSHConfig:         sc,
		AcceptNewHostKeys: o.AcceptNewHostKeys,
		ConnectTimeout:    o.Timeout,
		Parallel:          max(o.Parallel, len(hosts)),
		HomeDir:           home,
		AgentSocket:       sock,
		Dial:              s.deps.Dial,
	}), nil
}

func (s *Session) lookupEnv(name string) (string, bool) {
	if s.deps.LookupEnv == nil {
		return "", false
	}
	return s.deps.LookupEnv(name)
}
