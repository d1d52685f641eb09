package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// FieldFilter is a host-side filter on an event's fields, in Inspektor
// Gadget's syntax: comma-separated conditions that must all hold, each
// `FIELD OP VALUE` with OP one of == != >= <= > < ~ (regular expression)
// and !~, e.g. `comm==curl,ret<0`. A backslash escapes a comma in a value.
//
// Values compare as the field's type: numbers numerically (a value that is
// not a number never equals a numeric field), strings as strings
// (byte-wise for < and >), bools against true and false. A field the
// event lacks reads as the empty string, so `container.name!=web` keeps
// host events; numeric comparisons with a missing field are false. For a
// list (exec's args), == and ~ hold when one element matches, != and !~
// when none does.
//
// A FieldFilter is immutable and safe for concurrent use.
type FieldFilter struct {
	text  string
	conds []condition
}

type filterOp uint8

const (
	opEq filterOp = iota
	opNe
	opGe
	opLe
	opGt
	opLt
	opMatch
	opNoMatch
)

// Longer operators first, so that ">=" is not read as ">".
var filterOps = []struct {
	text string
	op   filterOp
}{
	{"==", opEq}, {"!=", opNe}, {">=", opGe}, {"<=", opLe}, {"!~", opNoMatch},
	{">", opGt}, {"<", opLt}, {"~", opMatch},
}

type condition struct {
	field string
	op    filterOp
	value string
	// Parsed forms of value, where it has them.
	isInt   bool
	i       int64
	isUint  bool
	u       uint64
	isFloat bool
	f       float64
	isBool  bool
	b       bool
	re      *regexp.Regexp
}

// ParseFieldFilter parses a filter expression. Errors name the condition
// at fault.
func ParseFieldFilter(expr string) (*FieldFilter, error) {
	ff := &FieldFilter{text: expr}
	for _, term := range splitEscaped(expr) {
		if strings.TrimSpace(term) == "" {
			return nil, fmt.Errorf("parse filter %q: empty condition", expr)
		}
		c, err := parseCondition(term)
		if err != nil {
			return nil, fmt.Errorf("parse filter %q: %w", expr, err)
		}
		ff.conds = append(ff.conds, c)
	}
	return ff, nil
}

// splitEscaped splits s at commas not preceded by a backslash, and
// unescapes "\,".
func splitEscaped(s string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == ',':
			cur.WriteByte(',')
			i++
		case s[i] == ',':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	return append(out, cur.String())
}

func parseCondition(term string) (condition, error) {
	at, width := -1, 0
	var op filterOp
	// The first operator character decides where the field ends; of the
	// operators starting there, the longest wins.
	for i := 0; i < len(term) && at < 0; i++ {
		for _, o := range filterOps {
			if strings.HasPrefix(term[i:], o.text) {
				at, width, op = i, len(o.text), o.op
				break
			}
		}
	}
	if at < 0 {
		return condition{}, fmt.Errorf("condition %q has no operator (== != >= <= > < ~ !~)", term)
	}
	c := condition{field: strings.TrimSpace(term[:at]), op: op, value: strings.TrimSpace(term[at+width:])}
	if c.field == "" {
		return condition{}, fmt.Errorf("condition %q names no field", term)
	}
	switch op {
	case opMatch, opNoMatch:
		re, err := regexp.Compile(c.value)
		if err != nil {
			return condition{}, fmt.Errorf("condition %q: %w", term, err)
		}
		c.re = re
		return c, nil
	}
	if i, err := strconv.ParseInt(c.value, 0, 64); err == nil {
		c.isInt, c.i = true, i
	}
	if u, err := strconv.ParseUint(c.value, 0, 64); err == nil {
		c.isUint, c.u = true, u
	}
	if f, err := strconv.ParseFloat(c.value, 64); err == nil {
		c.isFloat, c.f = true, f
	}
	if b, err := strconv.ParseBool(c.value); err == nil {
		c.isBool, c.b = true, b
	}
	return c, nil
}

// And returns a filter holding when both ff and other hold; either may be
// nil (no filter).
func (ff *FieldFilter) And(other *FieldFilter) *FieldFilter {
	switch {
	case ff == nil:
		return other
	case other == nil:
		return ff
	}
	return &FieldFilter{text: ff.text + "," + other.text, conds: append(slices.Clone(ff.conds), other.conds...)}
}

// String returns the expression the filter was parsed from.
func (ff *FieldFilter) String() string { return ff.text }

// Fields returns the fields the conditions name, in order.
func (ff *FieldFilter) Fields() []string {
	out := make([]string, len(ff.conds))
	for i, c := range ff.conds {
		out[i] = c.field
	}
	return out
}

// Match reports whether the encoded event (a msgpack map) satisfies every
// condition. An event that does not decode matches nothing.
func (ff *FieldFilter) Match(event []byte) bool {
	for i := range ff.conds {
		if !ff.conds[i].holds(event) {
			return false
		}
	}
	return true
}

func (c *condition) holds(event []byte) bool {
	raw, ok := codec.Lookup(event, c.field)
	if !ok || codec.IsNil(raw) {
		return c.compareString(nil)
	}
	if n, _, err := codec.ReadArrayHeader(raw); err == nil {
		return c.holdsList(raw, n)
	}
	return c.holdsScalar(raw)
}

// holdsList applies the condition to the elements of a list: positive
// operators hold for one element, negative ones for all.
func (c *condition) holdsList(raw []byte, n int) bool {
	_, rest, _ := codec.ReadArrayHeader(raw)
	negative := c.op == opNe || c.op == opNoMatch
	for range n {
		size, err := codec.Skip(rest)
		if err != nil {
			return false
		}
		ok := c.holdsScalar(rest[:size])
		if negative && !ok {
			return false
		}
		if !negative && ok {
			return true
		}
		rest = rest[size:]
	}
	return negative
}

func (c *condition) holdsScalar(raw []byte) bool {
	if s, _, err := codec.ReadString(raw); err == nil {
		return c.compareString(s)
	}
	if c.re != nil {
		// A regular expression matches the value's text.
		text, err := codec.AppendJSON(nil, raw)
		if err != nil {
			return false
		}
		return c.re.Match(text) == (c.op == opMatch)
	}
	if b, _, err := codec.ReadBool(raw); err == nil {
		if !c.isBool {
			return c.op == opNe
		}
		return compare(c.op, boolInt(b), boolInt(c.b))
	}
	if raw[0] <= 0x7f || raw[0] == 0xcc || raw[0] == 0xcd || raw[0] == 0xce || raw[0] == 0xcf {
		u, _, err := codec.ReadUint(raw)
		if err != nil {
			return false
		}
		switch {
		case c.isUint:
			return compare(c.op, cmpUint(u, c.u), 0)
		case c.isInt: // a negative value
			return compare(c.op, 1, 0)
		case c.isFloat:
			return compareFloat(c.op, float64(u), c.f)
		}
		return c.op == opNe
	}
	if i, _, err := codec.ReadInt(raw); err == nil {
		switch {
		case c.isInt:
			return compare(c.op, cmpInt(i, c.i), 0)
		case c.isUint: // larger than any int64
			return compare(c.op, -1, 0)
		case c.isFloat:
			return compareFloat(c.op, float64(i), c.f)
		}
		return c.op == opNe
	}
	if f, _, err := codec.ReadFloat64(raw); err == nil {
		if !c.isFloat {
			return c.op == opNe
		}
		return compareFloat(c.op, f, c.f)
	}
	return false
}

func (c *condition) compareString(s []byte) bool {
	if c.re != nil {
		return c.re.Match(s) == (c.op == opMatch)
	}
	return compare(c.op, bytes.Compare(s, []byte(c.value)), 0)
}

// compare applies op to the result of a three-way comparison (a vs b).
func compare(op filterOp, a, b int) bool {
	switch op {
	case opEq:
		return a == b
	case opNe:
		return a != b
	case opGe:
		return a >= b
	case opLe:
		return a <= b
	case opGt:
		return a > b
	case opLt:
		return a < b
	}
	return false
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareFloat is compare for floats, where NaN is unordered: only !=
// holds.
func compareFloat(op filterOp, a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return op == opNe
	}
	switch {
	case a < b:
		return compare(op, -1, 0)
	case a > b:
		return compare(op, 1, 0)
	}
	return compare(op, 0, 0)
}

// FilterStage is a Stage that keeps the events of each source that match
// its field filter; events of sources without one, and loss records, pass.
// The pipeline counts what it leaves out as filtered. The pipeline calls
// it from one goroutine at a time; it holds no state between calls.
type FilterStage struct {
	name     string
	bySource map[string]*FieldFilter
}

var _ Stage = (*FilterStage)(nil)

// NewFilterStage returns a stage named name applying bySource[ev.Source]
// to each event.
func NewFilterStage(name string, bySource map[string]*FieldFilter) *FilterStage {
	return &FilterStage{name: name, bySource: bySource}
}

// Name returns the stage's name.
func (s *FilterStage) Name() string { return s.name }

// Process appends the events of in that pass to out.
func (s *FilterStage) Process(_ context.Context, in, out []Event) ([]Event, error) {
	for i := range in {
		ev := &in[i]
		if ff := s.bySource[ev.Source]; ff != nil && ev.Kind() == KindEvent && !ff.Match(ev.Data) {
			continue
		}
		out = append(out, *ev)
	}
	return out, nil
}

// Close does nothing: the stage holds no resources.
func (s *FilterStage) Close(context.Context) error { return nil }
