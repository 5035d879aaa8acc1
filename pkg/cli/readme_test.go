package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// readmeKeys returns, per command of README.md's JSON table (and "" for the
// envelope), the words written in backticks in its row.
func readmeKeys(t *testing.T) map[string]map[string]bool {
	t.Helper()
	src, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	start := strings.Index(text, "### JSON output")
	if start < 0 {
		t.Fatal("README.md has no JSON output section")
	}
	text = text[start:]
	if end := strings.Index(text[4:], "\n## "); end > 0 {
		text = text[:end+4]
	}
	code := regexp.MustCompile("`([^`]*)`")
	word := regexp.MustCompile(`[a-z_][a-z0-9_]*`)
	out := map[string]map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			continue
		}
		cmds := []string{""}
		if names := code.FindAllStringSubmatch(cells[1], -1); len(names) > 0 && !strings.Contains(cells[1], "schema_version") &&
			!strings.Contains(cells[1], "`ok`") && !strings.Contains(cells[1], "`error`") {
			cmds = nil
			for _, n := range names {
				cmds = append(cmds, n[1])
			}
		}
		for _, c := range cmds {
			if out[c] == nil {
				out[c] = map[string]bool{}
			}
			for _, m := range code.FindAllStringSubmatch(strings.Join(cells[1:], "|"), -1) {
				for _, w := range word.FindAllString(m[1], -1) {
					out[c][w] = true
				}
			}
		}
	}
	return out
}

// jsonKeys is every object key anywhere in doc, except inside maps keyed by
// host or node name (plan, http_nodes).
func jsonKeys(v any, into map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			into[k] = true
			if k == "plan" || k == "http_nodes" {
				continue
			}
			jsonKeys(val, into)
		}
	case []any:
		for _, e := range x {
			jsonKeys(e, into)
		}
	}
}

// TestREADMEDocumentsEveryJSONKey: every key a command's real JSON output
// has is named in README.md's row for that command (or the envelope's).
func TestREADMEDocumentsEveryJSONKey(t *testing.T) {
	doc := readmeKeys(t)
	book := xBook(t)
	for _, tc := range []struct {
		row  string
		deps Deps
		args []string
	}{
		{"validate", Deps{}, []string{"validate", prod}},
		{"plan --offline", Deps{}, []string{"plan", "--offline", prod}},
		{"render", Deps{}, []string{"render", prod, "-o", filepath.Join(t.TempDir(), "out")}},
		{"apply", Deps{Dial: convergedLab(t, "lab3"), Locker: miniLock}, []string{"plan", lab, "-p", book}},
		{"status", Deps{Dial: convergedLab(t, "lab3"), Locker: miniLock}, []string{"status", lab}},
	} {
		r := runWith(t, tc.deps, nil, append(tc.args, "--output", "json")...)
		var v any
		if err := json.Unmarshal([]byte(r.out), &v); err != nil {
			t.Errorf("%s: %v\n%s", tc.row, err, r.out)
			continue
		}
		keys := map[string]bool{}
		jsonKeys(v, keys)
		var missing []string
		for k := range keys {
			if !doc[tc.row][k] && !doc[""][k] {
				missing = append(missing, k)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("README.md's JSON table does not name %s's keys %v", tc.row, missing)
		}
	}
}
