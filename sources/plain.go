package sources

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/sluice-dev/sluice/sources/decode"
	"github.com/sluice-dev/sluice/sources/eventtype"
	"github.com/sluice-dev/sluice/sources/internal/kernelbtf"
)

// What sluice does for plain libbpf objects, which declare nothing to it:
// which programs run, and what their output records hold.

// OptionError reports a source option that does not fit the gadget: a
// program selection naming no program, an event type that cannot be
// found, a field hint naming no member. Option is the config attribute
// ("programs", "skip_programs", "event_type", "event_type_file", "map",
// "fields"); Field is the hint's member for "fields".
type OptionError struct {
	Option string
	Field  string
	// Value is the program a programs or skip_programs error is about.
	Value string
	Err   error
}

func (e *OptionError) Error() string { return e.Err.Error() }
func (e *OptionError) Unwrap() error { return e.Err }

// fieldsError makes a plan's compile error about a field hint an
// OptionError naming the hint; other errors pass unchanged.
func fieldsError(err error) error {
	var he *decode.HintError
	if !errors.As(err, &he) {
		return err
	}
	return &OptionError{Option: "fields", Field: he.Key, Err: err}
}

// selectPrograms applies programs / skip_programs, as libbpf loaders do by
// turning autoload off: the programs left out are neither loaded nor
// attached (sigsnoop's syscall and tracepoint variants report each kill
// twice when both run; runqslower carries tp_btf and raw_tp versions of
// the same probe; syncsnoop has a tracepoint some architectures lack).
func selectPrograms(cs *ebpf.CollectionSpec, progs []ProgramSpec, only, skip []string) ([]ProgramSpec, error) {
	if len(only) == 0 && len(skip) == 0 {
		return progs, nil
	}
	have := map[string]bool{}
	names := make([]string, 0, len(progs))
	for _, p := range progs {
		have[p.Name] = true
		names = append(names, fmt.Sprintf("%s (%s)", p.Name, p.Section))
	}
	check := func(option string, list []string) (map[string]bool, error) {
		set := map[string]bool{}
		for _, n := range list {
			if !have[n] {
				return nil, &OptionError{Option: option, Value: n, Err: fmt.Errorf("%s names program %q, which the gadget does not have (programs: %s)", option, n, strings.Join(names, ", "))}
			}
			set[n] = true
		}
		return set, nil
	}
	keep, err := check("programs", only)
	if err != nil {
		return nil, err
	}
	drop, err := check("skip_programs", skip)
	if err != nil {
		return nil, err
	}
	var out []ProgramSpec
	for _, p := range progs {
		if (len(keep) > 0 && !keep[p.Name]) || drop[p.Name] {
			delete(cs.Programs, p.Name)
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		option := "skip_programs"
		if len(only) > 0 {
			option = "programs"
		}
		return nil, &OptionError{Option: option, Err: fmt.Errorf("programs and skip_programs leave the gadget no program to run (programs: %s)", strings.Join(names, ", "))}
	}
	return out, nil
}

// typeQuery gathers what eventtype.Find needs about one output map.
type typeQuery struct {
	object *eventtype.Catalog
	file   *eventtype.Catalog
	kernel *btf.Spec
	core   map[string]bool
}

func newTypeQuery(cs *ebpf.CollectionSpec, elf []byte, opts ParseOptions) (*typeQuery, error) {
	object, err := eventtype.New("the object", cs.Types, elf)
	if err != nil {
		return nil, err
	}
	q := &typeQuery{object: object, kernel: opts.KernelTypes, core: coreTypes(cs)}
	if q.kernel == nil {
		// Nil when it cannot be read: then CO-RE relocations and
		// vmlinux.h tell kernel types alone. Held only while parsing
		// (kernelbtf).
		q.kernel = kernelbtf.Types()
	}
	if len(opts.EventTypeFile) > 0 {
		label := "event_type_file"
		if opts.EventTypeFileName != "" {
			label += " " + opts.EventTypeFileName
		}
		if q.file, err = eventtype.Load(label, opts.EventTypeFile); err != nil {
			return nil, &OptionError{Option: "event_type_file", Err: err}
		}
	}
	return q, nil
}

// find chooses the event type of one output map; see eventtype.Find.
func (q *typeQuery) find(cs *ebpf.CollectionSpec, ms *ebpf.MapSpec, hint string) (eventtype.Result, error) {
	sizes := recordSizes(cs, ms.Name)
	list := make([]uint32, 0, len(sizes))
	for s := range sizes {
		list = append(list, s)
	}
	sort.Slice(list, func(i, j int) bool { return list[i] < list[j] })
	r, err := eventtype.Find(eventtype.Query{
		Map: ms.Name, Hint: hint, Object: q.object, File: q.file,
		MapValue: ms.Value, Sizes: list, Kernel: q.kernel, CORE: q.core,
	})
	if err != nil {
		option := "event_type"
		if hint == "" && q.file != nil {
			option = "event_type_file"
		}
		return r, &OptionError{Option: option, Err: err}
	}
	return r, nil
}

var coreLocalID = regexp.MustCompile(`local_id=(\d+)\)$`)

// coreTypes names the structs the programs read through CO-RE relocations,
// and every struct those reach through members and pointers: kernel types
// (vmlinux.h marks them preserve_access_index), never event types.
func coreTypes(cs *ebpf.CollectionSpec) map[string]bool {
	out := map[string]bool{}
	if cs.Types == nil {
		return out
	}
	var walk func(t btf.Type, depth int)
	seen := map[btf.Type]bool{}
	walk = func(t btf.Type, depth int) {
		if t == nil || depth > 32 || seen[t] {
			return
		}
		seen[t] = true
		switch tt := t.(type) {
		case *btf.Struct:
			if tt.Name != "" {
				out[tt.Name] = true
			}
			for _, m := range tt.Members {
				walk(m.Type, depth+1)
			}
		case *btf.Union:
			for _, m := range tt.Members {
				walk(m.Type, depth+1)
			}
		case *btf.Pointer:
			walk(tt.Target, depth+1)
		case *btf.Array:
			walk(tt.Type, depth+1)
		case *btf.Typedef:
			walk(tt.Type, depth+1)
		case *btf.Const:
			walk(tt.Type, depth+1)
		case *btf.Volatile:
			walk(tt.Type, depth+1)
		case *btf.Restrict:
			walk(tt.Type, depth+1)
		case *btf.TypeTag:
			walk(tt.Type, depth+1)
		}
	}
	for _, p := range cs.Programs {
		for i := range p.Instructions {
			relo := btf.CORERelocationMetadata(&p.Instructions[i])
			if relo == nil {
				continue
			}
			// cilium/ebpf keeps the relocation's local type unexported;
			// its description carries the type's id in the object's BTF.
			m := coreLocalID.FindStringSubmatch(relo.String())
			if m == nil {
				continue
			}
			id, err := strconv.ParseUint(m[1], 10, 32)
			if err != nil {
				continue
			}
			if t, err := cs.Types.TypeByID(btf.TypeID(id)); err == nil {
				walk(t, 0)
			}
		}
	}
	return out
}
