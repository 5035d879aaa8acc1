package render

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hactl/hactl/pkg/inventory"
)

// TestEventsScriptRuns runs the rendered hactl_events.sh for real (sh,
// mkfifo, ip monitor on lo, curl), its paths moved into a temp dir: FIFO
// lines become records with causes, each is posted to a webhook with the
// secret header, a receiver that is down gets the record once it is back,
// and the secret appears in no output.
func TestEventsScriptRuns(t *testing.T) {
	for _, tool := range []string{"sh", "ip", "curl", "mkfifo", "stat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var mu sync.Mutex
	var posts []map[string]any
	var bad []string
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		var m map[string]any
		if r.Header.Get("X-Token") != "t0ps3cret" || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &m) != nil {
			bad = append(bad, r.Header.Get("Content-Type")+" "+string(b))
			return
		}
		posts = append(posts, m)
	})
	srv := &http.Server{Handler: handler}
	go func() { _ = srv.Serve(ln) }()

	inv, l := load(t, "../../inventory/prod.hcl", nil)
	inv.Webhook = &inventory.Webhook{URL: "http://" + addr + "/hook", Header: "X-Token", Secret: inventory.NewSecret("t0ps3cret")}
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	files, err := r.Host(inv, l, "master-node")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	move := strings.NewReplacer(
		EventsConf, filepath.Join(dir, "events.conf"),
		EventsDir, filepath.Join(dir, "events"),
		NginxDownDir, filepath.Join(dir, "run"),
		filepath.Dir(MetricsFile), filepath.Join(dir, "prom"),
		DrainFile, filepath.Join(dir, "drain"),
		"IFACE=ens192", "IFACE=lo",
		// Rotate after about five records instead of 1 MiB.
		fmt.Sprintf("MAX=%d", EventsMaxBytes), "MAX=1200",
	)
	for _, f := range files {
		switch f.Path {
		case EventsScript:
			if err := os.WriteFile(filepath.Join(dir, "hactl_events.sh"), []byte(move.Replace(string(f.Content))), 0o755); err != nil {
				t.Fatal(err)
			}
		case EventsConf:
			if err := os.WriteFile(filepath.Join(dir, "events.conf"), f.Content, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	cmd := exec.Command("sh", filepath.Join(dir, "hactl_events.sh"), "run")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		_ = srv.Close()
	}()
	wait := func(what string, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(15 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("%s: timed out; recorder said:\n%s", what, out.String())
			}
		}
	}
	logPath := filepath.Join(dir, "events", "events.log")
	records := func() []map[string]any {
		old, _ := os.ReadFile(logPath + ".1")
		b, _ := os.ReadFile(logPath)
		b = append(old, b...)
		var rs []map[string]any
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("log line %q: %v", sc.Text(), err)
			}
			rs = append(rs, m)
		}
		return rs
	}
	wait("recorder started", func() bool { return strings.Contains(out.String(), "recording VRRP transitions") })
	fifo, err := os.OpenFile(filepath.Join(dir, "run", "events.fifo"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fifo.Close()
	posted := func(n int) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return len(posts) >= n }
	}
	// Three "absent" address records at start (lo has no VIP), then five:
	// the stop also ends the two instances never heard of.
	_, _ = fifo.WriteString("INSTANCE \"VI_1\" BACKUP 101\nINSTANCE \"VI_1\" MASTER 101\nINSTANCE \"VI_9\" MASTER 1\nHACTL stopped signal\n")
	wait("8 records", func() bool { return len(records()) >= 8 })
	rs := records()
	got := func(i int) string {
		return rs[i]["kind"].(string) + " " + rs[i]["instance"].(string) + " " + rs[i]["from"].(string) + ">" + rs[i]["to"].(string) + " " + rs[i]["cause"].(string)
	}
	for i, want := range []string{
		"vrrp VI_1 UNKNOWN>BACKUP keepalived started",
		"vrrp VI_1 BACKUP>MASTER takeover",
		"vrrp VI_1 MASTER>STOP keepalived crashed (signal)",
		"vrrp VI_2 UNKNOWN>STOP keepalived crashed (signal)",
		"vrrp VI_3 UNKNOWN>STOP keepalived crashed (signal)",
	} {
		if g := got(3 + i); g != want {
			t.Errorf("record %d: %q, want %q", 3+i, g, want)
		}
	}
	if len(rs) != 8 {
		t.Errorf("%d records, want 8 (VI_9 is not this host's)", len(rs))
	}
	// Each record names its instance's VIP (vip_of sets a variable).
	if v := rs[4]["vip"]; v != "10.11.7.235/24" {
		t.Errorf("record 4's vip %q, want VI_1's 10.11.7.235/24", v)
	}
	wait("8 POSTs", posted(8))

	// The receiver goes away: the record waits, retried with backoff.
	_ = srv.Close()
	_, _ = fifo.WriteString("INSTANCE \"VI_2\" MASTER 99\n")
	wait("a failed try", func() bool { return strings.Contains(out.String(), "not delivered") })
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv = &http.Server{Handler: handler}
	go func() { _ = srv.Serve(ln) }()
	wait("the queued record after the receiver came back", posted(9))
	mu.Lock()
	if len(posts) != 9 || len(bad) > 0 || posts[8]["instance"] != "VI_2" {
		t.Errorf("posts %v, bad %v", posts, bad)
	}
	mu.Unlock()
	if strings.Contains(out.String(), "t0ps3cret") {
		t.Errorf("the secret is in the recorder's output:\n%s", out.String())
	}
	if st, err := os.Stat(logPath + ".1"); err != nil || st.Size() < 1200 {
		t.Errorf("events.log was not rotated at 1200 bytes: %v", err)
	}
	prom, err := os.ReadFile(filepath.Join(dir, "prom", "hactl.prom"))
	if err != nil || !bytes.Contains(prom, []byte(`hactl_vrrp_state{cluster="web",instance="VI_2",vip="10.11.7.236/24",state="MASTER"} 1`)) {
		t.Errorf("metrics file: %v\n%s", err, prom)
	}
	t.Logf("recorder output:\n%s", out.String())
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
