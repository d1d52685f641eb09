package wasmstages_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/kallsyms"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
	"github.com/sluice-dev/sluice/wasmstages"
)

// memIG is an in-memory IGHandle: outputs with fixed schemas, parameters,
// maps that exist once "loaded" (memMap), a perf event array with queued
// records and a container filter that discards mount namespace 555. It
// stands beside the agent's tests on a real gadget (agent/igwasm_test.go),
// which run the IG modules against the kernel; here every host function
// can be checked exactly.
type memIG struct {
	outputs []wasmstages.IGOutput
	params  map[string]string
	loaded  bool
	maps    map[string]wasmstages.MapHandle
	created []*ownedMem
}

type ownedMem struct {
	*memMap
	closed bool
}

func (o *ownedMem) Close() error {
	if o.closed {
		return errors.New("closed twice")
	}
	o.closed = true
	return nil
}

// memPerf is a perf event array whose reader returns records, then
// ErrNotFound.
type memPerf struct {
	*memMap
	records [][]byte
}

func (p *memPerf) OpenPerfReader(perCPU int, overwritable bool) (wasmstages.PerfReader, error) {
	return &memPerfReader{p: p}, nil
}

type memPerfReader struct {
	p      *memPerf
	closed bool
}

func (r *memPerfReader) Read(dst []byte) (int, error) {
	if len(r.p.records) == 0 {
		return 0, wasmstages.ErrNotFound
	}
	rec := r.p.records[0]
	r.p.records = r.p.records[1:]
	if len(rec) > len(dst) {
		return 0, wasmstages.ClassifyError(wasmstages.ErrInvalid, errors.New("record too long"))
	}
	return copy(dst, rec), nil
}

func (r *memPerfReader) Pause() error  { return nil }
func (r *memPerfReader) Resume() error { return nil }
func (r *memPerfReader) Close() error {
	if r.closed {
		return errors.New("closed twice")
	}
	r.closed = true
	return nil
}

func (g *memIG) Outputs() []wasmstages.IGOutput { return g.outputs }

func (g *memIG) Param(key string) (string, error) {
	v, ok := g.params[key]
	if !ok {
		return "", wasmstages.ClassifyError(wasmstages.ErrNotFound, fmt.Errorf("no parameter %q", key))
	}
	return v, nil
}

func (g *memIG) Map(name string) (wasmstages.MapHandle, error) {
	if !g.loaded {
		return nil, wasmstages.ClassifyError(wasmstages.ErrWrongPhase, errors.New("the gadget is not loaded"))
	}
	m, ok := g.maps[name]
	if !ok {
		return nil, wasmstages.ClassifyError(wasmstages.ErrNotFound, fmt.Errorf("no map %q", name))
	}
	return m, nil
}

func (g *memIG) NewMap(spec wasmstages.IGMapSpec) (wasmstages.OwnedMap, error) {
	o := &ownedMem{memMap: &memMap{info: wasmstages.MapInfo{Type: spec.Type, KeySize: spec.KeySize, ValueSize: spec.ValueSize, MaxEntries: spec.MaxEntries}, m: map[string][]byte{}}}
	g.created = append(g.created, o)
	return &cappedMap{o}, nil
}

// cappedMap refuses new keys past max entries, as the kernel does.
type cappedMap struct{ *ownedMem }

func (c *cappedMap) Update(key, value []byte, flags uint64) error {
	if _, ok := c.m[string(key)]; !ok && uint32(len(c.m)) >= c.info.MaxEntries {
		return errors.New("map full")
	}
	return c.memMap.Update(key, value, flags)
}

func (g *memIG) DiscardMountNS(id uint64) bool { return id == 555 }

var (
	eventsSchema = &pipeline.Schema{Gadget: "trace_open", Type: "event", Fields: schemaFields(
		"time", "host", "source", "gadget", "seq", "pid", "uid", "comm", "path", "flags", "flags_raw", "mode", "mode_raw", "ret", "ret_error")}
	snapSchema = &pipeline.Schema{Gadget: "trace_open", Type: "task", Fields: schemaFields(
		"time", "host", "source", "gadget", "seq", "snapshot", "snapshot_rows", "pid", "comm")}
)

// schemaFields makes fields of the names: numbers for the ones named like
// numbers, strings for the rest.
func schemaFields(names ...string) []pipeline.Field {
	var out []pipeline.Field
	for _, n := range names {
		k := pipeline.FieldString
		switch n {
		case "seq", "pid", "uid", "flags_raw", "mode_raw", "snapshot", "snapshot_rows":
			k = pipeline.FieldUint
		case "ret":
			k = pipeline.FieldInt
		}
		out = append(out, pipeline.Field{Name: n, Kind: k})
	}
	return out
}

func snapEvent(seq, pid uint64) []byte {
	b := codec.AppendMapHeader(nil, 9)
	kv := func(k, v string) { b = codec.AppendString(codec.AppendString(b, k), v) }
	ku := func(k string, v uint64) { b = codec.AppendUint(codec.AppendString(b, k), v) }
	kv("time", "2025-01-01T00:00:00Z")
	kv("host", "node-a")
	kv("source", "open")
	kv("gadget", "trace_open")
	ku("seq", seq)
	ku("snapshot", 1)
	ku("snapshot_rows", 3)
	ku("pid", pid)
	kv("comm", "task")
	return b
}

func newMemIG() *memIG {
	counts := &memMap{info: wasmstages.MapInfo{Type: 1, KeySize: 4, ValueSize: 8, MaxEntries: 1024}, m: map[string][]byte{}}
	counts.Update(u32key(1), u64val(41), 0)
	counts.Update(u32key(2), u64val(7), 0)
	return &memIG{
		outputs: []wasmstages.IGOutput{{Name: "events", Schema: eventsSchema}, {Name: "snap", Schema: snapSchema, Array: true}},
		params:  map[string]string{"drop_comm": "curl"},
		maps: map[string]wasmstages.MapHandle{
			"counts": counts,
			"perf":   &memPerf{memMap: &memMap{info: wasmstages.MapInfo{Type: 4, KeySize: 4, ValueSize: 4, MaxEntries: 2}}, records: [][]byte{[]byte("hello")}},
		},
	}
}

func newIGModule(t *testing.T, module string, h wasmstages.IGHandle, logs *logBuffer) (*wasmstages.IGModule, error) {
	t.Helper()
	m, err := wasmstages.NewIGModule(context.Background(), wasmstages.IGConfig{
		Name: "open.wasm", Source: "open", Host: "node-a", Gadget: "trace_open", Module: guest(module),
		Handle: h, Timeout: 10 * time.Second, Logger: logs.logger(),
	})
	if err == nil {
		t.Cleanup(func() { m.Close(context.Background()) })
	}
	return m, err
}

func openEvents(comms ...string) []pipeline.Event {
	var out []pipeline.Event
	for i, c := range comms {
		seq := uint64(i + 1)
		out = append(out, pipeline.Event{Data: openEvent(seq, c), Schema: eventsSchema, Source: "open", Seq: seq})
	}
	return out
}

// TestIGModuleAPI runs ig_check, a Go module that calls every function of
// IG's wasm API and checks what it gets (see its source), through the whole
// lifecycle, and checks what the host made of its calls: the events it
// dropped, changed, added fields to and emitted, in order, the snapshot it
// edited, its map writes, its logs.
func TestIGModuleAPI(t *testing.T) {
	g := newMemIG()
	if _, err := os.Stat("/sys/kernel/tracing/events/syscalls/sys_enter_openat/format"); err == nil {
		g.params["decl"] = "1"
	}
	if tab, err := kallsyms.Load(); err == nil {
		if _, ok := tab.Address("schedule"); ok {
			g.params["ksym"] = "1"
		}
	}
	var logs logBuffer
	ctx := context.Background()
	m, err := newIGModule(t, "ig_check", g, &logs)
	if err != nil {
		t.Fatalf("NewIGModule: %v\n%s", err, logs.String())
	}
	for _, hook := range []string{"gadgetInit", "gadgetPreStart"} {
		if len(logs.lines(hook+" checks passed")) != 1 {
			t.Fatalf("%s did not pass:\n%s", hook, logs.String())
		}
	}
	for level, l := range map[string]string{"ERROR": "level 0", "WARN": "level 1", "INFO": "level 2", "DEBUG": "level 3"} {
		if len(logs.lines("level="+level, "msg=\""+l+"\"", "stage=open.wasm", "source=guest")) != 1 {
			t.Errorf("no %s line %q:\n%s", level, l, logs.String())
		}
	}
	if len(logs.lines("level=DEBUG", "level 4")) != 1 {
		t.Errorf("trace lines are not logged at debug:\n%s", logs.String())
	}

	g.loaded = true
	if err := m.Start(ctx); err != nil {
		t.Fatalf("Start: %v\n%s", err, logs.String())
	}
	if failed := logs.lines("check failed"); len(failed) > 0 {
		t.Fatalf("%s", strings.Join(failed, "\n"))
	}
	counts := g.maps["counts"].(*memMap)
	for k, want := range map[uint32]uint64{1: 42, 3: 3} {
		v := make([]byte, 8)
		if err := counts.Lookup(u32key(k), v); err != nil || string(v) != string(u64val(want)) {
			t.Errorf("counts[%d] = %x (%v); want %d", k, v, err, want)
		}
	}
	if _, ok := counts.m[string(u32key(2))]; ok {
		t.Error("counts[2] was not deleted")
	}
	if len(g.created) != 1 || !g.created[0].closed {
		t.Errorf("the map newMap created is not closed by mapRelease: %+v", g.created)
	}
	pending := m.Flush(nil)
	if len(pending) != 1 || decode(t, pending[0].Data)["count"] != int64(7) && decode(t, pending[0].Data)["count"] != uint64(7) {
		t.Fatalf("emitted from gadgetStart: %v; want one summary with count 7", eventsOf(t, pending))
	}

	out, err := m.Process(ctx, openEvents("sh", "curl", "mod", "emit", "sh"), nil)
	if err != nil {
		t.Fatalf("Process: %v\n%s", err, logs.String())
	}
	if failed := logs.lines("check failed"); len(failed) > 0 {
		t.Fatalf("%s", strings.Join(failed, "\n"))
	}
	got := eventsOf(t, out)
	var shape []string
	for _, e := range got {
		shape = append(shape, fmt.Sprintf("%v/%v", e["comm"], e["count"]))
	}
	want := []string{"sh/<nil>", "modified/<nil>", "emit/<nil>", "<nil>/4", "extra/<nil>", "sh/<nil>"}
	if !slices.Equal(shape, want) {
		t.Fatalf("out (comm/count) = %v; want %v (curl dropped, the packets emitted for emit after it, the hidden data source's not at all)", shape, want)
	}
	first := got[0]
	for k, v := range map[string]any{"note": "pid=4242 comm=sh", "order": "AB", "pid2": uint64(8484), "ratio": 0.5, "even": true, "small": int64(-5), "comm": "sh", "pid": uint64(4242)} {
		if fmt.Sprint(first[k]) != fmt.Sprint(v) {
			t.Errorf("first event: %s = %#v; want %#v", k, first[k], v)
		}
	}
	if raw, _ := codec.Lookup(out[0].Data, "raw"); string(raw) != "\xc4\x03\x01\x02\x03" {
		t.Errorf("first event: raw = %x; want a msgpack bin of bytes 1 2 3", raw)
	}
	if out[0].Seq != 1 || out[0].Source != "open" || out[3].Seq != 4 || out[4].Seq != 4 {
		t.Errorf("seq of the events: %d %d %d; want 1, and the emitted ones the seq of the event they were emitted for (4)", out[0].Seq, out[3].Seq, out[4].Seq)
	}
	distinctIDs(t, out)
	if got[4]["note"] != "pid=0 comm=extra" || fmt.Sprint(got[4]["seq"]) != "4" || got[4]["path"] != "" || fmt.Sprint(got[4]["uid"]) != "0" {
		t.Errorf("an event the module emitted into the gadget's data source: %v; want its fields zero but comm, the envelope of the event it was emitted for, and its note set by the module's own subscription", got[4])
	}
	s := out[0].Schema
	if s == eventsSchema || !s.HasField("note") || !s.HasField("raw") {
		t.Fatalf("the changed events' schema lacks the added fields: %+v", s)
	}
	for _, f := range s.Fields {
		if f.Name == "note" && f.Doc != "the module's note" {
			t.Errorf("note's description = %q; want the one setConfig gave", f.Doc)
		}
	}
	if sum := out[3].Schema; sum.Type != "summary" || !sum.HasField("count") || !sum.HasField("seq") {
		t.Errorf("the module's data source's schema: %+v", sum)
	}

	snapIn := []pipeline.Event{
		{Data: snapEvent(6, 10), Schema: snapSchema, Source: "open", Seq: 6},
		{Data: snapEvent(7, 0), Schema: snapSchema, Source: "open", Seq: 7},
		{Data: snapEvent(8, 30), Schema: snapSchema, Source: "open", Seq: 8},
	}
	out, err = m.Process(ctx, snapIn, nil)
	if err != nil {
		t.Fatalf("Process snapshot: %v", err)
	}
	var rows []string
	for _, e := range eventsOf(t, out) {
		rows = append(rows, fmt.Sprintf("%v/%v/%v", e["pid"], e["rank"], e["snapshot"]))
	}
	if want := []string{"10/0/1", "30/2/1", "99999/0/1"}; !slices.Equal(rows, want) {
		t.Errorf("snapshot rows (pid/rank/snapshot) = %v; want %v (pid 0 dropped, a row appended with the snapshot's envelope)", rows, want)
	}
	distinctIDs(t, out)

	if err := m.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v\n%s", err, logs.String())
	}
	pending = m.Flush(nil)
	// The module saw six events: five inputs and the one it emitted into
	// events, which came back to its own subscription.
	if evs := eventsOf(t, pending); len(evs) != 1 || fmt.Sprint(evs[0]["count"]) != "1006" {
		t.Errorf("emitted at gadgetStop: %v; want one summary with count 1006 (the released one not)", evs)
	}
	if err := m.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if len(logs.lines("gadgetPostStop checks passed")) != 1 {
		t.Errorf("gadgetPostStop did not run at Close:\n%s", logs.String())
	}
	if bad := logs.lines("check failed"); len(bad) > 0 {
		t.Errorf("%s", strings.Join(bad, "\n"))
	}
}

// distinctIDs checks that no two events share an identity (Source, Seq,
// Part), which deduplicating sinks name them by: an event a module emits
// after an input has the input's Seq and a Part of its own.
func distinctIDs(t *testing.T, evs []pipeline.Event) {
	t.Helper()
	seen := map[string]bool{}
	for _, ev := range evs {
		id := fmt.Sprintf("%s/%d/%d", ev.Source, ev.Seq, ev.Part)
		if seen[id] {
			t.Errorf("two events are %s", id)
		}
		seen[id] = true
	}
}

func eventsOf(t *testing.T, evs []pipeline.Event) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, ev := range evs {
		out = append(out, decode(t, ev.Data))
	}
	return out
}

var callsSchema = &pipeline.Schema{Gadget: "ig_wasm", Type: "event", Fields: schemaFields(
	"time", "host", "source", "gadget", "seq", "proc.comm", "who", "tag")}

// callEvent encodes an event shaped like ig_wasm's (its who and tag are
// numbers).
func callEvent(seq, who uint64) []byte {
	b := codec.AppendMapHeader(nil, 8)
	kv := func(k, v string) { b = codec.AppendString(codec.AppendString(b, k), v) }
	ku := func(k string, v uint64) { b = codec.AppendUint(codec.AppendString(b, k), v) }
	kv("time", "2025-01-01T00:00:00Z")
	kv("host", "node-a")
	kv("source", "calls")
	kv("gadget", "ig_wasm")
	ku("seq", seq)
	kv("proc.comm", "test")
	ku("who", who)
	ku("tag", 0)
	return b
}

func memCallsGadget() *memIG {
	counts := &memMap{info: wasmstages.MapInfo{Type: 1, KeySize: 8, ValueSize: 8, MaxEntries: 1024}, m: map[string][]byte{}}
	counts.Update(u64val(10), u64val(3), 0)
	return &memIG{
		outputs: []wasmstages.IGOutput{{Name: "calls", Schema: callsSchema}},
		params:  map[string]string{"drop_who": "11", "tag": "0xc0ffee"},
		maps: map[string]wasmstages.MapHandle{
			"counts": counts,
			"tags":   &memMap{info: wasmstages.MapInfo{Type: 2, KeySize: 4, ValueSize: 8, MaxEntries: 1}, m: map[string][]byte{}},
		},
	}
}

func callEvents(whos ...uint64) []pipeline.Event {
	var out []pipeline.Event
	for i, w := range whos {
		out = append(out, pipeline.Event{Data: callEvent(uint64(i+1), w), Schema: callsSchema, Source: "calls", Seq: uint64(i + 1)})
	}
	return out
}

// TestIGModuleTwins runs the Go and the C module of the ig_wasm gadget
// (the ones the agent's end-to-end tests run on the kernel) through the
// same checks: the tag written into the map at start, the event of
// drop_who dropped, who_hex and calls added, the summary at stop.
func TestIGModuleTwins(t *testing.T) {
	for _, module := range []string{"ig_wasm_go", "ig_wasm_c"} {
		t.Run(module, func(t *testing.T) {
			g := memCallsGadget()
			var logs logBuffer
			ctx := context.Background()
			m, err := newIGModule(t, module, g, &logs)
			if err != nil {
				t.Fatalf("NewIGModule: %v\n%s", err, logs.String())
			}
			if _, err := m.Process(ctx, callEvents(10), nil); err != nil {
				t.Fatalf("Process before start: %v", err)
			}
			g.loaded = true
			if err := m.Start(ctx); err != nil {
				t.Fatalf("Start: %v\n%s", err, logs.String())
			}
			tag := make([]byte, 8)
			if err := g.maps["tags"].Lookup(u32key(0), tag); err != nil || string(tag) != string(u64val(0xc0ffee)) {
				t.Fatalf("tags[0] = %x (%v); want the param tag", tag, err)
			}
			if len(logs.lines("tag 12648430 written")) != 1 {
				t.Errorf("no log line of the module about the tag:\n%s", logs.String())
			}
			out, err := m.Process(ctx, callEvents(10, 11, 12), nil)
			if err != nil {
				t.Fatalf("Process: %v", err)
			}
			var got []string
			for _, e := range eventsOf(t, out) {
				got = append(got, fmt.Sprintf("%v/%v/%v", e["who"], e["who_hex"], e["calls"]))
			}
			if want := []string{"10/0xa/3", "12/0xc/0"}; !slices.Equal(got, want) {
				t.Errorf("events (who/who_hex/calls) = %v; want %v", got, want)
			}
			if err := m.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			sum := eventsOf(t, m.Flush(nil))
			if len(sum) != 1 || fmt.Sprint(sum[0]["events"]) != "4" || sum[0]["source"] != "open" {
				t.Errorf("summary = %v; want one event of the module's data source, events = 4", sum)
			}
			if err := m.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if module == "ig_wasm_c" && len(logs.lines("ig_wasm_c: post stop")) != 1 {
				t.Errorf("gadgetPostStop did not run at Close:\n%s", logs.String())
			}
		})
	}
}

// TestIGModuleTrapReplaced: a callback that traps fails its batch with
// KindTrap; the instance is replaced, and the replacement runs
// gadgetInit, gadgetPreStart and gadgetStart again before the next batch.
func TestIGModuleTrapReplaced(t *testing.T) {
	g := memCallsGadget()
	var logs logBuffer
	ctx := context.Background()
	m, err := newIGModule(t, "ig_wasm_c", g, &logs)
	if err != nil {
		t.Fatal(err)
	}
	g.loaded = true
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = m.Process(ctx, callEvents(10, 0xdead), nil)
	if kind := pipeline.StageErrorKind(err); kind != wasmstages.KindTrap {
		t.Fatalf("Process of a trapping event: %v (kind %q); want a trap", err, kind)
	}
	g.maps["tags"].Update(u32key(0), u64val(0), 0)
	out, err := m.Process(ctx, callEvents(10, 11, 12), nil)
	if err != nil || len(out) != 2 {
		t.Fatalf("the batch after the trap: %d events, %v; want 2", len(out), err)
	}
	if hex := decode(t, out[0].Data)["who_hex"]; hex != "0xa" {
		t.Errorf("the replacement did not subscribe again: who_hex = %v", hex)
	}
	tag := make([]byte, 8)
	if g.maps["tags"].Lookup(u32key(0), tag); string(tag) != string(u64val(0xc0ffee)) {
		t.Errorf("the replacement did not run gadgetStart (tags[0] = %x)", tag)
	}
	if n := len(logs.lines("ig_wasm_c: init done")); n != 2 {
		t.Errorf("gadgetInit ran %d times; want 2", n)
	}
	// Closing after a failure makes no instance just to run
	// gadgetPostStop.
	if _, err := m.Process(ctx, callEvents(0xdead), nil); pipeline.StageErrorKind(err) != wasmstages.KindTrap {
		t.Fatalf("second trap: %v", err)
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(logs.lines("ig_wasm_c: init done")); n != 2 || len(logs.lines("post stop")) != 0 {
		t.Errorf("Close made an instance after the trap to run gadgetPostStop: gadgetInit ran %d times; want 2\n%s", n, logs.String())
	}
}

// TestIGModuleUnknownImports: a module importing functions of IG's API
// this host lacks is refused in one short line naming them.
func TestIGModuleUnknownImports(t *testing.T) {
	var logs logBuffer
	_, err := newIGModule(t, "ig_future", newMemIG(), &logs)
	if !errors.Is(err, wasmstages.ErrABI) {
		t.Fatalf("err = %v; want ErrABI", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "module does not implement Inspektor Gadget's wasm API 1: imports ig functions this host does not provide: getContainers, someFutureFunction") ||
		strings.Contains(msg, "\n") || len(msg) > 300 || strings.Contains(msg, "getDataSource") {
		t.Errorf("err = %q; want one short line naming only the missing functions", msg)
	}
}

// TestIGModuleInitFails: a gadgetInit that returns non-zero fails the
// module with ErrGadgetInit (the module's log says why).
func TestIGModuleInitFails(t *testing.T) {
	g := memCallsGadget()
	g.outputs = nil // no data source calls
	var logs logBuffer
	_, err := newIGModule(t, "ig_wasm_go", g, &logs)
	if !errors.Is(err, wasmstages.ErrGadgetInit) || !strings.Contains(err.Error(), "gadgetInit returned 1") {
		t.Fatalf("err = %v; want ErrGadgetInit naming gadgetInit", err)
	}
	if len(logs.lines("level=ERROR", "no data source calls")) != 1 || len(logs.lines("getDataSource: no data source", "source=host")) != 1 {
		t.Errorf("the module's and the host's reasons are not logged:\n%s", logs.String())
	}
}

func TestDetectGadgetABI(t *testing.T) {
	for module, want := range map[string]wasmstages.GadgetABI{
		"gadget_syscalls": wasmstages.ABISluice, "ig_wasm_c": wasmstages.ABIInspektorGadget,
		"ig_wasm_go": wasmstages.ABIInspektorGadget, "gadget_sdk": wasmstages.ABISluice,
	} {
		got, err := wasmstages.DetectGadgetABI(readGuest(t, module))
		if err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", module, got, err, want)
		}
	}
	if _, err := wasmstages.DetectGadgetABI([]byte("not wasm")); err == nil {
		t.Error("DetectGadgetABI of garbage succeeded")
	}
	if _, err := wasmstages.DetectGadgetABI([]byte("\x00asm\x01\x00\x00\x00")); !errors.Is(err, wasmstages.ErrABI) {
		t.Errorf("DetectGadgetABI of a module that exports nothing: %v; want ErrABI", err)
	}
}

var procSchema = &pipeline.Schema{Gadget: "ig_proc", Type: "event", Fields: []pipeline.Field{
	{Name: "time", Kind: pipeline.FieldString}, {Name: "host", Kind: pipeline.FieldString},
	{Name: "source", Kind: pipeline.FieldString}, {Name: "gadget", Kind: pipeline.FieldString},
	{Name: "seq", Kind: pipeline.FieldUint},
	{Name: "proc.comm", Kind: pipeline.FieldString}, {Name: "proc.pid", Kind: pipeline.FieldUint},
	{Name: "proc.creds.uid", Kind: pipeline.FieldUint}, {Name: "proc.creds.user", Kind: pipeline.FieldString},
	{Name: "mounts", Kind: pipeline.FieldList}, {Name: "ret", Kind: pipeline.FieldInt},
}}

// procEvent encodes an event of procSchema: a struct proc (with the
// nested struct proc.creds) and a list of structs mounts.
func procEvent(seq uint64) []byte {
	b := codec.AppendMapHeader(nil, 11)
	kv := func(k, v string) { b = codec.AppendString(codec.AppendString(b, k), v) }
	ku := func(k string, v uint64) { b = codec.AppendUint(codec.AppendString(b, k), v) }
	kv("time", "2025-01-01T00:00:00Z")
	kv("host", "node-a")
	kv("source", "open")
	kv("gadget", "ig_proc")
	ku("seq", seq)
	kv("proc.comm", "sh")
	ku("proc.pid", 42)
	ku("proc.creds.uid", 1000)
	kv("proc.creds.user", "alice")
	b = codec.AppendArrayHeader(codec.AppendString(b, "mounts"), 2)
	for _, m := range [][2]string{{"/a", "/b"}, {"/c", "/d"}} {
		b = codec.AppendMapHeader(b, 2)
		kv("src", m[0])
		kv("dst", m[1])
	}
	b = codec.AppendInt(codec.AppendString(b, "ret"), -2)
	return b
}

// TestIGModuleStructs runs ig_struct, a Go module that reads and replaces
// a struct, a nested struct and an array of structs through IG's struct
// accessors, and checks their refusals (see its source); the events come
// out with the module's replacements, in the event's key order.
func TestIGModuleStructs(t *testing.T) {
	g := &memIG{outputs: []wasmstages.IGOutput{{Name: "events", Schema: procSchema}}}
	var logs logBuffer
	ctx := context.Background()
	m, err := newIGModule(t, "ig_struct", g, &logs)
	if err != nil {
		t.Fatalf("NewIGModule: %v\n%s", err, logs.String())
	}
	if len(logs.lines("gadgetInit checks passed")) != 1 {
		t.Fatalf("gadgetInit:\n%s", logs.String())
	}
	out, err := m.Process(ctx, []pipeline.Event{{Data: procEvent(1), Schema: procSchema, Source: "open", Seq: 1, MntNS: 4026532001}}, nil)
	if err != nil {
		t.Fatalf("Process: %v\n%s", err, logs.String())
	}
	if failed := logs.lines("check failed"); len(failed) > 0 || len(logs.lines("event checks passed")) != 1 {
		t.Fatalf("%s\n%s", strings.Join(failed, "\n"), logs.String())
	}
	if len(out) != 1 {
		t.Fatalf("%d events out; want 1", len(out))
	}
	if out[0].MntNS != 4026532001 {
		// The container stage resolves events by it.
		t.Errorf("the changed event lost its mount namespace: %d", out[0].MntNS)
	}
	js, err := codec.AppendJSON(nil, out[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"time":"2025-01-01T00:00:00Z","host":"node-a","source":"open","gadget":"ig_proc","seq":1,` +
		`"proc.comm":"init","proc.pid":1,"proc.creds.uid":0,"proc.creds.user":"root",` +
		`"mounts":[{"src":"/x","dst":"/y","ro":true}],"ret":-2}`
	if string(js) != want {
		t.Errorf("event out:\n%s\nwant\n%s", js, want)
	}
	// The refusals were logged by the host, naming what was wrong.
	for _, want := range []string{
		`fieldPutStruct: struct \"proc\" has no member \"nope\" (its members: comm, pid, creds.uid, creds.user)`,
		`fieldPutStruct: struct \"proc\" has no member \"creds.gid\"`,
		`fieldPutStruct: struct \"proc\" member \"pid\": a string for a member holding integer values`,
		`fieldPutStruct: struct \"proc\" member \"pid\": 1.5 is not a whole number`,
		`fieldGetStruct: field \"proc.comm\" is not a struct`,
		`fieldGetScalar: field \"proc\" is a struct: read and write it with fieldGetStruct and fieldPutStruct`,
		`fieldPutStructArray: struct array \"mounts\": element 0 is a number, not an object`,
	} {
		if len(logs.lines("source=host", want)) == 0 {
			t.Errorf("no host warning %q:\n%s", want, logs.String())
		}
	}
}

// TestIGModuleContainers: a module subscribed to the containers data
// source gets each container event the host delivers, with IG's fields;
// the events of that data source never leave the module, what the module
// emits for them does.
func TestIGModuleContainers(t *testing.T) {
	g := &memIG{outputs: []wasmstages.IGOutput{{Name: "events", Schema: procSchema}}}
	var logs logBuffer
	ctx := context.Background()
	m, err := newIGModule(t, "ig_struct", g, &logs)
	if err != nil {
		t.Fatalf("NewIGModule: %v\n%s", err, logs.String())
	}
	if !m.WantsContainers() {
		t.Fatal("WantsContainers = false for a module subscribed to containers")
	}
	g.loaded = true
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c := wasmstages.IGContainer{ID: "0123abcd", Name: "web", CgroupID: 5555, MntNS: 4026532999, PID: 77}
	if err := m.ContainerEvent(ctx, wasmstages.IGContainerCreated, c); err != nil {
		t.Fatalf("ContainerEvent: %v\n%s", err, logs.String())
	}
	if err := m.ContainerEvent(ctx, wasmstages.IGContainerDeleted, c); err != nil {
		t.Fatal(err)
	}
	pending := m.Flush(nil)
	distinctIDs(t, pending)
	var lines []string
	for _, ev := range eventsOf(t, pending) {
		lines = append(lines, fmt.Sprint(ev["line"]))
	}
	want := []string{"CREATED web 0123abcd 4026532999 5555 77 config=", "DELETED web 0123abcd 4026532999 5555 77 config="}
	if !slices.Equal(lines, want) {
		t.Errorf("the module's events for the container events: %q; want %q", lines, want)
	}
	if failed := logs.lines("check failed"); len(failed) > 0 {
		t.Error(strings.Join(failed, "\n"))
	}

	// ig_check does not subscribe to containers: nothing to feed.
	mc, err := newIGModule(t, "ig_check", newMemIG(), &logs)
	if err != nil {
		t.Fatal(err)
	}
	if mc.WantsContainers() {
		t.Error("WantsContainers = true for a module that does not subscribe to containers")
	}
	if err := mc.ContainerEvent(ctx, wasmstages.IGContainerCreated, c); err != nil {
		t.Errorf("ContainerEvent to a module not subscribed: %v", err)
	}
}
