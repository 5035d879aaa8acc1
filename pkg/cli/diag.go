package cli

import (
	"bytes"
	"context"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/hactl/hactl/pkg/inventory"
	"github.com/hactl/hactl/pkg/ui"
)

// maxShownDiags bounds what one run prints: an inventory with thousands of
// mistakes (a generated one) gets the first few in full and a count, not a
// wall of snippets; the summary line still counts them all.
const maxShownDiags = 20

// printDiags writes diagnostics to stderr (see writeDiags).
func (g *Globals) printDiags(files map[string]*hcl.File, diags hcl.Diagnostics) {
	writeDiags(context.Background(), g.stderr(), g.IO.Width, files, diags)
}

// writeDiags writes each diagnostic as FILE:LINE,COL (so editors and CI logs
// can jump to it) followed by hcl's snippet, from sources whose secrets are
// starred out. It stops between diagnostics when ctx is cancelled.
//
// hcl's writer scans the whole file for every diagnostic (grapheme by
// grapheme): thousands of diagnostics in a file of thousands of hosts took
// a minute. So each diagnostic gets a window of its file: the lines it
// shows, after as many empty lines as precede them, with its ranges shifted
// by the bytes left out. Line and column numbers, the context line ("in
// cluster …") and the output are hcl's own.
func writeDiags(ctx context.Context, p *ui.Printer, width int, files map[string]*hcl.File, diags hcl.Diagnostics) {
	srcs := make(map[string]*source, len(files))
	for name, f := range maskFiles(files) {
		srcs[name] = newSource(f)
	}
	for i, d := range diags {
		if i == maxShownDiags {
			p.Printf("… and %d more (%s) not shown\n", len(diags)-i, countDiags(diags[i:]))
			return
		}
		if ctx.Err() != nil {
			return
		}
		if d.Subject != nil {
			p.Printf("%s: ", d.Subject)
		}
		view, win := windowed(d, srcs)
		_ = hcl.NewDiagnosticTextWriter(p.Writer(), win, uint(width), p.Color()).WriteDiagnostic(view)
	}
}

// source is a (masked) file with the byte offset of each line's start.
type source struct {
	f         *hcl.File
	lineStart []int
}

func newSource(f *hcl.File) *source {
	s := &source{f: f, lineStart: []int{0}}
	for i, b := range f.Bytes {
		if b == '\n' {
			s.lineStart = append(s.lineStart, i+1)
		}
	}
	return s
}

// windowed returns d with its ranges shifted into a window of its file, and
// the files map that holds that window.
func windowed(d *hcl.Diagnostic, srcs map[string]*source) (*hcl.Diagnostic, map[string]*hcl.File) {
	all := func() map[string]*hcl.File {
		m := make(map[string]*hcl.File, len(srcs))
		for name, s := range srcs {
			m[name] = s.f
		}
		return m
	}
	if d.Subject == nil {
		return d, nil
	}
	src := srcs[d.Subject.Filename]
	snip := *d.Subject
	if d.Context != nil {
		if d.Context.Filename != snip.Filename {
			return d, all()
		}
		snip = hcl.RangeOver(snip, *d.Context)
	}
	if src == nil || snip.Start.Line < 1 || snip.End.Line > len(src.lineStart) || snip.Start.Line > snip.End.Line {
		return d, all()
	}
	first := src.lineStart[snip.Start.Line-1]
	end := len(src.f.Bytes)
	if snip.End.Line < len(src.lineStart) {
		end = src.lineStart[snip.End.Line]
	}
	pad := snip.Start.Line - 1
	delta := first - pad
	win := make([]byte, 0, pad+end-first)
	win = append(append(win, bytes.Repeat([]byte{'\n'}, pad)...), src.f.Bytes[first:end]...)
	view := *d
	view.Subject = shifted(d.Subject, delta)
	view.Context = shifted(d.Context, delta)
	f := &hcl.File{Body: src.f.Body, Bytes: win, Nav: shiftedNav{src.f.Nav, delta}}
	return &view, map[string]*hcl.File{snip.Filename: f}
}

func shifted(r *hcl.Range, delta int) *hcl.Range {
	if r == nil {
		return nil
	}
	c := *r
	c.Start.Byte -= delta
	c.End.Byte -= delta
	return &c
}

// shiftedNav answers hcl's "in cluster …" question for a window by asking
// the whole file's navigator at the original offset.
type shiftedNav struct {
	nav   any
	delta int
}

func (n shiftedNav) ContextString(offset int) string {
	if c, ok := n.nav.(interface{ ContextString(int) string }); ok {
		return c.ContextString(offset + n.delta)
	}
	return ""
}

// countDiags says "3 error(s), 1 warning(s)" (a kind with none is left out).
func countDiags(diags hcl.Diagnostics) string {
	errs := countErrors(diags)
	var parts []string
	if errs > 0 {
		parts = append(parts, fmt.Sprintf("%d error(s)", errs))
	}
	if w := len(diags) - errs; w > 0 {
		parts = append(parts, fmt.Sprintf("%d warning(s)", w))
	}
	return ui.List(parts)
}

func countErrors(d hcl.Diagnostics) int {
	n := 0
	for _, x := range d {
		if x.Severity == hcl.DiagError {
			n++
		}
	}
	return n
}

// maskFiles returns copies of the sources with every secret attribute's
// value starred out byte for byte (newlines kept, so lines and offsets stay
// right): snippets in error messages end up in CI logs.
func maskFiles(files map[string]*hcl.File) map[string]*hcl.File {
	out := make(map[string]*hcl.File, len(files))
	for name, f := range files {
		c := *f
		c.Bytes = maskSecrets(f.Bytes, name)
		out[name] = &c
	}
	return out
}

// maskSecrets stars out the value of every `NAME = …` whose NAME is a secret
// attribute: every token from the '=' to the newline that ends the
// expression (brackets, interpolations and heredocs may span lines). It
// works from the lexer's token ranges rather than the parsed body, so a file
// that does not parse (the usual reason to print a snippet) is masked too,
// and so is a secret written as an object key inside some other value. Only
// the quote and heredoc markers stay, to keep the snippet readable.
func maskSecrets(src []byte, filename string) []byte {
	toks, _ := hclsyntax.LexConfig(src, filename, hcl.InitialPos)
	out := append([]byte(nil), src...)
	for i := 0; i+1 < len(toks); i++ {
		// Any name that may hold a secret (a typo of auth_pass too), with
		// or without its '=' (`auth_pass "x"` is a syntax error, printed).
		if toks[i].Type != hclsyntax.TokenIdent || !inventory.SecretName(string(toks[i].Bytes)) {
			continue
		}
		depth := 0
		j := i + 1
		if toks[j].Type == hclsyntax.TokenEqual || toks[j].Type == hclsyntax.TokenColon {
			j++
		}
	value:
		for ; j < len(toks); j++ {
			t := toks[j]
			switch t.Type {
			case hclsyntax.TokenNewline, hclsyntax.TokenComment, hclsyntax.TokenEOF:
				if depth <= 0 {
					break value
				}
			case hclsyntax.TokenOBrace, hclsyntax.TokenOBrack, hclsyntax.TokenOParen,
				hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl, hclsyntax.TokenOHeredoc:
				depth++
			case hclsyntax.TokenCBrace, hclsyntax.TokenCBrack, hclsyntax.TokenCParen,
				hclsyntax.TokenTemplateSeqEnd, hclsyntax.TokenCHeredoc:
				if depth == 0 { // the enclosing block's: `c { auth_pass = "x" }`
					break value
				}
				depth--
			}
			switch t.Type {
			case hclsyntax.TokenOQuote, hclsyntax.TokenCQuote, hclsyntax.TokenOHeredoc, hclsyntax.TokenCHeredoc:
				continue
			}
			for b := t.Range.Start.Byte; b < t.Range.End.Byte && b < len(out); b++ {
				if out[b] != '\n' {
					out[b] = '*'
				}
			}
		}
		i = j
	}
	return out
}
