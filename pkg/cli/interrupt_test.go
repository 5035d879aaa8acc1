package cli

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/hactl/hactl/pkg/ui"
)

func TestInterruptsFirstCancelsSecondKills(t *testing.T) {
	io, _, errb := ui.Test()
	sig := make(chan os.Signal)
	killed := make(chan struct{})
	ctx, in := watchInterrupts(context.Background(), sig, func() { close(killed) }, io.Stderr())
	defer in.stop()
	sig <- os.Interrupt
	<-ctx.Done()
	if !errors.Is(context.Cause(ctx), errInterrupted) {
		t.Fatalf("cause %v", context.Cause(ctx))
	}
	select {
	case <-killed:
		t.Fatal("killed by the first interrupt")
	default:
	}
	sig <- os.Interrupt
	<-killed
	if want := "hactl: interrupted: stopping (again to exit at once)\nhactl: second interrupt: exiting now\n"; errb.String() != want {
		t.Errorf("stderr %q", errb.String())
	}
}

// TestInterruptsTakenOver: a command that takes interrupts over gets every
// one (an earlier one replayed), and the second no longer kills.
func TestInterruptsTakenOver(t *testing.T) {
	io, _, _ := ui.Test()
	sig := make(chan os.Signal)
	ctx, in := watchInterrupts(context.Background(), sig, func() { t.Error("killed although taken over") }, io.Stderr())
	defer in.stop()
	sig <- os.Interrupt
	<-ctx.Done()
	own := in.take()
	<-own // the one before take
	sig <- os.Interrupt
	<-own
}

func TestMainExit130WhenInterrupted(t *testing.T) {
	io, _, errb := ui.Test()
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errInterrupted) // as the first signal does
	if code := Main(ctx, []string{"validate", "-i", prod}, io, Deps{}); code != ExitInterrupted {
		t.Fatalf("exit %d, want 130: %s", code, errb.String())
	}
}
