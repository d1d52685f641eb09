package wasmstages

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// entry is one result entry, for building results in tests.
type entry struct {
	op    byte
	index uint32
	data  []byte // EMIT and SET only
}

func buildResult(entries ...entry) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(entries)))
	for _, e := range entries {
		b = append(b, e.op)
		b = binary.LittleEndian.AppendUint32(b, e.index)
		if e.op == opEmit || e.op == opSet {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(e.data)))
			b = append(b, e.data...)
		}
	}
	return b
}

func mapOf(kv ...string) []byte {
	b := codec.AppendMapHeader(nil, len(kv)/2)
	for _, s := range kv {
		b = codec.AppendString(b, s)
	}
	return b
}

var testSchema = &pipeline.Schema{Gadget: "g"}

func testInputs() []pipeline.Event {
	return []pipeline.Event{
		{Data: mapOf("comm", "a"), Source: "s", Seq: 1, Schema: testSchema},
		{Data: mapOf("comm", "b"), Source: "s", Seq: 2, Schema: testSchema},
		{Data: mapOf("comm", "c"), Source: "t", Seq: 9, Schema: testSchema},
	}
}

func TestParseResult(t *testing.T) {
	in := testInputs()
	emitted := mapOf("comm", "b", "user", "root")
	tests := []struct {
		name    string
		res     []byte
		tick    bool
		set     bool // ABI version 2
		want    []pipeline.Event
		wantErr string
	}{
		{name: "drop all", res: buildResult(), want: nil},
		{name: "keep", res: buildResult(entry{op: opKeep, index: 2}, entry{op: opKeep, index: 0}), want: []pipeline.Event{in[2], in[0]}},
		{name: "keep runs", res: buildResult(entry{op: opKeep, index: 1}, entry{op: opKeep, index: 2}, entry{op: opKeep, index: 0}, entry{op: opKeep, index: 1}, entry{op: opKeep, index: 1}),
			want: []pipeline.Event{withPart(in[1], 1), in[2], in[0], withPart(in[1], 2), withPart(in[1], 3)}},
		{name: "keep run past the batch", res: buildResult(entry{op: opKeep, index: 1}, entry{op: opKeep, index: 2}, entry{op: opKeep, index: 3}), wantErr: "entry 2: KEEP of input 3, but the batch has 3 events"},
		{name: "replace and flat-map", res: buildResult(entry{op: opEmit, index: 1, data: emitted}, entry{op: opKeep, index: 1}, entry{op: opEmit, index: noInput, data: mapOf()}),
			want: []pipeline.Event{{Data: emitted, Source: "s", Seq: 2, Part: 1, Schema: testSchema}, withPart(in[1], 2), {Data: mapOf(), Source: "stage"}}},
		{name: "tick emit", tick: true, res: buildResult(entry{op: opEmit, index: noInput, data: emitted}), want: []pipeline.Event{{Data: emitted, Source: "stage"}}},
		{name: "set", set: true, res: buildResult(entry{op: opSet, index: 1, data: mapOf("user", "root")}, entry{op: opSet, index: 0, data: mapOf("comm", "x", "z", "1")}),
			want: []pipeline.Event{{Data: emitted, Source: "s", Seq: 2, Schema: testSchema}, {Data: mapOf("comm", "x", "z", "1"), Source: "s", Seq: 1, Schema: testSchema}}},
		{name: "set what is there", set: true, res: buildResult(entry{op: opSet, index: 2, data: mapOf("comm", "c")}, entry{op: opSet, index: 0, data: mapOf()}),
			want: []pipeline.Event{in[2], in[0]}},
		{name: "set in version 1", res: buildResult(entry{op: opSet, index: 1, data: mapOf("user", "root")}), wantErr: "op 3 (SET) needs ABI version 2"},
		{name: "set out of range", set: true, res: buildResult(entry{op: opSet, index: 3, data: mapOf("a", "b")}), wantErr: "SET of input 3, but the batch has 3 events"},
		{name: "set in a tick", set: true, tick: true, res: buildResult(entry{op: opSet, index: 0, data: mapOf("a", "b")}), wantErr: "a tick has no inputs to SET"},
		{name: "set key twice", set: true, res: buildResult(entry{op: opSet, index: 0, data: mapOf("a", "b", "a", "c")}), wantErr: `key "a" twice`},
		{name: "set int key", set: true, res: buildResult(entry{op: opSet, index: 0, data: []byte{0x81, 0x01, 0xa1, 'x'}}), wantErr: "not a string"},
		{name: "set array", set: true, res: buildResult(entry{op: opSet, index: 0, data: []byte{0x91, 0x01}}), wantErr: "not a msgpack map"},
		{name: "set past end", set: true, res: buildResult(entry{op: opSet, data: emitted})[:16], wantErr: "SET of 18 bytes at byte 13 runs past the end"},
		{name: "unknown op in version 2", set: true, res: buildResult(entry{op: 4}), wantErr: "op 4 is not KEEP (1), EMIT (2) or SET (3)"},
		{name: "no count", res: []byte{1, 0}, wantErr: "hold no entry count"},
		{name: "cut entry", res: buildResult(entry{op: opKeep})[:7], wantErr: "cut short"},
		{name: "keep out of range", res: buildResult(entry{op: opKeep, index: 3}), wantErr: "KEEP of input 3, but the batch has 3 events"},
		{name: "emit out of range", res: buildResult(entry{op: opEmit, index: 7, data: emitted}), wantErr: "derived from input 7"},
		{name: "unknown op", res: buildResult(entry{op: 3}), wantErr: "op 3"},
		{name: "emit past end", res: buildResult(entry{op: opEmit, data: emitted})[:16], wantErr: "runs past the end"},
		{name: "emit array", res: buildResult(entry{op: opEmit, data: []byte{0x91, 0x01}}), wantErr: "not a msgpack map"},
		{name: "emit empty", res: buildResult(entry{op: opEmit, data: nil}), wantErr: "empty"},
		{name: "emit two maps", res: buildResult(entry{op: opEmit, data: append(mapOf(), mapOf()...)}), wantErr: "1 bytes follow the map"},
		{name: "trailing bytes", res: append(buildResult(entry{op: opKeep}), 0), wantErr: "1 bytes follow the last of 1 entries"},
		{name: "tick keep", tick: true, res: buildResult(entry{op: opKeep}), wantErr: "a tick has no inputs to KEEP"},
		{name: "tick emit from input", tick: true, res: buildResult(entry{op: opEmit, index: 0, data: emitted}), wantErr: "ticks have no inputs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tin []pipeline.Event
			if !tt.tick {
				tin = in
			}
			prefix := []pipeline.Event{{Seq: 100}}
			rules := resultRules{tick: tt.tick, set: tt.set, source: "stage", setBudget: 1 << 20}
			out, err := parseResult(tt.res, tin, prefix, rules, nil)
			if tt.wantErr != "" {
				if !errors.Is(err, errMalformed) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want a malformed-result error containing %q", err, tt.wantErr)
				}
				if len(out) != 1 {
					t.Errorf("a malformed result left %d events in out, want the 1 given", len(out))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range out {
				// An event from no input has a process-wide unique Part
				// (TestParseResultDerivedParts checks them).
				if out[i].Seq == 0 && out[i].Source == "stage" {
					if out[i].Part == 0 {
						t.Errorf("event %d, made from no input, has Part 0", i)
					}
					out[i].Part = 0
				}
			}
			if diff := cmp.Diff(append(prefix, tt.want...), out); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParseResult feeds arbitrary results to the parser: it must never
// panic, must take every EMIT payload out of the guest's memory, and must
// accept only results whose every event is a msgpack map.
func FuzzParseResult(f *testing.F) {
	in := testInputs()
	f.Add(buildResult(entry{op: opKeep, index: 1}), false, false)
	f.Add(buildResult(entry{op: opEmit, index: 0, data: mapOf("k", "v")}, entry{op: opKeep, index: 2}), false, false)
	f.Add(buildResult(entry{op: opEmit, index: noInput, data: mapOf("type", "summary")}), true, false)
	f.Add(buildResult(entry{op: opEmit, index: 2, data: []byte{0xdf, 0, 0, 0, 1, 0xa1, 'k', 0x92, 0xc3, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0}}), false, false)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f}, false, false)
	f.Add(buildResult(entry{op: opSet, index: 1, data: mapOf("comm", "x", "user", "y")}, entry{op: opKeep, index: 1}, entry{op: opSet, index: 2, data: mapOf("comm", "c")}), false, true)
	f.Add(buildResult(entry{op: opSet, index: 0, data: []byte{0x82, 0xa1, 'k', 0x91, 0x80, 0xd9, 1, 'c', 0xc0}}), false, true)
	f.Fuzz(func(t *testing.T, res []byte, tick, set bool) {
		var tin []pipeline.Event
		if !tick {
			tin = in
		}
		guestMem := bytes.Clone(res)
		out, err := parseResult(guestMem, tin, nil, resultRules{tick: tick, set: set, source: "stage", setBudget: 1 << 20}, nil)
		if err != nil {
			if !errors.Is(err, errMalformed) || len(out) != 0 {
				t.Fatalf("error %v with %d events", err, len(out))
			}
			return
		}
		before := make([][]byte, len(out))
		for i, ev := range out {
			if err := checkEvent(ev.Data); err != nil {
				t.Fatalf("event %d accepted but not a map: %v", i, err)
			}
			before[i] = bytes.Clone(ev.Data)
		}
		// The guest reuses its memory on the next call.
		for i := range guestMem {
			guestMem[i] ^= 0xff
		}
		for i, ev := range out {
			if !bytes.Equal(ev.Data, before[i]) {
				t.Fatalf("event %d still points into guest memory", i)
			}
		}
		// However a result repeats its inputs, no two events it yields
		// share an identity (a deduplicating sink would drop one).
		for id, n := range identities(out) {
			if n > 1 {
				t.Fatalf("identity %+v shared by %d events", id, n)
			}
		}
	})
}

// The events a result emits or sets outlive the guest memory they came
// from and every later call through the same scratch, which copies into
// the rest of the same arena: small events share pooled arenas, and one
// too large for an arena's quarter gets a buffer of its own.
func TestParseResultOutputsOutliveLaterCalls(t *testing.T) {
	in := testInputs()
	var sc resultScratch
	rules := resultRules{set: true, source: "stage", setBudget: 1 << 20}
	huge := mapOf("blob", strings.Repeat("x", pipeline.ArenaSize/2))
	var kept [][]byte
	var held []pipeline.Event
	for call := range 64 {
		guestMem := buildResult(
			entry{op: opEmit, index: 0, data: mapOf("call", strconv.Itoa(call))},
			entry{op: opSet, index: 1, data: mapOf("comm", "set"+strconv.Itoa(call))},
			entry{op: opEmit, index: 2, data: huge},
		)
		out, err := parseResult(guestMem, in, nil, rules, &sc)
		if err != nil {
			t.Fatalf("call %d: %v", call, err)
		}
		if len(out) != 3 {
			t.Fatalf("call %d: %d events, want 3", call, len(out))
		}
		for i := range guestMem {
			guestMem[i] ^= 0xff // the guest reuses its memory
		}
		for _, ev := range out {
			kept = append(kept, bytes.Clone(ev.Data))
		}
		held = append(held, out...)
		if call > 0 {
			// Not a buffer per call: this call's first event follows the
			// last call's small one in the same arena (64 calls' small
			// events fit one).
			prev := held[len(held)-5].Data
			if unsafe.SliceData(held[len(held)-3].Data) != (*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(prev)), len(prev))) {
				t.Fatalf("call %d: the EMIT was not copied next to the last call's SET", call)
			}
		}
	}
	for i, ev := range held {
		if !bytes.Equal(ev.Data, kept[i]) {
			t.Fatalf("event %d changed after later calls:\n got %x\nwant %x", i, ev.Data, kept[i])
		}
	}
	if got, _ := codec.Lookup(held[len(held)-2].Data, "comm"); !bytes.Contains(got, []byte("set63")) {
		t.Errorf("last SET event's comm is %q, want set63", got)
	}
	if cap(held[2].Data) != len(huge) {
		t.Errorf("a %d-byte event got %d bytes of capacity, want a buffer of its own", len(huge), cap(held[2].Data))
	}
}

func TestEncodeBatch(t *testing.T) {
	in := testInputs()
	b := make([]byte, batchSize(in))
	encodeBatch(b, in)
	want := binary.LittleEndian.AppendUint32(nil, 3)
	for _, ev := range in {
		want = binary.LittleEndian.AppendUint32(want, uint32(len(ev.Data)))
		want = append(want, ev.Data...)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("batch\n got %x\nwant %x", b, want)
	}
}

func TestAppendParams(t *testing.T) {
	got, err := appendParams(nil, map[string]any{
		"z": []any{int64(-1), uint8(2), 1.5, true, nil},
		"a": map[string]any{"n": []string{"x"}, "m": map[string]string{"k": "v"}},
		"b": []byte{1},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Keys sorted: a, b, z; nested maps sorted too.
	want := codec.AppendMapHeader(nil, 3)
	want = codec.AppendString(want, "a")
	want = codec.AppendMapHeader(want, 2)
	want = codec.AppendString(want, "m")
	want = codec.AppendMapHeader(want, 1)
	want = codec.AppendString(codec.AppendString(want, "k"), "v")
	want = codec.AppendString(want, "n")
	want = codec.AppendString(codec.AppendArrayHeader(want, 1), "x")
	want = codec.AppendString(want, "b")
	want = codec.AppendBytes(want, []byte{1})
	want = codec.AppendString(want, "z")
	want = codec.AppendArrayHeader(want, 5)
	want = codec.AppendInt(want, -1)
	want = codec.AppendUint(want, 2)
	want = codec.AppendFloat64(want, 1.5)
	want = codec.AppendBool(want, true)
	want = codec.AppendNil(want)
	if !bytes.Equal(got, want) {
		t.Errorf("params\n got %x\nwant %x", got, want)
	}
	if _, err := appendParams(nil, map[string]any{"c": make(chan int)}); err == nil || !strings.Contains(err.Error(), "c: params value of type chan int") {
		t.Errorf("error = %v, want one naming the key and the type", err)
	}
	empty, _ := appendParams(nil, nil)
	if !bytes.Equal(empty, []byte{0x80}) {
		t.Errorf("nil params = %x, want an empty map", empty)
	}
}

func withPart(ev pipeline.Event, part uint32) pipeline.Event {
	ev.Part = part
	return ev
}

// identity is what a deduplicating sink names an event by.
type identity struct {
	source string
	seq    uint64
	part   uint32
}

func identities(evs []pipeline.Event) map[identity]int {
	m := map[identity]int{}
	for _, ev := range evs {
		m[identity{ev.Source, ev.Seq, ev.Part}]++
	}
	return m
}

// TestParseResultDerivedParts checks the identities of derived events: the
// events of a source event one of whose inputs yields several (a flat-map,
// a repeated KEEP) are numbered 1, 2, 3..., the same every time; an input
// that yields one event keeps its identity; events from no input, and the
// extra copies of one (Seq 0), get unsequenced Parts that are never shared.
func TestParseResultDerivedParts(t *testing.T) {
	in := testInputs()
	in[2].Part = 7 // an input a previous stage already numbered
	tick := pipeline.Event{Data: mapOf("type", "summary"), Source: "stage", Part: pipeline.UnsequencedPart()}
	in = append(in, tick)
	ev := mapOf("k", "v")
	// Input 0 yields two events, input 1 one, input 2 three, input 3 (from
	// no input) two; two events come from no input.
	res := buildResult(
		entry{op: opEmit, index: 0, data: ev}, entry{op: opKeep, index: 0},
		entry{op: opKeep, index: 1},
		entry{op: opEmit, index: 2, data: ev}, entry{op: opEmit, index: 2, data: ev}, entry{op: opKeep, index: 2},
		entry{op: opKeep, index: 3}, entry{op: opKeep, index: 3},
		entry{op: opEmit, index: noInput, data: ev}, entry{op: opEmit, index: noInput, data: ev},
	)
	out, err := parseResult(res, in, nil, resultRules{source: "stage"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantParts := []uint32{1, 2, 0, 1, 2, 3, tick.Part}
	for i, want := range wantParts {
		if out[i].Part != want {
			t.Errorf("event %d (from input seq %d) has Part %d, want %d", i, out[i].Seq, out[i].Part, want)
		}
	}
	for _, i := range []int{7, 8, 9} {
		if out[i].Part < 1<<31 {
			t.Errorf("event %d (a copy of a tick's event, or from no input) has Part %#x, want an unsequenced one", i, out[i].Part)
		}
	}
	for id, n := range identities(out) {
		if n > 1 {
			t.Errorf("identity %+v is shared by %d events", id, n)
		}
	}
	again, err := parseResult(res, in, nil, resultRules{source: "stage"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range wantParts {
		if again[i].Part != out[i].Part {
			t.Errorf("event %d: Part %d on the first parse, %d on the second", i, out[i].Part, again[i].Part)
		}
	}

	t.Run("reordered, each input once", func(t *testing.T) {
		out, err := parseResult(buildResult(entry{op: opKeep, index: 2}, entry{op: opEmit, index: 0, data: ev}), in, nil, resultRules{source: "stage"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if out[0].Part != 7 || out[1].Part != 0 {
			t.Errorf("parts %d, %d; want the inputs' 7, 0", out[0].Part, out[1].Part)
		}
	})
	t.Run("SET, and KEEP runs", func(t *testing.T) {
		// Input 1 yields two events, one KEEP of a run and a SET: they are
		// numbered apart; inputs 0 and 2 yield one each and keep theirs.
		res := buildResult(entry{op: opKeep, index: 0}, entry{op: opKeep, index: 1}, entry{op: opSet, index: 1, data: mapOf("a", "b")}, entry{op: opKeep, index: 2})
		out, err := parseResult(res, in, nil, resultRules{source: "stage", set: true, setBudget: 1 << 20}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 4 || out[0].Part != in[0].Part || out[3].Part != 7 || out[1].Part != 1 || out[2].Part != 2 {
			t.Errorf("parts %v; want the inputs' for inputs 0 and 2, 1 and 2 for input 1's events", parts(out))
		}
		// Each input once, in runs: no numbering.
		out, err = parseResult(buildResult(entry{op: opKeep, index: 0}, entry{op: opKeep, index: 1}, entry{op: opSet, index: 2, data: mapOf("a", "b")}), in, nil, resultRules{source: "stage", set: true, setBudget: 1 << 20}, nil)
		if err != nil || len(out) != 3 || out[0].Part != in[0].Part || out[1].Part != in[1].Part || out[2].Part != 7 {
			t.Errorf("parts %v (%v); want the inputs' own", parts(out), err)
		}
	})
	t.Run("a gadget's module", func(t *testing.T) {
		sc := &resultScratch{unsequencedCopies: true}
		out, err := parseResult(buildResult(entry{op: opKeep, index: 0}, entry{op: opKeep, index: 0}, entry{op: opEmit, index: 0, data: ev}), in, nil, resultRules{source: "stage"}, sc)
		if err != nil {
			t.Fatal(err)
		}
		if out[0].Part != 0 || out[1].Part < 1<<31 || out[2].Part < 1<<31 || out[1].Part == out[2].Part {
			t.Errorf("parts %#x, %#x, %#x; want the input's 0, then two unsequenced ones", out[0].Part, out[1].Part, out[2].Part)
		}
	})
}

// TestDerivedPartsThroughStages runs source events through random chains of
// stages that drop, keep, multiply (up to 40,000 from one event) and
// reorder, some as a gadget's module whose output the pipeline may get in
// several batches, and checks that no two events of a batch a stage
// returns, nor of all the batches a source event's events end up in, share
// an identity.
func TestDerivedPartsThroughStages(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ev := mapOf("k", "v")
	// stage runs one result over in: each input yields 0 to 3 events
	// (sometimes very many), KEEPs and EMITs, in a random order.
	stage := func(in []pipeline.Event, sc *resultScratch) []pipeline.Event {
		var es []entry
		for i := range in {
			n := rng.IntN(4)
			if rng.IntN(50) == 0 && len(in) < 10 {
				n = rng.IntN(40000)
			}
			if len(es) > 60000 {
				n = min(n, 1) // keep the trial small
			}
			for range n {
				op := byte(opKeep)
				if rng.IntN(2) == 0 {
					op = opEmit
				}
				es = append(es, entry{op: op, index: uint32(i), data: ev})
			}
		}
		if rng.IntN(3) == 0 {
			rng.Shuffle(len(es), func(a, b int) { es[a], es[b] = es[b], es[a] })
		}
		out, err := parseResult(buildResult(es...), in, nil, resultRules{source: "s"}, sc)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for trial := range 100 {
		batch := []pipeline.Event{{Data: ev, Source: "src", Seq: 5}, {Data: ev, Source: "src", Seq: 6}, {Data: ev, Source: "other", Seq: 5}}
		var batches [][]pipeline.Event
		if trial%3 == 0 {
			// A gadget's module first, its output cut into two batches.
			out := stage(batch, &resultScratch{unsequencedCopies: true})
			cut := rng.IntN(len(out) + 1)
			batches = [][]pipeline.Event{out[:cut], out[cut:]}
		} else {
			batches = [][]pipeline.Event{batch}
		}
		all := map[identity]int{}
		for _, b := range batches {
			for range 1 + rng.IntN(3) {
				b = stage(b, &resultScratch{})
				for id, n := range identities(b) {
					if n > 1 {
						t.Fatalf("trial %d: identity %+v shared by %d events of one batch", trial, id, n)
					}
				}
			}
			for id, n := range identities(b) {
				all[id] += n
			}
		}
		for id, n := range all {
			if n > 1 {
				t.Fatalf("trial %d: identity %+v shared by %d events of different batches", trial, id, n)
			}
		}
	}
}

// BenchmarkParseResult: the host's side of a result, per event: a filter's
// KEEPs (each input once, in order: the common case, whose identities stay
// as they are), and a flat-map's (each input KEPT twice, which numbers
// the derived events).
func BenchmarkParseResult(b *testing.B) {
	in := make([]pipeline.Event, 256)
	for i := range in {
		in[i] = pipeline.Event{Data: mapOf("comm", "x"), Source: "s", Seq: uint64(i + 1)}
	}
	for _, bc := range []struct {
		name    string
		entries []entry
	}{
		{"keep", func() (es []entry) {
			for i := range in {
				es = append(es, entry{op: opKeep, index: uint32(i)})
			}
			return es
		}()},
		{"flatmap", func() (es []entry) {
			for i := range in {
				es = append(es, entry{op: opKeep, index: uint32(i)}, entry{op: opKeep, index: uint32(i)})
			}
			return es
		}()},
		{"emit-mapped", func() (es []entry) {
			// A mapping stage's output (ocsf): a new event of ~740 bytes
			// per input, copied out of guest memory into one buffer.
			var kv []string
			for k := range 24 {
				kv = append(kv, fmt.Sprintf("field_%02d", k), strings.Repeat("v", 20))
			}
			ev := mapOf(kv...)
			for i := range in {
				es = append(es, entry{op: opEmit, index: uint32(i), data: ev})
			}
			return es
		}()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			res := buildResult(bc.entries...)
			out := make([]pipeline.Event, 0, 2*len(in))
			var sc resultScratch
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if out, err = parseResult(res, in, out[:0], resultRules{source: "stage"}, &sc); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/input")
		})
	}
}

func parts(evs []pipeline.Event) []uint32 {
	var p []uint32
	for _, ev := range evs {
		p = append(p, ev.Part)
	}
	return p
}

// TestParseResultReturnsInput: with returnInput, a result that KEEPs
// every input once, in order, is in itself; anything else is a copy in out.
func TestParseResultReturnsInput(t *testing.T) {
	in := testInputs()
	rules := resultRules{source: "stage", returnInput: true}
	all := buildResult(entry{op: opKeep, index: 0}, entry{op: opKeep, index: 1}, entry{op: opKeep, index: 2})
	out, err := parseResult(all, in, make([]pipeline.Event, 0, 3), rules, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || &out[0] != &in[0] {
		t.Fatalf("keeping all: got %d events aliasing in: %v; want in itself", len(out), len(out) > 0 && &out[0] == &in[0])
	}
	for name, res := range map[string][]byte{
		"one dropped":       buildResult(entry{op: opKeep, index: 0}, entry{op: opKeep, index: 2}),
		"reordered":         buildResult(entry{op: opKeep, index: 1}, entry{op: opKeep, index: 0}, entry{op: opKeep, index: 2}),
		"one kept twice":    buildResult(entry{op: opKeep, index: 0}, entry{op: opKeep, index: 1}, entry{op: opKeep, index: 2}, entry{op: opKeep, index: 2}),
		"emit before keeps": buildResult(entry{op: opEmit, index: noInput, data: mapOf("comm", "d")}, entry{op: opKeep, index: 0}, entry{op: opKeep, index: 1}, entry{op: opKeep, index: 2}),
		"emit after keeps":  buildResult(entry{op: opKeep, index: 0}, entry{op: opKeep, index: 1}, entry{op: opKeep, index: 2}, entry{op: opEmit, data: mapOf("comm", "d")}),
	} {
		out, err := parseResult(res, in, make([]pipeline.Event, 0, 4), rules, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(out) > 0 && &out[0] == &in[0] {
			t.Errorf("%s: the result aliases in", name)
		}
		if name == "emit before keeps" && (len(out) != 4 || string(out[0].Data) != string(mapOf("comm", "d"))) {
			t.Errorf("%s: %d events; want the emitted one, then all three inputs", name, len(out))
		}
	}
	// Without the rule, or after what out already held, it is a copy.
	if out, _ := parseResult(all, in, nil, resultRules{source: "stage"}, nil); &out[0] == &in[0] {
		t.Error("without returnInput the result aliases in")
	}
	prefix := []pipeline.Event{{Seq: 7}}
	if out, _ := parseResult(all, in, prefix, rules, nil); len(out) != 4 || out[0].Seq != 7 {
		t.Errorf("after a prefix: %d events, first seq %d; want the prefix and all three", len(out), out[0].Seq)
	}
}
