package wasmstages

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-dev/sluice/internal/kallsyms"
	"github.com/sluice-dev/sluice/internal/syscalls"
)

// gadgetImportModule is the import module of the gadget host functions.
const gadgetImportModule = "sluice_gadget"

// Result codes of the sluice_gadget functions (docs/stage-abi.md): a
// negative result is one of these; last_error has the message.
const (
	gadgetErrNotFound = -1 // no such parameter, map, key, symbol or syscall; the end of an iteration
	gadgetErrInvalid  = -2 // a value that does not fit, a wrong size, a bad handle
	gadgetErrPhase    = -3 // not now: param_set after load, a map before load
	gadgetErrExists   = -4 // map_update with BPF_NOEXIST of a key that exists
	gadgetErrSystem   = -5 // the kernel or the system refused (map full, symbols hidden, ...)
)

// gadgetImports are the functions of import module sluice_gadget.
var gadgetImports = map[string]funcType{
	"param_get":      {[]api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}},
	"param_set":      {[]api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}},
	"map_open":       {[]api.ValueType{i32, i32}, []api.ValueType{i32}},
	"map_info":       {[]api.ValueType{i32, i32}, []api.ValueType{i32}},
	"map_lookup":     {[]api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i32}},
	"map_update":     {[]api.ValueType{i32, i32, i32, i32, i32, i64}, []api.ValueType{i32}},
	"map_delete":     {[]api.ValueType{i32, i32, i32}, []api.ValueType{i32}},
	"map_next_key":   {[]api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i32}},
	"ksym_name":      {[]api.ValueType{i64, i32, i32, i32}, []api.ValueType{i32}},
	"ksym_addr":      {[]api.ValueType{i32, i32, i32}, []api.ValueType{i32}},
	"syscall_name":   {[]api.ValueType{i32, i32, i32}, []api.ValueType{i32}},
	"syscall_number": {[]api.ValueType{i32, i32}, []api.ValueType{i32}},
	"last_error":     {[]api.ValueType{i32, i32}, []api.ValueType{i32}},
}

// mapInfoSize is the size of what map_info writes: u32 type, key size,
// value size, max entries.
const mapInfoSize = 16

// instantiateHost adds the sluice_gadget module to r. Every function
// returns an i32: >= 0 on success, a gadgetErr code otherwise.
func (m *GadgetModule) instantiateHost(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder(gadgetImportModule)
	fn := func(name string, f func(ctx context.Context, mod api.Module, stack []uint64) (int32, error)) {
		sig := gadgetImports[name]
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
			rc, err := f(ctx, mod, stack)
			if err != nil {
				m.setLastError(err)
				rc = errorCode(err)
			}
			stack[0] = uint64(uint32(rc))
		}), sig.params, sig.results).Export(name)
	}
	fn("param_get", m.paramGet)
	fn("param_set", m.paramSet)
	fn("map_open", m.mapOpen)
	fn("map_info", m.mapInfo)
	fn("map_lookup", m.mapLookup)
	fn("map_update", m.mapUpdate)
	fn("map_delete", m.mapDelete)
	fn("map_next_key", m.mapNextKey)
	fn("ksym_name", m.ksymName)
	fn("ksym_addr", m.ksymAddr)
	fn("syscall_name", m.syscallName)
	fn("syscall_number", m.syscallNumber)
	fn("last_error", func(_ context.Context, mod api.Module, stack []uint64) (int32, error) {
		m.mu.Lock()
		msg := m.lastErr
		m.mu.Unlock()
		return writeString(mod, uint32(stack[0]), uint32(stack[1]), msg, "last_error"), nil
	})
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("instantiate host module %s: %w", gadgetImportModule, err)
	}
	return nil
}

// errorCode classifies a handle's error for the guest.
func errorCode(err error) int32 {
	switch {
	case errors.Is(err, ErrNotFound):
		return gadgetErrNotFound
	case errors.Is(err, ErrInvalid):
		return gadgetErrInvalid
	case errors.Is(err, ErrWrongPhase):
		return gadgetErrPhase
	case errors.Is(err, ErrExists):
		return gadgetErrExists
	}
	return gadgetErrSystem
}

// writeString copies s into the guest's buffer (at most cap bytes) and
// returns its full length, so a guest whose buffer was too small can call
// again with a larger one.
func writeString(mod api.Module, ptr, cap uint32, s, what string) int32 {
	n := min(uint32(len(s)), cap)
	if n > 0 {
		copy(guestBytes(mod, ptr, n, what), s)
	}
	return int32(min(len(s), 1<<31-1))
}

func guestString(mod api.Module, ptr, n uint32, what string) string {
	return string(guestBytes(mod, ptr, n, what))
}

func (m *GadgetModule) paramGet(_ context.Context, mod api.Module, stack []uint64) (int32, error) {
	name := guestString(mod, uint32(stack[0]), uint32(stack[1]), "param_get")
	v, err := m.cfg.Handle.Param(name)
	if err != nil {
		return 0, err
	}
	return writeString(mod, uint32(stack[2]), uint32(stack[3]), v, "param_get"), nil
}

// paramSet changes a parameter during the first gadget_init. Later (the
// gadget is loaded, or a replacement instance runs gadget_init again) it
// accepts the value the parameter already has, so that an init that
// derives parameters runs again unchanged, and refuses any other.
func (m *GadgetModule) paramSet(_ context.Context, mod api.Module, stack []uint64) (int32, error) {
	name := guestString(mod, uint32(stack[0]), uint32(stack[1]), "param_set")
	value := guestString(mod, uint32(stack[2]), uint32(stack[3]), "param_set")
	if m.paramsOpen.Load() {
		return 0, m.cfg.Handle.SetParam(name, value)
	}
	cur, err := m.cfg.Handle.Param(name)
	if err != nil {
		return 0, err
	}
	if cur == value {
		return 0, nil
	}
	return 0, ClassifyError(ErrWrongPhase, fmt.Errorf("param_set(%q, %q): gadget %q is loaded with %s=%q; parameters are set in gadget_init, before the gadget loads", name, value, m.cfg.Gadget, name, cur))
}

func (m *GadgetModule) mapOpen(_ context.Context, mod api.Module, stack []uint64) (int32, error) {
	return m.openMap(guestString(mod, uint32(stack[0]), uint32(stack[1]), "map_open"))
}

func (m *GadgetModule) mapInfo(_ context.Context, mod api.Module, stack []uint64) (int32, error) {
	mh, err := m.mapByHandle(int32(stack[0]))
	if err != nil {
		return 0, err
	}
	info := mh.Info()
	out := guestBytes(mod, uint32(stack[1]), mapInfoSize, "map_info")
	binary.LittleEndian.PutUint32(out[0:], info.Type)
	binary.LittleEndian.PutUint32(out[4:], info.KeySize)
	binary.LittleEndian.PutUint32(out[8:], info.ValueSize)
	binary.LittleEndian.PutUint32(out[12:], info.MaxEntries)
	return 0, nil
}

// mapArgs returns a map and its key (and, with valueAt, its value) from
// the guest, checked against the map's sizes.
func (m *GadgetModule) mapArgs(mod api.Module, stack []uint64, what string, valueAt int) (MapHandle, []byte, []byte, error) {
	mh, err := m.mapByHandle(int32(stack[0]))
	if err != nil {
		return nil, nil, nil, err
	}
	info := mh.Info()
	keyLen := uint32(stack[2])
	if keyLen != info.KeySize && !(what == "map_next_key" && keyLen == 0) {
		return nil, nil, nil, ClassifyError(ErrInvalid, fmt.Errorf("%s: the key is %d bytes; the map's keys are %d", what, keyLen, info.KeySize))
	}
	key := guestBytes(mod, uint32(stack[1]), keyLen, what)
	if keyLen == 0 {
		key = nil
	}
	var val []byte
	if valueAt > 0 {
		n, want := uint32(stack[valueAt+1]), info.ValueSize
		if what == "map_next_key" {
			want = info.KeySize
		}
		if n != want {
			return nil, nil, nil, ClassifyError(ErrInvalid, fmt.Errorf("%s: the buffer is %d bytes; want %d", what, n, want))
		}
		val = guestBytes(mod, uint32(stack[valueAt]), n, what)
	}
	return mh, key, val, nil
}

func (m *GadgetModule) mapLookup(_ context.Context, mod api.Module, stack []uint64) (int32, error) {
	mh, key, val, err := m.mapArgs(mod, stack, "map_lookup", 3)
	if err != nil {
		return 0, err
	}
	return 0, mh.Lookup(key, val)
}

func (m *GadgetModule) mapUpdate(_ context.Context, mod api.Module, stack []uint64) (int32, error) {
	mh, key, val, err := m.mapArgs(mod, stack, "map_update", 3)
	if err != nil {
		return 0, err
	}
	flags := stack[5]
	if flags > 2 {
		return 0, ClassifyError(ErrInvalid, fmt.Errorf("map_update: flags %d; want BPF_ANY (0), BPF_NOEXIST (1) or BPF_EXIST (2)", flags))
	}
	return 0, mh.Update(key, val, flags)
}

func (m *GadgetModule) mapDelete(_ context.Context, mod api.Module, stack []uint64) (int32, error) {
	mh, key, _, err := m.mapArgs(mod, stack, "map_delete", 0)
	if err != nil {
		return 0, err
	}
	return 0, mh.Delete(key)
}

func (m *GadgetModule) mapNextKey(_ context.Context, mod api.Module, stack []uint64) (int32, error) {
	mh, key, next, err := m.mapArgs(mod, stack, "map_next_key", 3)
	if err != nil {
		return 0, err
	}
	return 0, mh.NextKey(key, next)
}

// ksymName writes the name of the kernel symbol addr falls in, and its
// offset (a u64 at off_ptr, unless off_ptr is 0).
func (m *GadgetModule) ksymName(_ context.Context, mod api.Module, stack []uint64) (int32, error) {
	tab, err := kallsyms.Load()
	if err != nil {
		return 0, err
	}
	addr := stack[0]
	name, off, ok := tab.Symbol(addr)
	if !ok {
		return 0, ClassifyError(ErrNotFound, fmt.Errorf("no kernel symbol at %#x", addr))
	}
	if p := uint32(stack[3]); p != 0 {
		binary.LittleEndian.PutUint64(guestBytes(mod, p, 8, "ksym_name"), off)
	}
	return writeString(mod, uint32(stack[1]), uint32(stack[2]), name, "ksym_name"), nil
}

func (m *GadgetModule) ksymAddr(_ context.Context, mod api.Module, stack []uint64) (int32, error) {
	name := guestString(mod, uint32(stack[0]), uint32(stack[1]), "ksym_addr")
	tab, err := kallsyms.Load()
	if err != nil {
		return 0, err
	}
	addr, ok := tab.Address(name)
	if !ok {
		return 0, ClassifyError(ErrNotFound, fmt.Errorf("no kernel symbol %q", name))
	}
	binary.LittleEndian.PutUint64(guestBytes(mod, uint32(stack[2]), 8, "ksym_addr"), addr)
	return 0, nil
}

func (m *GadgetModule) syscallName(_ context.Context, mod api.Module, stack []uint64) (int32, error) {
	nr := int32(stack[0])
	t := syscalls.Host()
	name, ok := t.Name(int(nr))
	if !ok {
		return 0, ClassifyError(ErrNotFound, fmt.Errorf("syscall %d is not a syscall of %s", nr, archName(t)))
	}
	return writeString(mod, uint32(stack[1]), uint32(stack[2]), name, "syscall_name"), nil
}

func (m *GadgetModule) syscallNumber(_ context.Context, mod api.Module, stack []uint64) (int32, error) {
	name := guestString(mod, uint32(stack[0]), uint32(stack[1]), "syscall_number")
	t := syscalls.Host()
	nr, ok := t.Number(name)
	if !ok {
		return 0, ClassifyError(ErrNotFound, fmt.Errorf("%q is not a syscall of %s", name, archName(t)))
	}
	return int32(nr), nil
}

func archName(t *syscalls.Table) string {
	if t.Arch() == "" {
		return "this architecture (sluice has no syscall table for it)"
	}
	return t.Arch()
}
