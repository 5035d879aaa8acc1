// Command hactl provisions active-active nginx + keepalived load balancers over SSH.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/hactl/hactl/pkg/cli"
	"github.com/hactl/hactl/pkg/ui"
)

func main() {
	// cli.Main decides what interrupts mean: the first cancels the run, the
	// second exits at once (or goes to the command that took them over).
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	os.Exit(cli.Main(context.Background(), os.Args[1:], ui.System(), cli.Deps{Signals: sig}))
}
