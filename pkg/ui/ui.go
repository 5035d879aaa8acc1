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

// Printer writes styled text to one stream, downsampling or stripping colour
// to what the stream supports.
type Printer struct {
	w      *colorprofile.Writer
	Styles Styles
}

// newPrinter wraps w with a profile decided by IO, the only place that
// builds printers.
func newPrinter(w io.Writer, p colorprofile.Profile) *Printer {
	return &Printer{w: &colorprofile.Writer{Forward: w, Profile: p}, Styles: DefaultStyles()}
}

// Color reports whether this stream gets colour.
func (p *Printer) Color() bool { return p.w.Profile > colorprofile.Ascii }

// Writer is the underlying (colour-filtering) writer.
func (p *Printer) Writer() io.Writer { return p.w }

// Printf writes formatted text.
func (p *Printer) Printf(format string, args ...any) { fmt.Fprintf(p.w, format, args...) }

// Println writes a line.
func (p *Printer) Println(args ...any) { fmt.Fprintln(p.w, args...) }

// Table renders a table with a header row. cell may style individual cells.
func (p *Printer) Table(headers []string, rows [][]string, cell func(row, col int) *lipgloss.Style) {
	t := table.New().
		Border(lipgloss.NormalBorder()).
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

// JSON writes v as one indented JSON document.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	return nil
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
