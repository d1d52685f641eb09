package decode

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"

	"github.com/sluice-dev/sluice/pipeline"
)

// FieldHint changes how one member of an event type is rendered, for
// programs that do not say it in their types (plain libbpf programs):
// NUL-separated string buffers with a count, addresses, tagged unions.
type FieldHint struct {
	// As is how the member is rendered: "strings" (a char buffer of
	// NUL-separated strings, rendered as a list) or "ip" (an IPv4 or IPv6
	// address: 4 or 16 bytes, or a union of both); "" keeps the member's
	// own rendering (for a hint that only sets Tag or Name).
	As string
	// Count names the member holding how many strings the buffer has
	// (As "strings"); Size the member holding how many of its bytes are
	// used. Either may be "".
	Count, Size string
	// Family names the member holding the address family (As "ip"):
	// AF_INET (2) renders the first 4 bytes, AF_INET6 (10) 16 bytes.
	Family string
	// Tag names the member whose value says which alternative of a union
	// the record holds; Cases maps its values (numbers, or an enum's
	// names) to the alternative's member name. Only that alternative is
	// rendered; a value no case names renders none.
	Tag   string
	Cases map[string]string
	// Name is the key the member is rendered under, "" for its own.
	Name string
	// Member is the member's path ("u.exec.args"), when the hint's key is
	// not (config attribute names cannot hold dots).
	Member string
}

// HintError reports a field hint that does not fit the member it names.
type HintError struct {
	Key string // the hint's key
	Err error
}

func (e *HintError) Error() string { return fmt.Sprintf("fields hint %q: %v", e.Key, e.Err) }
func (e *HintError) Unwrap() error { return e.Err }

func hintErr(key, format string, args ...any) error {
	return &HintError{Key: key, Err: fmt.Errorf(format, args...)}
}

// Hint kinds (FieldHint.As).
const (
	AsStrings = "strings"
	AsIP      = "ip"
)

// HintKinds lists the values FieldHint.As takes.
func HintKinds() []string { return []string{AsStrings, AsIP} }

// memberPath is one member of an event type as the plan names it.
type memberPath struct {
	path string
	typ  btf.Type
	off  int64 // bytes from the record's start
	// union is the path of the union this member is a direct alternative
	// of ("" when none); inUnion tells a top-level anonymous union ("").
	union   string
	inUnion bool
}

// collectPaths lists every member of st, named as the plan names them:
// dotted paths, anonymous structs and unions joining their parent.
func collectPaths(st *btf.Struct) []memberPath {
	var out []memberPath
	var walk func(ms []btf.Member, prefix string, base int64, union string, inUnion bool, depth int)
	walk = func(ms []btf.Member, prefix string, base int64, union string, inUnion bool, depth int) {
		if depth > maxDepth {
			return
		}
		for _, m := range ms {
			name := joinPath(prefix, m.Name)
			off := base + int64(m.Offset)/8
			if m.Name != "" {
				out = append(out, memberPath{path: name, typ: m.Type, off: off, union: union, inUnion: inUnion})
			}
			switch t := btf.UnderlyingType(m.Type).(type) {
			case *btf.Struct:
				if m.Name == "" {
					walk(t.Members, name, off, union, inUnion, depth+1)
				} else {
					walk(t.Members, name, off, "", false, depth+1)
				}
			case *btf.Union:
				walk(t.Members, name, off, name, true, depth+1)
			}
		}
	}
	walk(st.Members, "", 0, "", false, 0)
	return out
}

func joinPath(prefix, name string) string {
	switch {
	case prefix == "":
		return name
	case name == "":
		return prefix
	}
	return prefix + "." + name
}

// hintSet is a plan's hints, resolved against its struct.
type hintSet struct {
	paths   []memberPath
	byPath  map[string]*resolvedHint
	used    map[string]bool // hint keys that matched a member
	structN string
}

type resolvedHint struct {
	key  string
	hint FieldHint
	path memberPath
}

// resolveHints matches each hint to a member: the path given (Member or
// the key), or the one member whose last name is the key. A key that
// names several members is an error; one naming none is left unused
// (another output of the gadget may have it).
func resolveHints(st *btf.Struct, hints map[string]FieldHint) (*hintSet, error) {
	hs := &hintSet{paths: collectPaths(st), byPath: map[string]*resolvedHint{}, used: map[string]bool{}, structN: st.Name}
	keys := make([]string, 0, len(hints))
	for k := range hints {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		h := hints[key]
		want := key
		if h.Member != "" {
			want = h.Member
		}
		mp, err := hs.find(want, "")
		if err != nil {
			return nil, hintErr(key, "%w", err)
		}
		if mp == nil {
			continue
		}
		if prev, dup := hs.byPath[mp.path]; dup {
			return nil, hintErr(key, "hint %q names the same member, %s", prev.key, mp.path)
		}
		hs.byPath[mp.path] = &resolvedHint{key: key, hint: h, path: *mp}
		hs.used[key] = true
	}
	return hs, nil
}

// find returns the member name refers to: a sibling of the member at
// near first (for a count, family or tag beside the member it describes),
// then the exact path, then the one member whose last name is name.
func (hs *hintSet) find(name, near string) (*memberPath, error) {
	if name == "" {
		return nil, nil
	}
	if near != "" {
		sib := parentPrefix(near) + name
		for i := range hs.paths {
			if hs.paths[i].path == sib {
				return &hs.paths[i], nil
			}
		}
	}
	for i := range hs.paths {
		if hs.paths[i].path == name {
			return &hs.paths[i], nil
		}
	}
	var found []*memberPath
	for i := range hs.paths {
		p := hs.paths[i].path
		if strings.HasSuffix(p, "."+name) {
			found = append(found, &hs.paths[i])
		}
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, f := range found {
		names[i] = f.path
	}
	return nil, fmt.Errorf("%q names several members (%s); give the path with member = \"...\"", name, strings.Join(names, ", "))
}

// member returns the member a hint's Count, Size, Family or Tag names,
// which must exist and be an integer (or enum).
func (hs *hintSet) intMember(what, name, near string) (*memberPath, error) {
	mp, err := hs.find(name, near)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if mp == nil {
		return nil, fmt.Errorf("%s %q: struct %s has no such member (members: %s)", what, name, hs.structN, hs.memberList())
	}
	switch t := btf.UnderlyingType(mp.typ).(type) {
	case *btf.Int:
		if t.Size <= 8 {
			return mp, nil
		}
	case *btf.Enum:
		return mp, nil
	}
	return nil, fmt.Errorf("%s %q: member %s is a %s, not an integer", what, name, mp.path, mp.typ)
}

func (hs *hintSet) memberList() string {
	names := make([]string, 0, len(hs.paths))
	for _, p := range hs.paths {
		names = append(names, p.path)
	}
	if len(names) > 24 {
		names = append(names[:24], "...")
	}
	return strings.Join(names, ", ")
}

// Hinted reports whether the plan applied the hint with this key (a
// member of its struct matched it).
func (p *Plan) Hinted(key string) bool { return p.hints != nil && p.hints[key] }

// MemberList names the members of the plan's struct, for messages about
// hints that named none.
func (p *Plan) MemberList() string { return p.members }

// hinted compiles a member that carries a hint with As set. It reports
// false when the hint leaves the member's rendering alone.
func (c *compiler) hinted(rh *resolvedHint, t btf.Type, name string, off int64, top bool) (bool, error) {
	h := rh.hint
	key := name
	if h.Name != "" {
		key = h.Name
	}
	size, _ := btf.Sizeof(t)
	switch h.As {
	case "":
		return false, nil
	case AsStrings:
		arr, ok := btf.UnderlyingType(t).(*btf.Array)
		elemSize := 0
		if ok {
			elemSize, _ = btf.Sizeof(arr.Type)
		}
		if !ok || elemSize != 1 {
			return false, hintErr(rh.key, "member %s is a %s; as = \"strings\" needs a char array", name, t)
		}
		o := op{kind: opStrList, off: int(off), size: size, elemSize: 1, topLevel: top, counted: h.Count != "" || h.Size != "", cntOff: -1, szOff: -1}
		if h.Count != "" {
			mp, err := c.hints.intMember("count", h.Count, name)
			if err != nil {
				return false, hintErr(rh.key, "%w", err)
			}
			o.cntOff, o.cntSize = int(mp.off), sizeOf(mp.typ)
		}
		if h.Size != "" {
			mp, err := c.hints.intMember("size", h.Size, name)
			if err != nil {
				return false, hintErr(rh.key, "%w", err)
			}
			o.szOff, o.szSize = int(mp.off), sizeOf(mp.typ)
		}
		c.add(o, pipeline.Field{Name: c.name(key), Kind: pipeline.FieldList, Width: 40})
		return true, nil
	case AsIP:
		if size != 4 && size != 16 {
			return false, hintErr(rh.key, "member %s is %d bytes; as = \"ip\" needs 4 (IPv4) or 16 (IPv6, or IPv4 in its first 4 bytes by family)", name, size)
		}
		o := op{kind: opIPFamily, off: int(off), size: size, topLevel: top, famOff: -1}
		if h.Family != "" {
			mp, err := c.hints.intMember("family", h.Family, name)
			if err != nil {
				return false, hintErr(rh.key, "%w", err)
			}
			o.famOff, o.famSize = int(mp.off), sizeOf(mp.typ)
		}
		// A union of an IPv4 and an IPv6 member: the address is the
		// union's bytes, however wide.
		if rh.path.union != "" || rh.path.inUnion {
			if us := c.unionSize(rh.path); us > size {
				o.size = us
			}
		}
		c.add(o, pipeline.Field{Name: c.name(key), Kind: pipeline.FieldString, Width: 39})
		return true, nil
	}
	return false, hintErr(rh.key, "as = %q; want one of %s", h.As, strings.Join(HintKinds(), ", "))
}

// unionSize returns the size of the union mp is a direct alternative of.
func (c *compiler) unionSize(mp memberPath) int {
	size := 0
	for _, p := range c.hints.paths {
		if p.union == mp.union && p.inUnion && p.off == mp.off {
			if s, err := btf.Sizeof(p.typ); err == nil && s <= 16 {
				size = max(size, s)
			}
		}
	}
	return size
}

func sizeOf(t btf.Type) int {
	s, _ := btf.Sizeof(t)
	return clampInt(s)
}

// unionHint returns the hint that governs union u at path: a hint on the
// union's own path (a named union) or, for an anonymous union, a tag or
// ip hint on one of its alternatives.
func (c *compiler) unionHint(u *btf.Union, path string, named bool) (*resolvedHint, string) {
	if c.hints == nil {
		return nil, ""
	}
	if named {
		if rh := c.hints.byPath[path]; rh != nil && rh.hint.Tag != "" {
			return rh, ""
		}
	}
	for _, m := range u.Members {
		if m.Name == "" {
			continue
		}
		alt := joinPath(path, m.Name)
		if rh := c.hints.byPath[alt]; rh != nil {
			if rh.hint.Tag != "" {
				return rh, ""
			}
			if rh.hint.As == AsIP {
				return nil, m.Name // only this alternative is rendered
			}
		}
	}
	return nil, ""
}

// taggedUnion compiles a union whose alternative a tag member selects:
// each alternative's ops in a range of their own, run only when the tag
// has a value its case names.
func (c *compiler) taggedUnion(u *btf.Union, path string, off int64, depth int, rh *resolvedHint) error {
	h := rh.hint
	tagNear := path
	if rh.path.path != path {
		tagNear = rh.path.path
	}
	tag, err := c.hints.intMember("tag", h.Tag, tagNear)
	if err != nil {
		return hintErr(rh.key, "%w", err)
	}
	if len(h.Cases) == 0 {
		return hintErr(rh.key, "a tag needs cases (tag value = alternative member)")
	}
	alts := map[string]btf.Member{}
	var altNames []string
	for _, m := range u.Members {
		if m.Name != "" {
			alts[m.Name] = m
			altNames = append(altNames, m.Name)
		}
	}
	var enum *btf.Enum
	if e, ok := btf.UnderlyingType(tag.typ).(*btf.Enum); ok {
		enum = e
	}
	// The union's op reads the tag; the alternatives' ops follow it, and
	// it runs the range of the one the tag selects. Their keys are
	// counted when rendered, not in the plan's fixed count.
	idx := len(c.plan.ops)
	c.plan.ops = append(c.plan.ops, op{kind: opUnion, off: int(tag.off), size: sizeOf(tag.typ), signed: isSigned(btf.UnderlyingType(tag.typ))})
	values := make([]string, 0, len(h.Cases))
	for v := range h.Cases {
		values = append(values, v)
	}
	sort.Strings(values)
	var cases []unionCase
	for _, v := range values {
		altName := strings.TrimPrefix(h.Cases[v], path+".")
		m, ok := alts[altName]
		if !ok {
			return hintErr(rh.key, "case %s names %q, which is not an alternative of the union (alternatives: %s)", v, h.Cases[v], strings.Join(altNames, ", "))
		}
		tv, err := caseValue(v, enum)
		if err != nil {
			return hintErr(rh.key, "case %q: %w", v, err)
		}
		start, keys := len(c.plan.ops), c.keys
		if err := c.members([]btf.Member{m}, path, off, depth+1); err != nil {
			return err
		}
		cases = append(cases, unionCase{value: tv, start: start, end: len(c.plan.ops)})
		c.keys = keys // counted when rendered
	}
	c.plan.ops[idx].cases = cases
	c.plan.ops[idx].end = len(c.plan.ops)
	c.plan.unions = true
	return nil
}

func caseValue(v string, enum *btf.Enum) (int64, error) {
	if n, err := strconv.ParseInt(v, 0, 64); err == nil {
		return n, nil
	}
	if enum != nil {
		for _, ev := range enum.Values {
			if ev.Name == v {
				return int64(ev.Value), nil
			}
		}
		names := make([]string, len(enum.Values))
		for i, ev := range enum.Values {
			names[i] = ev.Name
		}
		return 0, fmt.Errorf("not a number nor a name of enum %s (%s)", enum.Name, strings.Join(names, ", "))
	}
	return 0, fmt.Errorf("not a number")
}
