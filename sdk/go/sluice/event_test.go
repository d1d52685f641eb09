//go:build !wasip1

package sluice

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestEventGetters(t *testing.T) {
	raw := execEvent(t, 7, "bash", "bash", "-c", "echo --password=x")
	ev := &Event{}
	ev.reset(raw, 3, true, 0)
	// The first lookup scans, later ones use the index: both must agree.
	for round := range 2 {
		if got := ev.String("comm"); got != "bash" {
			t.Errorf("round %d: comm = %q", round, got)
		}
		if got := string(ev.StringBytes("host")); got != "vm" {
			t.Errorf("round %d: host = %q", round, got)
		}
		if got := ev.Int("ret"); got != -2 {
			t.Errorf("round %d: ret = %d", round, got)
		}
		if got := ev.Uint("mntns_id"); got != 4026531832 {
			t.Errorf("round %d: mntns_id = %d", round, got)
		}
		if got := ev.Uint("ret"); got != 0 {
			t.Errorf("round %d: Uint of a negative = %d, want 0", round, got)
		}
		if got := ev.Float("pid"); got != 16588 {
			t.Errorf("round %d: Float(pid) = %v", round, got)
		}
		if diff := cmp.Diff([]string{"bash", "-c", "echo --password=x"}, ev.Strings("args")); diff != "" {
			t.Errorf("round %d: args (-want +got):\n%s", round, diff)
		}
		if got := ev.Get("args").Index(2); string(must(got.StringBytes())) != "echo --password=x" {
			t.Errorf("round %d: args[2] = %x", round, got.Raw())
		}
		if !ev.Has("ret_error") || ev.Has("nope") || ev.String("nope") != "" || ev.Int("comm") != 0 {
			t.Errorf("round %d: Has/zero values wrong", round)
		}
		if ev.Get("args").Type() != TypeArray || ev.Get("seq").Type() != TypeInt || ev.Get("nope").Type() != TypeMissing {
			t.Errorf("round %d: types wrong", round)
		}
	}
	if ev.Index() != 3 {
		t.Errorf("Index = %d", ev.Index())
	}
	n := 0
	ev.Each(func(k []byte, v Value) bool { n++; return string(k) != "seq" })
	if n != 5 {
		t.Errorf("Each stopped after %d fields, want 5 (at seq)", n)
	}
}

func must[T any](v T, ok bool) T {
	if !ok {
		panic("not ok")
	}
	return v
}

func TestEventChangesKeepOrder(t *testing.T) {
	raw := encodeEvent(t, kv{"time", "t"}, kv{"host", "h"}, kv{"uid", 0}, kv{"comm", "sh"}, kv{"args", []string{"sh"}})
	ev := &Event{}
	ev.reset(raw, 0, true, 0)
	ev.SetString("user", "root").
		SetString("comm", "SH").
		Delete("args").
		SetInt("uid", 65534).
		Set("tags", []any{"a", 1, map[string]any{"k": true}}).
		SetString("user", "nobody").
		Delete("missing")
	if got := ev.String("user"); got != "nobody" {
		t.Errorf("Get after Set = %q", got)
	}
	if ev.Has("args") {
		t.Errorf("Has after Delete")
	}
	b, err := ev.appendEncoded(nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"time", "host", "uid", "comm", "tags", "user"}, keys(t, b)); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	want := map[string]any{
		"time": "t", "host": "h", "uid": uint16(65534), "comm": "SH", "user": "nobody",
		"tags": []any{"a", int8(1), map[string]any{"k": true}},
	}
	if diff := cmp.Diff(want, decodeMap(t, b)); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
}

func TestEventSetTypes(t *testing.T) {
	ev := &Event{}
	ev.reset(nil, noInput, false, 0)
	when := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	ev.Set("nil", nil).Set("b", true).Set("i8", int8(-5)).Set("u", uint(7)).Set("f32", float32(1.5)).
		Set("bytes", []byte{1, 2}).Set("strs", []string{"x"}).Set("t", when).Set("d", 2*time.Second).
		Set("v", RawValue([]byte{0xa1, 'z'})).SetBool("sb", false).SetFloat("sf", 0.25).SetUint("su", 1<<40).
		SetStringBytes("ss", []byte("yes")).SetStrings("sl", []string{"p", "q"}).SetValue("sv", RawValue([]byte{0x90}))
	b, err := ev.appendEncoded(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"nil": nil, "b": true, "i8": int8(-5), "u": int8(7), "f32": 1.5, "bytes": []byte{1, 2},
		"strs": []any{"x"}, "t": "2026-01-02T03:04:05.000000006Z", "d": uint32(2e9), "v": "z",
		"sb": false, "sf": 0.25, "su": uint64(1 << 40), "ss": "yes", "sl": []any{"p", "q"}, "sv": []any{},
	}
	if diff := cmp.Diff(want, decodeMap(t, b)); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	for name, fn := range map[string]func(){
		"Set of a channel":        func() { ev.Set("c", make(chan int)) },
		"SetValue of a bad value": func() { ev.SetValue("x", RawValue([]byte{0xa5, 'a'})) },
		"Set of an empty Value":   func() { ev.Set("x", Value{}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}

func TestEventChangeOfMalformedInput(t *testing.T) {
	raw := encodeEvent(t, kv{"a", 1}, kv{"b", 2})
	raw[0]++ // claims three entries
	ev := &Event{}
	ev.reset(raw, 0, true, 0)
	ev.SetInt("c", 3)
	if _, err := ev.appendEncoded(nil); err == nil {
		t.Fatal("no error for a malformed input")
	}
}

func TestWriterNested(t *testing.T) {
	var w Writer
	for round := range 2 { // a reset writer must produce the same bytes
		w.Reset()
		w.BeginMap()
		w.Key("n").Int(-1)
		w.Key("list").BeginArray().String("a").Uint(2).BeginMap().Key("deep").Bool(true).EndMap().Nil().EndArray()
		w.Key("empty").BeginMap().EndMap()
		w.Key("big").BeginArray()
		for i := range 20 {
			w.Int(int64(i))
		}
		w.EndArray()
		w.Key("raw").Raw(RawValue([]byte{0xa2, 'o', 'k'})).Key("missing").Raw(Value{})
		w.Key("f").Float(0.5).Key("sb").StringBytes([]byte("x")).Key("any").Any([]string{"y"})
		w.EndMap()
		big := make([]any, 20)
		for i := range big {
			big[i] = int8(i)
		}
		want := map[string]any{
			"n": int8(-1), "list": []any{"a", int8(2), map[string]any{"deep": true}, nil},
			"empty": map[string]any{}, "big": big, "raw": "ok", "missing": nil,
			"f": 0.5, "sb": "x", "any": []any{"y"},
		}
		if diff := cmp.Diff(want, decodeMap(t, w.Bytes())); diff != "" {
			t.Errorf("round %d (-want +got):\n%s", round, diff)
		}
		if w.Bytes()[0] != 0x89 {
			t.Errorf("round %d: header %#x, want fixmap of 9", round, w.Bytes()[0])
		}
	}
}
