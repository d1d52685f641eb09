package wasmstages

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// keysBlob lays out keys as find_keys takes them: as a batch is.
func keysBlob(keys ...string) []byte {
	evs := make([][]byte, len(keys))
	for i, k := range keys {
		evs[i] = []byte(k)
	}
	return encodeBatchOf(evs...)
}

// findKeysRow is one event's row of find_keys' answer, decoded.
type findKeysRow struct {
	vals  [][2]uint32 // per key: address, length
	at    uint32      // the event's address
	found uint32
	whole bool
}

// callFindKeys writes batch at batchAt and keys at 0x8000 and calls
// find_keys with out at 0x9000; it returns the result and the rows.
func callFindKeys(t *testing.T, mod api.Module, batch []byte, keys ...string) (int32, []findKeysRow) {
	t.Helper()
	const keysAt, outAt = 0x8000, 0x9000
	blob := keysBlob(keys...)
	if !mod.Memory().Write(batchAt, batch) || !mod.Memory().Write(keysAt, blob) {
		t.Fatal("write guest memory")
	}
	stack := []uint64{batchAt, uint64(len(batch)), keysAt, uint64(len(blob)), outAt}
	findKeys(context.Background(), mod, stack)
	res := api.DecodeI32(stack[0])
	var rows []findKeysRow
	rowLen := 8 * (len(keys) + 1)
	for i := range int(max(res, 0)) {
		b, ok := mod.Memory().Read(outAt+uint32(i*rowLen), uint32(rowLen))
		if !ok {
			t.Fatal("read guest memory")
		}
		var r findKeysRow
		for k := range keys {
			r.vals = append(r.vals, [2]uint32{binary.LittleEndian.Uint32(b[8*k:]), binary.LittleEndian.Uint32(b[8*k+4:])})
		}
		last := binary.LittleEndian.Uint32(b[rowLen-4:])
		r.at, r.found, r.whole = binary.LittleEndian.Uint32(b[rowLen-8:]), last&^findKeysWhole, last&findKeysWhole != 0
		rows = append(rows, r)
	}
	return res, rows
}

const batchAt = 0x100

// eventAddrs returns the guest address of each event of a batch written
// at batchAt.
func eventAddrs(events ...[]byte) []uint32 {
	var out []uint32
	at := uint32(batchAt + 4)
	for _, ev := range events {
		out = append(out, at+4)
		at += 4 + uint32(len(ev))
	}
	return out
}

func TestFindKeysAgreesWithAScan(t *testing.T) {
	mod := newMemoryGuest(t)
	long := strings.Repeat("k", 40) // a str 8 key, not a fixstr
	a := codec.AppendMapHeader(nil, 7)
	a = codec.AppendString(a, "args")
	a = codec.AppendArrayHeader(a, 2)
	a = codec.AppendString(a, "uid") // a value equal to a key: not a match
	a = codec.AppendString(a, strings.Repeat("x", 300))
	a = codec.AppendUint(a, 7) // an int key: stepped over
	a = codec.AppendString(a, "seven")
	a = codec.AppendString(a, long)
	a = codec.AppendBool(a, true)
	a = codec.AppendString(a, "uid")
	a = codec.AppendUint(a, 100000)
	a = codec.AppendString(a, "nested")
	a = codec.AppendMapHeader(a, 1)
	a = codec.AppendString(a, "comm") // a nested key: not a top-level one
	a = codec.AppendString(a, "no")
	a = append(a, 0xc4, 4, 'c', 'o', 'm', 'm') // a bin key equal to one: a match
	a = codec.AppendString(a, "sh")
	a = codec.AppendString(a, "uid") // a second uid: the first wins
	a = codec.AppendUint(a, 1)
	b := codec.AppendMapHeader(nil, 1)
	b = codec.AppendString(b, "comm")
	b = codec.AppendString(b, "ls")
	empty := codec.AppendMapHeader(nil, 0)
	keys := []string{"uid", "comm", "owner", long, "uid", "args", ""}

	events := [][]byte{a, b, empty}
	res, rows := callFindKeys(t, mod, encodeBatchOf(events...), keys...)
	if res != 3 {
		t.Fatalf("find_keys = %d, want 3", res)
	}
	addrs := eventAddrs(events...)
	for i, ev := range events {
		r := rows[i]
		if r.at != addrs[i] || !r.whole {
			t.Errorf("event %d: address %#x whole %v, want %#x and whole", i, r.at, r.whole, addrs[i])
		}
		found := 0
		for k, key := range keys {
			got := r.vals[k]
			want, ok := lookupFirst(ev, key)
			if !ok {
				if got != [2]uint32{} {
					t.Errorf("event %d key %q: %v, want missing (0, 0)", i, key, got)
				}
				continue
			}
			found++
			if got[0] < r.at || got[0]-r.at+got[1] > uint32(len(ev)) {
				t.Fatalf("event %d key %q: value at %#x+%d outside the event", i, key, got[0], got[1])
			}
			if v := ev[got[0]-r.at : got[0]-r.at+got[1]]; string(v) != string(want) {
				t.Errorf("event %d key %q: value % x, a scan finds % x", i, key, v, want)
			}
		}
		if int(r.found) != found {
			t.Errorf("event %d: found %d, want %d", i, r.found, found)
		}
	}
	if rows[0].found != 5 { // uid, comm (a bin key), the long key, uid again, args
		t.Errorf("event 0: found %d keys, want 5", rows[0].found)
	}
}

// lookupFirst is codec.Lookup that also matches bin keys, as the SDKs'
// scans do: the value of the first str or bin key equal to key.
func lookupFirst(ev []byte, key string) ([]byte, bool) {
	if key == "" {
		return nil, false
	}
	var n, i int
	switch {
	case ev[0]&0xf0 == 0x80:
		n, i = int(ev[0]&0x0f), 1
	case ev[0] == 0xde:
		n, i = int(binary.BigEndian.Uint16(ev[1:])), 3
	default:
		return nil, false
	}
	for ; n > 0; n-- {
		kl, err := codec.Skip(ev[i:])
		if err != nil {
			return nil, false
		}
		k := ev[i : i+kl]
		vl, err := codec.Skip(ev[i+kl:])
		if err != nil {
			return nil, false
		}
		if s, ok := strOrBin(k); ok && s == key {
			return ev[i+kl : i+kl+vl], true
		}
		i += kl + vl
	}
	return nil, false
}

func strOrBin(b []byte) (string, bool) {
	c := b[0]
	switch {
	case c&0xe0 == 0xa0:
		return string(b[1:]), true
	case c == 0xd9 || c == 0xc4:
		return string(b[2:]), true
	case c == 0xda || c == 0xc5:
		return string(b[3:]), true
	case c == 0xdb || c == 0xc6:
		return string(b[5:]), true
	}
	return "", false
}

func TestFindKeysMalformedEvents(t *testing.T) {
	mod := newMemoryGuest(t)
	ok := codec.AppendMapHeader(nil, 3)
	ok = codec.AppendString(ok, "uid")
	ok = codec.AppendUint(ok, 5)
	ok = codec.AppendString(ok, "a")
	ok = codec.AppendString(ok, "xyz")
	ok = codec.AppendString(ok, "comm")
	ok = codec.AppendString(ok, "sh")
	cut := ok[:9]                                                      // "a"'s value runs past the end: uid found, comm not
	trailing := append(append([]byte(nil), ok...), 0xc0)               // a whole map, then a byte more
	notMap := codec.AppendString(nil, "uid")                           //
	badValue := append(codec.AppendMapHeader(nil, 1), 0xa1, 'a', 0xc1) // 0xc1 is never valid
	events := [][]byte{cut, trailing, notMap, badValue, nil, ok}
	res, rows := callFindKeys(t, mod, encodeBatchOf(events...), "uid", "comm")
	if res != int32(len(events)) {
		t.Fatalf("find_keys = %d, want %d", res, len(events))
	}
	addrs := eventAddrs(events...)
	uid := [2]uint32{addrs[0] + 5, 1}
	for i, want := range []findKeysRow{
		{vals: [][2]uint32{uid, {}}, found: 1},
		{vals: [][2]uint32{{addrs[1] + 5, 1}, {addrs[1] + uint32(len(ok)) - 3, 3}}, found: 2},
		{vals: [][2]uint32{{}, {}}},
		{vals: [][2]uint32{{}, {}}},
		{vals: [][2]uint32{{}, {}}},
		{vals: [][2]uint32{{addrs[5] + 5, 1}, {addrs[5] + uint32(len(ok)) - 3, 3}}, found: 2, whole: true},
	} {
		want.at = addrs[i]
		got := rows[i]
		if got.at != want.at || got.found != want.found || got.whole != want.whole || got.vals[0] != want.vals[0] || got.vals[1] != want.vals[1] {
			t.Errorf("event %d: row %+v, want %+v", i, got, want)
		}
	}

	// A batch or keys whose layout is broken, or too many keys, get -1.
	many := make([]string, maxFindKeys+1)
	for i := range many {
		many[i] = "k"
	}
	for name, c := range map[string]struct {
		batch []byte
		keys  []string
	}{
		"short":          {[]byte{1, 0}, []string{"uid"}},
		"count too big":  {binary.LittleEndian.AppendUint32(nil, 1000), []string{"uid"}},
		"length too big": {append(binary.LittleEndian.AppendUint32(nil, 1), 0xff, 0, 0, 0, 0x80), []string{"uid"}},
		"cut length":     {append(binary.LittleEndian.AppendUint32(nil, 2), 1, 0, 0, 0, 0x80, 0, 0), []string{"uid"}},
		"too many keys":  {encodeBatchOf(ok), many},
	} {
		if res, _ := callFindKeys(t, mod, c.batch, c.keys...); res != -1 {
			t.Errorf("%s: find_keys = %d, want -1", name, res)
		}
	}
	for name, keys := range map[string][]byte{
		"keys short":         {1, 0},
		"keys count too big": binary.LittleEndian.AppendUint32(nil, 3),
		"key length too big": append(binary.LittleEndian.AppendUint32(nil, 1), 9, 0, 0, 0, 'u'),
	} {
		mod.Memory().Write(batchAt, encodeBatchOf(ok))
		mod.Memory().Write(0x8000, keys)
		stack := []uint64{batchAt, uint64(len(encodeBatchOf(ok))), 0x8000, uint64(len(keys)), 0x9000}
		findKeys(context.Background(), mod, stack)
		if res := api.DecodeI32(stack[0]); res != -1 {
			t.Errorf("%s: find_keys = %d, want -1", name, res)
		}
	}
}

// A guest passing ranges outside its memory traps (the panic wazero turns
// into the call's error) instead of having the host read or write there.
func TestFindKeysRefusesRangesOutsideMemory(t *testing.T) {
	mod := newMemoryGuest(t)
	size := uint64(mod.Memory().Size())
	batch := encodeBatchOf(codec.AppendMapHeader(nil, 0), codec.AppendMapHeader(nil, 0))
	keys := keysBlob("uid", "comm")
	mod.Memory().Write(0, batch)
	mod.Memory().Write(0x100, keys)
	bl, kl := uint64(len(batch)), uint64(len(keys))
	// A batch of many events each needing a row: 0x2000 empty maps (5
	// bytes each in the batch, 24 in the answer) overrun memory only in out.
	big := make([]byte, 0, 4+5*0x2000)
	big = binary.LittleEndian.AppendUint32(big, 0x2000)
	for range 0x2000 {
		big = append(binary.LittleEndian.AppendUint32(big, 1), 0x80)
	}
	mod.Memory().Write(0x200, big)
	for name, stack := range map[string][]uint64{
		"batch past the end":     {size - 4, 16, 0x100, kl, 0x400},
		"batch wraps around":     {0xFFFFFFF0, 0x20, 0x100, kl, 0x400},
		"keys past the end":      {0, bl, size - 8, kl, 0x400},
		"keys wrap around":       {0, bl, 0xFFFFFFFC, kl, 0x400},
		"out past the end":       {0, bl, 0x100, kl, size - 24},
		"out wraps around":       {0, bl, 0x100, kl, 0xFFFFFFFC},
		"out larger than memory": {0x200, uint64(len(big)), 0x100, kl, 0x400},
		"huge length":            {0, 0xFFFFFFFF, 0x100, kl, 0x400},
		"keys length overflow":   {0, bl, 0x100, 0xFFFFFFFF, 0x400},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatal("find_keys returned; want a trap")
				}
				if !strings.Contains(r.(error).Error(), "outside the guest's") {
					t.Errorf("trap %v, want it to say the range lies outside memory", r)
				}
			}()
			findKeys(context.Background(), mod, stack)
		})
	}
	// The same call inside memory answers.
	stack := []uint64{0, bl, 0x100, kl, 0x400}
	findKeys(context.Background(), mod, stack)
	if got := api.DecodeI32(stack[0]); got != 2 {
		t.Errorf("find_keys in bounds = %d, want 2", got)
	}
}

// FuzzFindKeys checks that find_keys' scanner never reports a value
// outside its event, whatever its bytes, and agrees with a scan of
// well-formed maps.
func FuzzFindKeys(f *testing.F) {
	ev := codec.AppendMapHeader(nil, 3)
	ev = codec.AppendString(ev, "args")
	ev = codec.AppendArrayHeader(ev, 1)
	ev = codec.AppendString(ev, "-c")
	ev = codec.AppendString(ev, "uid")
	ev = codec.AppendUint(ev, 1000)
	ev = codec.AppendUint(ev, 3)
	ev = codec.AppendNil(ev)
	f.Add(ev, "uid", "args")
	f.Add(ev[:len(ev)-3], "uid", "x")
	f.Add([]byte{0xde, 0xff, 0xff}, "a", "b")
	f.Add([]byte{0x81, 0xd9, 0x03, 'u', 'i', 'd', 0x01}, "uid", "uid")
	f.Fuzz(func(t *testing.T, b []byte, k1, k2 string) {
		var kt keyTable
		if !kt.parse(keysBlob(k1, k2)) {
			t.Fatal("parse two keys")
		}
		const at = 0x1000
		out := make([]byte, 8*3)
		kt.row(b, at, out)
		for k := range 2 {
			a, n := binary.LittleEndian.Uint32(out[8*k:]), binary.LittleEndian.Uint32(out[8*k+4:])
			if (a != 0 || n != 0) && (a < at || uint64(a-at)+uint64(n) > uint64(len(b)) || n == 0) {
				t.Fatalf("key %d: value at %#x+%d of a %d-byte event at %#x", k, a, n, len(b), at)
			}
		}
		if sz, err := codec.Skip(b); err != nil || sz != len(b) || !wellFormedMap(b) {
			return
		}
		if last := binary.LittleEndian.Uint32(out[20:]); last&findKeysWhole == 0 {
			t.Fatal("a well-formed map is not whole")
		}
		for k, key := range []string{k1, k2} {
			a, n := binary.LittleEndian.Uint32(out[8*k:]), binary.LittleEndian.Uint32(out[8*k+4:])
			val, ok := lookupFirst(b, key)
			switch {
			case !ok && n != 0:
				t.Fatalf("found %q at %#x+%d; a scan finds none", key, a, n)
			case ok && string(b[a-at:a-at+n]) != string(val):
				t.Fatalf("%q: value % x; a scan finds % x", key, b[a-at:a-at+n], val)
			}
		}
	})
}
