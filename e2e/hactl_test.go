//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hactl/hactl/e2e/labkit"
)

// hactlCmd is the built binary (make e2e builds it first) with args, as the
// tests run it: NO_COLOR, stdout and stderr captured.
func hactlCmd(ctx context.Context, t *testing.T, args ...string) (cmd *exec.Cmd, stdout, stderr *bytes.Buffer) {
	t.Helper()
	root, err := labkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin", "hactl")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s missing: run `make build` (make e2e does)", bin)
	}
	cmd = exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	stdout, stderr = &bytes.Buffer{}, &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd, stdout, stderr
}

// hactl runs the built binary to its end.
func hactl(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd, out, errb := hactlCmd(ctx, t, args...)
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("hactl %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

type applyDoc struct {
	Hosts []struct {
		Name    string `json:"name"`
		OK      bool   `json:"ok"`
		Changed int    `json:"changed"`
		Error   string `json:"error"`
	} `json:"hosts"`
	VIPs []struct {
		VIP     string   `json:"vip"`
		Master  string   `json:"master"`
		Holders []string `json:"holders"`
		State   string   `json:"state"`
	} `json:"vips"`
}

func decode(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("bad JSON: %v\n%s", err, s)
	}
}

// vipHolders reads `ip addr` on every host over plain SSH (not through hactl)
// and returns VIP address → hosts holding it.
func vipHolders(t *testing.T, lab *labkit.Lab) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[string][]string{}
	for _, h := range lab.Hosts {
		s, err := lab.SSH(ctx, h, "ip -o -4 addr show dev eth0")
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		for i := range lab.Hosts {
			vip := labkit.VIP(i + 1)
			if strings.Contains(s, " "+vip+"/") {
				out[vip] = append(out[vip], h.Name)
			}
		}
	}
	return out
}

func ssh(t *testing.T, lab *labkit.Lab, host, cmd string) string {
	t.Helper()
	h, err := lab.Host(host)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := lab.SSH(ctx, h, cmd)
	if err != nil {
		t.Fatalf("%s: %s: %v", host, cmd, err)
	}
	return strings.TrimSpace(out)
}

func httpNode(url string) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	if h, b := resp.Header.Get("X-Hactl-Node"), strings.TrimSpace(string(body)); h != b {
		return "", fmt.Errorf("%s: header %q but body %q", url, h, b)
	}
	return resp.Header.Get("X-Hactl-Node"), nil
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestHactl is the product's end-to-end test on a fresh 3-host lab, in the
// order a user meets it: apply, re-apply, status, broken input, partial
// failure, failover.
func TestHactl(t *testing.T) {
	// Fresh: its first apply is the cold one under test. A passing run hands the lab on to
	// TestIPv6DualStack (applied, VIPs home, lab2's lock released).
	lab := labkit.FreshHandOn(t, 3)
	inv := lab.InventoryPath()
	masters := map[string]string{labkit.VIP(1): "lab1", labkit.VIP(2): "lab2", labkit.VIP(3): "lab3"}

	t.Run("apply converges a fresh lab", func(t *testing.T) {
		applyOK(t, inv)
		// Proven independently of hactl: ip addr over plain SSH, and HTTP.
		holders := vipHolders(t, lab)
		for vip, master := range masters {
			if got := holders[vip]; len(got) != 1 || got[0] != master {
				t.Errorf("VIP %s on %v, want only %s", vip, got, master)
			}
			node, err := httpNode("http://" + vip + "/hactl-health")
			if err != nil || node != master {
				t.Errorf("GET %s: node %q err %v, want %s", vip, node, err, master)
			}
		}
		if got := ssh(t, lab, "lab1", "stat -c '%a %U' /etc/keepalived/keepalived.conf"); got != "600 root" {
			t.Errorf("keepalived.conf mode/owner %q", got)
		}
		if got := ssh(t, lab, "lab2", "systemctl is-enabled keepalived nginx | tr '\\n' ' '"); got != "enabled enabled" {
			t.Errorf("services not enabled: %q", got)
		}
	})

	pids := func() string {
		var s []string
		for _, h := range []string{"lab1", "lab2", "lab3"} {
			s = append(s, ssh(t, lab, h, "systemctl show -p MainPID --value keepalived; systemctl show -p MainPID --value nginx | tr '\\n' ' '"))
		}
		return strings.Join(s, "|")
	}

	t.Run("second apply changes and restarts nothing", func(t *testing.T) {
		before := pids()
		start := time.Now()
		out, errOut, code := hactl(t, "apply", "-i", inv, "--output", "json")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
		t.Logf("no-change apply of 3 hosts: %s", time.Since(start).Round(time.Millisecond))
		var doc applyDoc
		decode(t, out, &doc)
		for _, h := range doc.Hosts {
			if !h.OK || h.Changed != 0 {
				t.Errorf("host %+v", h)
			}
		}
		if after := pids(); after != before {
			t.Errorf("daemons restarted: %s -> %s", before, after)
		}
		if strings.Contains(errOut, "handler") {
			t.Errorf("a handler ran:\n%s", errOut)
		}
	})

	t.Run("status is ok", func(t *testing.T) {
		out, errOut, code := hactl(t, "status", "-i", inv, "--output", "json")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		var doc struct {
			VIPs  []struct{ State string } `json:"vips"`
			Hosts []struct {
				Reachable         bool
				Keepalived, Nginx string
				Drift             []string
			} `json:"hosts"`
		}
		decode(t, out, &doc)
		for _, h := range doc.Hosts {
			if !h.Reachable || h.Keepalived != "active" || h.Nginx != "active" || len(h.Drift) != 0 {
				t.Errorf("host %+v", h)
			}
		}
	})

	t.Run("status through ops with become", func(t *testing.T) {
		src, err := os.ReadFile(inv)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "ops.hcl")
		mod := strings.Replace(string(src), `user             = "root"`, "user = \"ops\"\n  become = true", 1)
		if mod == string(src) {
			t.Fatal("could not switch the inventory to ops")
		}
		if err := os.WriteFile(p, []byte(mod), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := hactl(t, "status", "-i", p, "--output", "json")
		if code != 0 || strings.Contains(out, `"drift": [
        "`) {
			t.Fatalf("exit %d (drift must be empty: root-only keepalived.conf read through sudo)\n%s\n%s", code, out, errOut)
		}
	})

	t.Run("split brain is reported", func(t *testing.T) {
		ssh(t, lab, "lab2", "ip addr add "+labkit.VIP(1)+"/24 dev eth0")
		out, _, code := hactl(t, "status", "-i", inv)
		ssh(t, lab, "lab2", "ip addr del "+labkit.VIP(1)+"/24 dev eth0")
		if code != 1 || !strings.Contains(out, "split") || !strings.Contains(out, "unicast") {
			t.Fatalf("exit %d, want 1 with split and the unicast hint:\n%s", code, out)
		}
	})

	t.Run("broken template is refused and keepalived untouched", func(t *testing.T) {
		root, _ := labkit.RepoRoot()
		dir := t.TempDir()
		tmpls, _ := filepath.Glob(filepath.Join(root, "templates", "*.tmpl"))
		for _, f := range tmpls {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(f) == "keepalived.conf.tmpl" {
				b = bytes.Replace(b, []byte("    advert_int {{$.AdvertInt}}"), []byte("    advert_int {{$.AdvertInt}}\n    no_such_keyword 1"), 1)
			}
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		sumBefore := ssh(t, lab, "lab1", "sha256sum /etc/keepalived/keepalived.conf")
		before := pids()
		out, errOut, code := hactl(t, "apply", "-i", inv, "--templates", dir)
		if code != 1 || !strings.Contains(out+errOut, "failed validation") {
			t.Fatalf("exit %d, want 1 and a validation failure:\n%s\n%s", code, out, errOut)
		}
		if got := ssh(t, lab, "lab1", "sha256sum /etc/keepalived/keepalived.conf"); got != sumBefore {
			t.Errorf("live keepalived.conf changed")
		}
		if left := ssh(t, lab, "lab1", "ls -a /etc/keepalived | grep -c hactl-new || true"); left != "0" {
			t.Errorf("candidate left behind")
		}
		if after := pids(); after != before {
			t.Errorf("daemons restarted: %s -> %s", before, after)
		}
	})

	t.Run("second apply on a locked host is refused", func(t *testing.T) {
		// Hold the lock from another session until this test is done with it (the file
		// /run/hactl-e2e.release appears), at most 60 s.
		h, _ := lab.Host("lab2")
		held := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			_, err := lab.SSH(ctx, h, "rm -f /run/hactl-e2e.release; flock /run/hactl.lock sh -c 'echo other > /run/hactl.lock.owner; "+
				"i=0; until [ -e /run/hactl-e2e.release ] || [ $i -ge 600 ]; do sleep 0.1; i=$((i+1)); done'; rm -f /run/hactl-e2e.release")
			held <- err
		}()
		// Then wait until the lock is free again, not a fixed time: the next subtest applies.
		defer func() {
			ssh(t, lab, "lab2", "touch /run/hactl-e2e.release")
			if err := <-held; err != nil {
				t.Errorf("the session holding lab2's lock: %v", err)
			}
		}()
		waitFor(t, "the lock to be held", 5*time.Second, func() bool {
			return ssh(t, lab, "lab2", "cat /run/hactl.lock.owner 2>/dev/null || true") == "other"
		})
		out, errOut, code := hactl(t, "apply", "-i", inv, "--output", "json")
		if code != 1 || !strings.Contains(out, "another hactl run holds the lock") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		var doc applyDoc
		decode(t, out, &doc)
		for _, x := range doc.Hosts {
			if (x.Name == "lab2") == x.OK {
				t.Errorf("host %+v: only lab2 must fail", x)
			}
		}
	})

	t.Run("unreachable host fails alone and a re-run converges", func(t *testing.T) {
		src, err := os.ReadFile(inv)
		if err != nil {
			t.Fatal(err)
		}
		changed := filepath.Join(t.TempDir(), "changed.hcl")
		mod := strings.Replace(string(src), "interval = 2", "interval = 3", 1)
		if err := os.WriteFile(changed, []byte(mod), 0o600); err != nil {
			t.Fatal(err)
		}
		// lab3 can no longer answer the control machine; VRRP between the
		// hosts is untouched.
		if out, err := exec.Command("ip", "netns", "exec", lab.Netns("lab3"), "ip", "route", "add", "blackhole", "198.18.0.1/32").CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		out, errOut, code := hactl(t, "apply", "-i", changed, "--output", "json", "--connect-timeout", "2s")
		_ = exec.Command("ip", "netns", "exec", lab.Netns("lab3"), "ip", "route", "del", "blackhole", "198.18.0.1/32").Run()
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
		}
		var doc applyDoc
		decode(t, out, &doc)
		for _, h := range doc.Hosts {
			switch {
			case h.Name == "lab3" && (h.OK || !strings.Contains(h.Error, "lab3")):
				t.Errorf("lab3: %+v", h)
			case h.Name != "lab3" && (!h.OK || h.Changed == 0):
				t.Errorf("%s must converge: %+v", h.Name, h)
			}
		}
		out, errOut, code = hactl(t, "apply", "-i", changed, "--output", "json")
		if code != 0 {
			t.Fatalf("re-run exit %d\n%s\n%s", code, out, errOut)
		}
		decode(t, out, &doc)
		for _, h := range doc.Hosts {
			if h.Name == "lab3" && h.Changed == 0 || h.Name != "lab3" && h.Changed != 0 {
				t.Errorf("re-run: %+v", h)
			}
		}
		if got := ssh(t, lab, "lab3", "grep -c 'interval 3' /etc/keepalived/keepalived.conf"); got != "1" {
			t.Errorf("lab3 not converged")
		}
		// Back to the lab's own inventory for what follows.
		if out, errOut, code := hactl(t, "apply", "-i", inv); code != 0 {
			t.Fatalf("apply of the original inventory: exit %d\n%s\n%s", code, out, errOut)
		}
	})

	t.Run("the check script restarts a stopped nginx", func(t *testing.T) {
		ssh(t, lab, "lab1", "systemctl stop nginx")
		waitFor(t, "nginx active again on lab1", 15*time.Second, func() bool {
			return ssh(t, lab, "lab1", "systemctl is-active nginx || true") == "active"
		})
		// nginx's stop event (its unit drop-in) put lab1 in FAULT, so VIP 1
		// went to its first backup; with nginx back, lab1 preempts it home.
		waitFor(t, "VIP 1 back on lab1 alone", 15*time.Second, func() bool {
			got := vipHolders(t, lab)[labkit.VIP(1)]
			return len(got) == 1 && got[0] == "lab1"
		})
	})

	t.Run("Ctrl-C during a failover test restores the node", func(t *testing.T) {
		cmd, out, errb := hactlCmd(context.Background(), t, "failover-test", "-i", inv, "--node", "lab1", "--mode", "stop")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Interrupt once keepalived is down on lab1 (the VIP has left it).
		waitFor(t, "keepalived stopped on lab1", 15*time.Second, func() bool {
			return ssh(t, lab, "lab1", "systemctl is-active keepalived || true") != "active"
		})
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 130 {
			t.Fatalf("want exit 130 after an interrupt, got %v\n%s\n%s", err, out.String(), errb.String())
		}
		if got := ssh(t, lab, "lab1", "systemctl is-active keepalived || true"); got != "active" {
			t.Errorf("keepalived on lab1 is %q after the interrupted test\n%s", got, errb.String())
		}
		if got := vipHolders(t, lab)[labkit.VIP(1)]; len(got) != 1 || got[0] != "lab1" {
			t.Errorf("VIP 1 on %v after restoration", got)
		}
	})

	// `failover-test --mode all` on every node of this same lab inventory (lab.hcl, advert_int 1)
	// runs once per `make test`, in TestDrain, with this test's checks beside its own (every
	// scenario passed, restored and probed; every VIP back on its master after the run): the
	// same 15 scenarios twice cost ~2 minutes and checked nothing more.
}
