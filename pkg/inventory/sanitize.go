package inventory

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
)

// AuthPassChars is every character auth_pass may contain: exactly the
// printable ASCII characters that keepalived takes literally as part of an
// unquoted auth_pass, wherever they stand in it (render's
// TestAuthPassCharset asks the real keepalived and fails if this differs).
// Refused, and why:
//   - blank: ends the value;
//   - '!' and '#': start a comment;
//   - '"': starts a quoted string (the quotes are dropped);
//   - '{' and '}': keepalived splits them off as block tokens, so the rest of
//     the value becomes a keyword and the block structure breaks;
//   - '$': "$NAME" before a blank is a parameter reference, and keepalived
//     predefines some ($_RANDOM, $_PWD, $_INSTANCE, $_HASH), so the password
//     would silently be something else.
const AuthPassChars = "%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz|~"

// authPassOK reports whether every character of pass is in AuthPassChars.
func authPassOK(pass string) bool {
	for _, r := range pass {
		if !strings.ContainsRune(AuthPassChars, r) {
			return false
		}
	}
	return true
}

// unsafeRune reports characters that must never reach a terminal, a config
// file or a log from the inventory: C0 and C1 controls and DEL (ESC and CSI
// drive the terminal, NUL and newlines split lines in known_hosts and
// configs) and the bidirectional overrides that make text read differently
// from what it is. Tab is the caller's business.
func unsafeRune(r rune) bool {
	switch {
	case r == utf8.RuneError:
		return true
	case unicode.IsControl(r):
		return true
	case r == '\u200e' || r == '\u200f' || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069'):
		return true
	}
	return false
}

// describeRune names a character without printing it.
func describeRune(r rune) string {
	if r == utf8.RuneError {
		return "a byte that is not UTF-8"
	}
	return fmt.Sprintf("U+%04X", r)
}

// checkSource refuses a file holding bytes that would reach the terminal raw
// in a diagnostic's source snippet: controls other than tab, newline and a
// CR before a newline, and text that is not UTF-8. It runs before parsing,
// so the file is never handed to the snippet printer.
func checkSource(path string, src []byte) hcl.Diagnostics {
	pos := hcl.Pos{Line: 1, Column: 1}
	for i := 0; i < len(src); {
		r, n := utf8.DecodeRune(src[i:])
		bad := unsafeRune(r)
		switch r {
		case '\t', '\n':
			bad = false
		case '\r':
			bad = i+1 >= len(src) || src[i+1] != '\n'
		}
		if bad {
			end := hcl.Pos{Line: pos.Line, Column: pos.Column + 1, Byte: i + n}
			return hcl.Diagnostics{errAt(hcl.Range{Filename: path, Start: pos, End: end}, "Control character in the inventory",
				fmt.Sprintf("Column %d holds %s; inventories are text: remove it (terminal escapes and NUL bytes are refused so that no message ever prints them).",
					pos.Column, describeRune(r)))}
		}
		pos.Byte += n
		i += n
		if r == '\n' {
			pos.Line, pos.Column = pos.Line+1, 1
		} else {
			pos.Column++
		}
	}
	return nil
}

// checkValues refuses unsafe characters in every string the inventory gives,
// however it was written (an escape such as "\u001b", or env()): the values
// reach keepalived.conf, nginx's site, known_hosts, SSH logins and error
// messages. It walks the decoded schema, so a new attribute is covered
// without being listed here.
func checkValues(raw *fileSchema) hcl.Diagnostics {
	var diags hcl.Diagnostics
	walkStrings(reflect.ValueOf(raw).Elem(), hcl.Range{}, func(attr string, r hcl.Range, s string) {
		switch attr {
		case "auth_pass", "secret": // AuthPassChars / buildWebhook are stricter is stricter, and its message names no character of the secret
			return
		case "jump_host": // ParseJumpHost refuses controls (for ~/.ssh/config's ProxyJump too)
			return
		}
		for _, c := range s {
			if unsafeRune(c) {
				diags = append(diags, errAt(r, "Control character in "+attr,
					fmt.Sprintf("%s holds %s; control characters, terminal escapes and bidirectional overrides are refused in every value.", attr, describeRune(c))))
				return
			}
		}
	})
	return diags
}

// walkStrings calls fn for every string attribute and label of the schema
// struct v, with the range it was written at (a label's: its block header).
func walkStrings(v reflect.Value, def hcl.Range, fn func(attr string, r hcl.Range, s string)) {
	t := v.Type()
	ranges := map[string]hcl.Range{}
	if f := v.FieldByName("Body"); f.IsValid() && !f.IsNil() {
		ranges = attrRanges(f.Interface().(hcl.Body))
	}
	if f := v.FieldByName("DefRange"); f.IsValid() {
		def = f.Interface().(hcl.Range)
	}
	for i := 0; i < t.NumField(); i++ {
		name, kind, _ := strings.Cut(t.Field(i).Tag.Get("hcl"), ",")
		f := v.Field(i)
		switch {
		case kind == "label" && f.Kind() == reflect.String:
			fn(name, def, f.String())
		case kind == "block":
			for j := 0; j < f.Len(); j++ {
				walkStrings(f.Index(j).Elem(), def, fn)
			}
		case kind == "optional" && f.Kind() == reflect.Pointer && !f.IsNil() && f.Elem().Kind() == reflect.String:
			fn(name, rangeOr(ranges, name, def), f.Elem().String())
		case kind == "optional" && f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
			for j := 0; j < f.Len(); j++ {
				fn(name, rangeOr(ranges, name, def), f.Index(j).String())
			}
		}
	}
}

// checkZone refuses an IPv6 zone on an address that hactl writes somewhere:
// a zone is free text to netip (any byte, newlines included), so it could
// smuggle a second line into known_hosts or a new block into nginx's site.
// With allowZone (an SSH jump host may be link-local), a zone that is an
// interface name is fine.
func checkZone(a netip.Addr, allowZone bool) error {
	z := a.Zone()
	switch {
	case z == "":
		return nil
	case !allowZone:
		return errors.New("an IPv6 zone (%...) is not supported here")
	case !ifaceRE.MatchString(z):
		return errors.New("the IPv6 zone must be an interface name (letters, digits, '.', '_', '-'; at most 15)")
	}
	return nil
}

// SecretName reports whether an attribute named name may hold a secret, so
// that its value is masked wherever the source is shown (diagnostics'
// snippets). It judges by what the value could be, not by the exact
// spelling: a mistyped `Auth_Pass`, `auth-pass` or `authpas` holds the
// password all the same (and is exactly what gets a diagnostic). Names are
// compared with case, '-', '_' and '.' ignored; anything naming a pass,
// secret, token or key material, or within two edits of auth_pass, is one.
func SecretName(name string) bool {
	n := strings.Map(func(r rune) rune {
		switch r {
		case '-', '_', '.', ' ':
			return -1
		}
		return unicode.ToLower(r)
	}, name)
	if n == "" {
		return false
	}
	for _, w := range []string{"pass", "secret", "token", "pwd", "psk", "credential"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	// A site's TLS key (`key = file("…")`) and its kin (private_key, tls_key).
	if strings.HasSuffix(n, "key") {
		return true
	}
	return levenshtein.Distance(n, "authpass", nil) <= 2
}

// redactSecrets replaces every secret value the inventory holds (each
// cluster's auth_pass) in the diagnostics' texts with "(sensitive)": a
// message that echoes some other value (an interface name read from the
// same env() as the password, say) must not print it. Values shorter than
// 4 characters are left: they would blank out unrelated numbers and words.
func redactSecrets(diags hcl.Diagnostics, inv *Inventory) {
	if inv == nil {
		return
	}
	var secrets []string
	for _, c := range inv.Clusters {
		if s := c.AuthPass.Reveal(); len(s) >= 4 {
			secrets = append(secrets, s)
		}
	}
	for _, d := range diags {
		for _, s := range secrets {
			d.Summary = strings.ReplaceAll(d.Summary, s, "(sensitive)")
			d.Detail = strings.ReplaceAll(d.Detail, s, "(sensitive)")
		}
	}
}
