package cli

import (
	"context"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/hactl/hactl/pkg/remote"
)

// thenRE is what the host lock runs under itself in its own session (the
// facts script, quoted for sh -c).
var thenRE = regexp.MustCompile(`(?s)\nsh -c '(.*?)' </dev/null; echo "@@hactl-then `)

// Stream makes lockedConn a streaming connection like the production one,
// so the lock takes the path it takes on a real host (one session for the
// lock, the facts and the heartbeat). The lock itself runs on the real
// shell; what it runs under the lock is answered by the fake.
func (c lockedConn) Stream(ctx context.Context, cmd string, stdin io.Reader, stdout io.Writer) (remote.Result, error) {
	if !strings.HasPrefix(cmd, "L=") {
		res, err := c.Fake.Run(ctx, cmd, stdin)
		_, _ = stdout.Write(res.Stdout)
		res.Stdout = nil
		return res, err
	}
	cmd = thenRE.ReplaceAllStringFunc(cmd, func(m string) string {
		then := strings.ReplaceAll(thenRE.FindStringSubmatch(m)[1], `'\''`, `'`)
		res, _ := c.Fake.Run(ctx, then, nil)
		return "\nprintf '%s' " + remote.Quote(string(res.Stdout)) + `; echo "@@hactl-then `
	})
	return c.shell.(remote.Streamer).Stream(ctx, cmd, stdin, stdout)
}

var roundTripsRE = regexp.MustCompile(`round trips: (.*)\n`)

// TestRoundTripsPerCommand guards what each command costs per host in SSH
// sessions on a converged fleet (issue 24): a change that adds a round trip
// fails here, not months later on a stopwatch. The count is what `-v`
// prints. Each command is one session per host: the facts, which carry
// the cluster record, the addresses and keepalived's states. apply runs
// them under the lock in that session (the heartbeat rides on it too) and,
// having changed nothing, takes its verdict on the VIPs from them
// (TestApplyVerifiesLiveUnlessNothingChanged); plan judges the same
// snapshot; status too.
func TestRoundTripsPerCommand(t *testing.T) {
	book := xBook(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"apply", "-i", lab, "-p", book, "-v"}, "1 per host"},
		{[]string{"plan", "-i", lab, "-p", book, "-v"}, "1 per host"},
		{[]string{"status", "-i", lab, "-v"}, "1 per host"},
	} {
		t.Run(tc.args[0], func(t *testing.T) {
			r := runWith(t, Deps{Dial: convergedLab(t), Locker: miniLock}, nil, tc.args...)
			if r.code != 0 && tc.args[0] != "status" {
				t.Fatalf("exit %d:\n%s\n%s", r.code, r.out, r.err)
			}
			m := roundTripsRE.FindStringSubmatch(r.err)
			if m == nil {
				t.Fatalf("exit %d, no round-trip count in -v output:\n%s\n%s", r.code, r.out, r.err)
			}
			if m[1] != tc.want {
				t.Errorf("round trips: %s, want %s", m[1], tc.want)
			}
		})
	}
}

// TestApplyVerifiesLiveUnlessNothingChanged: apply proves that every VIP
// sits on exactly one host, its master. The facts' own snapshot (read under
// every host's lock) is that proof only when the run changed nothing on any
// host and the snapshot is right; after a change, or when the snapshot is
// wrong, apply waits for the cluster and reads every host again, and that
// read is the verdict.
func TestApplyVerifiesLiveUnlessNothingChanged(t *testing.T) {
	book := xBook(t)
	lab1Too := "2: eth0    inet 198.18.0.202/24 scope global secondary eth0\n"
	for _, tc := range []struct {
		name     string
		lab1     labHost
		wantLive bool
	}{
		{"nothing changed, snapshot right", labHost{snapshot: ownVIP(1), live: ownVIP(1), x: "active"}, false},
		{"x started on lab1", labHost{snapshot: ownVIP(1), live: ownVIP(1), x: "inactive"}, true},
		{"snapshot has lab2's VIP on lab1 too", labHost{snapshot: ownVIP(1) + lab1Too, live: ownVIP(1), x: "active"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			final := map[int]int{} // host → final verification reads
			dial := labOf(t, func(n int) labHost {
				h := labHost{snapshot: ownVIP(n), live: ownVIP(n), x: "active"}
				if n == 1 {
					h = tc.lab1
				}
				h.saw = func(cmd string) {
					if strings.Contains(cmd, "echo @@hactl-vrrp;") {
						mu.Lock()
						final[n]++
						mu.Unlock()
					}
				}
				return h
			})
			r := runWith(t, Deps{Dial: dial, Locker: miniLock}, nil, "apply", "-i", lab, "-p", book, "--output", "json")
			if r.code != 0 {
				t.Fatalf("exit %d:\n%s\n%s", r.code, r.out, r.err)
			}
			for n := 1; n <= 3; n++ {
				if got := final[n] > 0; got != tc.wantLive {
					t.Errorf("lab%d read again after the run: %v, want %v\n%s\n%s", n, got, tc.wantLive, r.out, r.err)
				}
			}
			var doc struct {
				VIPs []struct{ State string } `json:"vips"`
			}
			if err := json.Unmarshal([]byte(r.out), &doc); err != nil || len(doc.VIPs) != 3 {
				t.Fatalf("%v: %s", err, r.out)
			}
			for _, v := range doc.VIPs {
				if v.State != "ok" {
					t.Errorf("VIPs %+v", doc.VIPs)
				}
			}
		})
	}
}
