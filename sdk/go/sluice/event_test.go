//go:build !wasip1

package sluice

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

func TestEventGetters(t *testing.T) {
	raw := execEvent(t, 7, "bash", "bash", "-c", "echo --password=x")
	checks := []struct {
		name string
		get  func(ev *Event) (got, want any)
	}{
		{"String(comm)", func(ev *Event) (any, any) { return ev.String("comm"), "bash" }},
		{"StringBytes(host)", func(ev *Event) (any, any) { return string(ev.StringBytes("host")), "vm" }},
		{"Int(ret)", func(ev *Event) (any, any) { return ev.Int("ret"), int64(-2) }},
		{"Uint(mntns_id)", func(ev *Event) (any, any) { return ev.Uint("mntns_id"), uint64(4026531832) }},
		{"Uint of a negative", func(ev *Event) (any, any) { return ev.Uint("ret"), uint64(0) }},
		{"Float(pid)", func(ev *Event) (any, any) { return ev.Float("pid"), 16588.0 }},
		{"Strings(args)", func(ev *Event) (any, any) {
			return ev.Strings("args"), []string{"bash", "-c", "echo --password=x"}
		}},
		{"args[2]", func(ev *Event) (any, any) {
			b, _ := ev.Get("args").Index(2).StringBytes()
			return string(b), "echo --password=x"
		}},
		{"Has(ret_error)", func(ev *Event) (any, any) { return ev.Has("ret_error"), true }},
		{"Has(nope)", func(ev *Event) (any, any) { return ev.Has("nope"), false }},
		{"String(nope)", func(ev *Event) (any, any) { return ev.String("nope"), "" }},
		{"StringBytes(nope)", func(ev *Event) (any, any) { return ev.StringBytes("nope") == nil, true }},
		{"Int of a string", func(ev *Event) (any, any) { return ev.Int("comm"), int64(0) }},
		{"Type(args)", func(ev *Event) (any, any) { return ev.Get("args").Type(), TypeArray }},
		{"Type(seq)", func(ev *Event) (any, any) { return ev.Get("seq").Type(), TypeInt }},
		{"Type(nope)", func(ev *Event) (any, any) { return ev.Get("nope").Type(), TypeMissing }},
	}
	// Each getter runs as an event's first lookup (a scan that stops at the
	// field) and as a later one (through the index): both must agree.
	for _, c := range checks {
		for _, indexed := range []bool{false, true} {
			ev := &Event{}
			ev.reset(raw, 3, true, 0)
			if indexed {
				_, _ = ev.Has("time"), ev.Has("gid") // the second lookup indexes the event
			}
			got, want := c.get(ev)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s (indexed: %v) (-want +got):\n%s", c.name, indexed, diff)
			}
		}
	}
	ev := &Event{}
	ev.reset(raw, 3, true, 0)
	if ev.Index() != 3 {
		t.Errorf("Index = %d", ev.Index())
	}
	n := 0
	ev.Each(func(k []byte, v Value) bool { n++; return string(k) != "seq" })
	if n != 5 {
		t.Errorf("Each stopped after %d fields, want 5 (at seq)", n)
	}
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

// Iter yields what Elems does, on every value of the oracle and on
// truncations of a list.
func TestIterMatchesElems(t *testing.T) {
	lists := [][]byte{
		codec.AppendString(codec.AppendInt(codec.AppendArrayHeader(nil, 2), 7), "x"),
		codec.AppendArrayHeader(nil, 0),
		codec.AppendString(nil, "not a list"),
	}
	long := codec.AppendArrayHeader(nil, 20)
	for i := range 20 {
		long = codec.AppendString(long, strings.Repeat("a", i))
	}
	lists = append(lists, long)
	for n := range len(long) {
		lists = append(lists, long[:n])
	}
	for _, b := range lists {
		var want, got []string
		for el := range RawValue(b).Elems() {
			want = append(want, string(el.Raw()))
		}
		for it := RawValue(b).Iter(); ; {
			el, ok := it.Next()
			if !ok {
				break
			}
			got = append(got, string(el.Raw()))
		}
		if strings.Join(want, "|") != strings.Join(got, "|") || len(want) != len(got) {
			t.Errorf("% x: Iter yields %q, Elems %q", b, got, want)
		}
	}
}

// One field set where the event has it takes the splice (appendReplaced);
// the result is the general path's, key order and all.
func TestEventReplaceOneField(t *testing.T) {
	raw := encodeEvent(t, kv{"time", "t"}, kv{"uid", 0}, kv{"user", "uid:0"}, kv{"comm", "sh"}, kv{"args", []string{"sh"}})
	for _, c := range []struct {
		name string
		set  func(ev *Event)
		keys []string
		want map[string]any
	}{
		{"one set", func(ev *Event) { ev.SetString("user", "root") },
			[]string{"time", "uid", "user", "comm", "args"}, map[string]any{"user": "root"}},
		{"set twice", func(ev *Event) { ev.SetString("user", "x").SetString("user", "a much longer name than before") },
			[]string{"time", "uid", "user", "comm", "args"}, map[string]any{"user": "a much longer name than before"}},
		{"first field", func(ev *Event) { ev.SetInt("time", 7) },
			[]string{"time", "uid", "user", "comm", "args"}, map[string]any{"time": int8(7)}},
		{"last field", func(ev *Event) { ev.SetStrings("args", []string{"a", "b"}) },
			[]string{"time", "uid", "user", "comm", "args"}, map[string]any{"args": []any{"a", "b"}}},
		{"set and add (general path)", func(ev *Event) { ev.SetString("user", "root").SetInt("n", 1) },
			[]string{"time", "uid", "user", "comm", "args", "n"}, map[string]any{"user": "root", "n": int8(1)}},
	} {
		ev := &Event{}
		ev.reset(raw, 0, true, 0)
		c.set(ev)
		b, err := ev.appendEncoded(nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if diff := cmp.Diff(c.keys, keys(t, b)); diff != "" {
			t.Errorf("%s: keys (-want +got):\n%s", c.name, diff)
		}
		got := decodeMap(t, b)
		for k, v := range c.want {
			if diff := cmp.Diff(v, got[k]); diff != "" {
				t.Errorf("%s: %s (-want +got):\n%s", c.name, k, diff)
			}
		}
		if got["comm"] != "sh" {
			t.Errorf("%s: comm = %v", c.name, got["comm"])
		}
	}
}

// A set to the bytes of the field right after the one read last is no
// change, for every setter; anything else is one.
func TestEventSetOfTheSameValue(t *testing.T) {
	long := strings.Repeat("x", 40) // a str8, past fixstr
	raw := encodeEvent(t, kv{"uid", 1000}, kv{"user", "alice"}, kv{"gid", 1000}, kv{"name", long}, kv{"n", 7})
	for _, c := range []struct {
		name    string
		do      func(ev *Event)
		changed bool
	}{
		{"same str after the read", func(ev *Event) { ev.Get("uid"); ev.SetString("user", "alice") }, false},
		{"same str, bytes", func(ev *Event) { ev.Get("uid"); ev.SetStringBytes("user", []byte("alice")) }, false},
		{"same int", func(ev *Event) { ev.Get("user"); ev.SetInt("gid", 1000) }, false},
		{"same long str", func(ev *Event) { ev.Get("gid"); ev.SetString("name", long) }, false},
		{"same value", func(ev *Event) { v := ev.Get("uid"); ev.Get("user"); ev.SetValue("gid", v) }, false},
		{"after a second read", func(ev *Event) { ev.Get("n"); ev.Get("uid"); ev.SetString("user", "alice") }, false},
		{"other str", func(ev *Event) { ev.Get("uid"); ev.SetString("user", "alicf") }, true},
		{"prefix of the str", func(ev *Event) { ev.Get("uid"); ev.SetString("user", "alic") }, true},
		{"other long str", func(ev *Event) { ev.Get("gid"); ev.SetString("name", long+"y") }, true},
		{"other type", func(ev *Event) { ev.Get("uid"); ev.SetInt("user", 5) }, true},
		{"not right after the read", func(ev *Event) { ev.Get("gid"); ev.SetString("user", "alice") }, true},
		{"nothing read", func(ev *Event) { ev.SetString("user", "alice") }, true},
		{"read missed", func(ev *Event) { ev.Get("nope"); ev.SetString("uid", "alice") }, true},
		{"after the last field", func(ev *Event) { ev.Get("n"); ev.SetString("user", "alice") }, true},
		{"after another change", func(ev *Event) { ev.Get("uid"); ev.SetInt("x", 1).SetString("user", "alice") }, true},
		{"after a delete", func(ev *Event) { ev.Get("uid"); ev.Delete("user").SetString("user", "alice") }, true},
	} {
		ev := &Event{}
		ev.reset(raw, 0, true, 0)
		c.do(ev)
		if ev.Changed() != c.changed {
			t.Errorf("%s: Changed() = %v", c.name, ev.Changed())
		}
		if !c.changed && len(ev.vals) != 0 {
			t.Errorf("%s: %d bytes of values kept for no change", c.name, len(ev.vals))
		}
		b, err := ev.appendEncoded(nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := decodeMap(t, b); !c.changed && string(b) != string(raw) {
			t.Errorf("%s: event %v, want it as it came", c.name, got)
		}
	}
}
