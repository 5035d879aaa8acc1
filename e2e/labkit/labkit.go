// Package labkit drives the container-VM lab (e2e/lab/lab.sh) from Go tests: bring it up or
// down, run commands on its hosts over SSH with strict host-key checking, and check that
// `down` left nothing behind.
//
// The lab needs root on a Debian/Ubuntu machine; see e2e/README.md for how it works.
package labkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/hactl/hactl/pkg/inventory"
)

// DefaultDir is the lab directory when HACTL_LAB_DIR is unset (the Makefile uses the same).
const DefaultDir = "/var/lib/hactl-lab"

// Host is one lab machine, as the lab's inventory has it.
type Host struct {
	Name string // lab1, lab2, …
	Addr string // 198.18.0.11, …
	VIP  string // the VIP it is MASTER of, without prefix: 198.18.0.201, …
}

// Plan is the lab of n hosts as `lab.sh inventory n` renders it from
// inventory/lab.hcl, the lab's one source: names, addresses and VIPs are read
// from the rendered inventory, never derived here.
func Plan(n int) ([]Host, error) {
	out, err := run(context.Background(), "inventory", fmt.Sprint(n))
	if err != nil {
		return nil, err
	}
	return hostsOf("lab.sh inventory", []byte(out))
}

// VIP is the virtual address the lab inventory gives host i (1-based).
func VIP(i int) string {
	hosts, err := Plan(max(i, 2)) // hactl needs two hosts for a valid inventory
	if err != nil || i < 1 || i > len(hosts) {
		panic(fmt.Sprintf("labkit: no VIP for host %d: %v", i, err))
	}
	return hosts[i-1].VIP
}

// hostsOf reads the hosts of a lab inventory with hactl's own loader.
func hostsOf(name string, src []byte) ([]Host, error) {
	inv, diags := inventory.NewLoader(inventory.Options{}).Load(name, src)
	if diags.HasErrors() {
		return nil, fmt.Errorf("labkit: %s: %w", name, diags)
	}
	var hosts []Host
	for _, h := range inv.Hosts() {
		hosts = append(hosts, Host{Name: h.Name, Addr: h.Address.String(), VIP: h.VIP.Addr().String()})
	}
	return hosts, nil
}

// Lab is a running lab of len(Hosts) hosts whose state lives in Dir.
type Lab struct {
	Dir   string
	Hosts []Host
}

// Dir is the lab directory: $HACTL_LAB_DIR or DefaultDir.
func Dir() string {
	if d := os.Getenv("HACTL_LAB_DIR"); d != "" {
		return d
	}
	return DefaultDir
}

// Lane is the lab lane this process runs in: "" for the default lab, else "2".."9" (set by
// `lab.sh lane-exec N`, which also put this process in the lane's network namespace, where the
// lane's lab has the same addresses and VIPs as the default one). See e2e/lanes.sh.
func Lane() string { return os.Getenv("HACTL_LAB_LANE") }

// nsPrefix is what lab.sh puts before a host's name to name its network namespace, cgroup and
// nspawn machine in this lane (lab.sh's ns_of).
func nsPrefix() string {
	if l := Lane(); l != "" {
		return "l" + l + "-"
	}
	return ""
}

// cgroupName is the lab's cgroup in this lane (lab.sh's CG_NAME).
func cgroupName() string {
	if l := Lane(); l != "" {
		return "hactl-lab-l" + l
	}
	return "hactl-lab"
}

// Netns is the network namespace of lab host (or app server) name in this lane, for
// `ip netns exec`: lab3 in the default lab, l2-lab3 in lane 2.
func (l *Lab) Netns(name string) string { return nsPrefix() + name }

// RepoRoot is the hactl repository root: the nearest parent of the working directory holding
// go.mod (tests run in their package directory), else the one above this source file.
func RepoRoot() (string, error) {
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "e2e", "lab", "lab.sh")); err == nil {
				return d, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		d := filepath.Join(filepath.Dir(file), "..", "..")
		if _, err := os.Stat(filepath.Join(d, "e2e", "lab", "lab.sh")); err == nil {
			return filepath.Clean(d), nil
		}
	}
	return "", errors.New("labkit: cannot find the repository root (no e2e/lab/lab.sh above the working directory)")
}

// run calls lab.sh with args; the error carries the script's output, which names the failing host.
func run(ctx context.Context, args ...string) (string, error) {
	return runEnv(ctx, nil, args...)
}

// runEnv is run with env (KEY=value) added to the script's environment.
func runEnv(ctx context.Context, env []string, args ...string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(root, "e2e", "lab", "lab.sh")}, args...)...)
	cmd.Env = append(append(os.Environ(), "HACTL_LAB_DIR="+Dir()), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// lab.sh closes the pipes in the long-lived nspawn processes; WaitDelay guards against a regression
	// that would otherwise hang the test until its global timeout.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("lab.sh %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// Up brings up hosts lab1..labN (idempotent: running hosts are kept, so their state is too).
func Up(ctx context.Context, n int) (*Lab, error) {
	if _, err := run(ctx, "up", fmt.Sprint(n)); err != nil {
		return nil, err
	}
	l := &Lab{Dir: Dir()}
	src, err := os.ReadFile(l.InventoryPath())
	if err != nil {
		return nil, fmt.Errorf("labkit: lab.sh up succeeded but wrote no inventory: %w", err)
	}
	if l.Hosts, err = hostsOf(l.InventoryPath(), src); err != nil {
		return nil, err
	}
	if len(l.Hosts) != n {
		return nil, fmt.Errorf("labkit: %s has %d hosts, want %d", l.InventoryPath(), len(l.Hosts), n)
	}
	return l, nil
}

// Down stops every lab host and removes its namespaces, links, mounts and cgroups.
func Down(ctx context.Context) error {
	_, err := run(ctx, "down")
	return err
}

// teardown is Down without waiting for each host's clean poweroff (LAB_STOP_TIMEOUT=0: SIGKILL
// at once, then the same cleanup of cgroup, mounts, netns and links): between two tests nobody
// needs the hosts' own shutdown, which costs 3–7 s a lab. TestLab's and Finish's downs stay clean.
func teardown(ctx context.Context) error {
	_, err := runEnv(ctx, []string{"LAB_STOP_TIMEOUT=0"}, "down")
	return err
}

// Fresh gives a test a lab of n freshly booted hosts (nothing installed beyond the base image):
// it skips the test when not root, brings any previous lab down first, and takes the lab down
// when the test ends unless HACTL_LAB_KEEP=1 (to inspect a failure).
func Fresh(t testing.TB, n int) *Lab {
	t.Helper()
	l := fresh(t, n)
	t.Cleanup(func() { l.release(t, false) })
	return l
}

// FreshHandOn is Fresh for a test that needs bare hosts (it asserts a cold apply, or that only its
// own records are on the hosts) but leaves a lab that a later Reuse test can take: like Reuse, a
// passing run hands its lab on instead of taking it down; a failing or skipped one takes it down.
// So the next Reuse test's cold apply (~15–30 s) becomes a converging one. Such a test must leave
// the lab as Reuse tests do: undrained, VIPs home, stock host keys, its own test files removed.
func FreshHandOn(t testing.TB, n int) *Lab {
	t.Helper()
	l := fresh(t, n)
	t.Cleanup(func() { l.release(t, true) })
	return l
}

// Reuse gives a test a running lab of n hosts that an earlier test of this same test binary
// handed on (see below), with whatever that test left installed and configured on it; when
// there is none, it is Fresh's lab. So a test that uses Reuse must bring the hosts to the state
// it needs itself (typically: apply its inventory, which converges a bare host and an applied
// one alike) and must not assert that anything is fresh.
//
// At the end a test that passed hands the lab on to the next Reuse of the run instead of taking
// it down (a cold apply costs ~20 s; a no-change one ~2 s); a test that failed or was skipped
// takes it down, so that a broken lab is never handed on. Whoever ends the run takes the lab down
// (the e2e package's TestMain; `lab.sh down` also forgets a handed-on lab).
func Reuse(t testing.TB, n int) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the container-VM lab needs root (network namespaces, bridge, mounts, systemd-nspawn); run as root, e.g. sudo make e2e")
	}
	if handedOn(n) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// Up on a running lab of the same size is a no-op that checks each host answers; a host
		// that died meanwhile is booted again (bare, which the test's own apply converges).
		l, err := Up(ctx, n)
		if err == nil {
			os.Remove(handOnPath())
			t.Logf("labkit: reusing the lab of %d hosts handed on by an earlier test", n)
			t.Cleanup(func() { l.release(t, true) })
			return l
		}
		t.Logf("labkit: the handed-on lab is unusable, starting a fresh one: %v", err)
	}
	l := fresh(t, n)
	t.Cleanup(func() { l.release(t, true) })
	return l
}

func fresh(t testing.TB, n int) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the container-VM lab needs root (network namespaces, bridge, mounts, systemd-nspawn); run as root, e.g. sudo make e2e")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute) // a cold base build takes ~1 min
	defer cancel()
	start := time.Now()
	if err := teardown(ctx); err != nil {
		t.Fatalf("lab down before the test: %v", err)
	}
	down := time.Since(start)
	l, err := Up(ctx, n)
	if err != nil {
		t.Fatalf("lab up %d: %v", n, err)
	}
	// What a fresh lab costs, for e2e/README.md's table of test costs.
	t.Logf("labkit: fresh lab of %d hosts: down %.1fs, up %.1fs", n, down.Seconds(), (time.Since(start) - down).Seconds())
	return l
}

// release ends a test's use of the lab: kept for inspection with HACTL_LAB_KEEP=1, handed on
// when the test passed and may hand it on, else taken down.
func (l *Lab) release(t testing.TB, handOn bool) {
	if os.Getenv("HACTL_LAB_KEEP") == "1" {
		t.Logf("HACTL_LAB_KEEP=1: lab left running in %s", l.Dir)
		return
	}
	if handOn && !t.Failed() && !t.Skipped() {
		// The file names this test binary's process: a lab left up by another run (or another
		// helper) is never taken for a handed-on one.
		err := os.WriteFile(handOnPath(), fmt.Appendf(nil, "%d %d\n", os.Getpid(), len(l.Hosts)), 0o644)
		if err == nil {
			return
		}
		t.Logf("labkit: cannot hand the lab on (%v); taking it down", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if err := teardown(ctx); err != nil {
		t.Errorf("lab down after the test: %v", err)
	}
	t.Logf("labkit: lab down after the test: %.1fs", time.Since(start).Seconds())
}

// Finish takes down a lab that a Reuse test of this process handed on and nobody took over: the
// end of a test binary's run (TestMain) calls it. A lab of anyone else is left alone.
func Finish(ctx context.Context) error {
	b, err := os.ReadFile(handOnPath())
	if err != nil {
		return nil
	}
	if pid, _, _ := strings.Cut(strings.TrimSpace(string(b)), " "); pid != fmt.Sprint(os.Getpid()) {
		return nil
	}
	return Down(ctx)
}

// handOnPath is where a passing Reuse test leaves "<pid> <hosts>"; lab.sh down removes it.
func handOnPath() string { return filepath.Join(Dir(), "handed-on") }

// handedOn: this process handed on a lab of n hosts that is still up (lab.hcl exists until down).
func handedOn(n int) bool {
	b, err := os.ReadFile(handOnPath())
	if err != nil {
		return false
	}
	if _, err := os.Stat(filepath.Join(Dir(), "lab.hcl")); err != nil {
		return false
	}
	return strings.TrimSpace(string(b)) == fmt.Sprintf("%d %d", os.Getpid(), n)
}

// InventoryPath is the generated hactl inventory for this lab.
func (l *Lab) InventoryPath() string { return filepath.Join(l.Dir, "lab.hcl") }

// KeyPath is the private key that root and ops on every host accept.
func (l *Lab) KeyPath() string { return filepath.Join(l.Dir, "id_ed25519") }

// KnownHostsPath holds every host's real ed25519 host key, by address.
func (l *Lab) KnownHostsPath() string { return filepath.Join(l.Dir, "known_hosts") }

// Host returns the host with that name.
func (l *Lab) Host(name string) (Host, error) {
	for _, h := range l.Hosts {
		if h.Name == name {
			return h, nil
		}
	}
	return Host{}, fmt.Errorf("labkit: no host %q in a lab of %d", name, len(l.Hosts))
}

// SSH runs cmd as root on h and returns its stdout.
func (l *Lab) SSH(ctx context.Context, h Host, cmd string) (string, error) {
	return l.SSHAs(ctx, "root", h, cmd)
}

// SSHAs runs cmd as user on h (key auth, host key checked against KnownHostsPath, never trusted
// on first use). A non-zero exit is an error that carries the command's stderr.
func (l *Lab) SSHAs(ctx context.Context, user string, h Host, cmd string) (string, error) {
	return l.sshWith(ctx, user, h, cmd, l.KnownHostsPath())
}

func (l *Lab) sshWith(ctx context.Context, user string, h Host, cmd, knownHostsFile string) (string, error) {
	keyPEM, err := os.ReadFile(l.KeyPath())
	if err != nil {
		return "", fmt.Errorf("labkit: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		return "", fmt.Errorf("labkit: parse %s: %w", l.KeyPath(), err)
	}
	hostKeys, err := knownhosts.New(knownHostsFile)
	if err != nil {
		return "", fmt.Errorf("labkit: %w", err)
	}
	cfg := &ssh.ClientConfig{
		User:              user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   hostKeys,
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519}, // the only key type the hosts have
		Timeout:           10 * time.Second,
	}
	addr := net.JoinHostPort(h.Addr, "22")
	conn, err := (&net.Dialer{Timeout: cfg.Timeout}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("labkit: %s: %w", h.Name, err)
	}
	// Closing the connection is how a cancelled context interrupts a running command.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return "", fmt.Errorf("labkit: %s: ssh handshake: %w", h.Name, err)
	}
	client := ssh.NewClient(c, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return "", fmt.Errorf("labkit: %s: %w", h.Name, err)
	}
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	if err := sess.Run(cmd); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return stdout.String(), fmt.Errorf("labkit: %s@%s: %q: %w: %s", user, h.Name, cmd, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// HostKey is the host key h presents now, in authorized_keys form ("ssh-ed25519 AAAA…"): the
// handshake stops once the key is seen, nothing is trusted or run. For tests that change a host's
// key and must wait until sshd serves the new one.
func (l *Lab) HostKey(ctx context.Context, h Host) (string, error) {
	var seen ssh.PublicKey
	errSeen := errors.New("host key seen")
	cfg := &ssh.ClientConfig{
		User: "root",
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			seen = key
			return errSeen // stop here: this handshake only reads the key
		},
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		Timeout:           5 * time.Second,
	}
	addr := net.JoinHostPort(h.Addr, "22")
	conn, err := (&net.Dialer{Timeout: cfg.Timeout}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("labkit: %s: %w", h.Name, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, _, _, err := ssh.NewClientConn(conn, addr, cfg); seen == nil {
		return "", fmt.Errorf("labkit: %s: no host key presented: %w", h.Name, err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(seen))), nil
}

// SSHWithKnownHosts is SSHAs with another known_hosts file: for tests that prove host keys are checked.
func (l *Lab) SSHWithKnownHosts(ctx context.Context, user string, h Host, cmd, knownHostsFile string) (string, error) {
	return l.sshWith(ctx, user, h, cmd, knownHostsFile)
}

// Leftovers lists what this lane's lab leaves on this machine: network namespaces, links, mounts,
// cgroups and processes. After `lab.sh down` it must be empty. Other lanes' labs, which may be
// running beside this one, are not this lab's leftovers.
func Leftovers() ([]string, error) {
	var left []string
	dir := filepath.Clean(Dir())
	labName := regexp.MustCompile(`^` + regexp.QuoteMeta(nsPrefix()) + `lab[0-9]+$`)
	cg := cgroupName()

	entries, err := os.ReadDir("/run/netns")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		if labName.MatchString(e.Name()) {
			left = append(left, "netns "+e.Name())
		}
	}

	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for _, ifc := range ifaces {
		if ifc.Name == "hactl0" || strings.HasPrefix(ifc.Name, "hactl-lab") {
			left = append(left, "link "+ifc.Name)
		}
	}

	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(mountinfo), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := f[4]
		if strings.HasPrefix(mp, dir+"/lanes/") {
			continue // another lane's lab (lab.sh lane-exec keeps lane N's state in <lab>/lanes/N)
		}
		if strings.HasPrefix(mp, dir+"/") || (strings.HasPrefix(mp, "/run/netns/") && labName.MatchString(filepath.Base(mp))) {
			left = append(left, "mount "+mp)
		}
	}

	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/" + cg)
	if _, err := os.Stat("/sys/fs/cgroup/" + cg); err == nil {
		cgroups = append(cgroups, "/sys/fs/cgroup/"+cg)
	}
	for _, d := range cgroups {
		left = append(left, "cgroup "+d)
	}

	// A lab process is one in a lab cgroup, or an nspawn pointed at a lab netns (e.g. if its cgroup went).
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cgroup, err1 := os.ReadFile(filepath.Join(p, "cgroup"))
		cmdline, err2 := os.ReadFile(filepath.Join(p, "cmdline"))
		if err1 != nil || err2 != nil {
			continue // exited meanwhile
		}
		if bytes.Contains(cgroup, []byte("/"+cg+"/")) || bytes.Contains(cmdline, []byte("--network-namespace-path=/run/netns/"+nsPrefix()+"lab")) {
			comm, _ := os.ReadFile(filepath.Join(p, "comm"))
			left = append(left, fmt.Sprintf("process %s (%s)", filepath.Base(p), strings.TrimSpace(string(comm))))
		}
	}
	return left, nil
}
