package views

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/ui"
)

// TestConnMessage: a connect failure is said once, with a hint at the cause.
func TestConnMessage(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("connect a: a (127.0.0.1:1): connect: dial tcp 127.0.0.1:1: %w", syscall.ECONNREFUSED),
			"a (127.0.0.1:1): connect: connection refused (is sshd running, and the port right?)"},
		{fmt.Errorf("connect a: a (10.0.0.1:22): connect: timed out after 1s: %w", context.DeadlineExceeded),
			"a (10.0.0.1:22): connect: timed out after 1s: context deadline exceeded (host down or filtered)"},
		{fmt.Errorf("connect a: a: %w", remote.ErrAuth), "a: ssh authentication failed (check the key"},
		{fmt.Errorf("connect a: a: %w", remote.ErrHostKeyChanged), "a: host key changed"},
	} {
		got := connMessage("a", tc.err)
		if !strings.HasPrefix(got, tc.want) || strings.Count(got, "127.0.0.1:1") > 1 {
			t.Errorf("connMessage(%v) = %q, want %q…", tc.err, got, tc.want)
		}
		if errors.Is(tc.err, remote.ErrHostKeyChanged) && strings.Contains(got, "(") {
			t.Errorf("host key message got a hint: %q", got)
		}
	}
}

// TestLiveLine: on a terminal, a host quiet for more than a second is named
// on a live line, which is cleared before the next event line; off a
// terminal there is none.
func TestLiveLine(t *testing.T) {
	io, _, errb := ui.Test()
	io.WithColor()
	pr := newProgress(io.Stderr(), false, true)
	now := time.Unix(1000, 0)
	pr.now = func() time.Time { return now }
	stop := pr.Live([]string{"a", "b"}, "connecting")
	now = now.Add(1500 * time.Millisecond)
	pr.Event(playbook.Event{Host: "b", Step: "facts", Status: "ok"})
	pr.tick()
	if got := errb.String(); !strings.Contains(got, "a 1s connecting") || strings.Contains(got, "b 1s") {
		t.Errorf("live line: %q", got)
	}
	now = now.Add(3 * time.Second)
	pr.Event(playbook.Event{Host: "a", Step: "packages", Status: "changed", Summary: "install nginx"})
	pr.tick()
	stop()
	got := errb.String()
	if !strings.Contains(got, "\r\x1b[K") || !strings.Contains(got, "b 3s after facts") || !strings.HasSuffix(got, "\r\x1b[K") {
		t.Errorf("not cleared or not redrawn: %q", got)
	}
	if i, j := strings.Index(got, "install nginx"), strings.LastIndex(got, "\r\x1b[K"); i < 0 || j < i {
		t.Errorf("event line missing or not before the final clear: %q", got)
	}

	plain, _, perr := ui.Test()
	pp := newProgress(plain.Stderr(), false, true)
	pp.now = pr.now
	pp.Live([]string{"a"}, "connecting")()
	pp.tick()
	if perr.Len() != 0 {
		t.Errorf("live line off a terminal: %q", perr.String())
	}
}
