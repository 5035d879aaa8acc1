package remote

import "strings"

// Quote returns s single-quoted for a POSIX shell: everything inside single
// quotes is literal; an embedded quote ends the quoted run, is written as \',
// and a new run starts. Always quoting, even safe words, keeps the output
// predictable.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Join quotes each arg and joins them with spaces: a command line whose words
// reach the program exactly as given.
func Join(args ...string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = Quote(a)
	}
	return strings.Join(quoted, " ")
}
