//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hactl/hactl/e2e/labkit"
)

// TestLab checks the lab itself, so the other e2e tests can trust it: systemd and SSH on every
// host, sudo for ops, strict host keys, VRRP multicast between hosts, packages from the local repo,
// and a `down` that leaves nothing behind. It leaves the lab down (the next test wants it fresh).
func TestLab(t *testing.T) {
	lab := labkit.Fresh(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	t.Run("systemd and ssh", func(t *testing.T) {
		for _, h := range lab.Hosts {
			out, err := lab.SSH(ctx, h, "hostname; systemctl is-system-running")
			if err != nil {
				t.Fatalf("%s: %v", h.Name, err)
			}
			if got, want := strings.Fields(out), []string{h.Name, "running"}; strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("%s: hostname + system state = %q, want %q", h.Name, got, want)
			}
			if out, err := lab.SSH(ctx, h, "ip route show default"); err != nil || strings.TrimSpace(out) != "" {
				t.Errorf("%s: a host must have no default route, got %q (err %v)", h.Name, out, err)
			}
		}
	})

	t.Run("ops has passwordless sudo", func(t *testing.T) {
		for _, h := range lab.Hosts {
			out, err := lab.SSHAs(ctx, "ops", h, "id -un; sudo -n id -u")
			if err != nil {
				t.Fatalf("%s: %v", h.Name, err)
			}
			if got := strings.Fields(out); len(got) != 2 || got[0] != "ops" || got[1] != "0" {
				t.Errorf("%s: `id -un; sudo -n id -u` as ops = %q, want ops then 0", h.Name, got)
			}
		}
	})

	t.Run("host keys are checked", func(t *testing.T) {
		// A known_hosts that pairs lab1's address with lab2's key: a client that really checks must refuse.
		data, err := os.ReadFile(lab.KnownHostsPath())
		if err != nil {
			t.Fatal(err)
		}
		var lab2Key string
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == lab.Hosts[1].Addr {
				lab2Key = f[1] + " " + f[2]
			}
		}
		if lab2Key == "" {
			t.Fatalf("known_hosts has no entry for %s:\n%s", lab.Hosts[1].Addr, data)
		}
		wrong := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(wrong, []byte(lab.Hosts[0].Addr+" "+lab2Key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := lab.SSHWithKnownHosts(ctx, "root", lab.Hosts[0], "true", wrong); err == nil || !strings.Contains(err.Error(), "key mismatch") {
			t.Errorf("ssh to %s with another host's key in known_hosts: err = %v, want a key mismatch", lab.Hosts[0].Name, err)
		}
	})

	// Packages come from the local repository only (no route out): keepalived on lab1+lab2 for the
	// VRRP check, nginx on lab3, in parallel as a fleet tool would.
	t.Run("packages from the local repo", func(t *testing.T) {
		pkgs := map[string]string{"lab1": "keepalived", "lab2": "keepalived", "lab3": "nginx"}
		var wg sync.WaitGroup
		errs := make([]error, len(lab.Hosts))
		for i, h := range lab.Hosts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = lab.SSH(ctx, h, "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "+pkgs[h.Name])
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%s: apt-get install %s: %v", lab.Hosts[i].Name, pkgs[lab.Hosts[i].Name], err)
			}
		}
		nginx := lab.Hosts[2]
		if out, err := lab.SSH(ctx, nginx, "systemctl is-active nginx"); err != nil || strings.TrimSpace(out) != "active" {
			t.Fatalf("%s: nginx after install: %q, %v", nginx.Name, out, err)
		}
		// From the machine over the bridge, as hactl's checks and the benchmarks will reach it.
		client := &http.Client{Timeout: 5 * time.Second}
		resp, err := client.Get("http://" + nginx.Addr + "/")
		if err != nil {
			t.Fatalf("GET nginx on %s: %v", nginx.Name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "nginx") {
			t.Errorf("GET http://%s/ = %d %.80q, want 200 with nginx's page", nginx.Addr, resp.StatusCode, body)
		}
	})

	t.Run("vrrp multicast between hosts", func(t *testing.T) {
		testVRRP(ctx, t, lab)
	})

	// Explicit down (Fresh's cleanup runs it again, harmlessly) so that Leftovers can be asserted here.
	if err := labkit.Down(ctx); err != nil {
		t.Fatalf("lab down: %v", err)
	}
	left, err := labkit.Leftovers()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("lab down left behind:\n  %s", strings.Join(left, "\n  "))
	}
}

const keepalivedConf = `vrrp_instance lab_test {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority %d
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass labpass1
    }
    virtual_ipaddress {
        %s/24
    }
}
`

// testVRRP proves adverts cross the bridge: a backup that hears nothing becomes master after the
// master-down interval (3 × advert_int + skew ≈ 3.6 s), so lab2 staying backup well beyond that
// while lab1 is master means it receives lab1's adverts; when lab1 stops gracefully its priority-0
// advert must hand the VIP to lab2 much faster than that interval.
func testVRRP(ctx context.Context, t *testing.T, lab *labkit.Lab) {
	master, backup := lab.Hosts[0], lab.Hosts[1]
	vip := labkit.VIP(1)
	hasVIP := func(h labkit.Host) bool {
		out, err := lab.SSH(ctx, h, "ip -4 -o addr show dev eth0")
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		return strings.Contains(out, " "+vip+"/")
	}
	waitVIP := func(h labkit.Host, within time.Duration) time.Duration {
		start := time.Now()
		for time.Since(start) < within {
			if hasVIP(h) {
				return time.Since(start)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s did not get VIP %s within %s", h.Name, vip, within)
		return 0
	}
	start := func(h labkit.Host, prio int) {
		cmd := fmt.Sprintf("cat >/etc/keepalived/keepalived.conf <<'EOF'\n"+keepalivedConf+"EOF\nsystemctl enable -q keepalived && systemctl restart keepalived", prio, vip)
		if _, err := lab.SSH(ctx, h, cmd); err != nil {
			t.Fatalf("%s: start keepalived: %v", h.Name, err)
		}
	}

	start(master, 150)
	waitVIP(master, 15*time.Second)
	start(backup, 100)
	time.Sleep(6 * time.Second) // > master-down interval of the backup (3 + 156/256 s)
	if hasVIP(backup) {
		t.Fatalf("%s took VIP %s although %s is master: it does not receive VRRP adverts", backup.Name, vip, master.Name)
	}
	if out, err := lab.SSH(ctx, backup, "journalctl -u keepalived --no-pager -o cat"); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(out, "Entering BACKUP STATE") || strings.Contains(out, "Entering MASTER STATE") {
		t.Fatalf("%s's keepalived journal, want BACKUP and never MASTER:\n%s", backup.Name, out)
	}

	if _, err := lab.SSH(ctx, master, "systemctl stop keepalived"); err != nil {
		t.Fatal(err)
	}
	took := waitVIP(backup, 10*time.Second)
	t.Logf("graceful handover %s -> %s: %s", master.Name, backup.Name, took.Round(10*time.Millisecond))
	if took > 2500*time.Millisecond {
		t.Errorf("handover took %s, more than the master-down interval's lower bound: the priority-0 advert was not received", took)
	}
	if hasVIP(master) {
		t.Errorf("%s still holds %s after stopping keepalived", master.Name, vip)
	}
}
