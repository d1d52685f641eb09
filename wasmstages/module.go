package wasmstages

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// abiExports are the functions a stage module may export, with the
// signatures the ABI gives them.
var abiExports = []struct {
	name            string
	params, results []api.ValueType
	required        bool
}{
	{"sluice_abi_version", nil, []api.ValueType{i32}, true},
	{"sluice_alloc", []api.ValueType{i32}, []api.ValueType{i32}, true},
	{"sluice_init", []api.ValueType{i32, i32}, []api.ValueType{i32}, true},
	{"sluice_process", []api.ValueType{i32, i32}, []api.ValueType{i64}, true},
	{"sluice_tick", []api.ValueType{i64}, []api.ValueType{i64}, false},
	{"sluice_close", nil, nil, false},
	{"_initialize", nil, nil, false},
}

// exports says which optional exports a module has.
type exports struct {
	initialize, tick, close bool
}

// checkModule checks a compiled module against the ABI without running it:
// exports and their signatures, imports, and a memory that fits the limit.
// The ABI version is checked once an instance runs (sluice_abi_version).
func checkModule(cm wazero.CompiledModule, memLimit uint64) (exports, error) {
	var problems []string
	fns := cm.ExportedFunctions()
	var ex exports
	for _, want := range abiExports {
		def, ok := fns[want.name]
		if !ok {
			if want.required {
				problems = append(problems, fmt.Sprintf("missing export %s %s", want.name, signature(want.params, want.results)))
			}
			continue
		}
		if !slices.Equal(def.ParamTypes(), want.params) || !slices.Equal(def.ResultTypes(), want.results) {
			problems = append(problems, fmt.Sprintf("export %s has type %s, want %s", want.name,
				signature(def.ParamTypes(), def.ResultTypes()), signature(want.params, want.results)))
			continue
		}
		switch want.name {
		case "sluice_tick":
			ex.tick = true
		case "sluice_close":
			ex.close = true
		case "_initialize":
			ex.initialize = true
		}
	}
	if _, ok := fns["_start"]; ok && !ex.initialize {
		problems = append(problems, "the module is a WASI command (it exports _start); build it as a reactor library: clang -mexec-model=reactor, or go build -buildmode=c-shared")
	}
	mem, ok := cm.ExportedMemories()["memory"]
	if !ok {
		problems = append(problems, "missing export memory")
	}
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		switch mod {
		case "wasi_snapshot_preview1":
			// wazero implements all of preview 1; what is not granted fails
			// inside the call (EBADF, ENOTCAPABLE), not at load.
		case "sluice":
			sig, ok := hostImports[name]
			if !ok {
				problems = append(problems, fmt.Sprintf("imports sluice.%s, which this host does not provide (it has %s)", name, strings.Join(sortedHostImports(), ", ")))
			} else if !slices.Equal(f.ParamTypes(), sig.params) || !slices.Equal(f.ResultTypes(), sig.results) {
				problems = append(problems, fmt.Sprintf("imports sluice.%s as %s, want %s", name,
					signature(f.ParamTypes(), f.ResultTypes()), signature(sig.params, sig.results)))
			}
		default:
			problems = append(problems, fmt.Sprintf("imports %s.%s; a stage may import only from sluice and wasi_snapshot_preview1", mod, name))
		}
	}
	for _, m := range cm.ImportedMemories() {
		mod, name, _ := m.Import()
		problems = append(problems, fmt.Sprintf("imports its memory (%s.%s); a stage defines and exports its own", mod, name))
	}
	if len(problems) > 0 {
		return ex, fmt.Errorf("%w %d: %s", ErrABI, ABIVersion, strings.Join(problems, "; "))
	}
	if need := uint64(mem.Min()) * pageSize; need > memLimit {
		return ex, fmt.Errorf("the module starts with %d bytes of memory, more than the memory limit of %d bytes", need, memLimit)
	}
	return ex, nil
}

func sortedHostImports() []string {
	var names []string
	for n := range hostImports {
		if !strings.HasPrefix(n, "__") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// signature renders a function type as the ABI document writes it.
func signature(params, results []api.ValueType) string {
	name := func(ts []api.ValueType) string {
		var s []string
		for _, t := range ts {
			s = append(s, api.ValueTypeName(t))
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	return name(params) + " -> " + name(results)
}
