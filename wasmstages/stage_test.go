package wasmstages_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/wasmstages"
)

// TestFilterKeepsAndDrops runs a module of ABI version 1 (guest.h's
// default, as most test guests and the Rust SDK): the host keeps running
// version 1 modules by version 1's rules since version 2 added SET.
func TestFilterKeepsAndDrops(t *testing.T) {
	var logs logBuffer
	reg := pipeline.NewRegistry()
	s := newStage(t, wasmstages.Config{
		Name:    "no_shells",
		Module:  guest("filter"),
		Params:  map[string]any{"comms": []any{"sh", "bash"}},
		Logger:  logs.logger(),
		Metrics: reg,
	})
	in := events(9, "sh", "cat", "bash")
	out, err := s.Process(context.Background(), in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"cat", "cat", "cat"}, comms(t, out)); diff != "" {
		t.Errorf("kept comms (-want +got):\n%s", diff)
	}
	for i, ev := range out {
		want := in[3*i+1]
		// KEEP reuses the input: same bytes, same source, seq and schema.
		if &ev.Data[0] != &want.Data[0] || ev.Seq != want.Seq || ev.Source != want.Source || ev.Schema != want.Schema {
			t.Errorf("kept event %d is not input %d passed through: %+v", i, 3*i+1, ev)
		}
	}
	if got := reg.Snapshot().Get(wasmstages.MetricGuest, "component", "stage", "name", "no_shells", "counter", "dropped"); got != 6 {
		t.Errorf("guest counter dropped = %v, want 6", got)
	}
	if len(logs.lines("filter ready", "stage=no_shells", "source=guest")) != 1 {
		t.Errorf("the guest's init log line is missing; log:\n%s", logs.String())
	}
}

// stageError returns err's kind, failing the test when err is not a
// *pipeline.StageError.
func stageErrorKind(t *testing.T, err error) string {
	t.Helper()
	se, ok := errors.AsType[*pipeline.StageError](err)
	if !ok {
		t.Fatalf("error %v (%T) is not a *pipeline.StageError", err, err)
	}
	return se.Kind
}

func restarts(reg *pipeline.Registry, name string) float64 {
	return reg.Snapshot().Get(wasmstages.MetricInstanceRestarts, "component", "stage", "name", name)
}

func TestTrapDiscardsInstance(t *testing.T) {
	reg := pipeline.NewRegistry()
	s := newStage(t, wasmstages.Config{Name: "trap", Module: guest("trap"), Params: map[string]any{"trap_after": 1}, Metrics: reg})
	ctx := context.Background()
	in := events(4, "cat")
	if out, err := s.Process(ctx, in, nil); err != nil || len(out) != 4 {
		t.Fatalf("first batch: %d events, %v; want 4 and no error", len(out), err)
	}
	out, err := s.Process(ctx, in, nil)
	if kind := stageErrorKind(t, err); kind != wasmstages.KindTrap {
		t.Errorf("kind = %q, want %q (error %v)", kind, wasmstages.KindTrap, err)
	}
	if !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("error %q does not say what trapped", err)
	}
	if len(out) != 0 {
		t.Errorf("a failed batch returned %d events", len(out))
	}
	// A fresh instance (whose first batch does not trap) takes over.
	if out, err := s.Process(ctx, in, nil); err != nil || len(out) != 4 {
		t.Fatalf("batch after the trap: %d events, %v; want 4 and no error", len(out), err)
	}
	if got := restarts(reg, "trap"); got != 1 {
		t.Errorf("instance restarts = %v, want 1", got)
	}
}

func TestInfiniteLoopStoppedByDeadline(t *testing.T) {
	reg := pipeline.NewRegistry()
	s := newStage(t, wasmstages.Config{Name: "loop", Module: guest("loop"), Timeout: 50 * time.Millisecond, Metrics: reg})
	for i := range 2 {
		start := time.Now()
		_, err := s.Process(context.Background(), events(3, "cat"), nil)
		took := time.Since(start)
		if kind := stageErrorKind(t, err); kind != wasmstages.KindTimeout {
			t.Fatalf("call %d: kind = %q, want %q (error %v)", i, kind, wasmstages.KindTimeout, err)
		}
		// Generous: the point is that the loop ends, not how promptly.
		if took > 10*time.Second {
			t.Errorf("call %d took %s to stop; the deadline is 50ms", i, took)
		}
	}
	if got := restarts(reg, "loop"); got != 1 {
		t.Errorf("instance restarts = %v, want 1 (the second call ran on a fresh instance)", got)
	}
}

func TestMemoryBombStoppedByLimit(t *testing.T) {
	reg := pipeline.NewRegistry()
	const limit = 8 << 20
	s := newStage(t, wasmstages.Config{Name: "bomb", Module: guest("bomb"), MemoryLimit: limit, Metrics: reg})
	_, err := s.Process(context.Background(), events(3, "cat"), nil)
	if kind := stageErrorKind(t, err); kind != wasmstages.KindOOM {
		t.Fatalf("kind = %q, want %q (error %v)", kind, wasmstages.KindOOM, err)
	}
	if !strings.Contains(err.Error(), fmt.Sprint(limit)) {
		t.Errorf("error %q does not name the limit", err)
	}
	// The next batch runs on a fresh instance, which blows up the same way.
	_, err = s.Process(context.Background(), events(3, "cat"), nil)
	if kind := stageErrorKind(t, err); kind != wasmstages.KindOOM {
		t.Errorf("second call: kind = %q, want %q", kind, wasmstages.KindOOM)
	}
	if got := restarts(reg, "bomb"); got != 1 {
		t.Errorf("instance restarts = %v, want 1", got)
	}
}

func TestMalformedResults(t *testing.T) {
	tests := []struct{ mode, want string }{
		{"truncated", "cut short"},
		{"index", "KEEP of input 8, but the batch has 3 events"},
		{"op", "op 7 is neither KEEP (1) nor EMIT (2)"},
		{"notmap", "not a msgpack map"},
		{"badmap", "truncated"},
		{"emitlen", "runs past the end"},
		{"trailing", "3 bytes follow the last of 3 entries"},
		{"outside", "outside the guest's"},
		{"set", "op 3 (SET) needs ABI version 2; the module declared version 1"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			reg := pipeline.NewRegistry()
			s := newStage(t, wasmstages.Config{Name: "malformed", Module: guest("malformed"), Params: map[string]any{"mode": tt.mode}, Metrics: reg})
			out, err := s.Process(context.Background(), events(3, "cat"), make([]pipeline.Event, 0, 8))
			if kind := stageErrorKind(t, err); kind != wasmstages.KindMalformed {
				t.Fatalf("kind = %q, want %q (error %v)", kind, wasmstages.KindMalformed, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if len(out) != 0 {
				t.Errorf("a malformed result produced %d events", len(out))
			}
			if _, err := s.Process(context.Background(), events(3, "cat"), nil); err == nil {
				t.Error("the next batch succeeded; the guest is malformed every time")
			}
			if got := restarts(reg, "malformed"); got != 1 {
				t.Errorf("instance restarts = %v, want 1", got)
			}
		})
	}
}

// TestSet: a version 2 module SETs fields of its inputs; the host adds
// them, replaces them in place, or passes the input on untouched when it
// has them already, and the events keep their input's identity.
func TestSet(t *testing.T) {
	in := events(3, "cat", "sh")
	for _, tt := range []struct {
		name   string
		fields map[string]any
		want   func(i int, ev map[string]any)
		same   bool // the outputs are the inputs, not copies
	}{
		{"add", map[string]any{"owner": "alice"}, func(i int, ev map[string]any) { ev["owner"] = "alice" }, false},
		{"replace", map[string]any{"comm": "dog", "ret": 7}, func(i int, ev map[string]any) { ev["comm"], ev["ret"] = "dog", int64(7) }, false},
		{"what is there", map[string]any{"ret": 3}, func(int, map[string]any) {}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStage(t, wasmstages.Config{Name: "set", Module: guest("set"), Params: map[string]any{"fields": tt.fields}})
			out, err := s.Process(context.Background(), in, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != len(in) {
				t.Fatalf("%d events out of %d", len(out), len(in))
			}
			for i, ev := range out {
				want := decode(t, in[i].Data)
				tt.want(i, want)
				if diff := cmp.Diff(want, decode(t, ev.Data)); diff != "" {
					t.Errorf("event %d (-want +got):\n%s", i, diff)
				}
				if ev.Seq != in[i].Seq || ev.Source != in[i].Source || ev.Schema != in[i].Schema {
					t.Errorf("event %d: seq %d source %q, want the input's %d %q", i, ev.Seq, ev.Source, in[i].Seq, in[i].Source)
				}
				if shared := unsafe.SliceData(ev.Data) == unsafe.SliceData(in[i].Data); shared != tt.same {
					t.Errorf("event %d shares its input's bytes: %v, want %v", i, shared, tt.same)
				}
			}
		})
	}
}

// TestSetBomb: SET entries of a few bytes each that ask for many copies of
// an event count against the memory limit: the call fails with oom before
// the host makes them.
func TestSetBomb(t *testing.T) {
	reg := pipeline.NewRegistry()
	const limit = 4 << 20
	in := events(1, strings.Repeat("x", 4000))
	repeat := limit / len(in[0].Data) // 13 bytes of result per copy
	s := newStage(t, wasmstages.Config{Name: "setbomb", Module: guest("set"), MemoryLimit: limit, Metrics: reg,
		Params: map[string]any{"fields": map[string]any{"x": 1}, "repeat": repeat}})
	for range 2 {
		out, err := s.Process(context.Background(), in, nil)
		if kind := stageErrorKind(t, err); kind != wasmstages.KindOOM {
			t.Fatalf("kind = %q, want %q (error %v, %d events)", kind, wasmstages.KindOOM, err, len(out))
		}
		if !strings.Contains(err.Error(), "SET entries") {
			t.Errorf("error %q does not say what took the memory", err)
		}
		if len(out) != 0 {
			t.Errorf("%d events out of a failed call", len(out))
		}
	}
	if got := restarts(reg, "setbomb"); got != 1 {
		t.Errorf("instance restarts = %v, want 1", got)
	}
}

func TestGuestErrorKeepsInstance(t *testing.T) {
	reg := pipeline.NewRegistry()
	s := newStage(t, wasmstages.Config{Name: "err", Module: guest("process_error"), Metrics: reg})
	for range 2 {
		_, err := s.Process(context.Background(), events(2, "cat"), nil)
		if kind := stageErrorKind(t, err); kind != wasmstages.KindGuest {
			t.Fatalf("kind = %q, want %q (error %v)", kind, wasmstages.KindGuest, err)
		}
		if !strings.Contains(err.Error(), "lookup table is not loaded") {
			t.Errorf("error %q lacks the guest's message", err)
		}
	}
	// An error the guest reports leaves it in a known state: no restart.
	if got := restarts(reg, "err"); got != 0 {
		t.Errorf("instance restarts = %v, want 0", got)
	}
}

func TestRefusedModules(t *testing.T) {
	tests := []struct {
		guest    string
		sentinel error
		want     string
	}{
		{"abi_version", wasmstages.ErrABI, "sluice_abi_version returned 3; this host implements versions 1 to 2"},
		{"missing_export", wasmstages.ErrABI, "missing export sluice_process (i32, i32) -> (i64)"},
		{"bad_import", wasmstages.ErrABI, "imports sluice function this host does not provide: map_lookup"},
		{"init_fail", wasmstages.ErrInit, `param "threshold" is required`},
	}
	for _, tt := range tests {
		t.Run(tt.guest, func(t *testing.T) {
			for _, check := range []bool{false, true} {
				cfg := wasmstages.Config{Name: tt.guest, Module: guest(tt.guest)}
				var err error
				if check {
					err = wasmstages.Check(context.Background(), cfg)
				} else {
					var s *wasmstages.Stage
					s, err = wasmstages.New(context.Background(), cfg)
					if s != nil {
						t.Error("New returned a stage with an error")
					}
				}
				if !errors.Is(err, tt.sentinel) {
					t.Fatalf("error %v is not %v", err, tt.sentinel)
				}
				if !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error %q does not contain %q", err, tt.want)
				}
			}
		})
	}
	t.Run("not wasm", func(t *testing.T) {
		_, err := wasmstages.New(context.Background(), wasmstages.Config{Name: "x", ModuleBytes: []byte("#!/bin/sh\n")})
		if err == nil || !strings.Contains(err.Error(), "compile module") {
			t.Errorf("error = %v, want a compile error", err)
		}
	})
	t.Run("tick without export", func(t *testing.T) {
		_, err := wasmstages.New(context.Background(), wasmstages.Config{Name: "x", Module: guest("trap"), Tick: time.Second})
		if err == nil || !strings.Contains(err.Error(), "does not export sluice_tick") {
			t.Errorf("error = %v, want one about sluice_tick", err)
		}
	})
	t.Run("memory limit below the module's minimum", func(t *testing.T) {
		_, err := wasmstages.New(context.Background(), wasmstages.Config{Name: "x", Module: guest("filter"), MemoryLimit: 64 << 10})
		if err == nil || !strings.Contains(err.Error(), "more than the memory limit") {
			t.Errorf("error = %v, want one about the memory limit", err)
		}
	})
}

func TestWorkersKeepOrder(t *testing.T) {
	in := events(1000, "sh", "cat", "ls", "bash", "vi")
	run := func(workers int) []pipeline.Event {
		s := newStage(t, wasmstages.Config{Module: guest("tag_v1"), Params: map[string]any{"copies": 2}, Workers: workers})
		out, err := s.Process(context.Background(), in, nil)
		if err != nil {
			t.Fatalf("workers=%d: %v", workers, err)
		}
		return out
	}
	one, four := run(1), run(4)
	if len(one) != 2000 {
		t.Fatalf("one worker: %d events, want 2000 (two copies each)", len(one))
	}
	for i, ev := range four {
		if ev.Seq != uint64(i/2+1) || ev.Source != "open" || ev.Schema != testSchema {
			t.Fatalf("event %d: seq %d source %q; want seq %d of source open with its input's schema", i, ev.Seq, ev.Source, i/2+1)
		}
		if string(ev.Data) != string(one[i].Data) {
			t.Fatalf("event %d differs between 1 and 4 workers", i)
		}
		if v := decode(t, ev.Data)["stage_version"]; fmt.Sprint(v) != "1" {
			t.Fatalf("event %d: stage_version = %v, want 1", i, v)
		}
	}
}

func TestWorkerFailureFailsWholeBatch(t *testing.T) {
	reg := pipeline.NewRegistry()
	// Every instance traps at its second batch; with four workers the
	// second batch fails in all parts, and then each slot is replaced.
	s := newStage(t, wasmstages.Config{Name: "trap4", Module: guest("trap"), Params: map[string]any{"trap_after": 1}, Workers: 4, Metrics: reg})
	in := events(256, "cat")
	if out, err := s.Process(context.Background(), in, nil); err != nil || len(out) != 256 {
		t.Fatalf("first batch: %d events, %v", len(out), err)
	}
	out, err := s.Process(context.Background(), in, make([]pipeline.Event, 0, 300))
	if kind := stageErrorKind(t, err); kind != wasmstages.KindTrap || len(out) != 0 {
		t.Fatalf("second batch: kind %q and %d events; want trap and none", kind, len(out))
	}
	if out, err := s.Process(context.Background(), in, nil); err != nil || len(out) != 256 {
		t.Fatalf("third batch: %d events, %v", len(out), err)
	}
	if got := restarts(reg, "trap4"); got != 4 {
		t.Errorf("restarts = %v, want 4", got)
	}
}

func TestTickEmitsSummary(t *testing.T) {
	s := newStage(t, wasmstages.Config{Name: "summarise", Module: guest("filter"), Params: map[string]any{"comms": []string{"sh"}, "summary": true}})
	if got := s.TickInterval(); got != wasmstages.DefaultTick {
		t.Errorf("TickInterval = %s, want the default %s for a module exporting sluice_tick", got, wasmstages.DefaultTick)
	}
	if _, err := s.Process(context.Background(), events(10, "sh", "cat"), nil); err != nil {
		t.Fatal(err)
	}
	out, err := s.Tick(context.Background(), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 {
		t.Fatalf("tick emitted %d events, want 1", len(out))
	}
	ev := out[0]
	if ev.Source != "summarise" || ev.Seq != 0 || ev.Schema != nil {
		t.Errorf("summary event source %q seq %d schema %v; want the stage's name, 0 and nil", ev.Source, ev.Seq, ev.Schema)
	}
	want := map[string]any{"type": "summary", "dropped": uint64(5)}
	if diff := cmp.Diff(want, decode(t, ev.Data)); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	if out, _ := s.Tick(context.Background(), time.Now(), nil); len(out) != 0 {
		t.Errorf("a tick with nothing dropped emitted %d events", len(out))
	}
	if s := newStage(t, wasmstages.Config{Module: guest("trap")}); s.TickInterval() != 0 {
		t.Errorf("TickInterval = %s for a module without sluice_tick", s.TickInterval())
	}
}

func TestSwap(t *testing.T) {
	reg := pipeline.NewRegistry()
	var logs logBuffer
	s := newStage(t, wasmstages.Config{Name: "tag", Module: guest("tag_v1"), Metrics: reg, Logger: logs.logger()})
	ctx := context.Background()
	version := func() string {
		t.Helper()
		out, err := s.Process(ctx, events(1, "cat"), nil)
		if err != nil || len(out) != 1 {
			t.Fatalf("Process: %d events, %v", len(out), err)
		}
		return fmt.Sprint(decode(t, out[0].Data)["stage_version"])
	}
	if v := version(); v != "1" {
		t.Fatalf("version %s before the swap", v)
	}
	v1 := s.Digest()
	for _, bad := range []string{"abi_version", "init_fail", "missing_export"} {
		if err := s.Swap(ctx, readGuest(t, bad)); err == nil {
			t.Errorf("Swap to %s succeeded", bad)
		}
		if v := version(); v != "1" || s.Digest() != v1 {
			t.Errorf("after a refused swap to %s the stage runs version %s", bad, v)
		}
	}
	if err := s.Swap(ctx, readGuest(t, "tag_v2")); err != nil {
		t.Fatal(err)
	}
	if v := version(); v != "2" {
		t.Errorf("version %s after the swap, want 2", v)
	}
	if err := s.Swap(ctx, readGuest(t, "tag_v2")); err != nil {
		t.Errorf("swapping in the running bytes: %v", err)
	}
	snap := reg.Snapshot()
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{wasmstages.MetricReloads, []string{"component", "stage", "name", "tag", "result", wasmstages.ReloadOK}, 1},
		{wasmstages.MetricReloads, []string{"component", "stage", "name", "tag", "result", wasmstages.ReloadABI}, 2},
		{wasmstages.MetricReloads, []string{"component", "stage", "name", "tag", "result", wasmstages.ReloadInit}, 1},
		{pipeline.MetricStageErrors, []string{"component", "stage", "name", "tag", "kind", wasmstages.KindLoad}, 2},
		{pipeline.MetricStageErrors, []string{"component", "stage", "name", "tag", "kind", wasmstages.KindInit}, 1},
	} {
		if got := snap.Get(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if len(logs.lines("stage module swapped", "version=1")) != 1 {
		t.Errorf("the swap was not logged; log:\n%s", logs.String())
	}
}

func TestGoGuest(t *testing.T) {
	reg := pipeline.NewRegistry()
	s := newStage(t, wasmstages.Config{Name: "gofilter", Module: guest("gofilter"), Params: map[string]any{"comms": []string{"sh", "bash"}}, Metrics: reg, Workers: 2})
	for range 3 {
		out, err := s.Process(context.Background(), events(300, "sh", "cat", "bash"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 100 || comms(t, out)[0] != "cat" {
			t.Fatalf("kept %d events, want the 100 cats", len(out))
		}
	}
	if got := reg.Snapshot().Get(wasmstages.MetricGuest, "component", "stage", "name", "gofilter", "counter", "dropped"); got != 600 {
		t.Errorf("guest counter dropped = %v, want 600", got)
	}
}

// TestWorkersKeepIdentitiesApart: a batch holding the events of one source
// event that a previous stage multiplied, where the split among workers
// would fall, through a stage that multiplies again: the workers do not
// part that source event's events, so the host numbers all of them in one
// place and no two output events share an identity.
func TestWorkersKeepIdentitiesApart(t *testing.T) {
	in := events(200, "sh", "cat")
	for i := 90; i < 110; i++ { // 20 events of source event (open, 100)
		in[i].Seq, in[i].Part = 100, uint32(i-89)
	}
	s := newStage(t, wasmstages.Config{Module: guest("tag_v1"), Params: map[string]any{"copies": 2}, Workers: 4})
	out, err := s.Process(context.Background(), in, nil)
	if err != nil {
		t.Fatal(err)
	}
	type id struct {
		source string
		seq    uint64
		part   uint32
	}
	seen := map[id]bool{}
	for _, ev := range out {
		k := id{ev.Source, ev.Seq, ev.Part}
		if seen[k] {
			t.Fatalf("identity %+v twice among %d events", k, len(out))
		}
		seen[k] = true
	}
	if len(out) != 400 {
		t.Errorf("%d events, want 400", len(out))
	}
}

// TestFilterKeepingAllHandsInputBack: a filter that drops nothing returns
// its input batch itself when one instance took it whole and the caller's
// out was empty (pipeline.Stage lets a stage do so; the pipeline then
// passes the batch on without a copy). Where the output joins parts or
// follows what out held, it is a copy.
func TestFilterKeepingAllHandsInputBack(t *testing.T) {
	ctx := context.Background()
	s := newStage(t, wasmstages.Config{Module: guest("filter"), Params: map[string]any{"comms": []any{"sh"}}})
	in := events(300, "cat", "ls")
	out, err := s.Process(ctx, in, make([]pipeline.Event, 0, len(in)))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) || &out[0] != &in[0] {
		t.Fatalf("a filter keeping all %d events returned %d events in a copy; want in itself", len(in), len(out))
	}

	// Something dropped: the output is a fresh array, never a rewrite of in.
	mixed := events(300, "cat", "sh")
	out, err = s.Process(ctx, mixed, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 150 || &out[0] == &mixed[0] || mixed[1].Seq != 2 {
		t.Fatalf("dropping half: %d events, aliasing in: %v, in[1].Seq = %d", len(out), len(out) > 0 && &out[0] == &mixed[0], mixed[1].Seq)
	}

	// After a prefix the output is appended to out.
	prefix := []pipeline.Event{{Source: "earlier", Seq: 99}}
	out, err = s.Process(ctx, in, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in)+1 || out[0].Seq != 99 || out[1].Seq != in[0].Seq {
		t.Fatalf("with a prefix: %d events, first seqs %d %d; want the prefix, then all of in", len(out), out[0].Seq, out[1].Seq)
	}

	// Parts processed on several instances are joined in out.
	w := newStage(t, wasmstages.Config{Module: guest("filter"), Params: map[string]any{"comms": []any{"sh"}}, Workers: 4})
	big := events(2000, "cat", "ls")
	out, err = w.Process(ctx, big, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(big) || &out[0] == &big[0] {
		t.Fatalf("four workers: %d events, aliasing in: %v; want a joined copy of all %d", len(out), &out[0] == &big[0], len(big))
	}
	for i := range out {
		if out[i].Seq != big[i].Seq {
			t.Fatalf("four workers: event %d has seq %d, want %d", i, out[i].Seq, big[i].Seq)
		}
	}
}
