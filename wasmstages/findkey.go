package wasmstages

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/tetratelabs/wazero/api"
)

// findKeyMissing marks, in find_key's output, a key an event does not have
// (as the start offset) or an event malformed before the key (both offsets).
const findKeyMissing = math.MaxUint32

// findKey implements the optional import find_key (docs/stage-abi.md):
// find_key(batch_ptr, batch_len, key_ptr, key_len, out_ptr) -> i32. It
// looks up one key in every event of a batch laid out as the host
// writes one (u32 count, then u32 length and bytes per event) and writes,
// per event, two u32 little-endian offsets into the event to out: the
// bounds of the key's value; start 0xFFFFFFFF and the offset where the map
// ends when the key is missing; both 0xFFFFFFFF when the event is malformed
// before the key. It returns the number of events, or -1 when the batch's
// layout is broken (nothing written past the last whole event). A guest's
// SDK calls it once per batch for the key its handler reads first: in Go's
// Wasm code, stepping over fields costs tens of ns each, here a few.
// Every range is checked against the guest's memory; one outside it traps.
func findKey(_ context.Context, mod api.Module, stack []uint64) {
	batch := guestBytes(mod, uint32(stack[0]), uint32(stack[1]), "find_key batch")
	key := guestBytes(mod, uint32(stack[2]), uint32(stack[3]), "find_key key")
	outPtr := uint32(stack[4])
	if len(batch) < 4 {
		stack[0] = api.EncodeI32(-1)
		return
	}
	count := binary.LittleEndian.Uint32(batch)
	if uint64(count) > uint64(len(batch)-4)/4 {
		stack[0] = api.EncodeI32(-1)
		return
	}
	// count*8 <= 2*len(batch), which fits a uint32 only for batches under
	// 2 GiB: guestBytes refuses the rest as outside memory.
	outLen := uint64(count) * 8
	if outLen > math.MaxUint32 {
		panic(fmt.Errorf("find_key out: %d bytes at %#x lie outside the guest's %d-byte memory", outLen, outPtr, mod.Memory().Size()))
	}
	out := guestBytes(mod, outPtr, uint32(outLen), "find_key out")
	stack[0] = api.EncodeI32(findKeyBatch(batch, key, out))
}

// findKeyBatch is find_key on a batch whose count fits its length, with
// room in out for the count's pairs.
func findKeyBatch(batch, key, out []byte) int32 {
	count := binary.LittleEndian.Uint32(batch)
	// The key is read once: out may overlap it too.
	var keyBuf [64]byte
	if len(key) <= len(keyBuf) {
		key = keyBuf[:copy(keyBuf[:], key)]
	} else {
		key = bytes.Clone(key)
	}
	// Events are answered by replaying the walk of one before them when
	// they can be (keyWalk), while that works for at least about half of
	// them: a batch whose layouts keep changing is walked, at the cost of
	// a few replays and recordings.
	var w keyWalk
	replays, walks := 0, 0
	off := 4
	for i := uint32(0); i < count; i++ {
		if len(batch)-off < 4 {
			return -1
		}
		n := int(binary.LittleEndian.Uint32(batch[off:]))
		off += 4
		if n > len(batch)-off {
			return -1
		}
		ev := batch[off : off+n : off+n]
		off += n
		start, end, ok := w.replay(ev)
		switch {
		case ok:
			replays++
		case walks > replays+8:
			start, end = findKeyIn(ev, key)
		default:
			walks++
			start, end = walkKey(ev, key, &w)
		}
		// out may overlap the batch (a guest's choice): each pair is
		// written after its event was read, and reads stay in batch.
		binary.LittleEndian.PutUint32(out[8*i:], start)
		binary.LittleEndian.PutUint32(out[8*i+4:], end)
	}
	return int32(count)
}

// findKeyIn returns the bounds of the value of the first str (or bin) key
// equal to key in the map b, as find_key reports them (findKeyMissing when
// missing or malformed): what the Go SDK's scanner, and codec.Lookup, find.
func findKeyIn(b, key []byte) (start, end uint32) {
	return walkKey(b, key, nil)
}

// strHeader returns the payload length and header size of the str or bin
// 8/16/32 at b[i], or h = -1 when the header is cut short.
func strHeader(b []byte, i int) (n, h int) {
	switch b[i] {
	case 0xd9, 0xc4:
		if i+2 <= len(b) {
			return int(b[i+1]), 2
		}
	case 0xda, 0xc5:
		if i+3 <= len(b) {
			return int(binary.BigEndian.Uint16(b[i+1:])), 3
		}
	case 0xdb, 0xc6:
		if i+5 <= len(b) {
			return int(binary.BigEndian.Uint32(b[i+1:])), 5
		}
	}
	return 0, -1
}

// skipValue returns the offset past the value at b[i], or -1 when it is
// malformed or runs past the end.
func skipChecked(b []byte, i int) int {
	if sz := int(fixedSize[b[i]]); sz != 0 {
		if i+sz > len(b) {
			return -1
		}
		return i + sz
	}
	return wellFormedAt(b, i, 1)
}
