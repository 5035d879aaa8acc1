package ops

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hactl/hactl/internal/testinv"
	"github.com/hactl/hactl/internal/tlstest"
	"github.com/hactl/hactl/internal/vrrpsim"
	"github.com/hactl/hactl/pkg/drain"
	"github.com/hactl/hactl/pkg/fleet"
	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
)

func writeT(t *testing.T, p, s string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func readT(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		return "(absent)"
	}
	return string(b)
}

// TestSitesRestorePoint: the canary's restore point, on a real shell over
// the in-process SSH server: Keep tars the live serving layer (0600, keys
// and all); whatever the rollout then did (a file changed, one added, the
// include removed, a key replaced), Restore puts exactly the kept layer
// back, keeps the module's own backups, reloads, and drops the tar.
func TestSitesRestorePoint(t *testing.T) {
	srv := remotetest.NewServer(t)
	c, err := remote.Dial(context.Background(), srv.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	root := t.TempDir()
	etc := filepath.Join(root, "etc", "nginx")
	mod := &playbook.NginxSites{Dir: etc + "/hactl", Include: etc + "/conf.d/hactl-sites.conf", MainConf: etc + "/nginx.conf"}
	log := filepath.Join(root, "reload.log")
	backups := filepath.Join(root, "backups")
	x := &siteHost{mod: mod, backupDir: backups, reload: "echo reloaded >> " + log,
		fl: &fleet.Fleet{Hosts: []*fleet.Host{{Host: &inventory.Host{Name: "lab1"}, Conn: c}}}}
	site, siteB, key := mod.Dir+"/http/site-a.conf", mod.Dir+"/http/site-b.conf", mod.Dir+"/tls/a.key"
	oldBackup := site + ".hactl-20261201T000000Z"
	writeT(t, site, "old site\n", 0o644)
	writeT(t, key, "OLD KEY\n", 0o600)
	writeT(t, oldBackup, "older site\n", 0o644)
	writeT(t, mod.Include, "include hactl;\n", 0o644)
	writeT(t, mod.MainConf, "events {}\n", 0o644)
	ctx := context.Background()

	if err := x.Keep(ctx, "lab1"); err != nil {
		t.Fatal(err)
	}
	tar := filepath.Join(backups, "sites-restore.tar")
	for p, want := range map[string]os.FileMode{tar: 0o600, backups: 0o700 | os.ModeDir} {
		if st, err := os.Stat(p); err != nil || st.Mode() != want {
			t.Fatalf("%s: %v %v, want %v", p, st.Mode(), err, want)
		}
	}
	// What a (bad) rollout leaves.
	writeT(t, site, "new site\n", 0o644)
	writeT(t, siteB, "added\n", 0o644)
	writeT(t, key, "NEW KEY\n", 0o600)
	writeT(t, site+".hactl-20261206T000000Z", "old site\n", 0o644)
	if err := os.Remove(mod.Include); err != nil {
		t.Fatal(err)
	}
	writeT(t, mod.MainConf, "events {}\ninclude stream;\n", 0o644)

	if err := x.Restore(ctx, "lab1"); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		site: "old site\n", siteB: "(absent)", key: "OLD KEY\n", mod.Include: "include hactl;\n", mod.MainConf: "events {}\n",
		oldBackup: "older site\n", site + ".hactl-20261206T000000Z": "old site\n", log: "reloaded\n", tar: "(absent)",
	} {
		if got := readT(t, p); got != want {
			t.Errorf("%s = %q, want %q", strings.TrimPrefix(p, root), got, want)
		}
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key mode after restore: %v %v", st.Mode(), err)
	}

	// A reload that fails after the restore is an error, and the restore
	// point stays for the operator.
	if err := x.Keep(ctx, "lab1"); err != nil {
		t.Fatal(err)
	}
	x.reload = "echo 'nginx: [emerg] bad' >&2; false"
	err = x.Restore(ctx, "lab1")
	if err == nil || !strings.Contains(err.Error(), "lab1: restore the previous sites") {
		t.Errorf("failed reload: %v", err)
	}
	if readT(t, tar) == "(absent)" {
		t.Error("restore point removed although the reload failed")
	}
	if err := x.Forget(ctx, "lab1"); err != nil || readT(t, tar) != "(absent)" {
		t.Errorf("forget: %v", err)
	}
}

// bookAndSites loads the default playbook and the sites example.
func bookAndSites(t *testing.T) (*playbook.Book, *inventory.Inventory) {
	t.Helper()
	book, err := loadBook("")
	if err != nil {
		t.Fatal(err)
	}
	path, _ := tlstest.SitesExample(t)
	inv, d := inventory.NewLoader(inventory.Options{LookupEnv: func(string) (string, bool) { return "labpass1", true }}).LoadFile(path)
	if d.HasErrors() {
		t.Fatal(d)
	}
	return book, inv
}

// TestSplitSites: with sites, apply's main book loses the nginx_sites step
// (rolled out afterwards, canary first) and keeps every other step and the
// handlers; without sites the book is used as it is.
func TestSplitSites(t *testing.T) {
	book, withSites := bookAndSites(t)
	main, sites, mod := splitSites(book, withSites, withSites.Hosts())
	if mod == nil || sites == nil || len(sites.Steps) != 1 || sites.Steps[0].Name != "nginx sites" || len(sites.Handlers) != len(book.Handlers) {
		t.Fatalf("sites book %+v", sites)
	}
	if len(main.Steps) != len(book.Steps)-1 {
		t.Errorf("main book has %d steps, want %d", len(main.Steps), len(book.Steps)-1)
	}
	for _, s := range main.Steps {
		if s.Name == "nginx sites" {
			t.Error("main book still has the sites step")
		}
	}
	plain, _ := testinv.Load(t, "lab.hcl")
	if m, s, _ := splitSites(book, plain, plain.Hosts()); m != book || s != nil {
		t.Error("a fleet without sites must run the book as it is")
	}
}

// TestWaitNewWorkers: after a reload the check waits until none of the
// previous workers accepts any more, on a real shell (the worker list is a
// file the test rewrites, as nginx's master replaces its workers).
func TestWaitNewWorkers(t *testing.T) {
	srv := remotetest.NewServer(t)
	c, err := remote.Dial(context.Background(), srv.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	list := filepath.Join(t.TempDir(), "workers")
	writeT(t, list, "101\n102\n", 0o644)
	go func() {
		time.Sleep(400 * time.Millisecond)
		writeT(t, list, "102\n201\n", 0o644) // one old worker still accepting
		time.Sleep(400 * time.Millisecond)
		writeT(t, list, "201\n202\n", 0o644)
	}()
	start := time.Now()
	if _, err := remote.Output(context.Background(), c, waitNewWorkers("101 102", "cat "+list)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 700*time.Millisecond {
		t.Errorf("returned after %s, while an old worker still accepted", d)
	}
	if got := readT(t, list); got != "201\n202\n" {
		t.Errorf("workers %q", got)
	}
	// A previous worker that never stops accepting: an error after 10 s.
	if testing.Short() {
		return
	}
	writeT(t, list, "101\n", 0o644)
	if _, err := remote.Output(context.Background(), c, waitNewWorkers("101", "cat "+list)); err == nil || !strings.Contains(err.Error(), "previous configuration") {
		t.Errorf("stale workers: %v", err)
	}
}

// TestWithConnDrainTools: the default book installs nftables in its
// packages step (connection draining needs nft on every member) and is used
// as it is. A book of the user's that does not, with sites, gets a step that
// installs it before the serving layer's step, kept in the main book when the
// sites step is split off; without sites the book is used as it is (no step
// added, not even a skipped one).
func TestWithConnDrainTools(t *testing.T) {
	def, withSites := bookAndSites(t)
	if !installs(def, "nftables") {
		t.Fatal("the default book does not install nftables on every OS")
	}
	if b := withConnDrainTools(def, withSites, withSites.Hosts()); b != def {
		t.Error("the default book got a second nftables step")
	}
	// The user's book: the default one without nftables in its packages step.
	book := &playbook.Book{Name: def.Name, Handlers: def.Handlers}
	for _, s := range def.Steps {
		if p, ok := s.Module.(*playbook.Package); ok && slices.Contains(p.Names, "nftables") {
			q := &playbook.Package{Names: slices.DeleteFunc(slices.Clone(p.Names), func(n string) bool { return n == "nftables" }), NamesByFamily: map[string][]string{}}
			for f, ns := range p.NamesByFamily {
				q.NamesByFamily[f] = slices.DeleteFunc(slices.Clone(ns), func(n string) bool { return n == "nftables" })
			}
			s.Module = q
		}
		book.Steps = append(book.Steps, s)
	}
	if installs(book, "nftables") {
		t.Fatal("the stripped book still installs nftables")
	}
	got := withConnDrainTools(book, withSites, withSites.Hosts())
	if len(got.Steps) != len(book.Steps)+1 {
		t.Fatalf("%d steps, want %d", len(got.Steps), len(book.Steps)+1)
	}
	for i, s := range got.Steps {
		if s.Name != ConnDrainStep {
			continue
		}
		p, ok := s.Module.(*playbook.Package)
		if !ok || len(p.Names) != 1 || p.Names[0] != "nftables" || p.NamesByFamily != nil {
			t.Errorf("step %q: %#v, want the package nftables on every OS", s.Name, s.Module)
		}
		if _, ok := got.Steps[i+1].Module.(*playbook.NginxSites); !ok {
			t.Errorf("step after %q is %q, want the sites step", s.Name, got.Steps[i+1].Name)
		}
	}
	main, _, _ := splitSites(got, withSites, withSites.Hosts())
	found := false
	for _, s := range main.Steps {
		found = found || s.Name == ConnDrainStep
	}
	if !found {
		t.Error("the main book lost the nftables step")
	}
	if len(book.Steps) != len(got.Steps)-1 {
		t.Error("the loaded book was changed in place")
	}
	plain, _ := testinv.Load(t, "lab.hcl")
	if b := withConnDrainTools(book, plain, plain.Hosts()); b != book {
		t.Error("a fleet without sites must run the book as it is")
	}
}

// TestSitesDrainerGrace: the sites rollout's Drainer moves the canary's VIPs
// with a connection drain of SitesGrace, or of the cluster's drain_grace
// when set; its Cut moves them without one.
func TestSitesDrainerGrace(t *testing.T) {
	for _, tc := range []struct {
		name  string
		keep  bool
		set   time.Duration
		grace float64
	}{
		{"default", true, 0, SitesGrace.Seconds()},
		{"drain_grace", true, 30 * time.Second, 30},
		// Cut: no grace period, so only drain.Settle.
		{"cut", false, 30 * time.Second, drain.Settle.Seconds()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv, l := testinv.Load(t, "lab.hcl")
			inv.ClusterOf("lab1").DrainGrace = tc.set
			w := vrrpsim.New(inv, l)
			w.Conns = func(string, time.Duration) int { return 0 }
			d := clusterDrainer{inv: inv, layout: l, fl: w.Fleet, keep: tc.keep, clock: w.Clock}
			for _, undrain := range []bool{false, true} {
				var res *drain.Result
				var err error
				if undrain {
					res, err = d.Undrain(context.Background(), "lab1")
				} else {
					res, err = d.Drain(context.Background(), "lab1")
				}
				if err != nil {
					t.Fatal(err)
				}
				if res.Conns == nil || res.Conns.GraceSeconds != tc.grace {
					t.Errorf("undrain %v: connection drain %+v, want a grace of %gs", undrain, res.Conns, tc.grace)
				}
			}
			if got := w.Holders()["198.18.0.201/24"]; len(got) != 1 || got[0] != "lab1" {
				t.Errorf(".201 on %v", got)
			}
		})
	}
}
