package decode

import (
	"strings"

	"github.com/cilium/ebpf/btf"

	"github.com/sluice-dev/sluice/pipeline"
)

// Special types are typedefs (and a few structs) whose names tell how a field
// is rendered. Every one of them yields two keys: a readable X and the number
// X_raw. Inspektor Gadget's gadgets name the member X_raw and IG adds X; the
// gadgets written for sluice name the member X. Both spellings give the same
// two keys; the readable value follows IG's rendering exactly for X_raw
// members (so an IG gadget's events carry the values `ig -o json` prints) and
// sluice's own rendering for X members (see docs/event-format.md).

// pairNames returns the readable and the raw key of a special member, and
// whether the member uses IG's X_raw spelling.
func pairNames(name string) (readable, raw string, ig bool) {
	if base, ok := strings.CutSuffix(name, "_raw"); ok && base != "" && !strings.HasSuffix(base, ".") {
		return base, name, true
	}
	return name, name + "_raw", false
}

// parentPrefix returns "a.b." for "a.b.c", "" for a top-level name.
func parentPrefix(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[:i+1]
	}
	return ""
}

// special compiles a member whose type chain holds a gadget_* typedef. It
// reports false for typedefs that render like their underlying type
// (gadget_pid, gadget_mntns_id, gadget_comm, counters, ...).
func (c *compiler) special(special string, under btf.Type, name string, o op, depth int) (bool, error) {
	readable, raw, ig := pairNames(name)
	o.ig = ig
	str := func(w int) pipeline.Field {
		return pipeline.Field{Name: c.name(readable), Kind: pipeline.FieldString, Width: w}
	}
	num := func(k pipeline.FieldKind, w int) pipeline.Field {
		return pipeline.Field{Name: c.name(raw), Kind: k, Width: w, Hidden: true}
	}
	switch special {
	case "gadget_timestamp":
		o.kind = opTimestamp
		o.size = clampInt(o.size)
		c.add(o, str(30), num(pipeline.FieldUint, 20))
	case "gadget_errno":
		o.kind, o.signed = opErrno, isSigned(under)
		c.add(o, str(10), num(pipeline.FieldInt, 5))
	case "gadget_ret":
		// sluice's: a value or a negative errno; the number stays the field.
		o.kind, o.signed = opRet, true
		c.add(o, pipeline.Field{Name: c.name(name), Kind: pipeline.FieldInt, Width: 6}, pipeline.Field{Name: c.name(name + "_error"), Kind: pipeline.FieldString, Width: 10})
	case "gadget_signal":
		o.kind = opSignal
		c.add(o, str(9), num(pipeline.FieldInt, 3))
	case "gadget_syscall":
		o.kind = opSyscall
		c.add(o, str(16), num(pipeline.FieldUint, 4))
	case "gadget_uid", "gadget_gid":
		c.userOrGroup(special == "gadget_gid", name, o)
	case "gadget_file_flags":
		o.kind = opFileFlags
		c.add(o, str(24), num(pipeline.FieldUint, 8))
	case "gadget_file_mode":
		o.kind = opFileMode
		c.add(o, str(10), num(pipeline.FieldUint, 7))
	case "gadget_bytes":
		o.kind = opHumanBytes
		c.add(o, str(8), num(pipeline.FieldUint, 12))
	case "gadget_duration":
		o.kind = opDuration
		c.add(o, str(10), num(pipeline.FieldUint, 12))
	case "gadget_kernel_stack":
		o.kind = opKernelStack
		o.size = clampInt(o.size)
		c.add(o, str(40), num(pipeline.FieldInt, 6))
	default:
		return false, nil
	}
	return true, nil
}

// userOrGroup compiles gadget_uid / gadget_gid as Inspektor Gadget names
// them: an X_raw member gives X (the name) beside X_raw; a member X keeps the
// number as X and adds the name as the sibling `user` (`group`), or
// X_user (X_group) when the struct already has that key. Unknown ids render
// as "uid:N" ("gid:N").
func (c *compiler) userOrGroup(group bool, name string, o op) {
	o.kind = opUID
	word := "user"
	if group {
		o.kind, word = opGID, "group"
	}
	if readable, raw, ig := pairNames(name); ig {
		o.nameFirst = true
		c.add(o, pipeline.Field{Name: c.name(readable), Kind: pipeline.FieldString, Width: 10},
			pipeline.Field{Name: c.name(raw), Kind: pipeline.FieldUint, Width: 6, Hidden: true})
		return
	}
	sibling := parentPrefix(name) + word
	if c.seen[sibling] > 0 {
		sibling = name + "_" + word
	}
	c.add(o, pipeline.Field{Name: c.name(name), Kind: pipeline.FieldUint, Width: 6},
		pipeline.Field{Name: c.name(sibling), Kind: pipeline.FieldString, Width: 10})
}

// histogramKind tells a histogram slot typedef: IG's
// gadget_histogram_slot__u32/__u64 count log2 buckets; sluice's
// gadget_histogram_linear_slot__u32/__u64 count one bucket per value.
func histogramKind(elem btf.Type) string {
	switch n := specialName(elem); {
	case strings.HasPrefix(n, "gadget_histogram_slot__"):
		return "log2"
	case strings.HasPrefix(n, "gadget_histogram_linear_slot__"):
		return "linear"
	}
	return ""
}

// userStack compiles struct gadget_user_stack: the readable X is the
// symbolised stack, and the struct's members stay under X_raw.
func (c *compiler) userStack(st *btf.Struct, name string, o op, depth int) error {
	readable, raw, _ := pairNames(name)
	us := op{kind: opUserStack, topLevel: o.topLevel}
	for i := range us.stackFields {
		us.stackFields[i] = -1
	}
	for _, m := range st.Members {
		for i, f := range userStackFields {
			if m.Name == f {
				us.stackFields[i] = o.off + int(m.Offset/8)
				sz, _ := btf.Sizeof(m.Type)
				us.stackSizes[i] = uint8(clampInt(sz))
			}
		}
	}
	c.add(us, pipeline.Field{Name: c.name(readable), Kind: pipeline.FieldString, Width: 40})
	return c.members(st.Members, raw, int64(o.off), depth+1)
}

// userStackFields are the members of struct gadget_user_stack the
// resolver needs, in UserStack order.
// Older IG headers call the inode exe_inode and have no tgid_level0.
var userStackFields = [...]string{"stack_id", "tgid_level0", "pid_level0", "inode", "exe_inode"}

// kernelEnum returns the running kernel's enum of the same name, which IG
// renders with instead of the gadget's copy (gadgets often declare a subset
// of a kernel enum).
func (c *compiler) kernelEnum(e *btf.Enum) *btf.Enum {
	if e.Name == "" || c.kernel == nil {
		return e
	}
	var k *btf.Enum
	if err := c.kernel.TypeByName(e.Name, &k); err != nil || k == nil {
		return e
	}
	return k
}
