//go:build !wasip1

package sluice

import (
	"math"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/pipeline/codec"
	"github.com/vmihailenco/msgpack/v5"
)

// oracleValues are encoded by vmihailenco/msgpack, an independent encoder.
var oracleValues = []any{
	nil, true, false, 0, 1, 127, 128, 255, 256, 65535, 65536, int64(math.MaxUint32) + 1,
	-1, -32, -33, -129, -32769, int64(math.MinInt64), uint64(math.MaxUint64),
	1.5, float32(2.25), 1e300,
	"", "plain", strings.Repeat("x", 31), strings.Repeat("y", 32), strings.Repeat("z", 256), strings.Repeat("w", 65536),
	[]byte{0, 1, 2, 250}, make([]byte, 300), make([]byte, 70000),
	[]any{}, []any{1, "two", []any{3.5, nil}}, make([]any, 16), make([]any, 65536),
	map[string]any{}, map[string]any{"a": 1, "nested": map[string]any{"b": []any{"c", true}}},
	msgpack.RawMessage{0xd4, 1, 2}, msgpack.RawMessage{0xd8, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
	msgpack.RawMessage{0xc7, 2, 5, 0xaa, 0xbb},
}

func TestSkipAgainstOracle(t *testing.T) {
	for i, v := range oracleValues {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := skip(b, 0); got != len(b) {
			t.Errorf("value %d (%x...): skip = %d, want %d", i, b[:min(len(b), 8)], got, len(b))
		}
		if len(b) > 4096 {
			continue // every prefix of the big ones costs quadratic time
		}
		for cut := 0; cut < len(b); cut++ {
			if got := skip(b[:cut], 0); got != -1 {
				t.Errorf("value %d cut at %d of %d: skip = %d, want -1", i, cut, len(b), got)
				break
			}
		}
	}
}

func TestSkipRejectsHostileCounts(t *testing.T) {
	for _, b := range [][]byte{
		{0xc1},                         // never used
		{0xdd, 0xff, 0xff, 0xff, 0xff}, // 4G-element array with no elements
		{0xdf, 0x7f, 0xff, 0xff, 0xff, 0x01},
		{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}, // 4 GiB string
		{0x9f, 0x9f, 0x9f, 0x9f},
	} {
		if got := skip(b, 0); got != -1 {
			t.Errorf("skip(%x) = %d, want -1", b, got)
		}
	}
	// Deep nesting must not use the stack.
	deep := append([]byte(strings.Repeat("\x91", 1<<20)), 0xc0)
	if got := skip(deep, 0); got != len(deep) {
		t.Errorf("skip of 1M nested lists = %d, want %d", got, len(deep))
	}
}

func TestFindKeyAgreesWithCodecLookup(t *testing.T) {
	ev := execEvent(t, 7, "bash", "bash", "-c", "true")
	for _, key := range []string{"time", "seq", "comm", "args", "ret", "missing", "", "com", "commm"} {
		want, wantOK := codec.Lookup(ev, key)
		s, e := findKey(ev, key)
		if (s >= 0) != wantOK || (wantOK && string(ev[s:e]) != string(want)) {
			t.Errorf("findKey(%q) = [%d:%d], want %x (%v)", key, s, e, want, wantOK)
		}
	}
	// Keys that are not strings are skipped, not matched.
	m, _ := msgpack.Marshal(map[any]any{1: "one"})
	if s, _ := findKey(m, "1"); s >= 0 {
		t.Errorf("an int key matched a str key")
	}
	// A key found before the damage is still found; one after it is not.
	damaged := append(encodeEvent(t, kv{"a", 1}, kv{"b", 2}), 0xc1)
	damaged[0]++ // claim a third entry
	if s, _ := findKey(damaged, "a"); s < 0 {
		t.Errorf("key before the damage not found")
	}
	if s, _ := findKey(damaged, "z"); s >= 0 {
		t.Errorf("key found in damaged map")
	}
}

// FuzzScan feeds arbitrary bytes to every reader: none may panic, and what
// they report must stay within the input.
func FuzzScan(f *testing.F) {
	for _, v := range oracleValues {
		b, _ := msgpack.Marshal(v)
		f.Add(b)
	}
	f.Add(execEvent(f, 1, "sh", "sh", "-c", "echo hi"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n := skip(b, 0); n > len(b) {
			t.Fatalf("skip past the end: %d > %d", n, len(b))
		}
		s, e := findKey(b, "comm")
		if s >= 0 && (e > len(b) || s > e) {
			t.Fatalf("findKey bounds [%d:%d] of %d", s, e, len(b))
		}
		// The fast scan answers as the general one does.
		for _, key := range []string{"comm", "c", "args"} {
			if n, i := mapHeader(b, 0); i >= 0 {
				s, e := findKey(b, key)
				if s2, e2 := findKeyFrom(b, key, i, n); s != s2 || e != e2 {
					t.Fatalf("findKey(% x, %q) = %d, %d; findKeyFrom says %d, %d", b, key, s, e, s2, e2)
				}
			}
		}
		v := Value{raw: b}
		_, _ = v.Str()
		_, _ = v.Int()
		_, _ = v.Float()
		_ = v.Len()
		_ = v.Strings()
		_ = v.Index(3)
		for k, el := range v.Entries() {
			_, _ = k, el.Type()
		}
		var p struct {
			Comms []string
			Rate  float64
		}
		_ = Params{v}.Decode(&p)
		var anyv map[string]any
		_ = Params{v}.Decode(&anyv)
		ev := &Event{}
		ev.reset(b, 0, true, 0)
		_ = ev.String("comm")
		_ = ev.Int("pid")
		_ = ev.Strings("args")
		ev.SetString("user", "x")
		_, _ = ev.appendEncoded(nil)
	})
}

func TestFindKeyMissReportsEnd(t *testing.T) {
	ev := execEvent(t, 1, "sh", "sh")
	if s, e := findKey(ev, "nope"); s != -1 || e != len(ev) {
		t.Errorf("miss on a whole map = (%d, %d), want (-1, %d)", s, e, len(ev))
	}
	trailing := append(append([]byte(nil), ev...), 0xc0)
	if _, e := findKey(trailing, "nope"); e == len(trailing) {
		t.Errorf("trailing byte not noticed")
	}
	if s, e := findKey(ev[:len(ev)-1], "nope"); s != -1 || e != -1 {
		t.Errorf("miss on a truncated map = (%d, %d), want (-1, -1)", s, e)
	}
}
