// Command hactl provisions active-active nginx + keepalived load balancers over SSH.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/hactl/hactl/pkg/cli"
)

func main() {
	// The first Ctrl-C cancels ctx so commands can restore what they changed;
	// commands that need a second Ctrl-C handle it themselves.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Env: os.Environ()})
	stop()
	os.Exit(code)
}
