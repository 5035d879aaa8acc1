package remote

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ExitError is a remote command that ran and exited non-zero. Callers wrap
// it with their own context (host, step); AsExit reads it back.
type ExitError struct {
	Cmd  string
	Code int
	// Output is the tail of stderr, then stdout, trimmed: tools disagree on
	// where they explain a failure (nginx -t uses stderr, a script's echo
	// stdout), and a full apt log is too long for an error line.
	Output string
}

// outputTail bounds ExitError.Output.
const outputTail = 2000

func (e *ExitError) Error() string {
	if e.Output == "" {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return fmt.Sprintf("exit status %d: %s", e.Code, e.Output)
}

// NewExitError builds the ExitError for res, or returns nil when res exited 0.
func NewExitError(cmd string, res Result) error {
	if res.ExitCode == 0 {
		return nil
	}
	out := strings.TrimSpace(strings.TrimSpace(string(res.Stderr)) + "\n" + strings.TrimSpace(string(res.Stdout)))
	if len(out) > outputTail {
		out = "…" + out[len(out)-outputTail:]
	}
	return &ExitError{Cmd: cmd, Code: res.ExitCode, Output: out}
}

// AsExit returns the ExitError in err's chain, if any.
func AsExit(err error) (*ExitError, bool) {
	var e *ExitError
	ok := errors.As(err, &e)
	return e, ok
}

// Output runs cmd on c and returns its stdout; a non-zero exit is an
// *ExitError (stdout is still returned), a transport failure the Conn's error.
func Output(ctx context.Context, c Conn, cmd string) (string, error) {
	res, err := c.Run(ctx, cmd, nil)
	if err != nil {
		return "", err
	}
	return string(res.Stdout), NewExitError(cmd, res)
}

// Unit builds systemctl command lines for one systemd unit. The unit name
// and any other caller-given word (a signal) are quoted with Quote; verbs and
// flags are fixed words of this type, so no systemctl line is written by hand.
type Unit string

// ctl is "systemctl VERB [FLAGS] 'ARG'... 'UNIT'"; verb carries only literals.
func (u Unit) ctl(verb string, args ...string) string {
	return "systemctl " + verb + " " + Join(append(args, string(u))...)
}

func (u Unit) Start() string { return u.ctl("start") }
func (u Unit) Stop() string  { return u.ctl("stop") }

// StopNoBlock queues the stop job and returns without waiting for it.
func (u Unit) StopNoBlock() string { return u.ctl("stop --no-block") }
func (u Unit) Restart() string     { return u.ctl("restart") }
func (u Unit) Reload() string      { return u.ctl("reload") }

// Enable is quiet: its symlink chatter is not a result.
func (u Unit) Enable() string  { return u.ctl("enable -q") }
func (u Unit) Disable() string { return u.ctl("disable -q") }

// IsActive prints the unit's state ("active", "inactive" …).
func (u Unit) IsActive() string { return u.ctl("is-active") }

// Active exits 0 when the unit is active and prints nothing: for shell tests.
func (u Unit) Active() string { return u.ctl("is-active -q") }

// Enabled exits 0 when the unit is enabled and prints nothing.
func (u Unit) Enabled() string { return u.ctl("is-enabled -q") }

// IsEnabled prints the unit's enablement ("enabled", "disabled" …).
func (u Unit) IsEnabled() string { return u.ctl("is-enabled") }

// ResetFailed clears the failed state and the start-rate counter. It fails
// when there is nothing to reset, which never matters: its messages are
// discarded and callers chain the next command with ";".
func (u Unit) ResetFailed() string { return u.ctl("reset-failed -q") + " 2>/dev/null" }

// Kill sends signal (e.g. "SIGSTOP") to every process of the unit.
func (u Unit) Kill(signal string) string { return u.ctl("kill -s", signal) }

// MaskRuntime masks the unit until the next reboot (the mask lives in /run,
// so a run that dies half-way cannot leave it masked for good).
func (u Unit) MaskRuntime() string   { return u.ctl("mask --runtime") }
func (u Unit) UnmaskRuntime() string { return u.ctl("unmask --runtime") }

// IsActive asks for several units at once: one state per line, in order,
// exit 0 only when all are active.
func IsActive(units ...string) string { return "systemctl is-active " + Join(units...) }

// DaemonReload makes systemd re-read unit files and drop-ins.
const DaemonReload = "systemctl daemon-reload"
