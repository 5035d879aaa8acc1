package cli

import (
	"context"
	"errors"
	"os"
	"sync"

	"github.com/hactl/hactl/pkg/ui"
)

// errInterrupted is the run context's cause after the first SIGINT/SIGTERM.
var errInterrupted = errors.New("interrupted")

// interrupts turns the process's signals into the run's policy: the first
// cancels the run's context (commands stop, restore what they changed and
// exit 130), the second ends the process at once. A command that must
// handle the second interrupt itself takes them over with take.
type interrupts struct {
	mu     sync.Mutex
	n      int
	cancel context.CancelCauseFunc
	kill   func()
	errp   *ui.Printer
	owner  chan os.Signal // non-nil: every interrupt goes here instead
	done   chan struct{}
	wg     sync.WaitGroup
}

// watchInterrupts derives the run's context from ctx and starts reading sig
// (nil: no interrupts). kill nil means os.Exit(ExitInterrupted).
func watchInterrupts(ctx context.Context, sig <-chan os.Signal, kill func(), errp *ui.Printer) (context.Context, *interrupts) {
	ctx, cancel := context.WithCancelCause(ctx)
	if kill == nil {
		kill = func() { os.Exit(ExitInterrupted) }
	}
	in := &interrupts{cancel: cancel, kill: kill, errp: errp, done: make(chan struct{})}
	if sig == nil {
		return ctx, in
	}
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		for {
			select {
			case <-in.done:
				return
			case s := <-sig:
				in.got(s)
			}
		}
	}()
	return ctx, in
}

func (in *interrupts) got(s os.Signal) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.n++
	if in.n == 1 {
		in.cancel(errInterrupted)
	}
	if in.owner != nil {
		select {
		case in.owner <- s:
		default: // the owner has not read the last two yet: it knows
		}
		return
	}
	if in.n == 1 {
		in.errp.Printf("hactl: interrupted: stopping (again to exit at once)\n")
		return
	}
	in.errp.Printf("hactl: second interrupt: exiting now\n")
	in.kill()
}

// take hands every later interrupt to the returned channel instead (the
// run's context is still cancelled by the first). An interrupt that came
// before is replayed, so the owner counts from the right place.
func (in *interrupts) take() <-chan os.Signal {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.owner = make(chan os.Signal, 2)
	for i := 0; i < min(in.n, 2); i++ {
		in.owner <- os.Interrupt
	}
	return in.owner
}

// stop ends the watch and releases the context.
func (in *interrupts) stop() {
	close(in.done)
	in.wg.Wait()
	in.cancel(nil)
}
