package render

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/vrrp"
)

// kaSandbox is a throwaway network namespace with the cluster's NIC, in which
// the real keepalived reads rendered configs. keepalived warns about
// interfaces that do not exist, hence the namespace; /etc/keepalived is
// replaced by a directory of rendered files in a private mount namespace (the
// scripts' ownership and modes are checked by enable_script_security).
type kaSandbox struct {
	bin, ns string
}

func newKASandbox(t *testing.T, name, iface, addr string) *kaSandbox {
	t.Helper()
	bin, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("keepalived is not installed on this machine (apt-get install keepalived to run this test)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	ns := fmt.Sprintf("hactl-kt-%d-%s", os.Getpid(), name)
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	run(t, "ip", "netns", "exec", ns, "ip", "link", "add", iface, "type", "veth", "peer", "name", "peer0")
	run(t, "ip", "netns", "exec", ns, "ip", "link", "set", iface, "up")
	run(t, "ip", "netns", "exec", ns, "ip", "addr", "add", addr, "dev", iface, "nodad") // nodad: an IPv6 address is usable at once
	return &kaSandbox{bin: bin, ns: ns}
}

// etcDir writes host's /etc/keepalived files into a new directory. With
// harmless, the scripts are replaced by `exit 0`: a running keepalived
// executes them, and the real check script starts nginx.
func etcDir(t *testing.T, files []File, host string, harmless bool) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Host != host || filepath.Dir(f.Path) != "/etc/keepalived" {
			continue
		}
		content := f.Content
		if harmless && f.Path != KeepalivedConf {
			content = []byte("#!/bin/sh\nexit 0\n")
		}
		p := filepath.Join(dir, filepath.Base(f.Path))
		if err := os.WriteFile(p, content, f.Mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.Mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// command runs keepalived with args inside the sandbox, dir mounted on
// /etc/keepalived and a private /run for its pid files.
func (s *kaSandbox) command(ctx context.Context, dir string, args ...string) *exec.Cmd {
	script := fmt.Sprintf("mount --bind %s /etc/keepalived && mount -t tmpfs tmpfs /run && exec %s %s -f /etc/keepalived/keepalived.conf",
		dir, s.bin, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", s.ns, "unshare", "--mount", "sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

// configTest runs `keepalived -t`: its output and its error (nil when it
// exited 0).
func (s *kaSandbox) configTest(dir string) (string, error) {
	out, err := s.command(context.Background(), dir, "-t").CombinedOutput()
	return string(out), err
}

// passwords starts keepalived (VRRP only, in the foreground, logging to the
// console, dumping its configuration), reads the password of each of the
// want instances from the dump and stops it: what keepalived really took
// as auth_pass, which `-t` does not show (a '#' silently ends it, say).
func (s *kaSandbox) passwords(t *testing.T, dir string, want int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := s.command(ctx, dir, "-n", "-l", "-d", "-P")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	var got []string
	sc := bufio.NewScanner(out)
	for len(got) < want && sc.Scan() {
		// "Tue Dec  1 10:22:56 2026:    Password = ab"
		if _, pw, ok := strings.Cut(sc.Text(), "    Password = "); ok {
			got = append(got, pw)
		}
	}
	return got
}

func TestKeepalivedConfigTest(t *testing.T) {
	lab, err := os.ReadFile("../../inventory/lab.hcl")
	if err != nil {
		t.Fatal(err)
	}
	v3 := strings.Replace(string(lab), `advert_int             = 1`, "advert_int = 0.1\n vrrp_transport = \"unicast\"", 1)
	ds, err := os.ReadFile(dualStackInventory)
	if err != nil {
		t.Fatal(err)
	}
	v6, err := os.ReadFile(ipv6Inventory)
	if err != nil {
		t.Fatal(err)
	}
	dsUnicast := strings.Replace(string(ds), `advert_int             = 1`, "advert_int = 1\n vrrp_transport = \"unicast\"", 1)
	for _, tc := range []struct {
		name  string
		src   []byte
		iface string
	}{
		{"prod", nil, "ens192"},
		{"lab-v3-unicast", []byte(v3), "eth0"},
		{"lab-dualstack", ds, "eth0"},
		{"lab-dualstack-unicast", []byte(dsUnicast), "eth0"},
		{"lab-ipv6", v6, "eth0"},
		{"lab-ipv6-unicast", ipv6Unicast(t, v6), "eth0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "../../inventory/prod.hcl"
			if tc.src != nil {
				path = tc.name + ".hcl"
			}
			inv, l := load(t, path, tc.src)
			// The host's own address, as on a real host.
			addr := inv.Hosts()[0].Address.String() + "/24"
			if inv.Hosts()[0].Address.Is6() {
				addr = inv.Hosts()[0].Address.String() + "/64"
			}
			sb := newKASandbox(t, tc.name, tc.iface, addr)
			files := renderAll(t, inv, l)
			host := files[0].Host
			out, err := sb.configTest(etcDir(t, files, host, false))
			if err != nil || len(strings.TrimSpace(out)) > 0 {
				t.Fatalf("keepalived -t on %s's config: %v\n%s", host, err, out)
			}
		})
	}
}

// TestAuthPassCharset asks the real keepalived which printable ASCII
// characters it takes literally as part of an auth_pass rendered by hactl,
// and requires inventory.AuthPassChars to be exactly those: every accepted
// character keeps its meaning in keepalived.conf, and none that keepalived
// would take is refused.
//
// A character c is taken when both hold:
//   - c at the start, in the middle and at the end (c+"a"+c+"b"+c):
//     `keepalived -t` is silent and the running keepalived's configuration
//     dump shows exactly that password in every instance (-t alone misses a
//     '#' that silently ends the value);
//   - c before the name of a predefined parameter ("x"+c+"_RANDOM", nine
//     characters): -t reports exactly the truncation to 8 characters in
//     every instance, so nothing was expanded ("$_RANDOM" followed by a
//     blank becomes a random number).
func TestAuthPassCharset(t *testing.T) {
	if testing.Short() {
		t.Skip("starts keepalived about a hundred times")
	}
	const workers = 4
	type result struct {
		ch  byte
		why string // empty: taken
	}
	chars := make(chan byte)
	results := make(chan result)
	for w := 0; w < workers; w++ {
		// Each worker has its own inventory (the test changes its
		// auth_pass) and its own namespace.
		inv, l := load(t, "../../inventory/prod.hcl", nil)
		sb := newKASandbox(t, fmt.Sprintf("pw%d", w), "ens192", inv.Hosts()[0].Address.String()+"/24")
		r, err := New()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for ch := range chars {
				results <- result{ch, sb.refusal(t, r, inv, l, string(ch))}
			}
		}()
	}
	go func() {
		for ch := byte(0x20); ch < 0x7f; ch++ {
			chars <- ch
		}
		close(chars)
	}()
	taken := map[byte]bool{}
	for i := 0x20; i < 0x7f; i++ {
		res := <-results
		if res.why == "" {
			taken[res.ch] = true
		} else {
			t.Logf("%q refused: %s", res.ch, res.why)
		}
	}
	var accepted strings.Builder
	for ch := byte(0x20); ch < 0x7f; ch++ {
		if taken[ch] {
			accepted.WriteByte(ch)
		}
	}
	t.Logf("%s takes %q", keepalivedVersion(), accepted.String())
	if got := inventory.AuthPassChars; got != accepted.String() {
		t.Errorf("inventory.AuthPassChars = %q\nkeepalived takes         %q", got, accepted.String())
	}
}

// refusal says why keepalived does not take s literally inside an auth_pass
// ("" when it does); see TestAuthPassCharset.
func (sb *kaSandbox) refusal(t *testing.T, r *Renderer, inv *inventory.Inventory, l *vrrp.Layout, s string) string {
	c := inv.Clusters[0]
	host := c.Hosts[0].Name
	render := func(pw string) string {
		c.AuthPass = inventory.NewSecret(pw)
		files, err := r.Host(inv, l, host)
		if err != nil {
			t.Error(err)
		}
		return etcDir(t, files, host, true)
	}
	pw := s + "a" + s + "b" + s
	dir := render(pw)
	if out, err := sb.configTest(dir); err != nil || strings.TrimSpace(out) != "" {
		first, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
		return fmt.Sprintf("%q: keepalived -t: %v %s", pw, err, first)
	}
	got := sb.passwords(t, dir, len(c.Hosts))
	if len(got) != len(c.Hosts) {
		return fmt.Sprintf("%q: %d of %d instances have a password", pw, len(got), len(c.Hosts))
	}
	for _, g := range got {
		if g != pw {
			return fmt.Sprintf("%q: keepalived took %q", pw, g)
		}
	}

	pw = "x" + s + "_RANDOM"
	out, _ := sb.configTest(render(pw))
	var odd []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasSuffix(line, ") Truncating auth_pass to 8 characters") {
			odd = append(odd, line)
		}
	}
	if n := strings.Count(out, "Truncating auth_pass"); n != len(c.Hosts) || len(odd) > 0 {
		return fmt.Sprintf("%q: keepalived -t truncated %d of %d instances' auth_pass (so it expanded something) %s",
			pw, n, len(c.Hosts), strings.Join(odd, "; "))
	}
	return ""
}

func keepalivedVersion() string {
	out, _ := exec.Command("keepalived", "--version").CombinedOutput()
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(first)
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}
