package wasmstages

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"

	"github.com/tetratelabs/wazero/api"
)

// maxFindKeys is the most keys one find_keys call looks up: a guest's
// table of them fits the stack, and a row of the answer is at most
// 65 x 8 bytes per event.
const maxFindKeys = 64

// findKeysWhole marks, in the last word of a find_keys row, an event that
// is one well-formed map to its end.
const findKeysWhole = 1 << 31

// findKeys implements the optional import find_keys (docs/stage-abi.md):
// find_keys(batch_ptr, batch_len, keys_ptr, keys_len, out_ptr) -> i32.
// keys is laid out as a batch is (u32 count, then u32 length and bytes
// per key). It looks up every key in every event of the batch and writes
// one row per event to out: per key, the guest address of the value of
// the first str or bin key equal to it and its length (0, 0 when the
// event lacks it or is malformed before it), then the event's own address
// and the number of keys found, plus findKeysWhole when the event is one
// well-formed map to its end. The pairs are what the C SDK calls a
// sluice_value, so a guest uses a row as it is. It returns the number of
// events, or -1 when the batch's or the keys' layout is broken or there
// are more than maxFindKeys keys (nothing written past the last whole
// event). Every range is checked against the guest's memory; one outside
// it traps.
//
// A C guest that maps events to another schema reads dozens of fields of
// each: its scan steps over an entry in ~10 ns, this one in a few.
func findKeys(_ context.Context, mod api.Module, stack []uint64) {
	batchPtr := uint32(stack[0])
	batch := guestBytes(mod, batchPtr, uint32(stack[1]), "find_keys batch")
	keysBlob := guestBytes(mod, uint32(stack[2]), uint32(stack[3]), "find_keys keys")
	outPtr := uint32(stack[4])
	var kt keyTable
	if !kt.parse(keysBlob) {
		stack[0] = api.EncodeI32(-1)
		return
	}
	if len(batch) < 4 {
		stack[0] = api.EncodeI32(-1)
		return
	}
	count := binary.LittleEndian.Uint32(batch)
	if uint64(count) > uint64(len(batch)-4)/4 {
		stack[0] = api.EncodeI32(-1)
		return
	}
	row := 8 * (kt.n + 1)
	outLen := uint64(count) * uint64(row)
	if outLen > math.MaxUint32 {
		panic(fmt.Errorf("find_keys out: %d bytes at %#x lie outside the guest's %d-byte memory", outLen, outPtr, mod.Memory().Size()))
	}
	out := guestBytes(mod, outPtr, uint32(outLen), "find_keys out")
	off := 4
	for i := range int(count) {
		if len(batch)-off < 4 {
			stack[0] = api.EncodeI32(-1)
			return
		}
		n := int(binary.LittleEndian.Uint32(batch[off:]))
		off += 4
		if n > len(batch)-off {
			stack[0] = api.EncodeI32(-1)
			return
		}
		// batchPtr+len(batch) fits a uint32 (guestBytes checked it), so
		// does every address inside the batch.
		// out may overlap the batch (a guest's choice): a row is written
		// after its event was read, and reads stay in batch.
		kt.row(batch[off:off+n:off+n], batchPtr+uint32(off), out[i*row:(i+1)*row])
		off += n
	}
	stack[0] = api.EncodeI32(int32(count))
}

// keyTable holds the keys of one find_keys call, chained by length and
// first byte (as the C SDK's sluice_fields does) so that an entry of an
// event is compared only with the keys it could equal.
type keyTable struct {
	n    int
	keys [maxFindKeys][]byte
	// The first 8 bytes of each key (little-endian) and the mask of those
	// it has: most keys are compared in one load.
	word, mask [maxFindKeys]uint64
	lens       uint64             // bit min(len, 63) set when a key has that length
	head       [64]uint8          // by keyHash: the first key, 0xff for none
	next       [maxFindKeys]uint8 // the next key of the same hash, 0xff ends
}

func keyHash(n int, first byte) int { return (n*7 + int(first)) & 63 }

// parse reads b (u32 count, then u32 length and bytes per key); false when
// its layout is broken or it has more than maxFindKeys keys.
func (t *keyTable) parse(b []byte) bool {
	if len(b) < 4 {
		return false
	}
	n := binary.LittleEndian.Uint32(b)
	if n > maxFindKeys {
		return false
	}
	t.n = int(n)
	for i := range t.head {
		t.head[i] = 0xff
	}
	off := 4
	for k := range t.n {
		if len(b)-off < 4 {
			return false
		}
		l := int(binary.LittleEndian.Uint32(b[off:]))
		off += 4
		if l > len(b)-off {
			return false
		}
		t.keys[k] = b[off : off+l : off+l]
		off += l
	}
	// Chained in reverse, so that a chain lists keys in their order.
	for k := t.n - 1; k >= 0; k-- {
		key := t.keys[k]
		if len(key) == 0 {
			t.next[k] = 0xff // an empty key is never a map key here: no value
			continue
		}
		t.lens |= 1 << min(len(key), 63)
		t.word[k], t.mask[k] = 0, 0
		for j := range min(len(key), 8) {
			t.word[k] |= uint64(key[j]) << (8 * j)
			t.mask[k] |= 0xff << (8 * j)
		}
		h := keyHash(len(key), key[0])
		t.next[k] = t.head[h]
		t.head[h] = uint8(k)
	}
	return true
}

// row writes one event's row of find_keys' answer to out (8 x (t.n+1)
// bytes): b is the event, at guest address at.
func (t *keyTable) row(b []byte, at uint32, out []byte) {
	clear(out[:8*t.n])
	found, whole := t.scan(b, at, out)
	last := uint32(bits.OnesCount64(found))
	if whole {
		last |= findKeysWhole
	}
	binary.LittleEndian.PutUint32(out[8*t.n:], at)
	binary.LittleEndian.PutUint32(out[8*t.n+4:], last)
}

// scan writes to out the address and length of the first value of each
// key in the map b (at guest address at) until the map ends or is
// malformed. It returns the keys it found (bit k for key k) and whether b
// is one well-formed map to its end.
func (t *keyTable) scan(b []byte, at uint32, out []byte) (found uint64, whole bool) {
	var n, i int
	switch {
	case len(b) == 0:
		return found, false
	case b[0]&0xf0 == 0x80:
		n, i = int(b[0]&0x0f), 1
	case b[0] == 0xde && len(b) >= 3:
		n, i = int(binary.BigEndian.Uint16(b[1:])), 3
	case b[0] == 0xdf && len(b) >= 5:
		n, i = int(binary.BigEndian.Uint32(b[1:])), 5
	default:
		return found, false
	}
	for ; n > 0; n-- {
		if i >= len(b) {
			return found, false
		}
		ks, ke := -1, 0
		if c := b[i]; c&0xe0 == 0xa0 {
			ks, ke = i+1, i+1+int(c&0x1f)
		} else if c == 0xd9 || c == 0xda || c == 0xdb || c == 0xc4 || c == 0xc5 || c == 0xc6 {
			l, h := strHeader(b, i)
			if h < 0 {
				return found, false
			}
			ks, ke = i+h, i+h+l
		} else if ke = skipChecked(b, i); ke < 0 {
			return found, false
		}
		if ke >= len(b) { // a value takes at least one byte
			return found, false
		}
		e := ke + int(fixedSize[b[ke]])
		if e == ke {
			e = wellFormedAt(b, ke, 1)
		}
		if e < 0 || e > len(b) {
			return found, false
		}
		// Most entries are not wanted: their key's length says so.
		if l := ke - ks; ks >= 0 && l > 0 && t.lens&(1<<min(l, 63)) != 0 {
			var w uint64 // the key's first 8 bytes, when b has 8 from ks on
			if ks+8 <= len(b) {
				w = binary.LittleEndian.Uint64(b[ks:])
			}
			for k := t.head[keyHash(l, b[ks])]; k != 0xff; k = t.next[k] {
				key := t.keys[k]
				if len(key) != l {
					continue
				}
				if ks+8 <= len(b) && w&t.mask[k] != t.word[k] {
					continue
				}
				if l <= 8 && ks+8 <= len(b) || string(key) == string(b[ks:ke]) {
					if found&(1<<k) == 0 { // the first value wins
						found |= 1 << k
						binary.LittleEndian.PutUint64(out[8*int(k):], uint64(at+uint32(ke))|uint64(e-ke)<<32)
					} // no break: the same key may be asked for twice
				}
			}
		}
		i = e
	}
	return found, i == len(b)
}
