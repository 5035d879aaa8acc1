package remotetest_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
)

func TestFake(t *testing.T) {
	f := &remotetest.Fake{Handler: func(cmd string, stdin []byte) remote.Result {
		if cmd == "fail" {
			return remote.Result{ExitCode: 2, Stderr: []byte("no")}
		}
		return remote.Result{Stdout: stdin}
	}}
	var c remote.Conn = f
	ctx := context.Background()
	res, err := c.Run(ctx, "cat", strings.NewReader("in"))
	if err != nil || string(res.Stdout) != "in" {
		t.Fatalf("Run: %+v %v", res, err)
	}
	if err := c.Upload(ctx, "/etc/x", []byte("body"), 0o640); err != nil {
		t.Fatal(err)
	}
	if res, _ := c.Run(ctx, "fail", nil); res.ExitCode != 2 {
		t.Fatalf("exit = %d", res.ExitCode)
	}

	calls := f.Calls()
	if len(calls) != 3 || calls[0].Cmd != "cat" || string(calls[0].Stdin) != "in" ||
		!calls[1].Upload || calls[1].Path != "/etc/x" || string(calls[1].Content) != "body" || calls[1].Mode != 0o640 ||
		calls[2].Cmd != "fail" {
		t.Fatalf("calls = %+v", calls)
	}
	if len(f.Runs()) != 2 || len(f.Uploads()) != 1 {
		t.Fatalf("runs %d uploads %d", len(f.Runs()), len(f.Uploads()))
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Run(cancelled, "x", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Run: %v", err)
	}
	if err := c.Close(); err != nil || !f.Closed() {
		t.Fatal("Close")
	}
	if _, err := c.Run(ctx, "x", nil); err == nil {
		t.Fatal("Run after Close succeeded")
	}
}
