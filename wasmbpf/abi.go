package wasmbpf

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-dev/sluice/internal/interrupt"
)

// The wasm-bpf host interface, as eunomia-bpf's runtimes define it (import
// module "wasm_bpf"; docs/wasm-bpf.md lists the C declarations). Handles
// are u64, guest pointers i32, results negative errnos (Linux numbers,
// like libbpf's) unless said otherwise.
const (
	importModule = "wasm_bpf"
	// goWrapperModule is where TinyGo guests import their poll function:
	// TinyGo cannot take a function's table index, so the host calls
	// the export goCallbackExport instead.
	goWrapperModule  = "callback-wrapper"
	goCallbackExport = "go-callback"
)

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

type funcType struct{ params, results []api.ValueType }

// hostFuncs are the functions of import module "wasm_bpf".
var hostFuncs = map[string]funcType{
	// u64 wasm_load_bpf_object(const void *obj_buf, int obj_buf_sz): 0 on failure.
	"wasm_load_bpf_object": {[]api.ValueType{i32, i32}, []api.ValueType{i64}},
	// int wasm_close_bpf_object(u64 obj)
	"wasm_close_bpf_object": {[]api.ValueType{i64}, []api.ValueType{i32}},
	// int wasm_attach_bpf_program(u64 obj, const char *name, const char *attach_target)
	"wasm_attach_bpf_program": {[]api.ValueType{i64, i32, i32}, []api.ValueType{i32}},
	// int wasm_attach_bpf_program_fd(u64 obj, const char *name, int target_fd)
	"wasm_attach_bpf_program_fd": {[]api.ValueType{i64, i32, i32}, []api.ValueType{i32}},
	// int wasm_bpf_buffer_poll(u64 obj, int fd, int32 sample_func, u32 ctx, char *data, int max_size, int timeout_ms)
	"wasm_bpf_buffer_poll": {[]api.ValueType{i64, i32, i32, i32, i32, i32, i32}, []api.ValueType{i32}},
	// int wasm_bpf_map_fd_by_name(u64 obj, const char *name)
	"wasm_bpf_map_fd_by_name": {[]api.ValueType{i64, i32}, []api.ValueType{i32}},
	// int wasm_bpf_map_operate(int fd, int cmd, void *key, void *value, void *next_key, u64 flags)
	"wasm_bpf_map_operate": {[]api.ValueType{i32, i32, i32, i32, i32, i64}, []api.ValueType{i32}},
}

// goWrapperFuncs are the functions of import module "callback-wrapper".
var goWrapperFuncs = map[string]funcType{
	// int wasm_bpf_buffer_poll(u64 obj, int fd, u32 ctx, char *data, int max_size, int timeout_ms)
	"wasm_bpf_buffer_poll": {[]api.ValueType{i64, i32, i32, i32, i32, i32}, []api.ValueType{i32}},
}

// callbackType is the sample callback's signature:
// int (*)(void *ctx, void *data, size_t size).
var callbackType = funcType{[]api.ValueType{i32, i32, i32}, []api.ValueType{i32}}

// ErrNotWasmBPF marks a module that is not a wasm-bpf application (it
// imports nothing from "wasm_bpf"), or one that imports what this host
// does not provide.
var ErrNotWasmBPF = errors.New("not a wasm-bpf application")

// IsWasmBPF reports whether module is a wasm-bpf application: a Wasm
// module importing from "wasm_bpf" (or from TinyGo's "callback-wrapper").
// It reads the module's import section without compiling it.
func IsWasmBPF(module []byte) bool {
	info, err := readBinary(module)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(info.Imports, func(im moduleImport) bool {
		return im.Module == importModule || im.Module == goWrapperModule
	})
}

// checkCompiled checks a compiled module against the interface: it is a
// WASI command (exports _start and its memory) that imports only WASI and
// the functions this host provides, with their signatures.
func checkCompiled(cm wazero.CompiledModule) error {
	var problems []string
	usesHost, usesGo := false, false
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		var table map[string]funcType
		switch mod {
		case "wasi_snapshot_preview1":
			continue // what is not granted fails inside the call
		case interrupt.ImportModule:
			if name == interrupt.ImportName {
				continue // added by the host's rewrite, not the guest's
			}
			problems = append(problems, fmt.Sprintf("imports %s.%s; a wasm-bpf application imports only from wasm_bpf, callback-wrapper and wasi_snapshot_preview1", mod, name))
			continue
		case importModule:
			table, usesHost = hostFuncs, true
		case goWrapperModule:
			table, usesGo = goWrapperFuncs, true
		default:
			problems = append(problems, fmt.Sprintf("imports %s.%s; a wasm-bpf application imports only from wasm_bpf, callback-wrapper and wasi_snapshot_preview1", mod, name))
			continue
		}
		sig, ok := table[name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("imports %s.%s, which this host does not provide (it has %s)", mod, name, strings.Join(slices.Sorted(maps.Keys(table)), ", ")))
		case !slices.Equal(f.ParamTypes(), sig.params) || !slices.Equal(f.ResultTypes(), sig.results):
			problems = append(problems, fmt.Sprintf("imports %s.%s as %s, want %s", mod, name,
				signature(f.ParamTypes(), f.ResultTypes()), signature(sig.params, sig.results)))
		}
	}
	if !usesHost && !usesGo {
		return fmt.Errorf("%w: the module imports nothing from %q", ErrNotWasmBPF, importModule)
	}
	fns := cm.ExportedFunctions()
	if start, ok := fns["_start"]; !ok {
		problems = append(problems, "missing export _start: build the application as a WASI command (a main function), not a reactor")
	} else if len(start.ParamTypes()) != 0 || len(start.ResultTypes()) != 0 {
		problems = append(problems, fmt.Sprintf("export _start has type %s, want () -> ()", signature(start.ParamTypes(), start.ResultTypes())))
	}
	if _, ok := cm.ExportedMemories()["memory"]; !ok {
		problems = append(problems, "missing export memory")
	}
	if usesGo {
		if cb, ok := fns[goCallbackExport]; !ok {
			problems = append(problems, fmt.Sprintf("imports %s.wasm_bpf_buffer_poll but does not export %s", goWrapperModule, goCallbackExport))
		} else if !slices.Equal(cb.ParamTypes(), callbackType.params) || !slices.Equal(cb.ResultTypes(), callbackType.results) {
			problems = append(problems, fmt.Sprintf("export %s has type %s, want %s", goCallbackExport,
				signature(cb.ParamTypes(), cb.ResultTypes()), signature(callbackType.params, callbackType.results)))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrNotWasmBPF, strings.Join(problems, "; "))
	}
	return nil
}

// signature renders a function type as (i32, i64) -> (i32).
func signature(params, results []api.ValueType) string {
	name := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	return name(params) + " -> " + name(results)
}

// Linux errno values the host returns, negated, as libbpf and eunomia's
// runtimes do. They are the kernel's numbers, not wasi-libc's: a guest
// compares results with these constants (or just with 0).
const (
	errnoPERM   = 1
	errnoNOENT  = 2
	errnoINTR   = 4
	errnoBADF   = 9
	errnoNOMEM  = 12
	errnoFAULT  = 14
	errnoEXIST  = 17
	errnoINVAL  = 22
	errnoNOSPC  = 28
	errnoNOTSUP = 95
)
