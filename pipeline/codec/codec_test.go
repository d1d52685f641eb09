package codec

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"
)

// oracleValues are encoded by vmihailenco/msgpack, an independent encoder.
var oracleValues = []any{
	nil, true, false, 0, 1, 127, 128, 255, 256, 65535, 65536, int64(math.MaxUint32), int64(math.MaxUint32) + 1,
	-1, -32, -33, -128, -129, -32768, -32769, int64(math.MinInt32) - 1, int64(math.MinInt64), uint64(math.MaxUint64),
	1.5, float32(2.25), -0.0, 1e300, 1e-9,
	"", "plain", strings.Repeat("x", 31), strings.Repeat("y", 32), strings.Repeat("z", 256), strings.Repeat("w", 65536),
	"quote\" backslash\\ newline\n tab\t nul\x00 bell\x07", "héllo ☃ 🐧", "bad\xffutf8",
	[]byte{0, 1, 2, 250},
	[]any{}, []any{1, "two", []any{3.5, nil}},
	map[string]any{}, map[string]any{"a": 1, "nested": map[string]any{"b": []any{"c", true}}},
	make([]any, 16), make([]any, 65536),
}

func TestSkipAndTruncation(t *testing.T) {
	for i, v := range oracleValues {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		n, err := Skip(b)
		if err != nil || n != len(b) {
			t.Errorf("value %d: Skip = %d, %v; want %d", i, n, err, len(b))
		}
		if len(b) > 4096 {
			continue // every prefix of the big ones costs quadratic time
		}
		for cut := 0; cut < len(b); cut++ {
			if _, err := Skip(b[:cut]); err != ErrShort {
				t.Errorf("value %d cut at %d of %d: Skip error %v, want ErrShort", i, cut, len(b), err)
				break
			}
		}
	}
}

func TestAppendJSONAgainstOracle(t *testing.T) {
	for i, v := range oracleValues {
		b, _ := msgpack.Marshal(v)
		js, err := AppendJSON(nil, b)
		if err != nil {
			t.Errorf("value %d: %v", i, err)
			continue
		}
		if !json.Valid(js) {
			t.Errorf("value %d: invalid JSON %q", i, js)
			continue
		}
		var got any
		json.Unmarshal(js, &got)
		want := jsonOf(t, v)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("value %d (-want +got):\n%s", i, diff)
		}
	}
}

// jsonOf is what encoding/json makes of v, through msgpack's decoding (so
// that []byte and float32 come out the way a consumer sees them).
func jsonOf(t *testing.T, v any) any {
	t.Helper()
	switch s := v.(type) {
	case string:
		return strings.ToValidUTF8(s, "\ufffd")
	case float32:
		return float64(s)
	}
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	json.Unmarshal(js, &out)
	return out
}

func TestAppendJSONSpecials(t *testing.T) {
	m := AppendMapHeader(nil, 4)
	m = AppendFloat64(AppendString(m, "nan"), math.NaN())
	m = AppendFloat64(AppendString(m, "inf"), math.Inf(1))
	m = AppendString(AppendInt(m, 7), "int key")
	m = append(AppendString(m, "ext"), 0xd4, 5, 0xab)
	js, err := AppendJSON(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"nan":null,"inf":null,"7":"int key","ext":{"ext":5,"data":"qw=="}}`
	if string(js) != want {
		t.Errorf("got  %s\nwant %s", js, want)
	}
	if got, _ := AppendJSON(nil, AppendString(nil, "<a>&\u2028")); string(got) != `"<a>&\u2028"` {
		t.Errorf("html and line separator: %s", got)
	}
}

func TestAppendersRoundTrip(t *testing.T) {
	var ints = []int64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, -1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64, math.MaxInt64}
	for _, v := range ints {
		var got int64
		if err := msgpack.Unmarshal(AppendInt(nil, v), &got); err != nil || got != v {
			t.Errorf("AppendInt(%d) decodes to %d, %v", v, got, err)
		}
		r, rest, err := ReadInt(AppendInt(nil, v))
		if err != nil || r != v || len(rest) != 0 {
			t.Errorf("ReadInt(AppendInt(%d)) = %d, %v", v, r, err)
		}
	}
	if u, _, err := ReadUint(AppendUint(nil, math.MaxUint64)); err != nil || u != math.MaxUint64 {
		t.Errorf("ReadUint max = %d, %v", u, err)
	}
	for _, n := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		s := strings.Repeat("s", n)
		var got string
		if err := msgpack.Unmarshal(AppendString(nil, s), &got); err != nil || got != s {
			t.Errorf("AppendString of %d bytes: %v", n, err)
		}
		var bin []byte
		if err := msgpack.Unmarshal(AppendBytes(nil, []byte(s)), &bin); err != nil || string(bin) != s {
			t.Errorf("AppendBytes of %d bytes: %v", n, err)
		}
	}
	for _, n := range []int{0, 15, 16, 65535, 65536} {
		a := AppendArrayHeader(nil, n)
		m := AppendMapHeader(nil, n)
		for i := 0; i < n; i++ {
			a = AppendNil(a)
			m = AppendNil(AppendInt(m, int64(i)))
		}
		if k, err := Skip(a); err != nil || k != len(a) {
			t.Errorf("array of %d: Skip %d, %v", n, k, err)
		}
		if k, err := Skip(m); err != nil || k != len(m) {
			t.Errorf("map of %d: Skip %d, %v", n, k, err)
		}
		var arr []any
		if err := msgpack.Unmarshal(a, &arr); err != nil || len(arr) != n {
			t.Errorf("array of %d decodes to %d, %v", n, len(arr), err)
		}
	}
	// A header written before its count is known, then patched.
	b := AppendMapHeader32(nil)
	b = AppendBool(AppendString(b, "a"), true)
	b = AppendFloat64(AppendString(b, "b"), 0.5)
	PatchHeader32(b, 0, 2)
	var m map[string]any
	if err := msgpack.Unmarshal(b, &m); err != nil || m["a"] != true || m["b"] != 0.5 {
		t.Errorf("patched map = %v, %v", m, err)
	}
}

func TestLookupAndEach(t *testing.T) {
	ev, _ := msgpack.Marshal(map[string]any{"time": "t", "comm": "bash", "args": []any{"a", "b"}, "pid": 42})
	raw, ok := Lookup(ev, "pid")
	if v, _, err := ReadInt(raw); !ok || err != nil || v != 42 {
		t.Errorf("Lookup pid = %x, %v", raw, ok)
	}
	raw, ok = Lookup(ev, "comm")
	if s, _, err := ReadString(raw); !ok || err != nil || string(s) != "bash" {
		t.Errorf("Lookup comm = %q, %v", s, err)
	}
	if _, ok := Lookup(ev, "missing"); ok {
		t.Error("found a missing key")
	}
	seen := map[string]bool{}
	if err := Each(ev, func(k, v []byte) bool { seen[string(k)] = true; return true }); err != nil || len(seen) != 4 {
		t.Errorf("Each saw %v, %v", seen, err)
	}
	n := 0
	Each(ev, func(k, v []byte) bool { n++; return false })
	if n != 1 {
		t.Errorf("Each did not stop: %d calls", n)
	}
	if _, ok := Lookup([]byte{0x81, 0xa1}, "a"); ok {
		t.Error("Lookup accepted a truncated map")
	}
}

func FuzzAppendJSON(f *testing.F) {
	for _, v := range oracleValues[:30] {
		b, _ := msgpack.Marshal(v)
		f.Add(b)
	}
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xc7, 0x02, 0x01, 0xaa, 0xbb})
	f.Fuzz(func(t *testing.T, b []byte) {
		js, err := AppendJSON(nil, b)
		_, skipErr := Skip(b)
		if err != nil {
			return
		}
		if !json.Valid(js) {
			t.Fatalf("invalid JSON %q from %x", js, b)
		}
		if skipErr != nil {
			t.Fatalf("AppendJSON accepted what Skip rejects (%v): %x", skipErr, b)
		}
	})
}

func FuzzLookup(f *testing.F) {
	ev, _ := msgpack.Marshal(map[string]any{"comm": "bash", "pid": 42})
	f.Add(ev, "pid")
	f.Add([]byte{0x81}, "x")
	f.Fuzz(func(t *testing.T, b []byte, key string) {
		if raw, ok := Lookup(b, key); ok {
			if n, err := Skip(raw); err != nil || n != len(raw) {
				t.Fatalf("Lookup returned %x, not one value", raw)
			}
		}
		Each(b, func(k, v []byte) bool { return true })
	})
}

func BenchmarkAppendJSON(b *testing.B) {
	ev := AppendMapHeader(nil, 15)
	for _, kv := range [][2]string{{"time", "2026-11-22T10:00:00.123456789Z"}, {"host", "node-a"}, {"source", "exec"}, {"gadget", "trace_exec"}, {"comm", "bash"}, {"filename", "/usr/bin/curl"}, {"uid_name", "root"}, {"ret_error", ""}} {
		ev = AppendString(AppendString(ev, kv[0]), kv[1])
	}
	for _, k := range []string{"seq", "pid", "ppid", "uid", "gid", "ret"} {
		ev = AppendInt(AppendString(ev, k), 4242)
	}
	ev = AppendArrayHeader(AppendString(ev, "args"), 5)
	for _, a := range []string{"curl", "-sS", "--max-time", "10", "https://example.com/"} {
		ev = AppendString(ev, a)
	}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(ev)))
	for b.Loop() {
		buf, _ = AppendJSON(buf[:0], ev)
	}
}

func BenchmarkLookup(b *testing.B) {
	ev, _ := msgpack.Marshal(map[string]any{"a": 1, "b": "two", "c": []any{1, 2, 3}, "d": 4.5, "e": "five", "zzz": 9})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := Lookup(ev, "zzz"); !ok {
			b.Fatal("missing")
		}
	}
}
