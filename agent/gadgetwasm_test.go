package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/registrytest"
	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sources"
	"github.com/sluice-dev/sluice/wasmstages"
)

// The test gadget of gadget modules and its module (see
// gadgets/testdata/wasm_syscalls.bpf.c and
// wasmstages/testdata/gadget_syscalls.c).
var (
	syscallsGadget = filepath.Join("..", "gadgets", "testdata", "wasm_syscalls.bpf.o")
	syscallsModule = filepath.Join("..", "wasmstages", "testdata", "gadget_syscalls.wasm")
	trapModule     = filepath.Join("..", "wasmstages", "testdata", "gadget_syscalls_trap.wasm")
)

// whoBase makes getpriority(PRIO_PROCESS, who) calls that fail with ESRCH
// (it is above any pid) and mark their events: arg1 is whoBase+k.
const whoBase = 0x7ff00000

// gadgetFolder lays out a gadget folder as `sluice image build` takes it:
// the eBPF object, the Wasm module and gadget.yaml.
func gadgetFolder(t *testing.T, module string) string {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, syscallsGadget, filepath.Join(dir, "program.bpf.o"))
	copyFile(t, module, filepath.Join(dir, "module.wasm"))
	meta := `name: wasm_syscalls
description: Syscalls of one process, filtered in the kernel by a number its Wasm module derives from a name.
params:
  ebpf:
    syscall:
      key: syscall
      description: the syscall to trace, by name (the module sets target_syscall from it)
    target_pid:
      key: target_pid
      description: the process to trace
`
	if err := os.WriteFile(filepath.Join(dir, "gadget.yaml"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// syscallsConfig is a config with source "sc" on gadget (an image
// reference or a path) and the given extra attributes. The agent's self
// filter is off: the test process, which runs the agent, makes the
// syscalls.
func syscallsConfig(t *testing.T, agentExtra, gadget, extra string) *config.File {
	t.Helper()
	src := fmt.Sprintf(`
agent {
  name           = "wasm-host"
  shutdown_grace = "5s"
  filter_self    = false
  %s
}
source "gadget" "sc" {
  gadget = %q
  %s
}
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.sc]
  sinks   = [sink.stdout.out]
  queue { when_full = "drop_oldest" }
}
`, agentExtra, gadget, extra)
	return parseFile(t, t.TempDir(), src)
}

// runWhile runs the agent, calls trigger every 50ms until done accepts
// the output (10s at most), stops the agent and returns the output and the
// metrics.
func runWhile(t *testing.T, f *config.File, images *Images, trigger func(), done func(string) bool) (string, *pipeline.Registry) {
	t.Helper()
	ta := startAgent(t, f, Options{Images: images})
	ta.waitForOutput("the expected output", 10*time.Second, trigger, done)
	return ta.stop(), ta.reg
}

// getpriority calls getpriority(PRIO_PROCESS, whoBase+k) for each k.
func getpriority(ks ...int) {
	for _, k := range ks {
		unix.Syscall(unix.SYS_GETPRIORITY, unix.PRIO_PROCESS, uintptr(whoBase+k), 0)
	}
}

// syscallEvents parses the JSON lines of the output, loss records aside.
func syscallEvents(t *testing.T, out string) []map[string]any {
	t.Helper()
	var evs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.UseNumber() // kernel addresses do not fit a float64
		var ev map[string]any
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		if ev["type"] != "loss" {
			evs = append(evs, ev)
		}
	}
	return evs
}

func jsonUint(t *testing.T, v any) uint64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a number", v, v)
	}
	u, err := strconv.ParseUint(n.String(), 10, 64)
	if err != nil {
		t.Fatalf("%v: %v", v, err)
	}
	return u
}

// seenWhos returns the k of every event's arg1 = whoBase+k.
func seenWhos(out string) map[int]bool {
	seen := map[int]bool{}
	for _, line := range strings.Split(out, "\n") {
		for k := range 10 {
			if strings.Contains(line, fmt.Sprintf(`"arg1":%d,`, whoBase+k)) || strings.Contains(line, fmt.Sprintf(`"arg1":%d}`, whoBase+k)) {
				seen[k] = true
			}
		}
	}
	return seen
}

// symbolOf resolves addr from /proc/kallsyms with a plain scan, the way a
// person reading the file would: the greatest address not above addr.
func symbolOf(t *testing.T, addr uint64) string {
	t.Helper()
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var best uint64
	name := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		a, err := strconv.ParseUint(fields[0], 16, 64)
		if err != nil || a > addr || (name != "" && a <= best) {
			continue
		}
		best, name = a, fields[2]
	}
	return fmt.Sprintf("%s+0x%x", name, addr-best)
}

// TestGadgetImageWithWasm: a gadget folder with an eBPF object and a Wasm
// module is built into an image, pushed to a registry, pulled and run by
// the agent. The module's gadget_init derives target_syscall from the
// param syscall (the kernel then reports getpriority only); gadget_start
// writes a map the program reads (every event carries the tag); its
// sluice_process drops events with an odd arg1 and adds a syscall name, a
// value of the program's counter map and a kernel symbol to the others;
// gadget_stop iterates the counter map.
// startTag is what the test module's gadget_start writes into the
// program's config map (wasmstages/testdata/gadget_syscalls.c).
const startTag = 0x5eed5eed

// pushGadgetFolder builds a gadget folder with its Wasm module into an image
// for this host's architecture and pushes it to reg as name (repo:tag).
func pushGadgetFolder(t *testing.T, reg *registrytest.Registry, folder, name string) oci.Reference {
	t.Helper()
	ctx := context.Background()
	build, err := oci.OpenStore(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer build.Close()
	ref, err := oci.ParseReference(reg.Host + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	res, err := oci.Build(ctx, build, folder, ref, oci.BuildOptions{Archs: []string{oci.HostArch}, Headers: gadgets.Headers()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Inputs["wasm"], "module.wasm") {
		t.Fatalf("build inputs %v: the Wasm module was not taken", res.Inputs)
	}
	if _, err := oci.Push(ctx, build, ref, oci.RemoteOptions{Credentials: credentials.NewMemoryStore()}); err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestGadgetImageWithWasm(t *testing.T) {
	testutil.RequireBPF(t)
	ctx := context.Background()
	ref := pushGadgetFolder(t, registrytest.Start(t, registrytest.Options{}), gadgetFolder(t, syscallsModule), "gadgets/wasm_syscalls:v1")

	dataDir := t.TempDir()
	params := fmt.Sprintf(`params = { syscall = "getpriority", target_pid = %d }`, os.Getpid())
	f := syscallsConfig(t, fmt.Sprintf("data_dir = %q", dataDir), ref.String(), params)
	images, diags := FetchImages(ctx, f, FetchOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if img, _ := images.Gadget(ref.String()); img == nil || img.Wasm == nil {
		t.Fatal("the pulled image has no Wasm layer")
	}
	calls := 0
	out, metrics := runWhile(t, f, images, func() {
		getpriority(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
		unix.Getppid() // another syscall of this process: the kernel filters it out
		calls += 10
	}, func(out string) bool {
		seen := seenWhos(out)
		// The tag comes from gadget_start, which runs after attach: wait
		// for events that carry it as well.
		return seen[0] && seen[2] && seen[4] && seen[6] && seen[8] && strings.Contains(out, fmt.Sprintf(`"tag":%d`, startTag))
	})

	evs := syscallEvents(t, out)
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	nr := uint64(unix.SYS_GETPRIORITY)
	symbols := map[uint64]string{}
	tagged := false // once gadget_start has written the tag, every later event carries it
	for _, ev := range evs {
		seq := jsonUint(t, ev["seq"])
		if got := jsonUint(t, ev["nr"]); got != nr {
			t.Fatalf("event %d is syscall %d; the module's gadget_init should have made the kernel report getpriority (%d) only: %v", seq, got, nr, ev)
		}
		if who := jsonUint(t, ev["arg1"]); who%2 == 1 {
			t.Errorf("event %d has an odd arg1 %d; the module drops those", seq, who)
		}
		if ev["syscall_name"] != "getpriority" {
			t.Errorf("event %d: syscall_name = %v, want getpriority (syscall_name from the host)", seq, ev["syscall_name"])
		}
		// Events between attach and gadget_start carry no tag yet; none
		// may lack it after the first that has it.
		switch tag := jsonUint(t, ev["tag"]); {
		case tag == startTag:
			tagged = true
		case tag != 0 || tagged:
			t.Errorf("event %d: tag = %#x; the module writes %#x into the map config at gadget_start, and the program copies it into every later event", seq, tag, startTag)
		}
		// The program counts every getpriority before it submits the
		// record; seq numbers every record read, dropped ones too.
		if kc := jsonUint(t, ev["kernel_count"]); kc < seq || kc > uint64(calls) {
			t.Errorf("event %d: kernel_count = %d; want between its seq and the %d calls made", seq, kc, calls)
		}
		kaddr := jsonUint(t, ev["kaddr"])
		if kaddr == 0 {
			t.Fatalf("event %d has no kernel stack address", seq)
		}
		want, ok := symbols[kaddr]
		if !ok {
			want = symbolOf(t, kaddr)
			symbols[kaddr] = want
		}
		if ev["kaddr_sym"] != want {
			t.Errorf("event %d: kaddr_sym = %v, want %s (from /proc/kallsyms)", seq, ev["kaddr_sym"], want)
		}
	}
	if !tagged {
		t.Errorf("no event carries the tag %#x that gadget_start writes", startTag)
	}
	snap := metrics.Snapshot()
	name := gadgetModuleName("sc")
	if k := snap.Get(wasmstages.MetricGuest, "component", "stage", "name", name, "counter", "count_keys"); k != 1 {
		t.Errorf("gadget_stop counted %v keys in counts; want 1 (getpriority alone)", k)
	}
	if total := snap.Get(wasmstages.MetricGuest, "component", "stage", "name", name, "counter", "count_total"); total < float64(len(evs)) || total > float64(calls) {
		t.Errorf("gadget_stop summed %v calls; want between the %d events and the %d calls", total, len(evs), calls)
	}
	if dropped := metrics.Component("stage", name).Dropped(pipeline.ReasonFiltered).Value(); dropped < 5 {
		t.Errorf("the module's filtered count is %d; it dropped at least the five odd calls of one round", dropped)
	}

	// The image carries a module: a second one from the config is refused.
	f2 := syscallsConfig(t, fmt.Sprintf("data_dir = %q", dataDir), ref.String(), `wasm = "x.wasm"`)
	images2, diags := FetchImages(ctx, f2, FetchOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if diags := Validate(f2, images2); !diags.HasErrors() || !strings.Contains(diags.Error(), "carries its own Wasm module") {
		t.Errorf("wasm beside an image with a module: %v", diags)
	}
}

// TestGadgetModuleFromFileTrap: a gadget given as a file with a module
// beside it (the wasm attribute). The module traps on one event: the trap
// is counted, that batch passes on unchanged, and the replacement instance
// (gadget_init and gadget_start again, its param_set of the unchanged
// value accepted) processes the batches after it.
func TestGadgetModuleFromFileTrap(t *testing.T) {
	testutil.RequireBPF(t)
	gadget, _ := filepath.Abs(syscallsGadget)
	module, _ := filepath.Abs(trapModule)
	params := fmt.Sprintf(`params = { syscall = "getpriority", target_pid = %d }
  wasm   = %q`, os.Getpid(), module)
	f := syscallsConfig(t, fmt.Sprintf("data_dir = %q", t.TempDir()), gadget, params)
	// Trap until the trapping event shows up (events before the gadget
	// attached are not seen), then wait for an event the replacement
	// instance processed.
	sawTrap := false
	out, metrics := runWhile(t, f, nil, func() {
		if !sawTrap {
			getpriority(7777 - whoBase) // arg1 = 7777: the module traps
		}
		getpriority(2)
	}, func(out string) bool {
		var trapSeq uint64
		for _, ev := range syscallEvents(t, out) {
			switch seq := jsonUint(t, ev["seq"]); {
			case jsonUint(t, ev["arg1"]) == 7777:
				sawTrap, trapSeq = true, seq
			case sawTrap && seq > trapSeq && ev["syscall_name"] == "getpriority":
				return true
			}
		}
		return false
	})
	for _, ev := range syscallEvents(t, out) {
		if jsonUint(t, ev["arg1"]) == 7777 && ev["syscall_name"] != nil {
			t.Errorf("the event the module trapped on was changed: %v", ev)
		}
	}
	name := gadgetModuleName("sc")
	snap := metrics.Snapshot()
	if n := snap.Get(pipeline.MetricStageErrors, "component", "stage", "name", name, "kind", wasmstages.KindTrap); n < 1 {
		t.Errorf("trap errors = %v, want at least 1", n)
	}
	if n := snap.Get(wasmstages.MetricInstanceRestarts, "component", "stage", "name", name); n < 1 {
		t.Errorf("instance restarts = %v, want at least 1", n)
	}
}

// TestGadgetModuleInitFails: a gadget_init that fails stops the source
// from starting, with an error naming the source and the gadget and
// carrying the guest's message; config validation reports it too.
func TestGadgetModuleInitFails(t *testing.T) {
	gadget, _ := filepath.Abs(syscallsGadget)
	module, _ := filepath.Abs(syscallsModule)
	f := syscallsConfig(t, fmt.Sprintf("data_dir = %q", t.TempDir()), gadget, fmt.Sprintf(`params = { syscall = "no_such_syscall" }
  wasm   = %q`, module))
	wants := []string{`gadget "wasm_syscalls" module`, "gadget_init returned 1", `"no_such_syscall" is not a syscall of`}
	diags := Check(context.Background(), f, nil)
	if !diags.HasErrors() || diags[0].Summary != "Gadget module init failed" || diags[0].Subject == nil || diags[0].Subject.Start.Line != 11 {
		t.Errorf("validate: %v; want the init failure at the wasm attribute (line 11)", diags)
	}
	for _, want := range wants {
		if !strings.Contains(diags.Error(), want) {
			t.Errorf("validate: %q lacks %q", diags.Error(), want)
		}
	}

	testutil.RequireBPF(t)
	a, diags := New(f, Options{Stdout: &testutil.SyncBuffer{}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	err := a.Run(context.Background())
	if err == nil {
		t.Fatal("the agent ran although the gadget module's init failed")
	}
	for _, want := range append(wants, `start source "sc"`) {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestGadgetHandle checks the adapter of a real gadget: errors classified
// for the guest, maps by name, per-CPU values in the kernel's layout, and
// output maps refused for writing.
func TestGadgetHandle(t *testing.T) {
	elf, err := os.ReadFile(filepath.Join("..", "gadgets", "testdata", "multi_tracer.bpf.o"))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := sources.ParseGadget("multi_tracer", elf, sources.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := sources.NewGadget(spec, sources.GadgetConfig{Source: "m", Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	h := gadgetHandle{g}
	if _, err := h.Param("nope"); !errors.Is(err, wasmstages.ErrNotFound) {
		t.Errorf("Param(nope) = %v, want ErrNotFound", err)
	}
	if err := h.SetParam("target_pid", "x"); !errors.Is(err, wasmstages.ErrInvalid) {
		t.Errorf("SetParam(target_pid, x) = %v, want ErrInvalid", err)
	}
	if err := h.SetParam("tag", "fromwasm"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Map("scratch"); !errors.Is(err, wasmstages.ErrWrongPhase) {
		t.Errorf("Map before load = %v, want ErrWrongPhase", err)
	}

	testutil.RequireBPF(t)
	if err := g.Open(); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := h.SetParam("tag", "again"); !errors.Is(err, wasmstages.ErrWrongPhase) {
		t.Errorf("SetParam after load = %v, want ErrWrongPhase", err)
	}
	if v, _ := h.Param("tag"); v != "fromwasm" {
		t.Errorf("Param(tag) = %q, want the value it loaded with", v)
	}
	if _, err := h.Map("nope"); !errors.Is(err, wasmstages.ErrNotFound) {
		t.Errorf("Map(nope) = %v, want ErrNotFound", err)
	}

	m, err := h.Map("perf_b_lost_samples") // a per-CPU array of u64
	if err != nil {
		t.Fatal(err)
	}
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	info := m.Info()
	if info.Type != uint32(ebpf.PerCPUArray) || info.KeySize != 4 || info.ValueSize != uint32(8*cpus) {
		t.Fatalf("Info = %+v; want a per-CPU array with %d-byte values (8 per CPU)", info, 8*cpus)
	}
	key := binary.LittleEndian.AppendUint32(nil, 0)
	val := make([]byte, info.ValueSize)
	for c := range cpus {
		binary.LittleEndian.PutUint64(val[8*c:], uint64(100+c))
	}
	if err := m.Update(key, val, 0); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, info.ValueSize)
	if err := m.Lookup(key, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, val) {
		t.Errorf("per-CPU lookup = %x, want %x", got, val)
	}
	next := make([]byte, 4)
	if err := m.NextKey(nil, next); err != nil || binary.LittleEndian.Uint32(next) != 0 {
		t.Errorf("NextKey(nil) = %x, %v; want key 0", next, err)
	}
	if err := m.NextKey(next, next); !errors.Is(err, wasmstages.ErrNotFound) {
		t.Errorf("NextKey after the last key = %v, want ErrNotFound", err)
	}

	ring, err := h.Map("ring_a")
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Update(nil, nil, 0); !errors.Is(err, wasmstages.ErrInvalid) {
		t.Errorf("update of a ring buffer = %v, want ErrInvalid", err)
	}
}
