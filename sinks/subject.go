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
// add tokens (.), wildcards (* >) or whitespace to a subject.
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
	for _, p := range t.parts {
		if p.field == "" && strings.ContainsAny(p.literal, " \t\r\n") {
			return nil, fmt.Errorf("subject %q: whitespace is not allowed in subjects", tmpl)
		}
	}
	return t, nil
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
	for _, c := range text {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			dst = append(dst, c)
		default:
			dst = append(dst, '%', hex[c>>4], hex[c&0xf])
		}
	}
	return dst
}
