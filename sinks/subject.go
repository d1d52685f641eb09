package sinks

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// SubjectTemplate renders NATS subjects such as "sluice.{host}.{source}"
// from event fields. Values taken from events are escaped, so no event can
// add tokens (.), wildcards (* >) or whitespace to a subject, and a long
// value is shortened (MaxSubjectToken), so no event can make a subject the
// server refuses. ParseSubject refuses templates whose literal text could
// make an undeliverable subject.
type SubjectTemplate struct {
	parts  []subjectPart
	fields []string
}

type subjectPart struct {
	literal string
	field   string // "" for a literal
}

// ParseSubject parses a template: literal text with {field} references.
func ParseSubject(tmpl string) (*SubjectTemplate, error) {
	t := &SubjectTemplate{}
	rest := tmpl
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			t.parts = append(t.parts, subjectPart{literal: rest})
			break
		}
		if open > 0 {
			t.parts = append(t.parts, subjectPart{literal: rest[:open]})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("subject %q: unclosed {", tmpl)
		}
		field := rest[open+1 : open+end]
		if field == "" || strings.ContainsAny(field, "{ \t") {
			return nil, fmt.Errorf("subject %q: bad field reference {%s}", tmpl, field)
		}
		t.parts = append(t.parts, subjectPart{field: field})
		t.fields = append(t.fields, field)
		rest = rest[open+end+1:]
	}
	if len(t.parts) == 0 {
		return nil, fmt.Errorf("subject template is empty")
	}
	if err := t.check(tmpl); err != nil {
		return nil, err
	}
	return t, nil
}

// Limits on rendered subjects. A NATS server refuses a protocol line longer
// than its max_control_line (4 KiB by default) by closing the connection,
// for good in nats.go: one event must never be able to do that.
const (
	// MaxSubjectToken bounds the rendering of one field: a longer escaped
	// value is cut and ends in "~" and a hash of the whole value (a "~"
	// cannot come from escaping, so a shortened token is recognisable).
	MaxSubjectToken = 256
	// MaxSubjectLen bounds a rendered subject; an event whose subject is
	// longer (a template with many fields, all long) is dropped, reason
	// rejected.
	MaxSubjectLen = 2048
)

// check refuses templates whose literal text could make an undeliverable
// subject: an empty token (a leading, doubled or trailing "."), a wildcard
// token ("*", ">") or any of them written literally, whitespace or control
// characters, and literal text that alone takes half of MaxSubjectLen.
// Field values cannot add any of these (they are escaped into one
// non-empty token), so a template that passes renders only subjects a
// server accepts, unless their fields make them longer than MaxSubjectLen.
func (t *SubjectTemplate) check(tmpl string) error {
	literal := 0
	for _, p := range t.parts {
		literal += len(p.literal)
		for _, c := range []byte(p.literal) {
			switch {
			case c == '*' || c == '>':
				return fmt.Errorf("subject %q: wildcards (* and >) are not allowed in a subject to publish on", tmpl)
			case c <= ' ' || c == 0x7f:
				return fmt.Errorf("subject %q: whitespace and control characters are not allowed in subjects", tmpl)
			}
		}
	}
	if literal > MaxSubjectLen/2 {
		return fmt.Errorf("subject %q: %d bytes of literal text; at most %d", tmpl, literal, MaxSubjectLen/2)
	}
	// Tokens: a field always renders a non-empty token, so only literal
	// dots can make an empty one.
	empty := true // the current token has nothing in it yet
	for _, p := range t.parts {
		if p.field != "" {
			empty = false
			continue
		}
		for _, c := range []byte(p.literal) {
			if c == '.' {
				if empty {
					return fmt.Errorf("subject %q: empty token (a leading or doubled \".\")", tmpl)
				}
				empty = true
				continue
			}
			empty = false
		}
	}
	if empty {
		return fmt.Errorf("subject %q: empty token (a trailing \".\")", tmpl)
	}
	return nil
}

// CheckSubject reports why a NATS server would refuse subj as a subject to
// publish on, or nil: it must be at most MaxSubjectLen bytes of non-empty
// tokens, without wildcards, whitespace or control characters. It checks
// subjects read back from the spool, which an older version may have
// rendered.
func CheckSubject(subj string) error {
	if len(subj) > MaxSubjectLen {
		return fmt.Errorf("subject of %d bytes exceeds %d", len(subj), MaxSubjectLen)
	}
	for tok := range strings.SplitSeq(subj, ".") {
		if tok == "" {
			return fmt.Errorf("subject %q has an empty token", subj)
		}
		if tok == "*" || tok == ">" {
			return fmt.Errorf("subject %q has a wildcard", subj)
		}
		for _, c := range []byte(tok) {
			if c <= ' ' || c == 0x7f {
				return fmt.Errorf("subject %q has whitespace or a control character", subj)
			}
		}
	}
	return nil
}

// Fields returns the event fields the template references.
func (t *SubjectTemplate) Fields() []string { return t.fields }

// Static reports whether the template references no field.
func (t *SubjectTemplate) Static() bool { return len(t.fields) == 0 }

// Append renders the subject for ev into dst. A field the event lacks
// renders as "_".
func (t *SubjectTemplate) Append(dst []byte, ev *pipeline.Event) []byte {
	for _, p := range t.parts {
		if p.field == "" {
			dst = append(dst, p.literal...)
			continue
		}
		raw, ok := codec.Lookup(ev.Data, p.field)
		if !ok {
			dst = append(dst, '_')
			continue
		}
		dst = appendSubjectToken(dst, raw)
	}
	return dst
}

// appendSubjectToken escapes one encoded value into a single subject token.
// Bytes outside [A-Za-z0-9_-] are written as %XX, which keeps the mapping
// one-to-one (consumers can unescape) and leaves nothing a subject parser
// treats specially.
func appendSubjectToken(dst, raw []byte) []byte {
	var text []byte
	if s, _, err := codec.ReadString(raw); err == nil {
		text = s
	} else if v, _, err := codec.ReadInt(raw); err == nil {
		return strconv.AppendInt(dst, v, 10)
	} else if v, _, err := codec.ReadUint(raw); err == nil {
		return strconv.AppendUint(dst, v, 10)
	} else if b, _, err := codec.ReadBool(raw); err == nil {
		return strconv.AppendBool(dst, b)
	} else {
		return append(dst, '_')
	}
	if len(text) == 0 {
		return append(dst, '_')
	}
	const hex = "0123456789ABCDEF"
	start := len(dst)
	for _, c := range text {
		if len(dst)-start > MaxSubjectToken-tokenHashLen-3 {
			// Too long: keep the prefix, name the whole value by its hash.
			dst = append(dst[:start+subjectTokenPrefix(dst[start:])], '~')
			h := fnv64a(text)
			for shift := 60; shift >= 0; shift -= 4 {
				dst = append(dst, hex[h>>uint(shift)&0xf])
			}
			return dst
		}
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			dst = append(dst, c)
		default:
			dst = append(dst, '%', hex[c>>4], hex[c&0xf])
		}
	}
	return dst
}

// tokenHashLen is the hex hash a shortened token ends with.
const tokenHashLen = 16

// subjectTokenPrefix returns how much of an escaped token to keep when
// shortening it: at most MaxSubjectToken-tokenHashLen-1 bytes, never
// cutting a %XX escape in two.
func subjectTokenPrefix(tok []byte) int {
	n := min(len(tok), MaxSubjectToken-tokenHashLen-1)
	for i := max(n-2, 0); i < n; i++ {
		if tok[i] == '%' {
			return i
		}
	}
	return n
}

func fnv64a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}
