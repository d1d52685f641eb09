package wasmbpf

import (
	"context"

	"github.com/tetratelabs/wazero/api"
)

// Commands of wasm_bpf_map_operate: the kernel's BPF_MAP_* numbers.
const (
	cmdLookup  = 1
	cmdUpdate  = 2
	cmdDelete  = 3
	cmdNextKey = 4
)

// hostMapOperate is int wasm_bpf_map_operate(int fd, int cmd, void *key,
// void *value, void *next_key, u64 flags): lookup (value receives the
// value), update (flags: BPF_ANY, BPF_NOEXIST, BPF_EXIST), delete, and next
// key (a NULL key asks for the first), on a map of one of the guest's
// objects, with keys and values in the kernel's layout (per-CPU values:
// every possible CPU's, each padded to 8 bytes). 0 or -errno: -ENOENT for
// a missing key or the end of the keys.
func (a *App) hostMapOperate(_ context.Context, mod api.Module, stack []uint64) {
	const fn = "wasm_bpf_map_operate"
	fd, cmd := int32(stack[0]), int32(stack[1])
	keyPtr, valuePtr, nextPtr, flags := uint32(stack[2]), uint32(stack[3]), uint32(stack[4]), stack[5]
	ret := func(rc int32) { stack[0] = uint64(uint32(rc)) }
	gm := a.fds[fd]
	if gm == nil {
		ret(a.refuse(fn, "fd", errnoBADF))
		return
	}
	info := gm.raw.Info()
	if info.KeySize == 0 || info.ValueSize == 0 && cmd != cmdDelete && cmd != cmdNextKey {
		// Ring buffers and the like have no elements to operate on.
		ret(a.refuse(fn, "map", errnoINVAL))
		return
	}
	mem := func(ptr, n uint32) ([]byte, bool) { return guestBytes(mod, ptr, n) }
	key, ok := mem(keyPtr, info.KeySize)
	if !ok && !(cmd == cmdNextKey && keyPtr == 0) {
		ret(a.refuse(fn, "pointer", errnoFAULT))
		return
	}
	var err error
	switch cmd {
	case cmdLookup:
		if flags != 0 {
			ret(a.refuse(fn, "flags", errnoINVAL))
			return
		}
		value, ok := mem(valuePtr, info.ValueSize)
		if !ok {
			ret(a.refuse(fn, "pointer", errnoFAULT))
			return
		}
		err = gm.raw.Lookup(key, value)
	case cmdUpdate:
		if flags > 2 {
			ret(a.refuse(fn, "flags", errnoINVAL))
			return
		}
		value, ok := mem(valuePtr, info.ValueSize)
		if !ok {
			ret(a.refuse(fn, "pointer", errnoFAULT))
			return
		}
		err = gm.raw.Update(key, value, flags)
	case cmdDelete:
		if flags != 0 {
			ret(a.refuse(fn, "flags", errnoINVAL))
			return
		}
		err = gm.raw.Delete(key)
	case cmdNextKey:
		next, ok := mem(nextPtr, info.KeySize)
		if !ok {
			ret(a.refuse(fn, "pointer", errnoFAULT))
			return
		}
		if keyPtr == 0 {
			key = nil
		}
		err = gm.raw.NextKey(key, next)
	default:
		ret(a.refuse(fn, "command", errnoINVAL))
		return
	}
	if err != nil {
		ret(-errnoOf(err))
		return
	}
	ret(0)
}
