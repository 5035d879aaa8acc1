// Package ops is hactl's application layer: one function per verb (Apply,
// Status, FailoverTest, Drain, Destroy, Validate, Render) that takes the run's
// Session, the verb's options and an event sink, and returns a result value.
// It connects, reads the cluster records, builds the layout, drives the
// domain packages and verifies; it never prints, never picks an exit code
// and knows nothing of cobra. The command layer (pkg/cli) turns flags into
// options, and a view (pkg/cli/views) turns the result into text or JSON.
package ops

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/hactl/hactl/pkg/playbook"
)

// Kind is what an error means to the person who ran hactl; the command
// layer turns it into the exit code, in one place.
type Kind int

const (
	// Failed: the operation ran (or tried to) and failed.
	Failed Kind = iota
	// Usage: bad usage or invalid input; nothing was changed.
	Usage
)

// Error is an error with its Kind.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// UsageError marks err as bad usage or invalid input.
func UsageError(err error) error { return &Error{Kind: Usage, Err: err} }

// FailedError marks err as a failed operation.
func FailedError(err error) error { return &Error{Kind: Failed, Err: err} }

// KindOf is err's Kind; an error without one is Failed.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Failed
}

// DiagError is input rejected with diagnostics (file:line ranges): the
// views print the diagnostics, then the error. Listed says that the
// diagnostics are the error's own list in JSON (an invalid inventory or
// playbook); otherwise the JSON error is the message.
type DiagError struct {
	Err    error
	Diags  hcl.Diagnostics
	Files  map[string]*hcl.File
	Listed bool
}

func (e *DiagError) Error() string { return e.Err.Error() }

func (e *DiagError) Unwrap() error { return e.Err }

// Events receives what a verb does while it does it; the views decide how
// it looks. It is called from several goroutines.
type Events interface {
	// Event is one step on one host (runner, rollout, decommission).
	Event(playbook.Event)
	// Live says that hosts are busy doing something that may take a
	// while ("connecting"), until stop is called.
	Live(hosts []string, doing string) (stop func())
	// ReadOnly says that n more hosts of the touched clusters are only read
	// (a --limit selection widened to whole clusters for verification).
	ReadOnly(n int)
}

// stopped is the error of a run whose context ended, nil otherwise.
func stopped(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	return FailedError(fmt.Errorf("stopped: %w", context.Cause(ctx)))
}
