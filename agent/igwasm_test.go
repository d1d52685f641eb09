package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/registrytest"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/pipeline"
)

// igWasmMeta is the gadget.yaml of the IG-style gadget ig_wasm with its
// module: an eBPF parameter and the module's own (params.wasm).
const igWasmMeta = `name: ig_wasm
description: getpriority calls, with an Inspektor Gadget module that drops, enriches and writes a map.
params:
  ebpf:
    target_tgid:
      key: pid
      description: the process to trace
  wasm:
    drop_who:
      key: drop_who
      description: the module drops the calls with this who
    tag:
      key: tag
      defaultValue: "0"
      description: the module writes it into the map tags at start
`

// igWasmFolder lays out ig_wasm with one of its modules as a gadget folder
// (`sluice image build` takes it; `sluice run` reads the ELF and the
// gadget.yaml beside it).
func igWasmFolder(t *testing.T, module string) string {
	t.Helper()
	dir := t.TempDir()
	obj, err := gadgets.TestObject("ig_wasm")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "program.bpf.o"), obj, 0o644); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join("..", "wasmstages", "testdata", module+".wasm"), filepath.Join(dir, "module.wasm"))
	if err := os.WriteFile(filepath.Join(dir, "gadget.yaml"), []byte(igWasmMeta), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

const igTag = 0x5eed

// TestIGModuleImage builds the IG-style gadget ig_wasm with its Inspektor
// Gadget module (the Go one and its C twin) into an image, pushes it to a
// registry, and runs it in the agent on the kernel: getpriority calls of
// this process come out with the module's processing on them (the call of
// drop_who dropped, who_hex and calls added, the tag the module wrote into
// the gadget's map at gadgetStart copied into the events by the program),
// and the module's own data source's event at stop.
func TestIGModuleImage(t *testing.T) {
	testutil.RequireBPF(t)
	for _, module := range []string{"ig_wasm_go", "ig_wasm_c"} {
		t.Run(module, func(t *testing.T) {
			ctx := context.Background()
			ref := pushGadgetFolder(t, registrytest.Start(t, registrytest.Options{}), igWasmFolder(t, module), "gadgets/ig_wasm:v1")

			params := fmt.Sprintf(`params = { pid = %d, drop_who = "%d", tag = "%d" }`, os.Getpid(), whoBase+2, igTag)
			f := syscallsConfig(t, fmt.Sprintf("data_dir = %q", t.TempDir()), ref.String(), params)
			images, diags := FetchImages(ctx, f, FetchOptions{})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			out, metrics := runWhile(t, f, images, func() { getpriority(1, 2, 3) }, func(out string) bool {
				return strings.Contains(out, fmt.Sprintf(`"who_hex":"%#x"`, whoBase+3)) && strings.Contains(out, fmt.Sprintf(`"tag":%d`, igTag))
			})
			checkIGOutput(t, out)
			snap := metrics.Snapshot()
			if n := snap.Get(pipeline.MetricDropped, "component", "stage", "name", gadgetModuleName("sc"), "reason", "filtered"); n < 1 {
				t.Errorf("the module's drops are not counted as filtered by stage %s: %v", gadgetModuleName("sc"), n)
			}
		})
	}
}

// checkIGOutput checks the JSON lines of a run of ig_wasm with its module
// (drop_who = whoBase+2, tag = igTag).
func checkIGOutput(t *testing.T, out string) {
	t.Helper()
	tagged, summary := 0, 0
	for _, ev := range syscallEvents(t, out) {
		if ev["container_event"] != nil {
			continue // the module's report of a container (a runtime may run some)
		}
		if ev["events"] != nil { // the module's own data source, at stop
			summary++
			if jsonUint(t, ev["events"]) < 2 || ev["source"] != "sc" {
				t.Errorf("the module's summary event: %v", ev)
			}
			continue
		}
		who := jsonUint(t, ev["who"])
		if who == whoBase+2 {
			t.Errorf("the module drops who %#x, yet: %v", who, ev)
		}
		if ev["who_hex"] != fmt.Sprintf("%#x", who) {
			t.Errorf("who_hex = %v; want %#x (added by the module): %v", ev["who_hex"], who, ev)
		}
		if jsonUint(t, ev["calls"]) < 1 {
			t.Errorf("calls = %v; want the count the module read from the gadget's map counts: %v", ev["calls"], ev)
		}
		if ev["syscall"] != "SYS_GETPRIORITY" || ev["proc.comm"] == nil {
			t.Errorf("the gadget's own fields are not rendered as IG renders them: %v", ev)
		}
		if jsonUint(t, ev["tag"]) == igTag {
			tagged++
		}
	}
	if tagged == 0 {
		t.Errorf("no event carries the tag %d the module wrote into the map tags:\n%s", igTag, out)
	}
	if summary != 1 {
		t.Errorf("%d summary events; want the one the module emits at gadgetStop:\n%s", summary, out)
	}
}

// TestIGModuleInitFails: an Inspektor Gadget module whose gadgetInit fails
// (ig_wasm_go on a gadget without its data source "calls") is reported by
// config validation at the wasm attribute and stops the source from
// starting, naming the source, the gadget and the hook; a module importing
// functions this host lacks is refused naming them, in one line.
func TestIGModuleInitFails(t *testing.T) {
	gadget, _ := filepath.Abs(syscallsGadget)
	for _, c := range []struct {
		module, summary string
		wants           []string
	}{
		{"ig_wasm_go", "Gadget module init failed", []string{`gadget "wasm_syscalls" module`, "gadgetInit returned 1"}},
		{"ig_future", "Invalid gadget module", []string{"imports ig functions this host does not provide: getContainers, someFutureFunction"}},
	} {
		t.Run(c.module, func(t *testing.T) {
			module, _ := filepath.Abs(filepath.Join("..", "wasmstages", "testdata", c.module+".wasm"))
			f := syscallsConfig(t, fmt.Sprintf("data_dir = %q", t.TempDir()), gadget, fmt.Sprintf(`wasm = %q`, module))
			diags := Check(context.Background(), f, nil)
			if !diags.HasErrors() || diags[0].Summary != c.summary || diags[0].Subject == nil || diags[0].Subject.Start.Line != 10 {
				t.Fatalf("validate: %v; want %q at the wasm attribute (line 10)", diags, c.summary)
			}
			for _, want := range c.wants {
				if !strings.Contains(diags.Error(), want) {
					t.Errorf("validate: %q lacks %q", diags.Error(), want)
				}
			}
			if strings.Contains(diags[0].Detail, "\n") {
				t.Errorf("the refusal is not one line: %q", diags[0].Detail)
			}
			testutil.RequireBPF(t)
			a, diags := New(f, Options{Stdout: &testutil.SyncBuffer{}})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			err := a.Run(context.Background())
			if err == nil {
				t.Fatal("the agent ran although the gadget module failed")
			}
			for _, want := range append(c.wants, `start source "sc"`) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}
