//go:build !wasip1

package sluice

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFilterKeepsAndDrops(t *testing.T) {
	s := useStage(t)
	dropped := NewCounter("dropped")
	Filter(func(ev *Event) bool {
		if string(ev.StringBytes("comm")) == "sh" {
			dropped.Inc()
			return false
		}
		return true
	})
	mustInit(t, s, nil)
	for round := range 3 { // the result buffer is reused
		res, err := s.process(encodeBatch(execEvent(t, 1, "sh"), execEvent(t, 2, "bash"), execEvent(t, 3, "sh"), execEvent(t, 4, "ls")))
		if err != nil {
			t.Fatal(err)
		}
		want := []resultEntry{{op: opKeep, index: 1}, {op: opKeep, index: 3}}
		if diff := cmp.Diff(want, parseResult(t, res), cmp.AllowUnexported(resultEntry{})); diff != "" {
			t.Errorf("round %d (-want +got):\n%s", round, diff)
		}
		if got := nativeHost.counters["dropped"]; got != int64(2*(round+1)) {
			t.Errorf("round %d: counter = %d", round, got)
		}
	}
}

func TestMapEmitsChangedEventsOnly(t *testing.T) {
	s := useStage(t)
	users := map[int64]string{1000: "alice"}
	Map(func(ev *Event) {
		if name, ok := users[ev.Int("uid")]; ok {
			ev.SetString("user", name)
		}
	})
	mustInit(t, s, nil)
	in1 := execEvent(t, 1, "sh")
	in2 := encodeEvent(t, kv{"uid", 0}, kv{"comm", "x"})
	res, err := s.process(encodeBatch(in1, in2))
	if err != nil {
		t.Fatal(err)
	}
	got := parseResult(t, res)
	if len(got) != 2 || got[0].op != opSet || got[0].index != 0 || got[1].op != opKeep || got[1].index != 1 {
		t.Fatalf("entries %+v", got)
	}
	// A SET of the one field: the host makes the event.
	if diff := cmp.Diff(map[string]any{"user": "alice"}, decodeMap(t, got[0].data)); diff != "" {
		t.Errorf("SET fields (-want +got):\n%s", diff)
	}
	made, err := setForTest(in1, got[0].data)
	if err != nil {
		t.Fatal(err)
	}
	m := decodeMap(t, made)
	if m["user"] != "alice" || m["comm"] != "sh" || len(m) != len(decodeMap(t, in1))+1 {
		t.Errorf("changed event %v", m)
	}
}

// A Set to the value the field holds already, where the field follows the
// one read last (the decoders put uid_name after uid), changes nothing: the
// event is KEPT. A different value, a field elsewhere or a Set after other
// changes still goes out as a change, with the same result as before.
func TestSetOfTheSameValueKeeps(t *testing.T) {
	s := useStage(t)
	changed := 0
	Map(func(ev *Event) {
		if ev.Int("uid") != 1000 {
			return
		}
		ev.SetString("uid_name", "alice")
		if ev.Int("seq") == 6 {
			ev.SetInt("gid", 7)
		}
		if ev.Changed() {
			changed++
		}
	})
	mustInit(t, s, nil)
	same := func(seq int) []byte { return execEvent(t, seq, "sh") } // uid_name is alice
	other := encodeEvent(t, kv{"seq", 2}, kv{"uid", 1000}, kv{"uid_name", "bob"}, kv{"comm", "sh"})
	before := encodeEvent(t, kv{"seq", 3}, kv{"uid_name", "alice"}, kv{"uid", 1000}, kv{"comm", "sh"})
	last := encodeEvent(t, kv{"seq", 4}, kv{"comm", "sh"}, kv{"uid", 1000})
	in := [][]byte{same(1), other, before, last, same(5), same(6), same(7)}
	// Twice: the first batch finds uid by scanning, a batch of at least
	// minTableEvents events from the host's key table too.
	for _, batch := range [][][]byte{in[:2], in} {
		changed = 0
		res, err := s.process(encodeBatch(batch...))
		if err != nil {
			t.Fatal(err)
		}
		got := parseResult(t, res)
		if len(got) != len(batch) {
			t.Fatalf("%d entries for %d events", len(got), len(batch))
		}
		wantOps := []byte{opKeep, opSet, opSet, opSet, opKeep, opSet, opKeep}[:len(batch)]
		nchanged := 0
		for i, e := range got {
			if e.op != wantOps[i] || e.index != uint32(i) {
				t.Errorf("event %d: entry op %d index %d, want op %d", i, e.op, e.index, wantOps[i])
				continue
			}
			if e.op != opSet {
				continue
			}
			nchanged++
			made, err := setForTest(batch[i], e.data)
			if err != nil {
				t.Fatal(err)
			}
			want := decodeMap(t, batch[i])
			want["uid_name"] = "alice"
			if i == 5 {
				want["gid"] = int8(7)
			}
			if diff := cmp.Diff(want, decodeMap(t, made)); diff != "" {
				t.Errorf("event %d (-want +got):\n%s", i, diff)
			}
		}
		if changed != nchanged {
			t.Errorf("Changed() true for %d events, want %d", changed, nchanged)
		}
	}
}

// Fields set and set again, on an input and on its clone, go out as one SET
// each with the last value of each key in the order keys were last set; a
// Delete among the changes makes an EMIT of the whole event instead.
func TestSetEntries(t *testing.T) {
	s := useStage(t)
	FlatMap(func(ev *Event, out *Output) {
		out.Emit(ev.Clone().SetString("a", "1").SetInt("b", 2).SetString("a", "3"))
		out.Emit(ev.Clone().SetString("x", "y").Delete("comm"))
		out.Emit(ev.SetString("comm", "zsh"))
	})
	mustInit(t, s, nil)
	in := encodeEvent(t, kv{"comm", "sh"}, kv{"pid", 7})
	res0, err := s.process(encodeBatch(in))
	if err != nil {
		t.Fatal(err)
	}
	got := parseResult(t, res0)
	if len(got) != 3 || got[0].op != opSet || got[1].op != opEmit || got[2].op != opSet {
		t.Fatalf("entries %+v", got)
	}
	if k := keys(t, got[0].data); !cmp.Equal(k, []string{"b", "a"}) || decodeMap(t, got[0].data)["a"] != "3" {
		t.Errorf("SET fields %v %v, want b then a = 3", k, decodeMap(t, got[0].data))
	}
	if diff := cmp.Diff(map[string]any{"pid": int8(7), "x": "y"}, decodeMap(t, got[1].data)); diff != "" {
		t.Errorf("EMIT with a delete (-want +got):\n%s", diff)
	}
	made, err := setForTest(in, got[2].data)
	if err != nil {
		t.Fatal(err)
	}
	if k := keys(t, made); !cmp.Equal(k, []string{"comm", "pid"}) || decodeMap(t, made)["comm"] != "zsh" {
		t.Errorf("comm replaced in place: %v %v", k, decodeMap(t, made))
	}
	// ProcessForTest applies SETs as the host does, and reports one that
	// changes nothing as the input kept.
	res, err := ProcessForTest([][]byte{encodeEvent(t, kv{"comm", "zsh"})})
	if err != nil || len(res) != 3 || res[2].Keep != true || res[0].Keep || decodeMap(t, res[0].Event)["b"] != int8(2) {
		t.Errorf("ProcessForTest: %+v %v", res, err)
	}
}

func TestFlatMapNewEventsAndClones(t *testing.T) {
	s := useStage(t)
	FlatMap(func(ev *Event, out *Output) {
		for i, a := range ev.Strings("args") {
			out.Emit(ev.Clone().SetString("arg", a).SetInt("i", int64(i)).Delete("args"))
		}
		out.Emit(ev) // KEEP
		out.Emit(ev) // a second time: copied, not KEPT twice
		out.Emit(NewEvent().SetString("type", "summary"))
		var w Writer
		w.BeginMap().Key("from").Int(int64(ev.Index())).EndMap()
		out.EmitBytes(ev, w.Bytes())
	})
	mustInit(t, s, nil)
	in := encodeEvent(t, kv{"comm", "sh"}, kv{"args", []string{"a", "b"}})
	res, err := s.process(encodeBatch(in))
	if err != nil {
		t.Fatal(err)
	}
	got := parseResult(t, res)
	if len(got) != 6 {
		t.Fatalf("%d entries, want 6: %+v", len(got), got)
	}
	for i, a := range []string{"a", "b"} {
		want := map[string]any{"comm": "sh", "arg": a, "i": int8(i)}
		if diff := cmp.Diff(want, decodeMap(t, got[i].data)); diff != "" || got[i].index != 0 {
			t.Errorf("clone %d (index %d): (-want +got):\n%s", i, got[i].index, diff)
		}
	}
	if got[2].op != opKeep || got[3].op != opEmit || string(got[3].data) != string(in) {
		t.Errorf("keep then copy: %+v %+v", got[2], got[3])
	}
	if got[4].index != noInput || decodeMap(t, got[4].data)["type"] != "summary" {
		t.Errorf("new event %+v", got[4])
	}
	if got[5].index != 0 || decodeMap(t, got[5].data)["from"] != int8(0) {
		t.Errorf("EmitBytes %+v", got[5])
	}
}

// Events made by Clone and NewEvent reuse arena slots from call to call: a
// NewEvent in a slot whose earlier event was indexed must not see that index.
func TestNewEventInReusedSlot(t *testing.T) {
	s := useStage(t)
	call := 0
	FlatMap(func(ev *Event, out *Output) {
		if call == 0 {
			c := ev.Clone()
			_, _ = c.String("comm"), c.Int("pid") // the second lookup indexes c
			out.Emit(c.SetString("z", "1"))
			return
		}
		out.Emit(NewEvent().SetString("x", "1").Delete("y").Delete("x").SetInt("n", 2))
	})
	mustInit(t, s, nil)
	for call = range 2 {
		res, err := s.process(encodeBatch(execEvent(t, 1, "sh")))
		if err != nil {
			t.Fatalf("call %d: %v", call, err)
		}
		got := parseResult(t, res)
		if want := []byte{opSet, opEmit}[call]; len(got) != 1 || got[0].op != want {
			t.Fatalf("call %d: entries %+v, want op %d", call, got, want)
		}
		if call == 1 {
			if diff := cmp.Diff(map[string]any{"n": int8(2)}, decodeMap(t, got[0].data)); diff != "" || got[0].index != noInput {
				t.Errorf("new event (index %d) (-want +got):\n%s", got[0].index, diff)
			}
		}
	}
}

func TestHandlerPanicFailsTheBatch(t *testing.T) {
	s := useStage(t)
	var kept *Event
	Filter(func(ev *Event) bool {
		switch ev.String("comm") {
		case "boom":
			panic("kaboom")
		case "keep":
			kept = NewEvent().SetString("made", "earlier")
		}
		return true
	})
	mustInit(t, s, nil)
	_, err := s.process(encodeBatch(execEvent(t, 1, "ok"), execEvent(t, 2, "boom")))
	if err == nil || !strings.Contains(err.Error(), "panic: kaboom") || !strings.Contains(err.Error(), "stage_test.go") {
		t.Fatalf("err = %v, want the panic with its stack", err)
	}
	// The stage goes on with the next batch.
	res, err := s.process(encodeBatch(execEvent(t, 3, "keep")))
	if err != nil || len(parseResult(t, res)) != 1 {
		t.Fatalf("after a panic: %v", err)
	}
	// An event kept past its call is refused, not emitted with stale bytes.
	FlatMapStale := func(ev *Event, out *Output) { out.Emit(kept) }
	s.eventFn, s.filterFn = FlatMapStale, nil
	if _, err := s.process(encodeBatch(execEvent(t, 4, "x"))); err == nil || !strings.Contains(err.Error(), "earlier call") {
		t.Errorf("stale event: err = %v", err)
	}
}

func TestMalformedBatches(t *testing.T) {
	s := useStage(t)
	Filter(func(*Event) bool { return true })
	mustInit(t, s, nil)
	good := encodeBatch(execEvent(t, 1, "a"), execEvent(t, 2, "b"))
	cases := map[string][]byte{
		"empty":           nil,
		"count too big":   binary.LittleEndian.AppendUint32(nil, 1000),
		"length past end": good[:len(good)-1],
		"truncated len":   good[:6],
	}
	for name, b := range cases {
		if _, err := s.process(b); err == nil || !strings.Contains(err.Error(), "read batch") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	// Every prefix of a good batch either fails cleanly or is that batch.
	for cut := range len(good) {
		if _, err := s.process(good[:cut]); err == nil {
			t.Errorf("prefix %d of %d accepted", cut, len(good))
		}
	}
	// An empty batch gives an empty result.
	res, err := s.process(encodeBatch())
	if err != nil || len(parseResult(t, res)) != 0 {
		t.Errorf("empty batch: %v %x", err, res)
	}
}

func TestInitErrors(t *testing.T) {
	t.Run("no handler", func(t *testing.T) {
		s := useStage(t)
		if err := s.init(nil); err == nil || !strings.Contains(err.Error(), "no event handler") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("two handlers", func(t *testing.T) {
		s := useStage(t)
		Filter(func(*Event) bool { return true })
		Map(func(*Event) {})
		if err := s.init(nil); err == nil || !strings.Contains(err.Error(), "sluice.Map: an event handler is already registered") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("init error", func(t *testing.T) {
		s := useStage(t)
		Filter(func(*Event) bool { return true })
		OnInit(func(p Params) error {
			var cfg struct{ Comms []string }
			return p.Decode(&cfg)
		})
		err := s.init([]byte{0x81, 0xa5, 'c', 'o', 'm', 'm', 's', 0x01})
		if err == nil || err.Error() != "params.comms: want a list, got int" {
			t.Errorf("err = %v", err)
		}
		if _, err := s.process(encodeBatch()); err == nil {
			t.Errorf("process after a failed init succeeded")
		}
	})
	t.Run("params not a map", func(t *testing.T) {
		s := useStage(t)
		Filter(func(*Event) bool { return true })
		if err := s.init([]byte{0x90}); err == nil {
			t.Errorf("no error")
		}
	})
}

func TestTickAndClose(t *testing.T) {
	s := useStage(t)
	Filter(func(*Event) bool { return true })
	// Before a tick handler is registered, a tick emits nothing.
	mustInit(t, s, nil)
	res, err := s.tick(1)
	if err != nil || len(parseResult(t, res)) != 0 {
		t.Fatalf("tick without handler: %v %x", err, res)
	}
	ticks := NewCounter("ticks")
	var at time.Time
	OnTick(func(now time.Time, out *Output) {
		at = now
		ticks.Inc()
		out.Emit(NewEvent().SetString("type", "tick").Set("at", now))
	})
	closed := false
	OnClose(func() { closed = true; Infof("closing after %d ticks", 1) })
	res, err = s.tick(1_700_000_000_123_456_789)
	if err != nil {
		t.Fatal(err)
	}
	got := parseResult(t, res)
	if len(got) != 1 || got[0].index != noInput || decodeMap(t, got[0].data)["at"] != "2023-11-14T22:13:20.123456789Z" {
		t.Errorf("tick result %+v", got)
	}
	if at.UnixNano() != 1_700_000_000_123_456_789 || nativeHost.counters["ticks"] != 1 {
		t.Errorf("tick at %v, counter %d", at, nativeHost.counters["ticks"])
	}
	s.close()
	if !closed || len(nativeHost.logs) != 1 || nativeHost.logs[0] != (nativeLog{LevelInfo, "closing after 1 ticks"}) {
		t.Errorf("close: %v %+v", closed, nativeHost.logs)
	}
}

func TestNowUsesHostClock(t *testing.T) {
	useStage(t)
	fixed := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	nativeHost.now = func() time.Time { return fixed }
	if !Now().Equal(fixed) {
		t.Errorf("Now = %v", Now())
	}
}

// A drop-comm filter over trace_exec events must not allocate per event:
// that is what keeps a Go stage within its budget at batch 256.
func TestFilterDoesNotAllocate(t *testing.T) {
	s := useStage(t)
	drop := map[string]struct{}{"sh": {}, "bash": {}}
	Filter(func(ev *Event) bool {
		_, hit := drop[string(ev.StringBytes("comm"))]
		return !hit
	})
	mustInit(t, s, nil)
	batch := benchBatch(t, 256)
	if _, err := s.process(batch); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() { _, _ = s.process(batch) }); n != 0 {
		t.Errorf("%v allocations per batch, want 0", n)
	}
}

func benchBatch(tb testing.TB, n int) []byte {
	comms := []string{"sh", "cat", "bash", "ls"}
	evs := make([][]byte, n)
	for i := range evs {
		evs[i] = execEvent(tb, i, comms[i%len(comms)], comms[i%len(comms)], "-c", "some args here")
	}
	return encodeBatch(evs...)
}

// BenchmarkFilterNative measures the SDK's per-batch work natively (the Wasm
// figures come from the examples' benchmarks, through the real host).
func BenchmarkFilterNative(b *testing.B) {
	s := useStage(b)
	drop := map[string]struct{}{"sh": {}, "bash": {}}
	Filter(func(ev *Event) bool {
		_, hit := drop[string(ev.StringBytes("comm"))]
		return !hit
	})
	benchProcess(b, s)
}

// BenchmarkMapNative sets one field on every event.
func BenchmarkMapNative(b *testing.B) {
	s := useStage(b)
	Map(func(ev *Event) { ev.SetString("user", "alice") })
	benchProcess(b, s)
}

// benchProcess runs the registered handler over batches of 256 trace_exec
// events and reports the cost per event.
func benchProcess(b *testing.B, s *stage) {
	b.Helper()
	mustInit(b, s, nil)
	batch := benchBatch(b, 256)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.process(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*256), "ns/event")
}

func TestStringSet(t *testing.T) {
	var many []string
	for i := range 40 {
		many = append(many, strings.Repeat("x", i%3+1)+string(rune('a'+i)))
	}
	s := NewStringSet(append(many, "sh", "sh", "", strings.Repeat("y", 40))...)
	if s.Len() != 43 {
		t.Errorf("Len = %d, want 43", s.Len())
	}
	for _, x := range append(many, "sh", "", strings.Repeat("y", 40)) {
		if !s.Has([]byte(x)) {
			t.Errorf("Has(%q) = false", x)
		}
	}
	for _, x := range []string{"s", "shh", "xc", strings.Repeat("y", 39), "bash"} {
		if s.Has([]byte(x)) {
			t.Errorf("Has(%q) = true", x)
		}
	}
	if n := testing.AllocsPerRun(100, func() { s.Has([]byte("xxzz")) }); n != 0 {
		t.Errorf("Has allocates %v", n)
	}
}

// The exported native harness drives a stage as the host does, for stages'
// own tests.
func TestNativeHarness(t *testing.T) {
	useStage(t)
	FlatMap(func(ev *Event, out *Output) {
		if ev.String("comm") == "drop" {
			return
		}
		if ev.String("comm") == "tag" {
			out.Emit(ev.SetString("tag", "yes"))
			return
		}
		out.Emit(ev)
	})
	OnTick(func(now time.Time, out *Output) { out.Emit(NewEvent().SetInt("at", now.Unix())) })
	if err := InitForTest(nil); err != nil {
		t.Fatal(err)
	}
	in := [][]byte{encodeEvent(t, kv{"comm", "keep"}), encodeEvent(t, kv{"comm", "drop"}), encodeEvent(t, kv{"comm", "tag"})}
	got, err := ProcessForTest(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Keep || got[0].Index != 0 || string(got[0].Event) != string(in[0]) ||
		got[1].Keep || got[1].Index != 2 || decodeMap(t, got[1].Event)["tag"] != "yes" {
		t.Errorf("results %+v", got)
	}
	ticks, err := TickForTest(time.Unix(42, 0))
	if err != nil || len(ticks) != 1 || ticks[0].Index != -1 || decodeMap(t, ticks[0].Event)["at"] != int8(42) {
		t.Errorf("tick %+v %v", ticks, err)
	}
}

// FuzzProcess feeds arbitrary batches to a stage that reads, changes and
// adds events: it must either fail the batch with an error or return a
// result the host accepts, every EMIT being one well-formed map.
func FuzzProcess(f *testing.F) {
	f.Add(encodeBatch(execEvent(f, 1, "sh", "sh", "-c", "x"), encodeEvent(f, kv{"uid", 0})))
	f.Add(encodeBatch(encodeEvent(f, kv{"comm", "bash"}, kv{"user", "x"})))
	f.Add([]byte{1, 0, 0, 0, 3, 0, 0, 0, 0x81, 0xa1, 'a'})
	f.Fuzz(func(t *testing.T, batch []byte) {
		s := useStage(t)
		FlatMap(func(ev *Event, out *Output) {
			switch ev.String("comm") {
			case "sh":
				return
			case "bash":
				out.Emit(ev.Clone().Delete("user").SetInt("n", ev.Int("uid")))
			}
			ev.SetString("user", "u").Set("args2", ev.Get("args").Strings())
			out.Emit(ev)
			out.Emit(NewEvent().SetString("type", "extra"))
		})
		mustInit(t, s, nil)
		res, err := s.process(batch)
		if err != nil {
			return
		}
		parseResult(t, res) // fails the test on anything malformed
	})
}
