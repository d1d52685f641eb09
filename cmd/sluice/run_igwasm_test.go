package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/testutil"
)

// TestRunIGModule runs the IG-style gadget ig_wasm with its Inspektor
// Gadget module (wasmstages/testdata/ig_wasm_go) under `sluice run`: the
// module's params.wasm come from the gadget.yaml beside the ELF and from
// --param, and its processing shows in the output: the call of drop_who
// dropped, who_hex and calls added, the tag it wrote into the gadget's
// map at gadgetStart in the events, its own summary event at stop.
func TestRunIGModule(t *testing.T) {
	testutil.RequireBPF(t)
	dir := t.TempDir()
	obj, err := gadgets.TestObject("ig_wasm")
	if err != nil {
		t.Fatal(err)
	}
	elf := filepath.Join(dir, "ig_wasm.bpf.o")
	if err := os.WriteFile(elf, obj, 0o644); err != nil {
		t.Fatal(err)
	}
	meta := "name: ig_wasm\nparams:\n  ebpf:\n    target_tgid:\n      key: pid\n  wasm:\n    drop_who:\n      key: drop_who\n    tag:\n      key: tag\n      defaultValue: \"0\"\n"
	if err := os.WriteFile(filepath.Join(dir, "gadget.yaml"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	module, _ := filepath.Abs(filepath.Join("..", "..", "wasmstages", "testdata", "ig_wasm_go.wasm"))
	const base, tag = 0x7fe00000, 4242
	cmd := exec.Command(sluiceBin, "run", elf, "--wasm", module, "-o", "json", "--timeout", "20s", "--log-level", "info",
		"--param", fmt.Sprintf("pid=%d", os.Getpid()), "--param", fmt.Sprintf("drop_who=%d", base+2), "--param", fmt.Sprintf("tag=%d", tag))
	var out testutil.SyncBuffer
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(out.String(), fmt.Sprintf(`"who_hex":"%#x"`, base+3)) || !strings.Contains(out.String(), fmt.Sprintf(`"tag":%d`, tag)) {
		if time.Now().After(deadline) {
			t.Fatalf("no tagged event of who %#x within 15s; output:\n%s\nstderr:\n%s", base+3, out.String(), stderr.String())
		}
		for k := 1; k <= 3; k++ {
			unix.Syscall(unix.SYS_GETPRIORITY, unix.PRIO_PROCESS, uintptr(base+k), 0)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(unix.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sluice run: %v\nstderr:\n%s", err, stderr.String())
	}
	summary := 0
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if ev["events"] != nil {
			summary++
			continue
		}
		if ev["container_event"] != nil {
			continue // the module's report of a container this host runs
		}
		who, _ := ev["who"].(float64)
		if who == base+2 {
			t.Errorf("the module drops who %#x, yet: %v", base+2, ev)
		}
		if ev["who_hex"] != fmt.Sprintf("%#x", int(who)) || ev["calls"] == nil {
			t.Errorf("who_hex and calls not added: %v", ev)
		}
	}
	if summary != 1 {
		t.Errorf("%d summary events; want the module's one at stop\n%s", summary, out.String())
	}
	if !strings.Contains(stderr.String(), "ig_wasm_go: tag 4242 written") {
		t.Errorf("the module's log line is not shown:\n%s", stderr.String())
	}
	// As in IG, gadgetPreStart runs before the eBPF collection is loaded
	// (IG's ebpf operator loads it in its Start, after every PreStart):
	// the gadget's maps open from gadgetStart on.
	if !strings.Contains(stderr.String(), "ig_wasm_go: maps before the gadget loads: none") {
		t.Errorf("gadgetPreStart did not run before the gadget loaded:\n%s", stderr.String())
	}
}

// TestRunGadgetHelpModuleParams: `sluice run GADGET --wasm MODULE --help`
// lists the module's own parameters (gadget.yaml params.wasm) with the
// gadget's, by key, marked as the module's, and names the module and its
// ABI; without a module they are not listed (nothing would read them).
func TestRunGadgetHelpModuleParams(t *testing.T) {
	dir := t.TempDir()
	obj, err := gadgets.TestObject("ig_wasm")
	if err != nil {
		t.Fatal(err)
	}
	elf := filepath.Join(dir, "ig_wasm.bpf.o")
	if err := os.WriteFile(elf, obj, 0o644); err != nil {
		t.Fatal(err)
	}
	meta := "name: ig_wasm\nparams:\n  ebpf:\n    target_tgid:\n      key: pid\n  wasm:\n    drop_who:\n      key: drop_who\n      description: the module drops the calls with this who\n    tag:\n      defaultValue: \"0\"\n"
	if err := os.WriteFile(filepath.Join(dir, "gadget.yaml"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	module, _ := filepath.Abs(filepath.Join("..", "..", "wasmstages", "testdata", "ig_wasm_go.wasm"))
	out, stderr, code := runSluice(t, "run", elf, "--wasm", module, "--help")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	params := strings.Join([]string{
		`  drop_who=string (the Wasm module's), default "": the module drops the calls with this who`,
		`  pid=int (variable target_tgid, pid_t), default 0`,
		`  tag=string (the Wasm module's), default "0"`,
	}, "\n")
	if !strings.Contains(out, "Parameters (--param NAME=VALUE):\n"+params+"\n") {
		t.Errorf("the parameters are not listed, by key, the module's marked:\n%s\nwant\n%s", out, params)
	}
	if !strings.Contains(out, "Wasm module: "+module+", written against Inspektor Gadget's wasm API") {
		t.Errorf("the module is not named:\n%s", out)
	}

	out, stderr, code = runSluice(t, "run", elf, "--help")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(out, "drop_who") || strings.Contains(out, "Wasm module:") {
		t.Errorf("a gadget run without its module lists the module's parameters:\n%s", out)
	}
}
