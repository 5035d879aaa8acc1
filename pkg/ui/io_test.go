package ui

import (
	"bytes"
	"strings"
	"testing"
)

func TestNewDecidesOnce(t *testing.T) {
	var out, errb bytes.Buffer
	for _, tc := range []struct {
		name  string
		env   []string
		width int
	}{
		{"no terminal, no COLUMNS", []string{"TERM=xterm-256color"}, DefaultWidth},
		{"COLUMNS", []string{"TERM=xterm-256color", "COLUMNS=132"}, 132},
		{"bad COLUMNS", []string{"COLUMNS=wide"}, DefaultWidth},
		{"NO_COLOR", []string{"NO_COLOR=1", "COLUMNS=60"}, 60},
		{"TERM=dumb", []string{"TERM=dumb"}, DefaultWidth},
	} {
		s := New(strings.NewReader(""), &out, &errb, tc.env)
		if s.OutTTY || s.ErrTTY || s.Stdout().Color() || s.Stderr().Color() {
			t.Errorf("%s: a buffer is no terminal and gets no colour: %+v", tc.name, s)
		}
		if s.Width != tc.width {
			t.Errorf("%s: width %d, want %d", tc.name, s.Width, tc.width)
		}
		if s.Stdout() != s.Stdout() || s.Stderr() != s.Stderr() {
			t.Errorf("%s: printers are built once", tc.name)
		}
	}
}

func TestTestIO(t *testing.T) {
	s, out, errb := Test()
	p := s.Stdout()
	p.Printf("%s\n", p.Styles.Bad.Render("x"))
	s.Stderr().Println("e")
	if out.String() != "x\n" || errb.String() != "e\n" || s.Width != DefaultWidth || s.OutTTY {
		t.Errorf("out %q err %q %+v", out, errb, s)
	}
	s.WithEnv("A=1", "A=2")
	if v, ok := s.LookupEnv("A"); !ok || v != "2" {
		t.Errorf("LookupEnv: %q %v (the last assignment wins)", v, ok)
	}
	if _, ok := s.LookupEnv("B"); ok {
		t.Error("B is unset")
	}
	s.WithColor()
	out.Reset()
	s.Stdout().Printf("%s", s.Stdout().Styles.Bad.Render("x"))
	if !strings.Contains(out.String(), "\x1b[") || !s.Stdout().Color() {
		t.Errorf("WithColor: %q", out)
	}
}
