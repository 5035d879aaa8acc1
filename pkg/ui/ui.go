// Package ui holds hactl's terminal output: one IO object per run (streams,
// TTY, colour profile, width, decided once), one set of styles, tables, and
// the JSON encoder.
package ui

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"charm.land/lipgloss/v2"
	"charm.land/lipgloss/v2/table"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"
)

// Styles are defined here and nowhere else.
type Styles struct {
	Header, OK, Warn, Bad, Dim, Bold lipgloss.Style
}

// DefaultStyles are hactl's styles.
func DefaultStyles() Styles {
	return Styles{
		Header: lipgloss.NewStyle().Bold(true),
		OK:     lipgloss.NewStyle().Foreground(lipgloss.Green),
		Warn:   lipgloss.NewStyle().Foreground(lipgloss.Yellow),
		Bad:    lipgloss.NewStyle().Foreground(lipgloss.Red).Bold(true),
		Dim:    lipgloss.NewStyle().Foreground(lipgloss.BrightBlack),
		Bold:   lipgloss.NewStyle().Bold(true),
	}
}

// Paragraph writes text word-wrapped to the stream's width.
func (p *Printer) Paragraph(format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	if p.width > 0 {
		text = ansi.Wordwrap(text, p.width, "")
	}
	fmt.Fprint(p.w, text)
}

// Printer writes styled text to one stream, downsampling or stripping colour
// to what the stream supports.
type Printer struct {
	w      *colorprofile.Writer
	Styles Styles
	// width is the columns tables are fitted to; ascii draws their borders
	// with ASCII characters (not a terminal, or TERM=dumb).
	width int
	ascii bool
}

// newPrinter wraps w with a profile decided by IO, the only place that
// builds printers.
func newPrinter(w io.Writer, p colorprofile.Profile, width int, ascii bool) *Printer {
	return &Printer{w: &colorprofile.Writer{Forward: w, Profile: p}, Styles: DefaultStyles(), width: width, ascii: ascii}
}

// Terminal reports whether the stream is a terminal that can redraw a line
// (not TERM=dumb): where a live progress line may be shown.
func (p *Printer) Terminal() bool { return !p.ascii }

// Width is the number of columns this stream's text is fitted to.
func (p *Printer) Width() int { return p.width }

// Color reports whether this stream gets colour.
func (p *Printer) Color() bool { return p.w.Profile > colorprofile.Ascii }

// Writer is the underlying (colour-filtering) writer.
func (p *Printer) Writer() io.Writer { return p.w }

// Printf writes formatted text.
func (p *Printer) Printf(format string, args ...any) { fmt.Fprintf(p.w, format, args...) }

// Println writes a line.
func (p *Printer) Println(args ...any) { fmt.Fprintln(p.w, args...) }

// Table renders a table with a header row. cell may style individual cells.
// A table wider than the stream is narrowed to its width, long cells
// wrapped; borders are ASCII where the stream is no terminal.
func (p *Printer) Table(headers []string, rows [][]string, cell func(row, col int) *lipgloss.Style) {
	border := lipgloss.NormalBorder()
	if p.ascii {
		border = lipgloss.ASCIIBorder()
	}
	headers, rows = fit(p.width, headers, rows)
	t := table.New().
		Border(border).
		BorderStyle(p.Styles.Dim).
		Headers(headers...).
		Rows(rows...).
		StyleFunc(func(row, col int) lipgloss.Style {
			base := lipgloss.NewStyle().Padding(0, 1)
			if row == table.HeaderRow {
				return base.Inherit(p.Styles.Header)
			}
			if cell != nil {
				if s := cell(row, col); s != nil {
					return base.Inherit(*s)
				}
			}
			return base
		})
	fmt.Fprintln(p.w, t.Render())
}

// fit wraps cells so that the table (borders and a space of padding each
// side of a cell) is at most width columns: the column with the most room
// gives up a column at a time, first down to its longest word, then down to
// its header (never wrapped). Nothing is cut off; a table whose headers
// alone are wider than width stays wider.
func fit(width int, headers []string, rows [][]string) ([]string, [][]string) {
	n := len(headers)
	if width <= 0 || n == 0 {
		return headers, rows
	}
	natural := make([]int, n)
	floor := make([]int, n)  // the header
	words := make([]int, n)  // the longest word of any cell, up to 20
	prose := make([]bool, n) // a cell has several words
	measure := func(col int, cell string) {
		for _, line := range strings.Split(cell, "\n") {
			natural[col] = max(natural[col], lipgloss.Width(line))
		}
	}
	for c, h := range headers {
		measure(c, h)
		floor[c] = lipgloss.Width(h) // lipgloss draws a header on one line
	}
	for _, r := range rows {
		for c := 0; c < n && c < len(r); c++ {
			measure(c, r[c])
			prose[c] = prose[c] || len(strings.Fields(r[c])) > 2
			for _, word := range strings.Fields(r[c]) {
				words[c] = max(words[c], min(lipgloss.Width(word), 20))
			}
		}
	}
	avail := width - (n + 1) - 2*n
	widths := append([]int(nil), natural...)
	total := func() int {
		t := 0
		for _, w := range widths {
			t += w
		}
		return t
	}
	// Split no word while that suffices, then any but the header.
	for _, least := range []func(int) int{
		func(c int) int { return max(floor[c], words[c], 4) },
		func(c int) int {
			if prose[c] {
				return max(floor[c], 4)
			}
			return max(floor[c], words[c], 4)
		},
		func(c int) int { return max(floor[c], 4) },
	} {
		for total() > avail {
			widest := -1
			for c, w := range widths {
				if w > least(c) && (widest < 0 || w-least(c) > widths[widest]-least(widest)) {
					widest = c
				}
			}
			if widest < 0 {
				break
			}
			widths[widest]--
		}
	}
	if total() >= sum(natural) {
		return headers, rows
	}
	wrap := func(c int, s string) string {
		if lipgloss.Width(s) <= widths[c] && !strings.Contains(s, "\n") {
			return s
		}
		return wrapWords(s, widths[c])
	}
	rs := make([][]string, len(rows))
	for i, r := range rows {
		rs[i] = make([]string, len(r))
		for c, cell := range r {
			if c < n {
				cell = wrap(c, cell)
			}
			rs[i][c] = cell
		}
	}
	return headers, rs
}

// wrapWords packs the words of each line of s into lines of at most width
// columns, breaking only at spaces; a longer word is cut.
func wrapWords(s string, width int) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		cur := ""
		for _, w := range strings.Fields(line) {
			switch {
			case cur == "":
				cur = w
			case lipgloss.Width(cur)+1+lipgloss.Width(w) <= width:
				cur += " " + w
			default:
				out = append(out, cur)
				cur = w
			}
			for lipgloss.Width(cur) > width {
				out = append(out, ansi.Truncate(cur, width, ""))
				cur = ansi.TruncateLeft(cur, width, "")
			}
		}
		out = append(out, cur)
	}
	return strings.Join(out, "\n")
}

func sum(xs []int) int {
	t := 0
	for _, x := range xs {
		t += x
	}
	return t
}

// JSON writes v as one indented JSON document.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// "->" and "<host>" stay as they are: the reader is a script, not a browser.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	return nil
}

// SchemaVersion is the version of every --output json document. It changes
// only when a key changes meaning or goes away; new keys do not change it.
const SchemaVersion = 1

// Envelope starts every --output json document: embed it in the command's
// document (Go flattens its keys) and fill it with Result.
type Envelope struct {
	SchemaVersion int  `json:"schema_version"`
	OK            bool `json:"ok"`
	// Error is null, a message, or a list (inventory diagnostics).
	Error any `json:"error"`
}

// Result is the envelope of a run that ended with err (nil: ok).
func Result(err error) Envelope {
	e := Envelope{SchemaVersion: SchemaVersion, OK: err == nil}
	if err != nil {
		e.Error = err.Error()
	}
	return e
}

// Seconds formats a duration in seconds with two decimals ("3.61s").
func Seconds(s float64) string { return fmt.Sprintf("%.2fs", s) }

// List joins non-empty parts with ", ".
func List(parts []string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ", ")
}
