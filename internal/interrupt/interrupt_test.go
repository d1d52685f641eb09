package interrupt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// mod assembles a module from sections (id, body) for tests.
func mod(sections ...[]byte) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		b = append(b, s[0])
		b = binary.AppendUvarint(b, uint64(len(s)-1))
		b = append(b, s[1:]...)
	}
	return b
}

func vec(items ...[]byte) []byte {
	b := binary.AppendUvarint(nil, uint64(len(items)))
	for _, it := range items {
		b = append(b, it...)
	}
	return b
}

func sec(id byte, body []byte) []byte { return append([]byte{id}, body...) }

func name(s string) []byte { return append(binary.AppendUvarint(nil, uint64(len(s))), s...) }

// body wraps instructions in a function body without locals.
func body(code ...byte) []byte {
	fn := append([]byte{0x00}, code...)
	return append(binary.AppendUvarint(nil, uint64(len(fn))), fn...)
}

// typeSection declares () -> (i32) as type 0 and (i32) -> (i32, i32) as type 1.
var typeSection = sec(1, vec([]byte{0x60, 0x00, 0x01, 0x7f}, []byte{0x60, 0x01, 0x7f, 0x02, 0x7f, 0x7f}))

// host is the sluice.__yield of the tests: it counts calls and, once stop
// is set or after limit calls (when set), traps the guest as the stage's
// host does past a deadline.
type host struct {
	calls atomic.Int64
	stop  atomic.Bool
	limit int64
}

var errStopped = errors.New("stopped by the host")

func runtime(t testing.TB, h *host) wazero.Runtime {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	t.Cleanup(func() { r.Close(ctx) })
	_, err := r.NewHostModuleBuilder(ImportModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {
			if n := h.calls.Add(1); h.stop.Load() || (h.limit > 0 && n > h.limit) {
				panic(errStopped)
			}
		}), nil, nil).Export(ImportName).Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.NewHostModuleBuilder("env").NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) { stack[0] = 1 }), nil, []api.ValueType{api.ValueTypeI32}).
		Export("one").Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// spinModule is a module whose export "spin" loops forever: only an
// interrupt ends it. extraGlobals globals come before the interrupt global.
func spinModule(extraGlobals int) []byte {
	var globals [][]byte
	for range extraGlobals {
		globals = append(globals, []byte{0x7f, 0x00, 0x41, 0x07, 0x0b}) // (i32) = 7
	}
	var sections [][]byte
	sections = append(sections, typeSection, sec(3, vec([]byte{0x00})))
	if extraGlobals > 0 {
		sections = append(sections, sec(6, vec(globals...)))
	}
	spin := body(
		0x03, 0x40, // loop
		0x0c, 0x00, // br 0
		0x0b,       // end
		0x41, 0x01, // i32.const 1
		0x0b, // end
	)
	sections = append(sections, sec(7, vec(append(name("spin"), 0x00, 0x00))), sec(10, vec(spin)))
	return mod(sections...)
}

func TestInterruptStopsLoop(t *testing.T) {
	for _, extra := range []int{0, 1, 200} { // 200: a fuel global index of two LEB bytes
		orig := spinModule(extra)
		out, stats, err := Rewrite(orig)
		if err != nil {
			t.Fatalf("extra globals %d: %v", extra, err)
		}
		if stats.Loops != 1 || stats.Functions != 1 {
			t.Errorf("extra globals %d: instrumented %+v, want 1 function and 1 loop", extra, stats)
		}
		h := &host{}
		m, err := runtime(t, h).Instantiate(context.Background(), out)
		if err != nil {
			t.Fatalf("extra globals %d: instantiate the rewritten module: %v", extra, err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := m.ExportedFunction("spin").Call(context.Background())
			done <- err
		}()
		// The guest reaches the host again and again while it spins.
		deadline := time.Now().Add(20 * time.Second)
		for h.calls.Load() < 3 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		select {
		case err := <-done:
			t.Fatalf("extra globals %d: spin returned: %v", extra, err)
		default:
		}
		h.stop.Store(true)
		select {
		case err := <-done:
			if !errors.Is(err, errStopped) {
				t.Errorf("extra globals %d: spin returned %v, want the host's error", extra, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("extra globals %d: the host did not stop the loop", extra)
		}
	}
}

// TestYieldPeriod counts the host calls of a loop of known length.
func TestYieldPeriod(t *testing.T) {
	_, out := renumberModule(t)
	h := &host{}
	m, err := runtime(t, h).Instantiate(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	before := h.calls.Load()
	const n = 100 * Period
	if _, err := m.ExportedFunction("count").Call(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	// n loop iterations, one host call per Period.
	if got := h.calls.Load() - before; got < n/Period-1 || got > n/Period+1 {
		t.Errorf("%d iterations made %d host calls, want about %d", n, got, n/Period)
	}
}

// renumberModule is a module in which function indices matter everywhere:
// an imported function, calls, call_indirect through an element segment,
// ref.func in code and in a global, a start function, exports and function
// names. It also has a () -> () type for the rewrite to reuse.
func renumberModule(t *testing.T) (orig, out []byte) {
	t.Helper()
	count := []byte{
		0x01, 0x01, 0x7f, // local 1: i
		0x03, 0x40, // loop
		0x20, 0x01, 0x41, 0x01, 0x6a, 0x22, 0x01, // i = i + 1
		0x20, 0x00, 0x49, 0x0d, 0x00, // br_if 0 while i < n
		0x0b,
		0x20, 0x01, 0x0b,
	}
	orig = mod(
		sec(1, vec(
			[]byte{0x60, 0x00, 0x01, 0x7f},       // t0 () -> i32
			[]byte{0x60, 0x01, 0x7f, 0x01, 0x7f}, // t1 i32 -> i32
			[]byte{0x60, 0x00, 0x00},             // t2 () -> ()
		)),
		sec(2, vec(append(append(name("env"), name("one")...), 0x00, 0x00))),
		sec(3, vec([]byte{1}, []byte{0}, []byte{2}, []byte{0}, []byte{0}, []byte{1})),
		sec(4, vec([]byte{0x70, 0x00, 0x01})),
		sec(6, vec([]byte{0x7f, 0x01, 0x41, 0x00, 0x0b}, []byte{0x70, 0x00, 0xd2, 0x02, 0x0b})),
		sec(7, vec(append(name("two"), 0x00, 0x02), append(name("five"), 0x00, 0x04), append(name("isnull"), 0x00, 0x05), append(name("count"), 0x00, 0x06))),
		sec(8, []byte{0x03}),
		sec(9, vec([]byte{0x00, 0x41, 0x00, 0x0b, 0x01, 0x01})),
		sec(10, vec(
			body(0x20, 0x00, 0x10, 0x00, 0x6a, 0x0b),                        // f1(x) = x + one()
			body(0x41, 0x14, 0x41, 0x00, 0x11, 0x01, 0x00, 0x0b),            // f2() = table[0](20)
			body(0x41, 0x05, 0x24, 0x00, 0x0b),                              // f3: start, g0 = 5
			body(0x23, 0x00, 0x0b),                                          // f4() = g0
			body(0xd2, 0x01, 0xd1, 0x0b),                                    // f5() = ref.is_null(ref.func f1)
			append(binary.AppendUvarint(nil, uint64(len(count))), count...), // f6(n) counts to n
		)),
		sec(0, append(name("name"), append([]byte{0x01}, vecSized(vec(append([]byte{0x01}, name("plus_one")...), append([]byte{0x02}, name("two")...)))...)...)),
	)
	out, stats, err := Rewrite(orig)
	if err != nil {
		t.Fatal(err)
	}
	// f1 calls one() and f2 calls through the table: two call sites.
	if stats.Functions != 6 || stats.Calls != 2 || stats.Loops != 1 || stats.Peeled != 1 {
		t.Errorf("instrumented %+v, want 6 functions, 2 call sites and 1 peeled loop", stats)
	}
	return orig, out
}

// vecSized prefixes b with its length.
func vecSized(b []byte) []byte { return append(binary.AppendUvarint(nil, uint64(len(b))), b...) }

func TestRewriteRenumbersFunctions(t *testing.T) {
	orig, out := renumberModule(t)
	for _, module := range [][]byte{orig, out} {
		m, err := runtime(t, &host{}).Instantiate(context.Background(), module)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			fn   string
			want uint64
		}{{"two", 21}, {"five", 5}, {"isnull", 0}} {
			res, err := m.ExportedFunction(c.fn).Call(context.Background())
			if err != nil || res[0] != c.want {
				t.Errorf("%s() = %v, %v; want %d", c.fn, res, err, c.want)
			}
		}
		if got := m.ExportedFunction("two").Definition().Name(); got != "two" {
			t.Errorf("the name section names export two %q", got)
		}
	}
}

func TestRewriteKeepsBehaviour(t *testing.T) {
	// f(n) counts down from n in a loop with a block-typed loop (type 1:
	// i32 -> i32 i32), br_table, a SIMD op, memory.fill and select t, and
	// returns n's steps; the rewrite must not change its result.
	code := []byte{
		0x01, 0x01, 0x7f, // locals: one i32 (local 1, the step count)
		0x41, 0x00, 0x21, 0x01, // steps = 0
		0x20, 0x00, // local.get 0: the loop's parameter
		0x03, 0x01, // loop (type 1: i32 -> i32 i32)
		0x21, 0x00, // local.set 0
		0x20, 0x01, 0x41, 0x01, 0x6a, 0x21, 0x01, // steps++
		0x20, 0x00, 0x41, 0x01, 0x6b, 0x22, 0x00, // n = n - 1, kept on the stack
		0x20, 0x00, 0x0d, 0x00, // br_if 0 while n != 0, n being the parameter
		0x20, 0x00, // the second result
		0x0b,       // end loop
		0x1a, 0x1a, // drop both results
		0x02, 0x40, 0x41, 0x00, 0x0e, 0x01, 0x00, 0x00, 0x0b, // block; br_table [0] 0; end
		0xfd, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1a, // v128.const 0; drop
		0x41, 0x00, 0x41, 0x00, 0x41, 0x04, 0xfc, 0x0b, 0x00, // memory.fill 0, 0, 4
		0x20, 0x01, 0x41, 0x00, 0x41, 0x01, 0x1c, 0x01, 0x7f, // select (result i32) steps, 0, 1
		0x0b,
	}
	fn := append(binary.AppendUvarint(nil, uint64(len(code))), code...)
	orig := mod(
		sec(1, vec([]byte{0x60, 0x01, 0x7f, 0x01, 0x7f}, []byte{0x60, 0x01, 0x7f, 0x02, 0x7f, 0x7f})),
		sec(3, vec([]byte{0x00})),
		sec(5, vec([]byte{0x00, 0x01})),
		sec(7, vec(append(name("f"), 0x00, 0x00))),
		sec(10, vec(fn)),
		sec(0, append(name(".debug_info"), 1, 2, 3)),
		sec(0, append(name("producers"), 4)),
	)
	r := runtime(t, &host{})
	want := callF(t, r, orig, 5)
	out, stats, err := Rewrite(orig)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Loops != 1 || stats.Peeled != 0 {
		t.Errorf("instrumented %+v, want 1 loop, not peeled (it takes a parameter)", stats)
	}
	if got := callF(t, r, out, 5); got != want || want != 5 {
		t.Errorf("f(5) = %d after the rewrite, %d before; want 5 both times", got, want)
	}
	if bytes.Contains(out, []byte(".debug_info")) || !bytes.Contains(out, []byte("producers")) {
		t.Error("the rewrite must drop DWARF sections and keep other custom sections")
	}
}

func callF(t *testing.T, r wazero.Runtime, module []byte, arg uint64) uint64 {
	t.Helper()
	m, err := r.InstantiateWithConfig(context.Background(), module, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	defer m.Close(context.Background())
	res, err := m.ExportedFunction("f").Call(context.Background(), arg)
	if err != nil {
		t.Fatalf("call f: %v", err)
	}
	return res[0]
}

func TestRewriteRefuses(t *testing.T) {
	tests := []struct {
		name   string
		module []byte
		want   string
	}{
		{"not wasm", []byte("#!/bin/sh\n"), "not a WebAssembly binary"},
		{"component", []byte("\x00asm\x0d\x00\x01\x00"), "version"},
		{"gc opcode", mod(typeSection, sec(3, vec([]byte{0x00})), sec(10, vec(body(0xfb, 0x00, 0x0b)))), "opcode 0xfb"},
		{"truncated body", mod(typeSection, sec(3, vec([]byte{0x00})), sec(10, vec([]byte{0x02, 0x00, 0x03}))), "function 0"},
		{"section past end", []byte("\x00asm\x01\x00\x00\x00\x01\x10\x00"), "section"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Rewrite(tt.module)
			if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want ErrUnsupported mentioning %q", err, tt.want)
			}
		})
	}
}

// testGuests are the stage test modules, C and Go, the example stages
// built with the SDKs, and the wasm-bpf test applications.
func testGuests(t testing.TB) map[string][]byte {
	paths, err := filepath.Glob(filepath.Join("..", "..", "wasmstages", "testdata", "*.wasm"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no test guests in wasmstages/testdata (%v)", err)
	}
	builtins, _ := filepath.Glob(filepath.Join("..", "..", "stages", "*.wasm"))
	apps, _ := filepath.Glob(filepath.Join("..", "..", "wasmbpf", "testdata", "*.wasm"))
	if len(builtins) == 0 || len(apps) == 0 {
		t.Fatal("no built-in stages or wasm-bpf test applications")
	}
	paths = append(append(paths, builtins...), apps...)
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

func TestRewriteTestGuests(t *testing.T) {
	// The interpreter validates as the compiler does, in a fraction of the
	// time: this test is about the rewritten modules being valid.
	r := wazero.NewRuntimeWithConfig(context.Background(), wazero.NewRuntimeConfigInterpreter())
	defer r.Close(context.Background())
	for name, orig := range testGuests(t) {
		out, stats, err := Rewrite(orig)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if stats.Loops == 0 || stats.Functions == 0 {
			t.Errorf("%s: instrumented %+v", name, stats)
		}
		cm, err := r.CompileModule(context.Background(), out)
		if err != nil {
			t.Errorf("%s: the rewritten module does not compile: %v", name, err)
			continue
		}
		before, err := r.CompileModule(context.Background(), orig)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// Stages, sluice gadget modules and Inspektor Gadget modules: the
		// rewrite keeps whatever they export.
		if got, want := slices.Sorted(maps.Keys(cm.ExportedFunctions())), slices.Sorted(maps.Keys(before.ExportedFunctions())); !slices.Equal(got, want) || len(got) == 0 {
			t.Errorf("%s: the rewrite changed the exports: %v, was %v", name, got, want)
		}
		before.Close(context.Background())
		cm.Close(context.Background())
	}
}

// FuzzRewrite mutates the test guests: Rewrite must never panic, and a
// module wazero accepts must still be accepted after the rewrite.
func FuzzRewrite(f *testing.F) {
	for _, b := range testGuests(f) {
		if len(b) < 32<<10 {
			f.Add(b)
		}
	}
	f.Add(spinModule(3))
	r := wazero.NewRuntimeWithConfig(context.Background(), wazero.NewRuntimeConfigInterpreter())
	defer r.Close(context.Background())
	f.Fuzz(func(t *testing.T, module []byte) {
		out, _, err := Rewrite(module)
		if err != nil {
			return
		}
		orig, err := r.CompileModule(context.Background(), module)
		if err != nil {
			return
		}
		orig.Close(context.Background())
		cm, err := r.CompileModule(context.Background(), out)
		if err != nil {
			t.Fatalf("wazero accepts the module but not its rewrite: %v", err)
		}
		cm.Close(context.Background())
	})
}

// TestBulkCost: a bulk memory instruction spends one unit plus one per
// BulkBytes it moves, so a loop of memory.fill reaches the host more often
// the more it fills.
func TestBulkCost(t *testing.T) {
	for _, size := range []uint32{8, 64 << 10} {
		fill := []byte{
			0x01, 0x01, 0x7f, // local 1: i
			0x03, 0x40, // loop
			0x41, 0x00, 0x41, 0x00, 0x41, // memory.fill 0, 0, size
		}
		fill = appendSLEB(fill, int64(size))
		fill = append(fill,
			0xfc, 0x0b, 0x00,
			0x20, 0x01, 0x41, 0x01, 0x6a, 0x22, 0x01, // i = i + 1
			0x20, 0x00, 0x49, 0x0d, 0x00, // br_if 0 while i < n
			0x0b,
			0x20, 0x01, 0x0b,
		)
		orig := mod(
			sec(1, vec([]byte{0x60, 0x01, 0x7f, 0x01, 0x7f})),
			sec(3, vec([]byte{0x00})),
			sec(5, vec([]byte{0x00, 0x01})),
			sec(7, vec(append(name("fill"), 0x00, 0x00))),
			sec(10, vec(append(binary.AppendUvarint(nil, uint64(len(fill))), fill...))),
		)
		out, stats, err := Rewrite(orig)
		if err != nil {
			t.Fatal(err)
		}
		if stats.Bulk != 1 {
			t.Errorf("instrumented %d bulk instructions, want 1", stats.Bulk)
		}
		h := &host{}
		m, err := runtime(t, h).Instantiate(context.Background(), out)
		if err != nil {
			t.Fatal(err)
		}
		const n = 4 * Period
		if _, err := m.ExportedFunction("fill").Call(context.Background(), n); err != nil {
			t.Fatal(err)
		}
		// Each iteration spends a unit at the loop's head and the fill's
		// cost; a yield refills the fuel, so an iteration that overshoots
		// zero starts the next period: ceil(Period/cost) iterations per
		// yield.
		cost := int64(1 + 1 + size/BulkBytes)
		want := n / ((Period + cost - 1) / cost)
		if got := h.calls.Load(); got < want-2 || got > want+2 {
			t.Errorf("%d iterations with a memory.fill of %d bytes made %d host calls, want about %d", n, size, got, want)
		}
	}
}

// TestPeeledLoopsKeepBehaviour runs nested loops whose branches cross the
// outer loops the rewrite adds (br, br_if and br_table to enclosing loops
// and blocks, a loop with a result) before and after the rewrite.
func TestPeeledLoopsKeepBehaviour(t *testing.T) {
	// f(n): i, acc = 0, 0
	//   block done; loop L1; i++
	//     block next; loop L2 (result i32); acc++
	//       br_if done when i > 1000
	//       br_table [L2, next] L1 on acc % 3
	//     end; drop; end
	//     br_if L1 while i < n
	//   end; end
	//   return acc*1000 + i
	code := []byte{
		0x01, 0x02, 0x7f, // locals 1 (i) and 2 (acc)
		0x02, 0x40, // block done
		0x03, 0x40, // loop L1
		0x20, 0x01, 0x41, 0x01, 0x6a, 0x21, 0x01, // i++
		0x02, 0x40, // block next
		0x03, 0x7f, // loop L2 (result i32)
		0x20, 0x02, 0x41, 0x01, 0x6a, 0x21, 0x02, // acc++
		0x20, 0x01, 0x41, 0xe8, 0x07, 0x4b, 0x0d, 0x03, // br_if done when i > 1000
		0x20, 0x02, 0x41, 0x03, 0x70, // acc % 3
		0x0e, 0x02, 0x00, 0x01, 0x02, // br_table [L2 next] L1
		0x0b,                                     // end L2
		0x1a,                                     // drop
		0x0b,                                     // end next
		0x20, 0x01, 0x20, 0x00, 0x49, 0x0d, 0x00, // br_if L1 while i < n
		0x0b,                                                 // end L1
		0x0b,                                                 // end done
		0x20, 0x02, 0x41, 0xe8, 0x07, 0x6c, 0x20, 0x01, 0x6a, // acc*1000 + i
		0x0b,
	}
	orig := mod(
		sec(1, vec([]byte{0x60, 0x01, 0x7f, 0x01, 0x7f})),
		sec(3, vec([]byte{0x00})),
		sec(7, vec(append(name("f"), 0x00, 0x00))),
		sec(10, vec(append(binary.AppendUvarint(nil, uint64(len(code))), code...))),
	)
	out, stats, err := Rewrite(orig)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Loops != 2 || stats.Peeled != 2 || stats.Calls != 0 {
		t.Errorf("instrumented %+v, want 2 loops, both peeled, and no call site", stats)
	}
	// A broken rewrite can loop forever: the limit turns that into a
	// failure.
	r := runtime(t, &host{limit: 10000})
	for _, n := range []uint64{1, 5, 2000} {
		want := callF(t, r, orig, n)
		if got := callF(t, r, out, n); got != want {
			t.Errorf("f(%d) = %d after the rewrite, %d before", n, got, want)
		}
	}
	// With the fuel running out inside the loops, the branches to the
	// outer loops are taken too: the result must not change.
	h := &host{limit: 10000}
	m, err := runtime(t, h).Instantiate(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.ExportedFunction("f").Call(context.Background(), 2000)
	if err != nil {
		t.Fatal(err)
	}
	if want := callF(t, r, orig, 2000); res[0] != want || h.calls.Load() == 0 {
		t.Errorf("f(2000) = %d with %d yields, want %d and some yields", res[0], h.calls.Load(), want)
	}
}

// TestRecursionReachesHost: calls are checked where they are made, so a
// recursion without loops reaches the host once per Period calls too.
func TestRecursionReachesHost(t *testing.T) {
	// fib(n) = n < 2 ? 1 : fib(n-1) + fib(n-2), without a loop.
	fib := []byte{
		0x00,                         // no locals
		0x20, 0x00, 0x41, 0x02, 0x49, // n < 2
		0x04, 0x7f, // if (result i32)
		0x41, 0x01, // 1
		0x05,                                     // else
		0x20, 0x00, 0x41, 0x01, 0x6b, 0x10, 0x00, // fib(n-1)
		0x20, 0x00, 0x41, 0x02, 0x6b, 0x10, 0x00, // fib(n-2)
		0x6a, // +
		0x0b, // end if
		0x0b,
	}
	orig := mod(
		sec(1, vec([]byte{0x60, 0x01, 0x7f, 0x01, 0x7f})),
		sec(3, vec([]byte{0x00})),
		sec(7, vec(append(name("fib"), 0x00, 0x00))),
		sec(10, vec(append(binary.AppendUvarint(nil, uint64(len(fib))), fib...))),
	)
	out, stats, err := Rewrite(orig)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Calls != 2 || stats.Loops != 0 {
		t.Errorf("instrumented %+v, want 2 call sites and no loop", stats)
	}
	h := &host{}
	m, err := runtime(t, h).Instantiate(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.ExportedFunction("fib").Call(context.Background(), 20)
	if err != nil || res[0] != 10946 {
		t.Fatalf("fib(20) = %v, %v; want 10946", res, err)
	}
	// fib(20) makes 21890 calls besides the first.
	const calls = 21890
	if got := h.calls.Load(); got < calls/Period-1 || got > calls/Period+1 {
		t.Errorf("%d calls made %d host calls, want about %d", calls, got, calls/Period)
	}
}
