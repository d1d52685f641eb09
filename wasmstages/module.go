package wasmstages

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// abiExport is a function a module may export, with the signature the ABI
// gives it.
type abiExport struct {
	name            string
	params, results []api.ValueType
	required        bool
}

// funcType is the signature of a host function.
type funcType struct{ params, results []api.ValueType }

// moduleABI is what a kind of module is checked against: a stage, or a
// gadget's embedded module (gadget.go).
type moduleABI struct {
	what    string // "a stage", for messages
	exports []abiExport
	// imports are the host modules (beside wasi_snapshot_preview1) and
	// their functions the module may import.
	imports map[string]map[string]funcType
	// alts are other signatures an export may have, by name (Inspektor
	// Gadget's guests declare some hooks with and some without a result).
	alts map[string][]funcType
	// api names the ABI in errors when it is not the stage ABI.
	api string
}

// apiError is ErrABI for an ABI other than the stage ABI: its message
// names that ABI.
type apiError struct{ msg string }

func (e *apiError) Error() string        { return e.msg }
func (e *apiError) Is(target error) bool { return target == ErrABI }

// stageABI is the ABI of a stage module.
var stageABI = moduleABI{
	what: "a stage",
	exports: []abiExport{
		{"sluice_abi_version", nil, []api.ValueType{i32}, true},
		{"sluice_alloc", []api.ValueType{i32}, []api.ValueType{i32}, true},
		{"sluice_init", []api.ValueType{i32, i32}, []api.ValueType{i32}, true},
		{"sluice_process", []api.ValueType{i32, i32}, []api.ValueType{i64}, true},
		{"sluice_tick", []api.ValueType{i64}, []api.ValueType{i64}, false},
		{"sluice_close", nil, nil, false},
		{"_initialize", nil, nil, false},
	},
	imports: map[string]map[string]funcType{"sluice": hostImports},
}

// exports says which optional exports a module has.
type exports struct {
	initialize, tick, close bool
	// present holds every ABI export the module has, required or not.
	present map[string]bool
}

// checkModule checks a compiled module against the stage ABI.
func checkModule(cm wazero.CompiledModule, memLimit uint64) (exports, error) {
	return checkModuleABI(cm, memLimit, stageABI)
}

// checkModuleABI checks a compiled module against abi without running it:
// exports and their signatures, imports, and a memory that fits the limit.
// The ABI version is checked once an instance runs (sluice_abi_version).
func checkModuleABI(cm wazero.CompiledModule, memLimit uint64, abi moduleABI) (exports, error) {
	var problems []string
	fns := cm.ExportedFunctions()
	ex := exports{present: map[string]bool{}}
	for _, want := range abi.exports {
		def, ok := fns[want.name]
		if !ok {
			if want.required {
				problems = append(problems, fmt.Sprintf("missing export %s %s", want.name, signature(want.params, want.results)))
			}
			continue
		}
		if !hasSignature(def.ParamTypes(), def.ResultTypes(), want, abi.alts[want.name]) {
			problems = append(problems, fmt.Sprintf("export %s has type %s, want %s", want.name,
				signature(def.ParamTypes(), def.ResultTypes()), signature(want.params, want.results)))
			continue
		}
		ex.present[want.name] = true
	}
	ex.initialize, ex.tick, ex.close = ex.present["_initialize"], ex.present["sluice_tick"], ex.present["sluice_close"]
	if _, ok := fns["_start"]; ok && !ex.initialize {
		problems = append(problems, "the module is a WASI command (it exports _start); build it as a reactor library: clang -mexec-model=reactor, or go build -buildmode=c-shared")
	}
	mem, ok := cm.ExportedMemories()["memory"]
	if !ok {
		problems = append(problems, "missing export memory")
	}
	// Functions the host lacks are named in one line per import module (a
	// module written against a newer API may lack dozens).
	missing := map[string][]string{}
	var missingMods []string
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod == "wasi_snapshot_preview1" {
			// wazero implements all of preview 1; what is not granted fails
			// inside the call (EBADF, ENOTCAPABLE), not at load.
			continue
		}
		fns, ok := abi.imports[mod]
		if !ok {
			problems = append(problems, fmt.Sprintf("imports %s.%s; %s may import only from %s", mod, name, abi.what, strings.Join(importModules(abi), ", ")))
			continue
		}
		sig, ok := fns[name]
		if !ok {
			if missing[mod] == nil {
				missingMods = append(missingMods, mod)
			}
			missing[mod] = append(missing[mod], name)
		} else if !slices.Equal(f.ParamTypes(), sig.params) || !slices.Equal(f.ResultTypes(), sig.results) {
			problems = append(problems, fmt.Sprintf("imports %s.%s as %s, want %s", mod, name,
				signature(f.ParamTypes(), f.ResultTypes()), signature(sig.params, sig.results)))
		}
	}
	for _, mod := range missingMods {
		names := missing[mod]
		slices.Sort(names)
		what := "functions"
		if len(names) == 1 {
			what = "function"
		}
		problems = append(problems, fmt.Sprintf("imports %s %s this host does not provide: %s", mod, what, strings.Join(names, ", ")))
	}
	for _, m := range cm.ImportedMemories() {
		mod, name, _ := m.Import()
		problems = append(problems, fmt.Sprintf("imports its memory (%s.%s); %s defines and exports its own", mod, name, abi.what))
	}
	if len(problems) > 0 {
		if abi.api != "" {
			return ex, &apiError{fmt.Sprintf("module does not implement %s: %s", abi.api, strings.Join(problems, "; "))}
		}
		return ex, fmt.Errorf("%w %d: %s", ErrABI, ABIVersion, strings.Join(problems, "; "))
	}
	if need := uint64(mem.Min()) * pageSize; need > memLimit {
		return ex, fmt.Errorf("%w: it starts with %d bytes of memory, more than the memory limit of %d bytes", ErrMemoryLimit, need, memLimit)
	}
	return ex, nil
}

// importModules lists the modules abi allows imports from.
func importModules(abi moduleABI) []string {
	return append(slices.Sorted(maps.Keys(abi.imports)), "wasi_snapshot_preview1")
}

// hasSignature reports whether params -> results is the signature want
// gives an export, or one of its alternatives.
func hasSignature(params, results []api.ValueType, want abiExport, alts []funcType) bool {
	if slices.Equal(params, want.params) && slices.Equal(results, want.results) {
		return true
	}
	return slices.ContainsFunc(alts, func(t funcType) bool {
		return slices.Equal(params, t.params) && slices.Equal(results, t.results)
	})
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
