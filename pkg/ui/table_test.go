package ui

import (
	"bytes"
	"strings"
	"testing"

	"github.com/charmbracelet/colorprofile"
)

func TestTableFitsWidth(t *testing.T) {
	rows := [][]string{
		{"10.11.7.235/24", "master-node (101)", "slave-node-1 (99) → slave-node-2 (97) → slave-node-3 (95)"},
		{"10.11.7.236/24", "slave-node-1 (101)", "master-node (99)"},
	}
	for _, width := range []int{40, 60, 80, 200} {
		var b bytes.Buffer
		p := newPrinter(&b, colorprofile.NoTTY, width, true)
		p.Table([]string{"VIP", "MASTER", "BACKUPS"}, rows, nil)
		out := b.String()
		for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
			if n := len([]rune(line)); n > width {
				t.Errorf("width %d: line of %d: %q", width, n, line)
			}
		}
		// Words are whole where the width allows it: an address is never cut.
		if width >= 60 && (!strings.Contains(out, "10.11.7.235/24") || !strings.Contains(out, "slave-node-3")) {
			t.Errorf("width %d: a word was cut:\n%s", width, out)
		}
		if !strings.HasPrefix(out, "+---") {
			t.Errorf("width %d: not ASCII borders:\n%s", width, out)
		}
	}
	var b bytes.Buffer
	newPrinter(&b, colorprofile.NoTTY, 200, false).Table([]string{"A"}, [][]string{{"x"}}, nil)
	if !strings.HasPrefix(b.String(), "┌") {
		t.Errorf("a terminal gets box borders:\n%s", b.String())
	}
}

func TestWrapWords(t *testing.T) {
	for _, tc := range []struct {
		in    string
		width int
		want  string
	}{
		{"a bb ccc", 4, "a bb\nccc"},
		{"slave-node-1 (99)", 12, "slave-node-1\n(99)"},
		{"abcdefgh", 3, "abc\ndef\ngh"},
		{"one\ntwo three", 5, "one\ntwo\nthree"},
	} {
		if got := wrapWords(tc.in, tc.width); got != tc.want {
			t.Errorf("wrapWords(%q, %d) = %q, want %q", tc.in, tc.width, got, tc.want)
		}
	}
}

// TestNoColorLeavesNoEscapes: NO_COLOR on a terminal (the Ascii profile)
// prints styled text with no escape sequence at all, not empty "\e[m".
func TestNoColorLeavesNoEscapes(t *testing.T) {
	var b bytes.Buffer
	p := newPrinter(&b, plain(colorprofile.Ascii), 80, false)
	p.Printf("%s %s\n", p.Styles.Bad.Render("failed"), p.Styles.OK.Render("ok"))
	if strings.Contains(b.String(), "\x1b") {
		t.Errorf("escapes with NO_COLOR: %q", b.String())
	}
}
