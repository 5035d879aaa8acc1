package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
	"github.com/hactl/hactl/pkg/ui"
)

// freeAddr is a loopback address nothing listens on (a port the kernel
// just handed out and was closed again).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// TestStatusServe: status --serve is an exporter: every scrape asks the
// hosts anew, so a VIP put on a second host between two scrapes shows as
// split brain in the second; the answer is OpenMetrics with its
// Content-Type; the interrupt ends it with 130 and the port is free again.
func TestStatusServe(t *testing.T) {
	var split atomic.Bool // lab2 also has 198.18.0.201 (put there by hand)
	var asked atomic.Int32
	dial := func(_ context.Context, cfg remote.Config) (remote.Conn, error) {
		n := int(cfg.Name[len(cfg.Name)-1] - '0')
		return &remotetest.Fake{Handler: func(cmd string, _ []byte) remote.Result {
			addrs := fmt.Sprintf("2: eth0    inet 198.18.0.1%d/24 brd 198.18.0.255 scope global eth0\n"+
				"2: eth0    inet 198.18.0.20%d/24 scope global secondary eth0\n", n, n)
			if cfg.Name == "lab2" && split.Load() {
				addrs += "2: eth0    inet 198.18.0.201/24 scope global secondary eth0\n"
			}
			if strings.HasPrefix(cmd, "LC_ALL=C") {
				asked.Add(1)
				return remote.Result{Stdout: []byte("@@os\nID=debian\nVERSION_ID=\"12\"\n@@systemd\nyes\n" +
					"@@addrs\n" + addrs + "@@services\nx\tactive\tenabled\n@@end\n")}
			}
			return remote.Result{}
		}}, nil
	}
	addr := freeAddr(t)
	sig := make(chan os.Signal, 1)
	uio, out, errb := ui.Test()
	code := make(chan int, 1)
	go func() {
		code <- Main(context.Background(), []string{"status", lab, "--serve", addr}, uio, Deps{Dial: dial, Signals: sig})
	}()
	scrape := func() (string, string) {
		t.Helper()
		var resp *http.Response
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if resp, err = http.Get("http://" + addr + "/metrics"); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("scrape: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("scrape: %s\n%s", resp.Status, b)
		}
		return string(b), resp.Header.Get("Content-Type")
	}
	const holders = `hactl_vip_holders{cluster="lab",vip="198.18.0.201/24",master="lab1"} `
	const splitBrain = `hactl_vip_split_brain{cluster="lab",vip="198.18.0.201/24",master="lab1"} `
	body, ctype := scrape()
	if !strings.HasPrefix(ctype, "application/openmetrics-text") || !strings.HasSuffix(body, "# EOF\n") ||
		!strings.Contains(body, holders+"1\n") || !strings.Contains(body, splitBrain+"0\n") {
		t.Fatalf("first scrape (%s):\n%s", ctype, body)
	}
	before := asked.Load()
	split.Store(true)
	body, _ = scrape()
	if !strings.Contains(body, holders+"2\n") || !strings.Contains(body, splitBrain+"1\n") {
		t.Errorf("scrape after the VIP went onto lab2 too:\n%s", body)
	}
	if n := asked.Load() - before; n != 3 {
		t.Errorf("the second scrape asked %d hosts, want all 3 anew", n)
	}
	if resp, err := http.Post("http://"+addr+"/metrics", "text/plain", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %v %v", resp, err)
	}
	sig <- os.Interrupt
	select {
	case c := <-code:
		if c != ExitInterrupted {
			t.Errorf("after the interrupt: exit %d, want %d\n%s", c, ExitInterrupted, errb)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("status --serve still running 10 s after the interrupt")
	}
	if !strings.Contains(errb.String(), "http://"+addr+"/metrics") || out.Len() != 0 {
		t.Errorf("stdout %q, stderr %q", out, errb)
	}
	if ln, err := net.Listen("tcp", addr); err != nil {
		t.Errorf("%s still taken after status --serve ended: %v", addr, err)
	} else {
		_ = ln.Close()
	}
}

// TestStatusServeUsage: a bad address, a busy one and --serve with --watch
// are clear errors naming the address, before any host is asked.
func TestStatusServeUsage(t *testing.T) {
	if r := runCLI(t, nil, "status", lab, "--serve", "127.0.0.1"); r.code != ExitUsage || !strings.Contains(r.err, "--serve 127.0.0.1: want host:port") {
		t.Errorf("no port: exit %d\n%s", r.code, r.err)
	}
	if r := runCLI(t, nil, "status", lab, "--serve", "127.0.0.1:9466", "--watch"); r.code != ExitUsage || !strings.Contains(r.err, "pick one") {
		t.Errorf("--serve --watch: exit %d\n%s", r.code, r.err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if r := runCLI(t, nil, "status", lab, "--serve", busy.Addr().String()); r.code != ExitFailed || !strings.Contains(r.err, "--serve "+busy.Addr().String()) {
		t.Errorf("busy address: exit %d\n%s", r.code, r.err)
	}
}
