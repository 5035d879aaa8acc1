package views

import "github.com/hashicorp/hcl/v2"

// diagJSON is one inventory (or playbook) problem in JSON.
type diagJSON struct {
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail"`
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
}

// DiagsJSON is diags as JSON, never null.
func DiagsJSON(diags hcl.Diagnostics) []diagJSON {
	out := []diagJSON{}
	for _, d := range diags {
		dj := diagJSON{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			dj.Severity = "warning"
		}
		if d.Subject != nil {
			dj.File, dj.Line, dj.Column = d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column
		}
		out = append(out, dj)
	}
	return out
}
