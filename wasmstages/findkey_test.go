package wasmstages

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// memoryModule is a Wasm module with one page (64 KiB) of memory and
// nothing else: a real guest memory for calling find_key the way a guest's
// import would, with whatever pointers a hostile guest could pass.
var memoryModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
	0x05, 0x03, 0x01, 0x00, 0x01, // memory section: one memory, min 1 page
	0x07, 0x0a, 0x01, 0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00, // export "memory"
}

func newMemoryGuest(t *testing.T) api.Module {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	t.Cleanup(func() { r.Close(ctx) })
	mod, err := r.Instantiate(ctx, memoryModule)
	if err != nil {
		t.Fatalf("instantiate memory guest: %v", err)
	}
	return mod
}

// callFindKey writes batch at 0x100 and key at 0x8000 and calls find_key
// with out at 0x9000; it returns the result and the offset pairs.
func callFindKey(t *testing.T, mod api.Module, batch []byte, key string) (int32, [][2]uint32) {
	t.Helper()
	const batchAt, keyAt, outAt = 0x100, 0x8000, 0x9000
	if !mod.Memory().Write(batchAt, batch) || !mod.Memory().WriteString(keyAt, key) {
		t.Fatal("write guest memory")
	}
	stack := []uint64{batchAt, uint64(len(batch)), keyAt, uint64(len(key)), outAt}
	findKey(context.Background(), mod, stack)
	res := api.DecodeI32(stack[0])
	var pairs [][2]uint32
	for i := int32(0); i < res; i++ {
		b, _ := mod.Memory().Read(outAt+uint32(8*i), 8)
		pairs = append(pairs, [2]uint32{binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])})
	}
	return res, pairs
}

func encodeBatchOf(events ...[]byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(events)))
	for _, ev := range events {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(ev)))
		b = append(b, ev...)
	}
	return b
}

func TestFindKeyFindsEachEventsValue(t *testing.T) {
	mod := newMemoryGuest(t)
	long := strings.Repeat("k", 40) // a str 8 key, not a fixstr
	withUID := codec.AppendMapHeader(nil, 4)
	withUID = codec.AppendString(withUID, "args")
	withUID = codec.AppendArrayHeader(withUID, 2)
	withUID = codec.AppendString(withUID, "uid") // a value equal to the key: not a match
	withUID = codec.AppendString(withUID, strings.Repeat("x", 300))
	withUID = codec.AppendUint(withUID, 7) // an int key: stepped over
	withUID = codec.AppendString(withUID, "seven")
	withUID = codec.AppendString(withUID, long)
	withUID = codec.AppendBool(withUID, true)
	uidAt := len(withUID) + 4
	withUID = codec.AppendString(withUID, "uid")
	withUID = codec.AppendUint(withUID, 100000)
	without := codec.AppendMapHeader(nil, 1)
	without = codec.AppendString(without, "comm")
	without = codec.AppendString(without, "sh")
	empty := codec.AppendMapHeader(nil, 0)

	res, pairs := callFindKey(t, mod, encodeBatchOf(withUID, without, empty), "uid")
	if res != 3 {
		t.Fatalf("find_key = %d, want 3", res)
	}
	want := [][2]uint32{
		{uint32(uidAt), uint32(len(withUID))},
		{findKeyMissing, uint32(len(without))},
		{findKeyMissing, 1},
	}
	for i := range want {
		if pairs[i] != want[i] {
			t.Errorf("event %d: offsets %v, want %v", i, pairs[i], want[i])
		}
	}
	// The host's answer agrees with codec.Lookup on what the value is.
	if val, ok := codec.Lookup(withUID, "uid"); !ok || string(withUID[pairs[0][0]:pairs[0][1]]) != string(val) {
		t.Errorf("uid value % x, codec.Lookup says % x", withUID[pairs[0][0]:pairs[0][1]], val)
	}
	if _, pairs = callFindKey(t, mod, encodeBatchOf(withUID), long); pairs[0] != [2]uint32{uint32(len(withUID) - 10), uint32(len(withUID) - 9)} {
		t.Errorf("str 8 key: offsets %v, want the bounds of its true value", pairs[0])
	}
}

func TestFindKeyMalformedEvents(t *testing.T) {
	mod := newMemoryGuest(t)
	ok := codec.AppendMapHeader(nil, 2)
	ok = codec.AppendString(ok, "a")
	ok = codec.AppendString(ok, "xyz")
	ok = codec.AppendString(ok, "uid")
	ok = codec.AppendUint(ok, 5)
	cut := ok[:6] // "a"'s value runs past the end, before uid
	notMap := codec.AppendString(nil, "uid")
	badValue := append(codec.AppendMapHeader(nil, 1), 0xa1, 'a', 0xc1) // 0xc1 is never valid
	res, pairs := callFindKey(t, mod, encodeBatchOf(cut, notMap, badValue, nil, ok), "uid")
	if res != 5 {
		t.Fatalf("find_key = %d, want 5", res)
	}
	for i := range 4 {
		if pairs[i] != [2]uint32{findKeyMissing, findKeyMissing} {
			t.Errorf("malformed event %d: offsets %v, want both missing", i, pairs[i])
		}
	}
	if pairs[4] != [2]uint32{uint32(len(ok) - 1), uint32(len(ok))} {
		t.Errorf("well-formed event after malformed ones: offsets %v", pairs[4])
	}

	// A batch whose layout is broken gets -1, not a partial answer.
	for name, batch := range map[string][]byte{
		"short":          {1, 0},
		"count too big":  binary.LittleEndian.AppendUint32(nil, 1000),
		"length too big": append(binary.LittleEndian.AppendUint32(nil, 1), 0xff, 0, 0, 0, 0x80),
		"cut length":     append(binary.LittleEndian.AppendUint32(nil, 2), 1, 0, 0, 0, 0x80, 0, 0),
	} {
		if res, _ := callFindKey(t, mod, batch, "uid"); res != -1 {
			t.Errorf("%s: find_key = %d, want -1", name, res)
		}
	}
}

// A guest passing ranges outside its memory traps (the panic wazero turns
// into the call's error) instead of having the host read or write there.
func TestFindKeyRefusesRangesOutsideMemory(t *testing.T) {
	mod := newMemoryGuest(t)
	size := uint64(mod.Memory().Size())
	batch := encodeBatchOf(codec.AppendMapHeader(nil, 0), codec.AppendMapHeader(nil, 0))
	mod.Memory().Write(0, batch)
	mod.Memory().WriteString(0x100, "uid")
	for name, stack := range map[string][]uint64{
		"batch past the end":  {size - 4, 16, 0x100, 3, 0x200},
		"batch wraps around":  {0xFFFFFFF0, 0x20, 0x100, 3, 0x200},
		"key past the end":    {0, uint64(len(batch)), size - 1, 3, 0x200},
		"out past the end":    {0, uint64(len(batch)), 0x100, 3, size - 8},
		"out wraps around":    {0, uint64(len(batch)), 0x100, 3, 0xFFFFFFFC},
		"huge length":         {0, 0xFFFFFFFF, 0x100, 3, 0x200},
		"key length overflow": {0, uint64(len(batch)), 0x100, 0xFFFFFFFF, 0x200},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatal("find_key returned; want a trap")
				}
				if !strings.Contains(r.(error).Error(), "outside the guest's") {
					t.Errorf("trap %v, want it to say the range lies outside memory", r)
				}
			}()
			findKey(context.Background(), mod, stack)
		})
	}
	// The same call inside memory answers.
	stack := []uint64{0, uint64(len(batch)), 0x100, 3, 0x200}
	findKey(context.Background(), mod, stack)
	if got := api.DecodeI32(stack[0]); got != 2 {
		t.Errorf("find_key in bounds = %d, want 2", got)
	}
}

// FuzzFindKey checks that find_key's scanner never reads past an event,
// whatever its bytes, and agrees with codec.Lookup on well-formed maps.
func FuzzFindKey(f *testing.F) {
	ev := codec.AppendMapHeader(nil, 3)
	ev = codec.AppendString(ev, "args")
	ev = codec.AppendArrayHeader(ev, 1)
	ev = codec.AppendString(ev, "-c")
	ev = codec.AppendString(ev, "uid")
	ev = codec.AppendUint(ev, 1000)
	ev = codec.AppendUint(ev, 3)
	ev = codec.AppendNil(ev)
	f.Add(ev, "uid")
	f.Add(ev[:len(ev)-3], "uid")
	f.Add([]byte{0xde, 0xff, 0xff}, "a")
	f.Add([]byte{0x81, 0xd9, 0x03, 'u', 'i', 'd', 0x01}, "uid")
	f.Fuzz(func(t *testing.T, b []byte, key string) {
		s, e := findKeyIn(b, []byte(key))
		switch {
		case s != findKeyMissing && (s > e || int(e) > len(b)):
			t.Fatalf("value [%d:%d] of a %d-byte event", s, e, len(b))
		case s == findKeyMissing && e != findKeyMissing && int(e) > len(b):
			t.Fatalf("map end %d of a %d-byte event", e, len(b))
		}
		if n, err := codec.Skip(b); err != nil || n != len(b) || !wellFormedMap(b) {
			return
		}
		val, ok := codec.Lookup(b, key)
		switch {
		case !ok && s != findKeyMissing:
			t.Fatalf("found %q at [%d:%d]; codec.Lookup finds none", key, s, e)
		case !ok && int(e) != len(b):
			t.Fatalf("map end %d, want %d", e, len(b))
		case ok && (s == findKeyMissing || string(b[s:e]) != string(val)):
			t.Fatalf("value [%d:%d]; codec.Lookup says % x", s, e, val)
		}
	})
}
