package cli

import (
	"context"
	"io"
	"regexp"
	"strings"
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
// prints. No-change apply: the cluster record; the lock with the facts
// under it (the heartbeat rides on that session); the convergence check;
// the final VIP check with keepalived's states. plan: the record, the
// facts, the VIP check. status: the record, the facts, keepalived's states.
func TestRoundTripsPerCommand(t *testing.T) {
	book := xBook(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"apply", "-i", lab, "-p", book, "-v"}, "4 per host"},
		{[]string{"plan", "-i", lab, "-p", book, "-v"}, "3 per host"},
		{[]string{"status", "-i", lab, "-v"}, "3 per host"},
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
