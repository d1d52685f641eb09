package wasmstages

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

// TestStartFunctionLoops: a module whose start function (run by the
// instantiation, before any export is called) never returns is stopped by
// the init deadline, as _initialize and sluice_init are.
func TestStartFunctionLoops(t *testing.T) {
	initTimeout = 200 * time.Millisecond
	defer func() { initTimeout = InitTimeout }()
	vec := func(items ...[]byte) []byte {
		b := binary.AppendUvarint(nil, uint64(len(items)))
		for _, it := range items {
			b = append(b, it...)
		}
		return b
	}
	name := func(s string) []byte { return append(binary.AppendUvarint(nil, uint64(len(s))), s...) }
	body := func(code ...byte) []byte {
		fn := append([]byte{0x00}, code...)
		return append(binary.AppendUvarint(nil, uint64(len(fn))), fn...)
	}
	section := func(id byte, b []byte) []byte {
		return append(append([]byte{id}, binary.AppendUvarint(nil, uint64(len(b)))...), b...)
	}
	export := func(n string, kind, idx byte) []byte { return append(name(n), kind, idx) }
	module := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range [][]byte{
		section(1, vec(
			[]byte{0x60, 0x00, 0x01, 0x7f},             // () -> i32
			[]byte{0x60, 0x01, 0x7f, 0x01, 0x7f},       // i32 -> i32
			[]byte{0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f}, // i32 i32 -> i32
			[]byte{0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7e}, // i32 i32 -> i64
			[]byte{0x60, 0x00, 0x00},                   // () -> ()
		)),
		section(3, vec([]byte{0}, []byte{1}, []byte{2}, []byte{3}, []byte{4})),
		section(5, vec([]byte{0x00, 0x01})),
		section(7, vec(export("memory", 2, 0), export("sluice_abi_version", 0, 0), export("sluice_alloc", 0, 1),
			export("sluice_init", 0, 2), export("sluice_process", 0, 3))),
		section(8, []byte{4}),
		section(10, vec(
			body(0x41, 0x01, 0x0b),
			body(0x41, 0x80, 0x08, 0x0b),
			body(0x41, 0x00, 0x0b),
			body(0x42, 0x00, 0x0b),
			body(0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b), // loop br 0 end: forever
		)),
	} {
		module = append(module, s...)
	}
	start := time.Now()
	_, err := New(context.Background(), Config{Name: "start", ModuleBytes: module})
	if err == nil || !strings.Contains(err.Error(), "instantiate") {
		t.Fatalf("error = %v, want the instantiation to fail", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the start function ran %s; the init deadline is 200ms", took)
	}
}
