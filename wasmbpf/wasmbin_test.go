package wasmbpf

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestIsWasmBPF tells wasm-bpf applications from other modules by their
// imports, without compiling them.
func TestIsWasmBPF(t *testing.T) {
	for _, name := range []string{"execsnoop.wasm", "sigsnoop.wasm", "mapcount.wasm", "gowrapper.wasm", "bad_pointers.wasm"} {
		if !IsWasmBPF(testModule(t, name)) {
			t.Errorf("%s is not taken for a wasm-bpf application", name)
		}
	}
	stage, err := os.ReadFile(filepath.Join("..", "wasmstages", "testdata", "filter.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"a stage": stage, "nothing": nil, "garbage": []byte("\x00asm\x01\x00\x00\x00\x02\xff"), "an ELF": testModule(t, "execsnoop.bpf.o")} {
		if IsWasmBPF(b) {
			t.Errorf("%s is taken for a wasm-bpf application", name)
		}
	}
}

// TestEmbeddedObjects finds the eBPF object an application embeds, byte
// for byte, and its outputs' event types.
func TestEmbeddedObjects(t *testing.T) {
	info, err := readBinary(testModule(t, "execsnoop.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	objs := embeddedObjects(info.Data)
	if len(objs) != 1 || !bytes.Equal(objs[0], testModule(t, "execsnoop.bpf.o")) {
		t.Fatalf("found %d objects; want execsnoop.bpf.o exactly", len(objs))
	}
	in, err := Inspect(Config{Source: "s", Module: testModule(t, "execsnoop.wasm"), Emit: EmitBoth})
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Objects) != 1 || len(in.Objects[0].Outputs) != 1 || in.Objects[0].Outputs[0].Map != "rb" || in.Objects[0].Outputs[0].FoundBy != "record size" {
		t.Fatalf("inspection = %+v", in)
	}
	if got := len(in.Schemas(EmitBoth)); got != 2 {
		t.Errorf("%d schemas for records and lines; want 2", got)
	}
	if w := in.Warnings(EmitRecords); len(w) != 0 {
		t.Errorf("warnings = %q", w)
	}
	// The verifier test's object has a ring buffer whose type nothing
	// tells: a warning, no schema.
	in, err = Inspect(Config{Source: "s", Module: testModule(t, "verifier.wasm")})
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Schemas(EmitRecords)) != 0 || len(in.Warnings(EmitRecords)) != 1 || len(in.Warnings(EmitStdout)) != 0 {
		t.Errorf("verifier.wasm: schemas %v, warnings %q", in.Schemas(EmitRecords), in.Warnings(EmitRecords))
	}
}

// TestCheckRefusesOtherModules: New refuses a module that is not a
// wasm-bpf application, with the reason.
func TestCheckRefusesOtherModules(t *testing.T) {
	stage, err := os.ReadFile(filepath.Join("..", "wasmstages", "testdata", "filter.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	err = Check(context.Background(), Config{Source: "s", Module: stage})
	if !errors.Is(err, ErrNotWasmBPF) {
		t.Errorf("Check of a stage = %v; want ErrNotWasmBPF", err)
	}
	if err := Check(context.Background(), Config{Source: "s", Module: testModule(t, "execsnoop.wasm")}); err != nil {
		t.Errorf("Check of execsnoop.wasm = %v", err)
	}
}

// FuzzReadBinary: the reader of untrusted modules never panics, and what
// it finds lies within its input.
func FuzzReadBinary(f *testing.F) {
	for _, name := range []string{"execsnoop.wasm", "kprobe.wasm", "verifier.wasm"} {
		f.Add(testModule(f, name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		IsWasmBPF(b)
		info, err := readBinary(b)
		if err != nil {
			return
		}
		for _, obj := range embeddedObjects(info.Data) {
			if len(obj) > len(b) {
				t.Fatalf("an object of %d bytes in a module of %d", len(obj), len(b))
			}
		}
	})
}
