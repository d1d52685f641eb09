package decode

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
	"github.com/sluice-dev/sluice/sources/internal/kernelbtf"
)

// Options carry what the envelope needs and the environment renderings
// depend on.
type Options struct {
	Gadget, Source, Host string
	// Users resolves uid and gid names; nil uses the host's /etc/passwd and
	// /etc/group, read lazily and cached.
	Users NameResolver
	// BootOffset converts boot-time nanoseconds to wall time (wall = boot +
	// offset). Zero measures it once at Compile.
	BootOffset time.Duration
	// Location is the time zone of timestamps rendered as Inspektor Gadget
	// renders them (members named X_raw); nil is the host's local zone,
	// as `ig` uses.
	Location *time.Location
	// Stacks symbolises kernel and user stack ids (gadget_kernel_stack,
	// struct gadget_user_stack); nil renders them as "".
	Stacks StackResolver
	// KernelTypes is the running kernel's BTF, whose enums replace the
	// gadget's enums of the same name when rendering (as IG does); nil
	// loads the host's, and an empty spec disables the lookup.
	KernelTypes *btf.Spec
	// Snapshot adds the keys snapshot and snapshot_rows after seq: the
	// events of one run of an iterator or one drain of a map share the
	// run's number, and each carries how many rows the run had.
	Snapshot bool
	// Fields are rendering hints by member name or path (see FieldHint).
	// Hints naming no member of the struct are ignored (Plan.Hinted tells
	// which applied); a hint that names a member but does not fit it is
	// a Compile error.
	Fields map[string]FieldHint
}

// StackResolver turns the stack ids a gadget records into text. It is
// called on the decode path; implementations must be safe for concurrent
// use and cheap for ids seen before.
type StackResolver interface {
	// KernelStack renders the kernel stack with this id ("" when unknown).
	KernelStack(id int32) string
	// UserStack renders a user stack ("" when unknown).
	UserStack(s UserStack) string
}

// UserStack is what struct gadget_user_stack says about a user stack.
type UserStack struct {
	StackID int32
	Pid     uint32 // the process, as the initial pid namespace numbers it
	Inode   uint64 // of the executable
}

// Envelope keys, in encoding order.
var envelopeKeys = []string{"time", "host", "source", "gadget", "seq"}

// maxFieldBytes bounds a single field, so hostile BTF cannot make a plan
// that walks gigabytes per record.
const maxFieldBytes = 1 << 20

// maxDepth bounds struct nesting during compilation.
const maxDepth = 16

// Plan decodes one BTF struct. See the package doc.
type Plan struct {
	size       int
	ops        []op
	nkeys      int
	tsOp       int // index of the top-level gadget_timestamp op, or -1
	mntnsOff   int // offset of the top-level gadget_mntns_id, or -1
	envHead    []byte
	envTail    []byte // host, source, gadget entries, pre-encoded
	seqKey     []byte
	schema     *pipeline.Schema
	users      NameResolver
	bootOffset int64
	loc        *time.Location
	stacks     StackResolver
	snapshot   bool
	snapKeys   [2][]byte // "snapshot", "snapshot_rows", pre-encoded
	// unions: a tagged union renders a varying number of keys, so the map
	// header is a map32 patched once the record is encoded.
	unions  bool
	hints   map[string]bool // keys of the hints that applied
	members string          // the struct's member paths, for messages
	// steps: the fast path of Append (fast.go), nil without one; room:
	// the spare capacity it writes into.
	steps []step
	room  int
	// general: Append takes the general path always (the differential
	// tests compare the two).
	general bool
}

// Compile builds the plan for t, a struct (or a typedef or qualifier of one).
func Compile(t btf.Type, opts Options) (*Plan, error) {
	st, ok := btf.UnderlyingType(t).(*btf.Struct)
	if !ok {
		return nil, fmt.Errorf("compile decode plan: %s is not a struct", t)
	}
	p := &Plan{size: int(st.Size), tsOp: -1, mntnsOff: -1, users: opts.Users, loc: opts.Location, stacks: opts.Stacks, snapshot: opts.Snapshot}
	if p.users == nil {
		p.users = hostNames
	}
	if p.loc == nil {
		p.loc = time.Local
	}
	p.bootOffset = int64(opts.BootOffset)
	if p.bootOffset == 0 {
		p.bootOffset = measureBootOffset()
	}
	c := compiler{plan: p, seen: map[string]int{}, kernel: opts.KernelTypes, nestedMntNS: -1}
	if c.kernel == nil {
		// Nil when it cannot be read: renderings then use the gadget's
		// own enums. Held only while compiling (kernelbtf).
		c.kernel = kernelbtf.Types()
	}
	hs, err := resolveHints(st, opts.Fields)
	if err != nil {
		return nil, fmt.Errorf("compile decode plan for struct %s: %w", st.Name, err)
	}
	c.hints = hs
	p.hints, p.members = hs.used, hs.memberList()
	if err := c.members(st.Members, "", 0, 0); err != nil {
		return nil, fmt.Errorf("compile decode plan for struct %s: %w", st.Name, err)
	}
	if len(p.ops) == 0 {
		return nil, fmt.Errorf("compile decode plan for struct %s: no decodable members", st.Name)
	}
	for i := range p.ops {
		if p.ops[i].kind == opTimestamp && p.ops[i].topLevel {
			p.tsOp = i
			break
		}
	}
	p.nkeys = len(envelopeKeys) + c.keys
	if p.snapshot {
		p.nkeys += 2
		p.snapKeys[0] = codec.AppendString(nil, "snapshot")
		p.snapKeys[1] = codec.AppendString(nil, "snapshot_rows")
	}
	if p.unions {
		p.envHead = []byte{0xdf, 0, 0, 0, 0} // map32, count patched per record
	} else {
		p.envHead = codec.AppendMapHeader(nil, p.nkeys)
	}
	p.envHead = codec.AppendString(p.envHead, "time")
	tail := codec.AppendString(nil, "host")
	tail = codec.AppendString(tail, opts.Host)
	tail = codec.AppendString(tail, "source")
	tail = codec.AppendString(tail, opts.Source)
	tail = codec.AppendString(tail, "gadget")
	tail = codec.AppendString(tail, opts.Gadget)
	p.envTail = tail
	p.seqKey = codec.AppendString(nil, "seq")

	fields := []pipeline.Field{
		{Name: "time", Kind: pipeline.FieldString, Width: 30},
		{Name: "host", Kind: pipeline.FieldString, Width: 12},
		{Name: "source", Kind: pipeline.FieldString, Width: 10},
		{Name: "gadget", Kind: pipeline.FieldString, Width: 16},
		{Name: "seq", Kind: pipeline.FieldUint, Width: 8},
	}
	if p.snapshot {
		fields = append(fields,
			pipeline.Field{Name: "snapshot", Kind: pipeline.FieldUint, Width: 6, Hidden: true},
			pipeline.Field{Name: "snapshot_rows", Kind: pipeline.FieldUint, Width: 6, Hidden: true})
	}
	if p.mntnsOff < 0 {
		p.mntnsOff = c.nestedMntNS
	}
	p.schema = &pipeline.Schema{Gadget: opts.Gadget, Type: st.Name, Fields: append(fields, c.fields...)}
	p.compileSteps()
	return p, nil
}

// Schema describes the keys Append writes, envelope included.
func (p *Plan) Schema() *pipeline.Schema { return p.schema }

// MntNS returns the mount namespace a record is about: its first top-level
// gadget_mntns_id field (Inspektor Gadget's convention, which container
// enrichment keys on), else the first one in a nested struct (IG's struct
// gadget_process proc has proc.mntns_id), 0 when the struct has none or
// the record is too short to hold it.
func (p *Plan) MntNS(record []byte) uint64 {
	if p.mntnsOff < 0 || p.mntnsOff+8 > len(record) {
		return 0
	}
	return readUint(record, p.mntnsOff, 8)
}

// Size is the size of the struct the plan decodes.
func (p *Plan) Size() int { return p.size }

type compiler struct {
	plan *Plan
	// nestedMntNS is the offset of the first gadget_mntns_id in a nested
	// struct, or -1: the namespace of a struct without a top-level one.
	nestedMntNS int
	keys        int
	fields      []pipeline.Field
	seen        map[string]int
	kernel      *btf.Spec
	hints       *hintSet
}

// name returns a unique key for a flattened member name. Envelope names are
// reserved at the top level.
func (c *compiler) name(n string) string {
	for _, e := range envelopeKeys {
		if n == e {
			n = "event." + n
		}
	}
	if c.plan.snapshot && (n == "snapshot" || n == "snapshot_rows") {
		n = "event." + n
	}
	if k := c.seen[n]; k > 0 {
		c.seen[n] = k + 1
		n = fmt.Sprintf("%s#%d", n, k+1)
	}
	c.seen[n]++
	return n
}

func (c *compiler) add(o op, fields ...pipeline.Field) {
	o.key = codec.AppendString(nil, fields[0].Name)
	if len(fields) > 1 {
		o.key2 = codec.AppendString(nil, fields[1].Name)
	}
	o.nkeys = uint8(len(fields))
	c.keys += len(fields)
	c.fields = append(c.fields, fields...)
	c.plan.ops = append(c.plan.ops, o)
}

var errTooDeep = errors.New("struct nesting too deep")

func (c *compiler) members(ms []btf.Member, prefix string, base int64, depth int) error {
	if depth > maxDepth {
		return errTooDeep
	}
	for _, m := range ms {
		if strings.HasPrefix(m.Name, "__") {
			continue
		}
		off := base + int64(m.Offset)/8
		name := m.Name
		if prefix != "" && name != "" {
			name = prefix + "." + name
		} else if name == "" {
			name = prefix // anonymous struct or union: its members join the parent
		}
		if m.BitfieldSize > 0 {
			if err := c.bitfield(m, name, base, depth == 0); err != nil {
				return err
			}
			continue
		}
		if rh := c.hints.byPath[name]; rh != nil && m.Name != "" {
			handled, err := c.hinted(rh, m.Type, name, off, depth == 0)
			if err != nil {
				return err
			}
			if handled {
				continue
			}
			if rh.hint.Name != "" && rh.hint.Tag == "" {
				name = rh.hint.Name
			}
		}
		if u, ok := btf.UnderlyingType(m.Type).(*btf.Union); ok {
			if err := c.union(u, name, m.Name != "", off, depth); err != nil {
				return err
			}
			continue
		}
		if err := c.member(m.Type, name, off, depth); err != nil {
			return err
		}
	}
	return nil
}

// union compiles a union: every alternative, unless a hint says which one
// the record holds (a tag) or that it is an address (ip on one of them).
func (c *compiler) union(u *btf.Union, name string, named bool, off int64, depth int) error {
	rh, only := c.unionHint(u, name, named)
	switch {
	case rh != nil:
		return c.taggedUnion(u, name, off, depth, rh)
	case only != "":
		for _, m := range u.Members {
			if m.Name == only {
				return c.members([]btf.Member{m}, name, off, depth+1)
			}
		}
	}
	return c.members(u.Members, name, off, depth+1)
}

func (c *compiler) bitfield(m btf.Member, name string, base int64, top bool) error {
	in, ok := btf.UnderlyingType(m.Type).(*btf.Int)
	signed := ok && in.Encoding&btf.Signed != 0
	if e, isEnum := btf.UnderlyingType(m.Type).(*btf.Enum); isEnum {
		signed = e.Signed
	}
	if m.BitfieldSize > 64 || name == "" {
		return nil
	}
	bitOff := base*8 + int64(m.Offset)
	kind := opBitfield
	fk := pipeline.FieldUint
	if signed {
		fk = pipeline.FieldInt
	}
	c.add(op{kind: kind, off: int(bitOff / 8), bitShift: uint8(bitOff % 8), bitSize: uint8(m.BitfieldSize), signed: signed, topLevel: top},
		pipeline.Field{Name: c.name(name), Kind: fk, Width: 6})
	return nil
}

// member compiles one member of type t at byte offset off.
func (c *compiler) member(t btf.Type, name string, off int64, depth int) error {
	if off < 0 || off > maxFieldBytes {
		return nil
	}
	top := depth == 0
	special := specialName(t)
	under := btf.UnderlyingType(t)
	size, _ := btf.Sizeof(under)
	if size < 0 || size > maxFieldBytes {
		return nil
	}
	o := op{off: int(off), size: size, topLevel: top}
	// A top-level key: a member of the struct, or of an anonymous one
	// (a map iterator's key and value), not of a named nested struct.
	if special == "gadget_mntns_id" && size == 8 {
		switch {
		case !strings.Contains(name, ".") && c.plan.mntnsOff < 0:
			c.plan.mntnsOff = int(off)
		case c.nestedMntNS < 0:
			c.nestedMntNS = int(off)
		}
	}
	if handled, err := c.special(special, under, name, o, depth); handled || err != nil {
		return err
	}

	switch tt := under.(type) {
	case *btf.Int:
		switch {
		case tt.Size > 8:
			c.wideInt(tt, name, o)
		case tt.Encoding&btf.Bool != 0:
			o.kind = opBool
			c.add(o, pipeline.Field{Name: c.name(name), Kind: pipeline.FieldBool, Width: 5})
		case tt.Encoding&btf.Char != 0 && tt.Size == 1:
			o.kind = opChars
			c.add(o, pipeline.Field{Name: c.name(name), Kind: pipeline.FieldString, Width: 1})
		case tt.Encoding&btf.Signed != 0:
			o.kind, o.signed = opInt, true
			c.add(o, pipeline.Field{Name: c.name(name), Kind: pipeline.FieldInt, Width: intWidth(name, size)})
		default:
			o.kind = opUint
			c.add(o, pipeline.Field{Name: c.name(name), Kind: pipeline.FieldUint, Width: intWidth(name, size)})
		}
	case *btf.Enum:
		readable, raw, ig := pairNames(name)
		o.kind, o.signed, o.ig = opEnum, tt.Signed, ig
		e := c.kernelEnum(tt)
		o.enum = e.Values
		// IG renders an enum whose name ends in _set as the flags it holds.
		o.flagSet = strings.HasSuffix(tt.Name, "_set")
		w := 4
		for _, v := range e.Values {
			w = max(w, len(v.Name))
		}
		c.add(o, pipeline.Field{Name: c.name(readable), Kind: pipeline.FieldString, Width: min(w, 24)}, pipeline.Field{Name: c.name(raw), Kind: pipeline.FieldInt, Width: 4, Hidden: true})
	case *btf.Float:
		o.kind = opFloat
		c.add(o, pipeline.Field{Name: c.name(name), Kind: pipeline.FieldFloat, Width: 10})
	case *btf.Pointer:
		o.kind = opUint
		c.add(o, pipeline.Field{Name: c.name(name), Kind: pipeline.FieldUint, Width: 18})
	case *btf.Array:
		return c.array(tt, name, o, depth)
	case *btf.Struct:
		switch tt.Name {
		case "gadget_l3endpoint_t":
			return c.endpoint(tt, name, o, false)
		case "gadget_l4endpoint_t":
			return c.endpoint(tt, name, o, true)
		case "gadget_user_stack":
			return c.userStack(tt, name, o, depth)
		}
		return c.members(tt.Members, name, off, depth+1)
	case *btf.Union:
		return c.union(tt, name, true, off, depth)
	default:
		// Functions, void and forward declarations carry no value.
	}
	return nil
}

func (c *compiler) array(a *btf.Array, name string, o op, depth int) error {
	elemSize, err := btf.Sizeof(a.Type)
	if err != nil || elemSize <= 0 || int64(elemSize)*int64(a.Nelems) > maxFieldBytes {
		return nil
	}
	o.size = elemSize * int(a.Nelems)
	o.elemSize = elemSize
	if specialName(a.Type) == "gadget_strlist" {
		o.kind = opStrList
		c.add(o, pipeline.Field{Name: c.name(name), Kind: pipeline.FieldList, Width: 40})
		return nil
	}
	switch et := btf.UnderlyingType(a.Type).(type) {
	case *btf.Int:
		if elemSize == 1 && (et.Encoding&btf.Char != 0 || et.Encoding&btf.Signed != 0 || isCharName(et.Name)) {
			o.kind = opChars
			c.add(o, pipeline.Field{Name: c.name(name), Kind: pipeline.FieldString, Width: min(max(o.size-1, len(name)), 40)})
			return nil
		}
		o.kind, o.signed = opIntArray, et.Encoding&btf.Signed != 0
		c.add(o, pipeline.Field{Name: c.name(name), Kind: pipeline.FieldList, Width: 24, Histogram: histogramKind(a.Type)})
	case *btf.Enum:
		o.kind, o.signed = opIntArray, et.Signed
		c.add(o, pipeline.Field{Name: c.name(name), Kind: pipeline.FieldList, Width: 24})
	default:
		o.kind = opBytes
		c.add(o, pipeline.Field{Name: c.name(name), Kind: pipeline.FieldBytes, Width: 24})
	}
	return nil
}

// endpoint compiles gadget_l3endpoint_t and gadget_l4endpoint_t as
// Inspektor Gadget renders them: X.addr (the address as text, replacing the
// addr_raw union), X.version, and for L4 X.port, X.proto (the protocol's
// name) and X.proto_raw.
func (c *compiler) endpoint(st *btf.Struct, name string, o op, l4 bool) error {
	var addrOff, versionOff, portOff, protoOff int64 = -1, -1, -1, -1
	var protoSize int
	for _, m := range st.Members {
		off := int64(m.Offset) / 8
		switch m.Name {
		case "addr_raw", "addr":
			addrOff = off
		case "version":
			versionOff = off
		case "port":
			portOff = off
		case "proto_raw", "proto":
			protoOff = off
			protoSize, _ = btf.Sizeof(m.Type)
		}
	}
	if addrOff < 0 || versionOff < 0 {
		return c.members(st.Members, name, int64(o.off), 1)
	}
	c.add(op{kind: opIPAddr, off: o.off + int(addrOff), verOff: o.off + int(versionOff), topLevel: o.topLevel},
		pipeline.Field{Name: c.name(name + ".addr"), Kind: pipeline.FieldString, Width: 39})
	if l4 && portOff >= 0 {
		c.add(op{kind: opUint, off: o.off + int(portOff), size: 2}, pipeline.Field{Name: c.name(name + ".port"), Kind: pipeline.FieldUint, Width: 5})
	}
	if l4 && protoOff >= 0 {
		c.add(op{kind: opProto, off: o.off + int(protoOff), size: protoSize},
			pipeline.Field{Name: c.name(name + ".proto"), Kind: pipeline.FieldString, Width: 5},
			pipeline.Field{Name: c.name(name + ".proto_raw"), Kind: pipeline.FieldUint, Width: 3, Hidden: true})
	}
	c.add(op{kind: opUint, off: o.off + int(versionOff), size: 1}, pipeline.Field{Name: c.name(name + ".version"), Kind: pipeline.FieldUint, Width: 1})
	return nil
}

// specialName returns the first gadget_* typedef name in t's chain, or "".
func specialName(t btf.Type) string {
	for i := 0; i < 16 && t != nil; i++ {
		switch tt := t.(type) {
		case *btf.Typedef:
			if strings.HasPrefix(tt.Name, "gadget_") {
				return tt.Name
			}
			t = tt.Type
		case *btf.Const:
			t = tt.Type
		case *btf.Volatile:
			t = tt.Type
		case *btf.Restrict:
			t = tt.Type
		case *btf.TypeTag:
			t = tt.Type
		default:
			return ""
		}
	}
	return ""
}

func isSigned(t btf.Type) bool {
	switch tt := t.(type) {
	case *btf.Int:
		return tt.Encoding&btf.Signed != 0
	case *btf.Enum:
		return tt.Signed
	}
	return false
}

func isCharName(n string) bool { return n == "char" }

func clampInt(n int) int { return min(max(n, 0), 8) }

func intWidth(name string, size int) int {
	switch {
	case strings.HasSuffix(name, "pid") || strings.HasSuffix(name, "tid"):
		return 7
	case size <= 2:
		return 5
	case size <= 4:
		return 10
	}
	return 20
}

// measureBootOffset returns wall time minus boot time, in nanoseconds.
func measureBootOffset() int64 {
	var boot, real unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot) != nil || unix.ClockGettime(unix.CLOCK_REALTIME, &real) != nil {
		return 0
	}
	return real.Nano() - boot.Nano()
}

// wideInt compiles an integer wider than 64 bits (unsigned __int128, in
// which libbpf-tools' tcplife and tcpstates keep addresses): rendered in
// full as decimal text, or as an IP address when its name says address
// and a family member beside it says which (AF_INET: its first 4 bytes;
// a family neither AF_INET nor AF_INET6 gives the number).
func (c *compiler) wideInt(t *btf.Int, name string, o op) {
	o.signed = t.Encoding&btf.Signed != 0
	if fam := c.familyFor(name); fam != nil && o.size == 16 {
		o.kind, o.famOff, o.famSize, o.wideFallback = opIPFamily, int(fam.off), sizeOf(fam.typ), true
		c.add(o, pipeline.Field{Name: c.name(name), Kind: pipeline.FieldString, Width: 39})
		return
	}
	o.kind = opWideInt
	c.add(o, pipeline.Field{Name: c.name(name), Kind: pipeline.FieldString, Width: 39})
}

// familyFor returns the address family member beside an address member
// (its name holds "addr"; the family is called family, af or sa_family),
// nil when there is none or the member is a union's alternative.
func (c *compiler) familyFor(name string) *memberPath {
	last := name[strings.LastIndexByte(name, '.')+1:]
	if !strings.Contains(last, "addr") {
		return nil
	}
	for _, p := range c.hints.paths {
		if p.path == name && (p.union != "" || p.inUnion) {
			return nil
		}
	}
	for _, fam := range []string{"family", "af", "sa_family"} {
		if mp, err := c.hints.intMember("family", fam, name); err == nil && mp.path == parentPrefix(name)+fam {
			return mp
		}
	}
	return nil
}
