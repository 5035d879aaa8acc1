//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hactl/hactl/e2e/labkit"
)

// TestRound3 is issue 23's backup, original-file and --limit cases on a
// fresh 3-host lab: the file hactl found is kept however many changes
// follow and destroy puts it back byte for byte; a live file older than
// the kept backups is still rolled back when nginx -t fails after the swap;
// a --limit name that is both a host and a cluster is refused.
func TestRound3(t *testing.T) {
	lab := labkit.Fresh(t, 3)
	inv := lab.InventoryPath()
	const ka, site = "/etc/keepalived/keepalived.conf", "/etc/nginx/conf.d/hactl.conf"
	// A keepalived.conf that was there before hactl: odd bytes, no final
	// newline, a config keepalived runs (no instance) when installed.
	ssh(t, lab, "lab1", `mkdir -p /etc/keepalived && printf '! pre-hactl original \\t é\nglobal_defs {\n   router_id ORIGINAL\n}\n! no final newline' > `+ka+` && chmod 0640 `+ka)
	origSum := ssh(t, lab, "lab1", "sha256sum "+ka+" | cut -d' ' -f1")
	// This first apply costs ~105 s, 90 of them apt's start of keepalived on lab1: a config with
	// no instance makes keepalived (Type=notify) never report ready, and the package's start waits
	// for systemd's 90 s start timeout (lab2, lab3: no config, no start). Timed for the README.
	start := time.Now()
	if out, errOut, code := hactl(t, "apply", "-i", inv); code != 0 {
		t.Fatalf("first apply: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("first apply: %s", time.Since(start).Round(100*time.Millisecond))

	// Six more changes of keepalived.conf and of the nginx site on lab1.
	for i := 1; i <= 6; i++ {
		marker := fmt.Sprintf("# e2e round3 change %d", i)
		dir := templatesWith(t, map[string]func([]byte) []byte{
			"keepalived.conf.tmpl": addLine("!" + marker[1:]),
			"nginx-site.conf.tmpl": addLine(marker),
		})
		start := time.Now()
		out, errOut, code := hactl(t, "apply", "-i", inv, "--limit", "lab1", "--templates", dir)
		if code != 0 {
			t.Fatalf("change %d: exit %d\n%s\n%s", i, code, out, errOut)
		}
		t.Logf("change %d (apply --limit lab1): %s", i, time.Since(start).Round(100*time.Millisecond))
	}
	if got := ssh(t, lab, "lab1", "sha256sum "+ka+".hactl-orig | cut -d' ' -f1"); got != origSum {
		t.Fatalf("after 7 changes the original is %q, want sha256 %s", got, origSum)
	}
	for _, p := range []string{ka, site} {
		if n := ssh(t, lab, "lab1", "ls -1 "+p+".hactl-2* | wc -l"); n != "5" {
			t.Errorf("%s: %s stamped backups kept, want 5", p, n)
		}
	}

	t.Run("a live file older than the kept backups is rolled back", func(t *testing.T) {
		// An operator's `cp -a` rollback: the live site's mtime is years
		// older than every backup hactl kept.
		ssh(t, lab, "lab1", "touch -d '2001-01-01 00:00:00' "+site)
		before := ssh(t, lab, "lab1", "sha256sum "+site+" | cut -d' ' -f1")
		broken := templatesWith(t, map[string]func([]byte) []byte{
			"nginx-site.conf.tmpl": func(b []byte) []byte {
				return bytes.Replace(b, []byte("    server_name _;"), []byte("    server_name _;\n    no_such_directive on;"), 1)
			},
		})
		out, errOut, code := hactl(t, "apply", "-i", inv, "--limit", "lab1", "--templates", broken)
		if code != 1 || !strings.Contains(out+errOut, "the previous file was restored") {
			t.Fatalf("exit %d, want 1 with the previous file restored\n%s\n%s", code, out, errOut)
		}
		if after := ssh(t, lab, "lab1", "sha256sum "+site+" | cut -d' ' -f1"); after != before {
			t.Errorf("the live site is not the previous one after the failed check (%s, was %s)", after, before)
		}
		if out := ssh(t, lab, "lab1", "nginx -t 2>&1 && echo NGINX-OK"); !strings.Contains(out, "NGINX-OK") {
			t.Errorf("nginx -t fails after the restore:\n%s", out)
		}
		if n := ssh(t, lab, "lab1", "ls -1 "+site+".hactl-2* | wc -l"); n != "5" {
			t.Errorf("%s stamped backups after a failed change, want 5", n)
		}
	})

	t.Run("--limit with a name that is both a host and a cluster is refused", func(t *testing.T) {
		src := readFile(t, inv)
		// lab3 renamed "lab" like its cluster: validate refuses the file,
		// so every command refuses it before any connection.
		ambiguous := writeInventory(t, src, "ambiguous.hcl", `host "lab3"`, `host "lab"`)
		for _, args := range [][]string{
			{"destroy", "-i", ambiguous, "--limit", "lab"},
			{"apply", "-i", ambiguous, "--limit", "lab"},
			{"validate", "-i", ambiguous},
		} {
			out, errOut, code := hactl(t, args...)
			if code != 2 || !strings.Contains(errOut, "Host named like a cluster") {
				t.Errorf("%v: exit %d, want 2 naming the collision\n%s\n%s", args, code, out, errOut)
			}
		}
		// Nothing was torn down.
		if got := ssh(t, lab, "lab3", "systemctl is-active keepalived"); got != "active" {
			t.Errorf("lab3's keepalived is %q after the refused destroy", got)
		}
	})

	t.Run("destroy restores the pre-hactl file byte for byte", func(t *testing.T) {
		if out, errOut, code := hactl(t, "destroy", "-i", inv); code != 0 {
			t.Fatalf("destroy: exit %d\n%s\n%s", code, out, errOut)
		}
		if got := ssh(t, lab, "lab1", "sha256sum "+ka+" | cut -d' ' -f1"); got != origSum {
			t.Errorf("after destroy keepalived.conf has sha256 %s, want the original's %s", got, origSum)
		}
		if left := ssh(t, lab, "lab1", "ls "+ka+".hactl-orig 2>/dev/null | wc -l"); left != "0" {
			t.Errorf("the original copy stays beside the restored file")
		}
		for _, h := range []string{"lab2", "lab3"} {
			if got := ssh(t, lab, h, "ls "+ka+" 2>/dev/null | wc -l"); got != "0" {
				t.Errorf("%s: a keepalived.conf was restored where none was before hactl", h)
			}
		}
	})
}
