package sources

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/internal/testutil"
	"github.com/sluice-dev/sluice/sources/eventtype"
)

// Plain libbpf programs (gadgets/testdata/libbpf): no markers, event types
// only in locals, options as const volatile globals.

func libbpfObject(t *testing.T, name string) []byte {
	t.Helper()
	return testObject(t, "libbpf/"+name)
}

// syncsnoopArchPrograms are syncsnoop's programs on tracepoints x86_64
// lacks.
var syncsnoopArchPrograms = []string{"tracepoint__syscalls__sys_enter_arm_sync_file_range", "tracepoint__syscalls__sys_enter_sync_file_range2"}

func TestPlainEventTypeFromDWARF(t *testing.T) {
	opts := ParseOptions{SkipPrograms: syncsnoopArchPrograms}
	spec, err := ParseGadget("syncsnoop", libbpfObject(t, "syncsnoop"), opts)
	if err != nil {
		t.Fatal(err)
	}
	st := spec.Streams[0]
	if st.EventType.Name != "event" || st.FoundBy != eventtype.ByRecordSize || st.TypeFrom != "the object's DWARF" || st.EventType.Size != 32 {
		t.Fatalf("stream typed %s, want struct event (32 bytes) by record size from the object's DWARF", st.TypeChoice())
	}
	if strings.Join(memberNames(st.EventType), ",") != "comm,ts_us,sys" {
		t.Errorf("struct event from DWARF has members %v", memberNames(st.EventType))
	}
	_, c := startGadget(t, "syncsnoop", libbpfObject(t, "syncsnoop"), opts, nil)
	unix.Sync()
	ev := c.waitFor(t, "sync", func(ev map[string]any) bool { return ev["comm"] == selfComm() && num(ev["sys"]) == 1 })
	if num(ev["ts_us"]) == 0 {
		t.Errorf("event = %v, want a timestamp", ev)
	}
}

func memberNames(st *btf.Struct) []string {
	var out []string
	for _, m := range st.Members {
		out = append(out, m.Name)
	}
	return out
}

// TestPlainMissingTracepoint: syncsnoop carries programs for tracepoints
// this architecture lacks; the error says so, names the program and how to
// leave it out.
func TestPlainMissingTracepoint(t *testing.T) {
	testutil.RequireBPF(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("the missing tracepoints are x86_64's")
	}
	spec, err := ParseGadget("syncsnoop", libbpfObject(t, "syncsnoop"), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGadget(spec, GadgetConfig{Source: "sync"})
	if err != nil {
		t.Fatal(err)
	}
	err = g.Open()
	g.Close()
	var pe *ProgramError
	if !errors.As(err, &pe) || pe.Op != "attach" || !slices.Contains(syncsnoopArchPrograms, pe.Program) {
		t.Fatalf("open: %v, want an attach error for one of %v", err, syncsnoopArchPrograms)
	}
	// Both are named at once, not one per attempt.
	first := strings.TrimPrefix(pe.Section, "tracepoint/")
	other := syncsnoopArchPrograms[0]
	if other == pe.Program {
		other = syncsnoopArchPrograms[1]
	}
	otherTP := "syscalls/" + strings.TrimPrefix(other, "tracepoint__syscalls__")
	for _, want := range []string{
		"tracepoint " + first + " does not exist on this kernel; nor does " + otherTP + " (program " + other + ")",
		`skip_programs = ["` + pe.Program + `", "` + other + `"]`,
		"--skip-programs " + pe.Program + "," + other,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestPlainEventTypeFile: a syncsnoop built without DWARF lacks its event
// type; a header compiled alone supplies it, by size or by name.
func TestPlainEventTypeFile(t *testing.T) {
	stripped := libbpfObject(t, "syncsnoop_stripped")
	types := libbpfObject(t, "syncsnoop.types")
	_, err := ParseGadget("syncsnoop", stripped, ParseOptions{EventType: "event"})
	var oe *OptionError
	if !errors.As(err, &oe) || oe.Option != "event_type" || !errors.Is(err, eventtype.ErrNotFound) {
		t.Fatalf("hint without the type: %v, want an event_type OptionError", err)
	}
	for _, want := range []string{"struct event is not in the object's BTF", "clang drops types used only by locals", "reference it from a global", "build with -g", "event_type_file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "__type(value") {
		t.Errorf("error %q suggests __type(value, ...) on an output map, which libbpf refuses for ring buffers", err)
	}
	for _, hint := range []string{"", "event", "struct event"} {
		spec, err := ParseGadget("syncsnoop", stripped, ParseOptions{EventType: hint, EventTypeFile: types, EventTypeFileName: "syncsnoop.types.bpf.o", SkipPrograms: syncsnoopArchPrograms})
		if err != nil {
			t.Fatalf("hint %q with the types file: %v", hint, err)
		}
		st := spec.Streams[0]
		wantHow := eventtype.ByHint
		if hint == "" {
			wantHow = eventtype.ByRecordSize
		}
		if st.EventType.Name != "event" || st.FoundBy != wantHow || st.TypeFrom != "event_type_file syncsnoop.types.bpf.o (DWARF)" {
			t.Errorf("hint %q: stream typed %s", hint, st.TypeChoice())
		}
	}
	_, err = ParseGadget("syncsnoop", stripped, ParseOptions{EventType: "evnet", EventTypeFile: types, EventTypeFileName: "t.o"})
	if err == nil || !strings.Contains(err.Error(), "event_type_file t.o does not have it either") {
		t.Errorf("a typo with a types file: %v", err)
	}
	_, err = ParseGadget("syncsnoop", stripped, ParseOptions{EventTypeFile: []byte("not an object"), EventTypeFileName: "junk"})
	if !errors.As(err, &oe) || oe.Option != "event_type_file" {
		t.Errorf("a junk types file: %v, want an event_type_file OptionError", err)
	}

	// And it runs, decoding with the file's type.
	_, c := startGadget(t, "syncsnoop", stripped, ParseOptions{EventTypeFile: types, SkipPrograms: syncsnoopArchPrograms}, nil)
	unix.Sync()
	c.waitFor(t, "sync", func(ev map[string]any) bool { return ev["comm"] == selfComm() && num(ev["sys"]) == 1 })
}

// TestPlainKernelTypeNotGuessed: sysregs' 168-byte event has the size of
// struct pt_regs, which its BTF holds (it reads registers through CO-RE).
// Without DWARF sluice refuses to guess; with DWARF it takes the event.
func TestPlainKernelTypeNotGuessed(t *testing.T) {
	for _, kernel := range []struct {
		name  string
		types *btf.Spec
		why   string
	}{
		{"host kernel BTF", nil, "struct pt_regs (read through CO-RE relocations)"},
		{"no kernel BTF", emptyBTF(t), "struct pt_regs (read through CO-RE relocations)"},
	} {
		_, err := ParseGadget("sysregs", libbpfObject(t, "sysregs_stripped"), ParseOptions{KernelTypes: kernel.types})
		if err == nil {
			t.Fatalf("%s: the stripped object parsed; a lone size match against a kernel type was taken", kernel.name)
		}
		for _, want := range []string{"168 bytes", kernel.why, "never taken for an event type", "set event_type"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not say %q", kernel.name, err, want)
			}
		}
	}
	spec, err := ParseGadget("sysregs", libbpfObject(t, "sysregs"), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := spec.Streams[0]; st.EventType.Name != "event" || st.TypeFrom != "the object's DWARF" {
		t.Fatalf("stream typed %s, want struct event from DWARF", st.TypeChoice())
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("sysregs reads x86_64 registers")
	}
	me := os.Getpid()
	_, c := startGadget(t, "sysregs", libbpfObject(t, "sysregs"), ParseOptions{}, map[string]string{"targ_tgid": strconv.Itoa(me), "targ_syscall": strconv.Itoa(unix.SYS_GETPGID)})
	unix.Getpgid(4242)
	ev := c.waitFor(t, "getpgid(4242)", func(ev map[string]any) bool { return num(ev["pid"]) == int64(me) })
	args, _ := ev["args"].([]any)
	if num(ev["id"]) != unix.SYS_GETPGID || len(args) != 6 || num(args[0]) != 4242 {
		t.Errorf("event = %v, want syscall %d with first argument 4242", ev, unix.SYS_GETPGID)
	}
}

func emptyBTF(t *testing.T) *btf.Spec {
	t.Helper()
	b, err := btf.NewBuilder(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadSpecFromReader(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// TestPlainProgramSelection: sigsnoop's syscall programs and its
// signal_generate program both report a kill; selecting one set reports
// it once, and the other set is not even loaded.
func TestPlainProgramSelection(t *testing.T) {
	obj := libbpfObject(t, "sigsnoop")
	me := strconv.Itoa(os.Getpid())
	kill := func(t *testing.T) int {
		child := exec.Command("/bin/sleep", "30")
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		if err := unix.Kill(child.Process.Pid, unix.SIGTERM); err != nil {
			t.Fatal(err)
		}
		child.Wait()
		return child.Process.Pid
	}
	about := func(c *collector, pid int) int {
		n := 0
		for _, ev := range c.snapshot() {
			if num(ev["tpid"]) == int64(pid) {
				n++
			}
		}
		return n
	}

	t.Run("all", func(t *testing.T) {
		_, c := startGadget(t, "sigsnoop", obj, ParseOptions{}, map[string]string{"filtered_pid": me})
		pid := kill(t)
		waitUntil(t, "the kill reported by both program sets", func() bool { return about(c, pid) == 2 })
	})
	t.Run("programs", func(t *testing.T) {
		g, c := startGadget(t, "sigsnoop", obj, ParseOptions{Programs: []string{"kill_entry", "kill_exit"}}, map[string]string{"filtered_pid": me})
		if _, loaded := g.coll.Programs["sig_trace"]; loaded || len(g.coll.Programs) != 2 {
			t.Fatalf("loaded programs %v, want kill_entry and kill_exit only", slices.Sorted(mapKeys(g.coll.Programs)))
		}
		first := kill(t)
		c.waitFor(t, "the kill", func(ev map[string]any) bool { return num(ev["tpid"]) == int64(first) && ev["comm"] == selfComm() })
		// A second kill, reported after the first: had the first been
		// reported twice, both reports would be in by now.
		second := kill(t)
		c.waitFor(t, "the second kill", func(ev map[string]any) bool { return num(ev["tpid"]) == int64(second) })
		if n := about(c, first); n != 1 {
			t.Errorf("the first kill was reported %d times, want once", n)
		}
	})
	t.Run("skip_programs", func(t *testing.T) {
		spec, err := ParseGadget("sigsnoop", obj, ParseOptions{SkipPrograms: []string{"sig_trace"}})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range spec.Programs {
			names = append(names, p.Name)
		}
		want := []string{"kill_entry", "kill_exit", "tgkill_entry", "tgkill_exit", "tkill_entry", "tkill_exit"}
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("programs after skip_programs (-want +got):\n%s", diff)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			opts   ParseOptions
			option string
			want   string
		}{
			{ParseOptions{Programs: []string{"kill_entyr"}}, "programs", `programs names program "kill_entyr", which the gadget does not have (programs: kill_entry (tracepoint/syscalls/sys_enter_kill)`},
			{ParseOptions{SkipPrograms: []string{"nope"}}, "skip_programs", `skip_programs names program "nope"`},
			{ParseOptions{Programs: []string{"sig_trace"}, SkipPrograms: []string{"sig_trace"}}, "programs", "leave the gadget no program"},
		} {
			_, err := ParseGadget("sigsnoop", obj, tc.opts)
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Option != tc.option || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%+v: %v, want a %s OptionError saying %q", tc.opts, err, tc.option, tc.want)
			}
		}
	})
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestPlainTpBtfAndRawTp: runqslower carries its probes twice; without a
// selection both sets attach, with one they do not.
func TestPlainTpBtfAndRawTp(t *testing.T) {
	obj := libbpfObject(t, "runqslower")
	g, _ := startGadget(t, "runqslower", obj, ParseOptions{}, map[string]string{"targ_tgid": "1"})
	if n := len(g.links); n != 6 {
		t.Errorf("%d programs attached without a selection, want all 6", n)
	}
	// A child asleep until the gadget runs: the signal that ends it wakes
	// it, and it gets a CPU to die on.
	child := exec.Command("/bin/sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	pid := child.Process.Pid
	skip := []string{"handle_sched_switch", "handle_sched_wakeup", "handle_sched_wakeup_new"}
	g2, c := startGadget(t, "runqslower", obj, ParseOptions{SkipPrograms: skip}, map[string]string{"targ_tgid": strconv.Itoa(pid), "min_us": "0"})
	if n := len(g2.links); n != 3 {
		t.Errorf("%d programs attached with the raw_tp ones skipped, want 3", n)
	}
	for _, p := range g2.Spec().Programs {
		if p.Attach != AttachBTFTracepoint {
			t.Errorf("program %s (%s) kept, want tp_btf programs only", p.Name, p.Section)
		}
	}
	child.Process.Signal(unix.SIGTERM)
	child.Wait()
	ev := c.waitFor(t, "the child back on a CPU", func(ev map[string]any) bool { return num(ev["pid"]) == int64(pid) })
	if ev["task"] != "sleep" {
		t.Errorf("event = %v, want task sleep", ev)
	}
	if p, _ := g2.Spec().Param("min_us"); p == nil || p.Kind != ParamUint || p.Type != "__u64" || p.Declared {
		t.Errorf("min_us = %+v, want an undeclared __u64 parameter", p)
	}
}

// TestPlainParamsEveryConstant: without GADGET_PARAM markers, every const
// volatile global of a parameter type is a parameter, listed with its C
// type and default; enums take their names.
func TestPlainParamsEveryConstant(t *testing.T) {
	cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(libbpfObject(t, "layouts")))
	if err != nil {
		t.Fatal(err)
	}
	mk, err := readMarkers(cs)
	if err != nil {
		t.Fatal(err)
	}
	params, err := paramSpecs(cs, mk)
	if err != nil {
		t.Fatal(err)
	}
	g := &GadgetSpec{Name: "layouts", Params: params}
	want := []string{
		"colour_opt=uint (enum colour), default GREEN; one of RED, GREEN, BLUE",
		"delta_opt=int (enum delta), default DOWN; one of DOWN, SAME, UP",
		"flag_opt=bool, default true",
		`name_opt=string (char[8]), default "abc"`,
		"neg_opt=int (__s64), default -5",
		"port_opt=uint (__u16), default 8080",
	}
	if diff := cmp.Diff(want, g.ParamHelp()); diff != "" {
		t.Errorf("parameters (-want +got):\n%s", diff)
	}
	enc, err := g.encodeParams(map[string]string{"colour_opt": "BLUE", "delta_opt": "UP", "neg_opt": "-7", "name_opt": "xyz"})
	if err != nil {
		t.Fatal(err)
	}
	if v := binary.NativeEndian.Uint32(enc["colour_opt"]); v != 4 {
		t.Errorf("colour_opt=BLUE encodes %d, want 4", v)
	}
	if v := int32(binary.NativeEndian.Uint32(enc["delta_opt"])); v != 1 {
		t.Errorf("delta_opt=UP encodes %d, want 1", v)
	}
	err = g.CheckParams(map[string]string{"colour_opt": "PURPLE"})
	if err == nil || !strings.Contains(err.Error(), "want one of RED, GREEN, BLUE, or a number") {
		t.Errorf("colour_opt=PURPLE: %v", err)
	}
	err = g.CheckParams(map[string]string{"name_opt": "much too long"})
	if err == nil || !strings.Contains(err.Error(), "at most 7 fit") {
		t.Errorf("name_opt too long: %v", err)
	}
}

// TestPlainOpensnoop: the event is found in DWARF beside the BTF's
// struct args_t; an undeclared parameter filters by process, another
// keeps failed opens only.
func TestPlainOpensnoop(t *testing.T) {
	obj := libbpfObject(t, "opensnoop")
	spec, err := ParseGadget("opensnoop", obj, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := spec.Streams[0]; st.EventType.Name != "event" || st.TypeFrom != "the object's DWARF" {
		t.Fatalf("stream typed %s", st.TypeChoice())
	}
	me := strconv.Itoa(os.Getpid())
	_, all := startGadget(t, "opensnoop", obj, ParseOptions{}, map[string]string{"targ_tgid": me})
	_, failed := startGadget(t, "opensnoop", obj, ParseOptions{}, map[string]string{"targ_tgid": me, "targ_failed": "true"})
	dir := t.TempDir()
	good := dir + "/present"
	if err := os.WriteFile(good, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(good)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	missing := dir + "/missing"
	os.Open(missing)
	ev := all.waitFor(t, "the open", func(ev map[string]any) bool { return ev["fname"] == good })
	if num(ev["ret"]) < 0 || num(ev["pid"]) != int64(os.Getpid()) {
		t.Errorf("open event = %v", ev)
	}
	ev = failed.waitFor(t, "the failed open", func(ev map[string]any) bool { return ev["fname"] == missing })
	if num(ev["ret"]) != -int64(unix.ENOENT) {
		t.Errorf("failed open event = %v, want ret -ENOENT", ev)
	}
	// targ_failed drops successful opens in the kernel: none is emitted.
	for _, ev := range failed.snapshot() {
		if num(ev["ret"]) >= 0 {
			t.Errorf("targ_failed=true reported a successful open: %v", ev)
		}
	}
}
