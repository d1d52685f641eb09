// Package termsafe makes untrusted text safe to print where a person reads
// it: a terminal, a log viewed with less or tail. Event fields, guest
// messages and image annotations come from whoever controls a process on
// the host, a Wasm guest or an image; printed raw, an escape sequence in
// them can rewrite the screen, retitle the window, hide lines or forge
// log records, and a bidi override can make text read backwards.
//
// String escapes C0 and C1 control characters, DEL, Unicode format
// characters (bidi overrides, zero-width characters) and line separators
// in Go's notation (\x1b, \n, \u202e), and invalid UTF-8 bytes as \xNN.
// Everything else, backslashes included, is kept as it was, so ordinary
// text reads the same. The functions are safe for concurrent use.
package termsafe

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// String returns s with every character a terminal could act on escaped.
func String(s string) string {
	if clean(s) {
		return s
	}
	return string(Append(make([]byte, 0, len(s)+16), s))
}

// Lines is String for text meant to span lines: newlines and tabs stay.
// Use it for text the program composed around untrusted parts (which
// String should have escaped already), not for untrusted text itself.
func Lines(s string) string {
	if clean(s) {
		return s
	}
	return string(appendEscaped(make([]byte, 0, len(s)+16), s, true))
}

// Append appends String(s) to dst.
func Append(dst []byte, s string) []byte {
	if clean(s) {
		return append(dst, s...)
	}
	return appendEscaped(dst, s, false)
}

func appendEscaped(dst []byte, s string, keepLines bool) []byte {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = fmt.Appendf(dst, `\x%02x`, s[i])
		case keepLines && (r == '\n' || r == '\t'):
			dst = append(dst, byte(r))
		case r == '\n':
			dst = append(dst, `\n`...)
		case r == '\r':
			dst = append(dst, `\r`...)
		case r == '\t':
			dst = append(dst, `\t`...)
		case r < 0x80 && needsEscape(r):
			dst = fmt.Appendf(dst, `\x%02x`, r)
		case needsEscape(r):
			dst = fmt.Appendf(dst, `\u%04x`, r)
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// needsEscape reports a character to escape.
func needsEscape(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
}

// clean reports, cheaply, a string of printable ASCII only.
func clean(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}
