package ui

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/term"
)

// DefaultWidth is the width used when neither the terminal nor COLUMNS says:
// wide enough for a diagnostic's detail, narrow enough for a CI log.
const DefaultWidth = 100

// IO is one run's streams and what was decided about them, once: whether
// each is a terminal, its colour profile (NO_COLOR, TERM=dumb and "not a
// terminal" strip colour) and the width to wrap text at. Every printer of the
// run comes from here, so two printers never disagree.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
	// Env replaces os.Getenv/os.Environ for the whole run.
	Env []string
	// OutTTY and ErrTTY say whether Out and Err are terminals.
	OutTTY, ErrTTY bool
	// Width is the terminal's width in columns (from the terminal, else
	// COLUMNS, else DefaultWidth).
	Width int

	out, err *Printer
}

// System is the process's own IO: stdin, stdout, stderr and os.Environ().
func System() *IO { return New(os.Stdin, os.Stdout, os.Stderr, os.Environ()) }

// New decides TTY, colour and width for these streams from env and the
// streams themselves (a *os.File is asked whether it is a terminal).
func New(in io.Reader, out, errw io.Writer, env []string) *IO {
	s := &IO{In: in, Out: out, Err: errw, Env: env, OutTTY: isTerminal(out), ErrTTY: isTerminal(errw)}
	s.Width = s.detectWidth()
	term, _ := s.LookupEnv("TERM")
	dumb := term == "dumb"
	s.out = newPrinter(out, profile(out, env), s.Width, !s.OutTTY || dumb)
	s.err = newPrinter(errw, profile(errw, env), s.Width, !s.ErrTTY || dumb)
	return s
}

// Test is an IO for tests, like gh's iostreams.Test(): empty stdin, stdout
// and stderr into the returned buffers, no terminal, no colour, width 100,
// an empty environment. Change fields with the With… methods.
func Test() (*IO, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	s := &IO{In: strings.NewReader(""), Out: &out, Err: &errb, Width: DefaultWidth}
	s.out = newPrinter(&out, colorprofile.NoTTY, DefaultWidth, true)
	s.err = newPrinter(&errb, colorprofile.NoTTY, DefaultWidth, true)
	return s, &out, &errb
}

// WithEnv sets the environment the run sees (colour is not re-detected).
func (s *IO) WithEnv(env ...string) *IO { s.Env = env; return s }

// WithColor pretends both streams are colour terminals (for tests of the
// styled output).
func (s *IO) WithColor() *IO {
	s.OutTTY, s.ErrTTY = true, true
	s.out = newPrinter(s.Out, colorprofile.ANSI, s.Width, false)
	s.err = newPrinter(s.Err, colorprofile.ANSI, s.Width, false)
	return s
}

// WithWidth sets the width every printer sizes tables and text to (as a
// terminal of that many columns would).
func (s *IO) WithWidth(cols int) *IO {
	s.Width = cols
	s.out.width, s.err.width = cols, cols
	return s
}

// profile is the stream's colour profile. NO_COLOR or a terminal without
// colour (Ascii: attributes only) get plain text: stripping the colour out
// of a styled string leaves empty "\e[m" sequences behind otherwise.
func profile(w io.Writer, env []string) colorprofile.Profile {
	return plain(colorprofile.Detect(w, env))
}

func plain(p colorprofile.Profile) colorprofile.Profile {
	if p == colorprofile.Ascii {
		return colorprofile.NoTTY
	}
	return p
}

// Stdout is the printer for results.
func (s *IO) Stdout() *Printer { return s.out }

// Stderr is the printer for progress and diagnostics.
func (s *IO) Stderr() *Printer { return s.err }

// LookupEnv looks a variable up in Env (the last assignment wins, as in a shell).
func (s *IO) LookupEnv(name string) (string, bool) {
	for i := len(s.Env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(s.Env[i], "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

func (s *IO) detectWidth() int {
	for _, w := range []io.Writer{s.Err, s.Out} {
		if f, ok := w.(term.File); ok && term.IsTerminal(f.Fd()) {
			if cols, _, err := term.GetSize(f.Fd()); err == nil && cols > 0 {
				return cols
			}
		}
	}
	if v, ok := s.LookupEnv("COLUMNS"); ok {
		if cols, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && cols > 0 {
			return cols
		}
	}
	return DefaultWidth
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(term.File)
	return ok && term.IsTerminal(f.Fd())
}
