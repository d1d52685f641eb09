package wasmstages_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/internal/kallsyms"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
	"github.com/sluice-dev/sluice/wasmstages"
)

// memGadget is an in-memory GadgetHandle: integer and string parameters,
// and hash maps of fixed key and value sizes that exist once "loaded". It
// stands beside the agent's test on a real gadget (agent/gadgetwasm_test.go),
// which checks the same module against the kernel; here every host function
// can be checked exactly.
type memGadget struct {
	params map[string]string
	ints   map[string]bool // integer parameters
	loaded bool
	maps   map[string]*memMap
}

func newMemGadget() *memGadget {
	return &memGadget{
		params: map[string]string{"syscall": "", "target_syscall": "-1", "target_pid": "0"},
		ints:   map[string]bool{"target_syscall": true, "target_pid": true},
		maps: map[string]*memMap{
			"config": {info: wasmstages.MapInfo{Type: 2, KeySize: 4, ValueSize: 8, MaxEntries: 1}, m: map[string][]byte{}},
			"counts": {info: wasmstages.MapInfo{Type: 1, KeySize: 4, ValueSize: 8, MaxEntries: 1024}, m: map[string][]byte{}},
		},
	}
}

func (g *memGadget) Params() []string {
	return []string{"syscall", "target_pid", "target_syscall"}
}

func (g *memGadget) Param(name string) (string, error) {
	v, ok := g.params[name]
	if !ok {
		return "", wasmstages.ClassifyError(wasmstages.ErrNotFound, fmt.Errorf("no parameter %q", name))
	}
	return v, nil
}

func (g *memGadget) SetParam(name, value string) error {
	if g.loaded {
		return wasmstages.ClassifyError(wasmstages.ErrWrongPhase, errors.New("loaded"))
	}
	if _, ok := g.params[name]; !ok {
		return wasmstages.ClassifyError(wasmstages.ErrNotFound, fmt.Errorf("no parameter %q", name))
	}
	if _, err := strconv.Atoi(value); g.ints[name] && err != nil {
		return wasmstages.ClassifyError(wasmstages.ErrInvalid, fmt.Errorf("%q is not an integer", value))
	}
	g.params[name] = value
	return nil
}

func (g *memGadget) Map(name string) (wasmstages.MapHandle, error) {
	if !g.loaded {
		return nil, wasmstages.ClassifyError(wasmstages.ErrWrongPhase, errors.New("not loaded"))
	}
	m, ok := g.maps[name]
	if !ok {
		return nil, wasmstages.ClassifyError(wasmstages.ErrNotFound, fmt.Errorf("no map %q", name))
	}
	return m, nil
}

type memMap struct {
	info wasmstages.MapInfo
	m    map[string][]byte
	keys []string // insertion order, for NextKey
}

func (m *memMap) Info() wasmstages.MapInfo { return m.info }

func (m *memMap) Lookup(key, value []byte) error {
	v, ok := m.m[string(key)]
	if !ok {
		return wasmstages.ClassifyError(wasmstages.ErrNotFound, fmt.Errorf("no key %x", key))
	}
	copy(value, v)
	return nil
}

func (m *memMap) Update(key, value []byte, flags uint64) error {
	_, exists := m.m[string(key)]
	switch {
	case flags == 1 && exists:
		return wasmstages.ClassifyError(wasmstages.ErrExists, fmt.Errorf("key %x", key))
	case flags == 2 && !exists:
		return wasmstages.ClassifyError(wasmstages.ErrNotFound, fmt.Errorf("key %x", key))
	}
	if !exists {
		m.keys = append(m.keys, string(key))
	}
	m.m[string(key)] = append([]byte(nil), value...)
	return nil
}

func (m *memMap) Delete(key []byte) error {
	if _, ok := m.m[string(key)]; !ok {
		return wasmstages.ClassifyError(wasmstages.ErrNotFound, fmt.Errorf("no key %x", key))
	}
	delete(m.m, string(key))
	for i, k := range m.keys {
		if k == string(key) {
			m.keys = append(m.keys[:i], m.keys[i+1:]...)
			break
		}
	}
	return nil
}

func (m *memMap) NextKey(key, next []byte) error {
	i := 0
	if key != nil {
		i = len(m.keys)
		for j, k := range m.keys {
			if k == string(key) {
				i = j + 1
			}
		}
	}
	if i >= len(m.keys) {
		return wasmstages.ErrNotFound
	}
	copy(next, m.keys[i])
	return nil
}

func u32key(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func u64val(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// syscallEvent encodes an event shaped like wasm_syscalls' records.
func syscallEvent(seq, nr, arg1, kaddr uint64) []byte {
	b := codec.AppendMapHeader(nil, 7)
	kv := func(k string, v uint64) { b = codec.AppendUint(codec.AppendString(b, k), v) }
	b = codec.AppendString(codec.AppendString(b, "source"), "sc")
	kv("seq", seq)
	kv("pid", 4242)
	kv("nr", nr)
	kv("arg0", 0)
	kv("arg1", arg1)
	kv("kaddr", kaddr)
	return b
}

func newGadgetModule(t *testing.T, module string, h wasmstages.GadgetHandle, reg *pipeline.Registry) (*wasmstages.GadgetModule, error) {
	t.Helper()
	m, err := wasmstages.NewGadgetModule(context.Background(), wasmstages.GadgetConfig{
		Name: "sc.wasm", Source: "sc", Gadget: "wasm_syscalls", Module: guest(module),
		Handle: h, Timeout: 10 * time.Second, Metrics: reg,
	})
	if err == nil {
		t.Cleanup(func() { m.Close(context.Background()) })
	}
	return m, err
}

// TestGadgetModuleLifecycle runs gadget_syscalls through init (a derived
// parameter), start (map writes and the phase rule), process (drop,
// enrich with a map value, a syscall name and a kernel symbol) and stop
// (map iteration).
func TestGadgetModuleLifecycle(t *testing.T) {
	ctx := context.Background()
	g := newMemGadget()
	g.params["syscall"] = "getpriority"
	reg := pipeline.NewRegistry()
	m, err := newGadgetModule(t, "gadget_syscalls", g, reg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := g.params["target_syscall"], strconv.Itoa(unix.SYS_GETPRIORITY); got != want {
		t.Fatalf("gadget_init set target_syscall = %q, want %s (getpriority's number)", got, want)
	}

	g.loaded = true
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if v := g.maps["config"].m[string(u32key(0))]; binary.LittleEndian.Uint64(v) != 0x5eed5eed {
		t.Errorf("config[0] = %x after gadget_start, want the tag 0x5eed5eed", v)
	}
	if len(g.maps["counts"].m) != 0 {
		t.Errorf("counts holds %d keys after gadget_start; its probe key should be deleted", len(g.maps["counts"].m))
	}
	if g.params["target_syscall"] != strconv.Itoa(unix.SYS_GETPRIORITY) {
		t.Errorf("param_set after load changed target_syscall to %s", g.params["target_syscall"])
	}

	nr := uint64(unix.SYS_GETPRIORITY)
	g.maps["counts"].Update(u32key(uint32(nr)), u64val(42), 0)
	var kaddr uint64
	var wantSym string
	if os.Geteuid() == 0 {
		tab, err := kallsyms.Load()
		if err != nil {
			t.Fatal(err)
		}
		addr, ok := tab.Address("do_exit")
		if !ok {
			t.Fatal("no do_exit in kallsyms")
		}
		kaddr, wantSym = addr+0x1c, "do_exit+0x1c"
	}
	in := []pipeline.Event{
		{Data: syscallEvent(1, nr, 2, kaddr), Source: "sc", Seq: 1},
		{Data: syscallEvent(2, nr, 3, kaddr), Source: "sc", Seq: 2}, // odd arg1: dropped
		{Data: syscallEvent(3, nr, 4, kaddr), Source: "sc", Seq: 3},
	}
	out, err := m.Process(ctx, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Seq != 1 || out[1].Seq != 3 {
		t.Fatalf("Process kept %+v; want seq 1 and 3", out)
	}
	for _, ev := range out {
		e := decode(t, ev.Data)
		if e["syscall_name"] != "getpriority" || testutil.Int(e["kernel_count"]) != 42 || e["kaddr_sym"] != wantSym || testutil.Int(e["pid"]) != 4242 {
			t.Errorf("event %d = %v; want syscall_name getpriority, kernel_count 42, kaddr_sym %q and the original fields", ev.Seq, e, wantSym)
		}
		if ev.Source != "sc" {
			t.Errorf("event %d has source %q, want the gadget's source", ev.Seq, ev.Source)
		}
	}

	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	snap := reg.Snapshot()
	if k, n := snap.Get(wasmstages.MetricGuest, "component", "stage", "name", "sc.wasm", "counter", "count_keys"), snap.Get(wasmstages.MetricGuest, "component", "stage", "name", "sc.wasm", "counter", "count_total"); k != 1 || n != 42 {
		t.Errorf("gadget_stop iterated %v keys totalling %v; want 1 and 42", k, n)
	}
}

// TestGadgetModuleTrapReplaced: a trap in sluice_process is a stage error
// of kind trap; the replacement instance runs gadget_init again (its
// param_set of the unchanged value is accepted) and gadget_start, and the
// next batch is processed.
func TestGadgetModuleTrapReplaced(t *testing.T) {
	ctx := context.Background()
	g := newMemGadget()
	g.params["syscall"] = "openat"
	reg := pipeline.NewRegistry()
	m, err := newGadgetModule(t, "gadget_syscalls_trap", g, reg)
	if err != nil {
		t.Fatal(err)
	}
	g.loaded = true
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = m.Process(ctx, []pipeline.Event{{Data: syscallEvent(1, unix.SYS_OPENAT, 7777, 0), Source: "sc", Seq: 1}}, nil)
	if kind := stageErrorKind(t, err); kind != wasmstages.KindTrap {
		t.Fatalf("kind = %s, want trap (%v)", kind, err)
	}
	// The replacement rewrites config[0]: clear it to see gadget_start run.
	delete(g.maps["config"].m, string(u32key(0)))
	out, err := m.Process(ctx, []pipeline.Event{{Data: syscallEvent(2, unix.SYS_OPENAT, 8, 0), Source: "sc", Seq: 2}}, nil)
	if err != nil {
		t.Fatalf("after the trap: %v", err)
	}
	if len(out) != 1 || decode(t, out[0].Data)["syscall_name"] != "openat" {
		t.Fatalf("after the trap, Process returned %v", out)
	}
	if _, ok := g.maps["config"].m[string(u32key(0))]; !ok {
		t.Error("the replacement instance did not run gadget_start")
	}
	if n := reg.Snapshot().Get(wasmstages.MetricInstanceRestarts, "component", "stage", "name", "sc.wasm"); n != 1 {
		t.Errorf("instance restarts = %v, want 1", n)
	}
}

func TestGadgetModuleInitFails(t *testing.T) {
	g := newMemGadget()
	g.params["syscall"] = "no_such_syscall"
	_, err := newGadgetModule(t, "gadget_syscalls", g, nil)
	if !errors.Is(err, wasmstages.ErrGadgetInit) {
		t.Fatalf("err = %v, want ErrGadgetInit", err)
	}
	for _, want := range []string{`gadget "wasm_syscalls" module`, "gadget_init returned 1", `"no_such_syscall" is not a syscall of`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestGadgetModuleABI: a stage module may serve as a gadget module (it
// processes the gadget's events, with the gadget's params in sluice_init);
// a gadget module is not a stage.
func TestGadgetModuleABI(t *testing.T) {
	ctx := context.Background()
	m, err := newGadgetModule(t, "filter", newMemGadget(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Processes() {
		t.Error("a module with sluice_process does not process")
	}
	out, err := m.Process(ctx, events(2, "sh"), nil)
	if err != nil || len(out) != 2 {
		t.Errorf("Process = %d events, %v; want both kept (the gadget has no comms param)", len(out), err)
	}
	_, err = wasmstages.New(ctx, wasmstages.Config{Name: "s", Module: guest("gadget_syscalls")})
	if !errors.Is(err, wasmstages.ErrABI) || !strings.Contains(err.Error(), "imports sluice_gadget.") || !strings.Contains(err.Error(), "a stage may import only from sluice") {
		t.Errorf("a gadget module as a stage: %v; want the sluice_gadget imports refused", err)
	}
	_, err = newGadgetModule(t, "missing_export", newMemGadget(), nil)
	if !errors.Is(err, wasmstages.ErrABI) || !strings.Contains(err.Error(), "would do nothing") {
		t.Errorf("a module exporting nothing a gadget calls: %v, want ErrABI", err)
	}
	_, err = newGadgetModule(t, "abi_version", newMemGadget(), nil)
	if !errors.Is(err, wasmstages.ErrABI) || !strings.Contains(err.Error(), "returned 2") {
		t.Errorf("a module of ABI version 2: %v, want ErrABI", err)
	}
	// A stage module's failing sluice_init fails the gadget module's init.
	_, err = newGadgetModule(t, "init_fail", newMemGadget(), nil)
	if !errors.Is(err, wasmstages.ErrGadgetInit) || errors.Is(err, wasmstages.ErrInit) || !strings.Contains(err.Error(), `sluice_init returned 1: param "threshold" is required`) {
		t.Errorf("a failing sluice_init: %v, want ErrGadgetInit with the guest's message", err)
	}
}

// BenchmarkGadgetModuleProcess: batches of 256 events through a gadget
// module, per event. "enrich" is gadget_syscalls (half dropped, the other
// half rebuilt with three host calls each: syscall_name, map_lookup on the
// in-memory handle, ksym_name); "filter" is a stage module serving as a
// gadget module, for the cost of the module path itself.
func BenchmarkGadgetModuleProcess(b *testing.B) {
	ctx := context.Background()
	for _, tc := range []struct{ name, module string }{{"enrich", "gadget_syscalls"}, {"filter", "filter"}} {
		b.Run(tc.name, func(b *testing.B) {
			g := newMemGadget()
			g.params["syscall"] = "getpriority"
			m, err := wasmstages.NewGadgetModule(ctx, wasmstages.GadgetConfig{
				Name: "sc.wasm", Source: "sc", Gadget: "wasm_syscalls", Module: guest(tc.module), Handle: g, Timeout: 10 * time.Second,
			})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close(ctx)
			g.loaded = true
			if err := m.Start(ctx); err != nil {
				b.Fatal(err)
			}
			g.maps["counts"].Update(u32key(unix.SYS_GETPRIORITY), u64val(7), 0) // as the program would
			in := make([]pipeline.Event, 256)
			for i := range in {
				in[i] = pipeline.Event{Data: syscallEvent(uint64(i+1), unix.SYS_GETPRIORITY, uint64(i), 0xffffffff81000000+uint64(i)), Source: "sc", Seq: uint64(i + 1)}
			}
			out := make([]pipeline.Event, 0, len(in))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if out, err = m.Process(ctx, in, out[:0]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/event")
		})
	}
}

// TestGadgetModuleCSDK runs a gadget module written with the C SDK's
// headers (sdk/c/sluice.h and sdk/c/sluice_gadget.h), and its twin written
// with the Rust SDK (sdk/rust), through its lifecycle.
func TestGadgetModuleCSDK(t *testing.T) {
	for _, module := range []string{"gadget_sdk", "gadget_sdk_rs"} {
		t.Run(module, func(t *testing.T) { testGadgetModuleSDK(t, module) })
	}
}

func testGadgetModuleSDK(t *testing.T, module string) {
	ctx := context.Background()
	var logs logBuffer
	g := newMemGadget()
	g.params["syscall"] = "execve"
	m, err := wasmstages.NewGadgetModule(ctx, wasmstages.GadgetConfig{
		Name: "sc.wasm", Source: "sc", Gadget: "wasm_syscalls", Module: guest(module),
		Handle: g, Timeout: 10 * time.Second, Logger: logs.logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	if got, want := g.params["target_syscall"], strconv.Itoa(unix.SYS_EXECVE); got != want {
		t.Errorf("target_syscall = %q, want %s", got, want)
	}
	g.loaded = true
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	in := []pipeline.Event{
		{Data: syscallEvent(1, unix.SYS_EXECVE, 2, 0), Source: "sc", Seq: 1},
		{Data: syscallEvent(2, unix.SYS_EXECVE, 3, 0), Source: "sc", Seq: 2},
	}
	out, err := m.Process(ctx, in, nil)
	if err != nil || len(out) != 1 || out[0].Seq != 1 {
		t.Fatalf("Process = %v, %v; want seq 1 kept", out, err)
	}
	g.maps["counts"].Update(u32key(1), u64val(5), 0)
	g.maps["counts"].Update(u32key(2), u64val(6), 0)
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	syscall0 := map[string]string{"amd64": "read", "arm64": "io_setup"}[runtime.GOARCH]
	if want := fmt.Sprintf("counts: 2 keys, sum 11; syscall 0 is %s", syscall0); len(logs.lines(want)) != 1 {
		t.Errorf("gadget_stop did not log %q; log:\n%s", want, logs.String())
	}

	g = newMemGadget()
	g.params["syscall"] = "nope"
	_, err = wasmstages.NewGadgetModule(ctx, wasmstages.GadgetConfig{Name: "sc.wasm", Source: "sc", Gadget: "wasm_syscalls", Module: guest(module), Handle: g})
	if !errors.Is(err, wasmstages.ErrGadgetInit) || !strings.Contains(err.Error(), `syscall nope: "nope" is not a syscall of`) {
		t.Errorf("init with an unknown syscall: %v", err)
	}
}
