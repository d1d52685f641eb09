package sources

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/testutil"
)

func testObject(t *testing.T, name string) []byte {
	t.Helper()
	b, err := gadgets.TestObject(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseBuiltins(t *testing.T) {
	wantParams := map[string][]string{
		"trace_exec":       {"ignore_failed"},
		"trace_open":       {"ignore_failed", "target_pid"},
		"trace_tcpconnect": nil,
		"trace_signal":     {"failed_only", "ignore_self"},
	}
	for name, params := range wantParams {
		t.Run(name, func(t *testing.T) {
			b, ok := gadgets.Lookup(name)
			if !ok {
				t.Fatalf("no built-in %q", name)
			}
			spec, err := ParseGadget(name, b.Object, ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(spec.Streams) != 1 || spec.Streams[0].Map != "events" || spec.Streams[0].FoundBy != "marker" {
				t.Errorf("streams = %+v, want one marker stream on map events", spec.Streams)
			}
			if spec.Streams[0].LostMap != "events_lost_samples" {
				t.Errorf("lost map = %q, want events_lost_samples", spec.Streams[0].LostMap)
			}
			// The filter contract's parameters (sluice/filter.h) are
			// every built-in's; FilterParam tells them apart.
			var got []string
			for _, p := range spec.Params {
				if !FilterParam(p.Name) {
					got = append(got, p.Name)
				}
			}
			if len(spec.Params)-len(got) != 5 {
				t.Errorf("params = %v, want the five of the filter contract among them", spec.Params)
			}
			if strings.Join(got, ",") != strings.Join(params, ",") {
				t.Errorf("params = %v, want %v", got, params)
			}
			for _, p := range spec.Programs {
				if p.Attach != AttachTracepoint {
					t.Errorf("program %s attaches by %s, want tracepoint", p.Name, p.Attach)
				}
			}
		})
	}
}

func TestParams(t *testing.T) {
	b, _ := gadgets.Lookup("trace_open")
	spec, err := ParseGadget("trace_open", b.Object, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, ok := spec.Param("target_pid")
	if !ok || p.Kind != ParamUint || p.Size != 4 || p.Default != "0" {
		t.Errorf("target_pid = %+v, want uint32 defaulting to 0", p)
	}
	p, ok = spec.Param("ignore_failed")
	if !ok || p.Kind != ParamBool || p.Default != "false" {
		t.Errorf("ignore_failed = %+v, want bool defaulting to false", p)
	}
	for _, tc := range []struct {
		name, value, want string
	}{
		{"target_pid", "42", ""},
		{"target_pid", "0x10", ""},
		{"target_pid", "-1", "want an unsigned integer of 32 bits"},
		{"target_pid", "abc", "want an unsigned integer of 32 bits"},
		{"target_pid", "4294967296", "want an unsigned integer of 32 bits"},
		{"ignore_failed", "yes", "want a bool"},
		{"ignore_failed", "true", ""},
		{"nope", "1", "no such parameter"},
	} {
		err := spec.CheckParams(map[string]string{tc.name: tc.value})
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s=%s: %v", tc.name, tc.value, err)
			}
			continue
		}
		var pe *ParamError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%s: error %v, want a ParamError containing %q", tc.name, tc.value, err, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), "target_pid (uint") || !strings.Contains(err.Error(), "ignore_failed (bool") {
			t.Errorf("%s=%s: error %q does not list the valid parameters", tc.name, tc.value, err)
		}
	}
}

func TestParamStringAndSigned(t *testing.T) {
	spec := &ParamSpec{Name: "s", Kind: ParamString, Size: 8}
	if _, err := spec.encode("1234567"); err != nil {
		t.Error(err)
	}
	if _, err := spec.encode("12345678"); err == nil {
		t.Error("an 8-byte string fit a char[8] with its NUL")
	}
	i8 := &ParamSpec{Name: "i", Kind: ParamInt, Size: 1}
	b, err := i8.encode("-2")
	if err != nil || b[0] != 0xfe {
		t.Errorf("int8 -2 = %x, %v", b, err)
	}
	if got := renderParam(*i8, []byte{0xfe}); got != "-2" {
		t.Errorf("render int8 0xfe = %q, want -2", got)
	}
	if _, err := i8.encode("200"); err == nil {
		t.Error("200 fit an int8")
	}
}

func TestClassifySection(t *testing.T) {
	for _, tc := range []struct {
		section string
		kind    AttachKind
		target  string
	}{
		{"tracepoint/syscalls/sys_enter_openat", AttachTracepoint, "syscalls/sys_enter_openat"},
		{"tp/sched/sched_process_exec", AttachTracepoint, "sched/sched_process_exec"},
		{"raw_tp/sched_switch", AttachRawTracepoint, "sched_switch"},
		{"tp_btf/sched_switch", AttachBTFTracepoint, "sched_switch"},
		{"kprobe/do_sys_openat2", AttachKprobe, "do_sys_openat2"},
		{"kretprobe/do_sys_openat2", AttachKretprobe, "do_sys_openat2"},
		{"fentry/do_unlinkat", AttachFentry, "do_unlinkat"},
		{"fexit/do_unlinkat", AttachFexit, "do_unlinkat"},
		{"uprobe//usr/bin/bash:readline", AttachUprobe, "/usr/bin/bash:readline"},
		{"uretprobe//usr/bin/bash:readline", AttachUretprobe, "/usr/bin/bash:readline"},
		{"xdp", AttachUnsupported, "xdp"},
	} {
		kind, target := classifySection(tc.section)
		if kind != tc.kind || target != tc.target {
			t.Errorf("%s: got %s %q, want %s %q", tc.section, kind, target, tc.kind, tc.target)
		}
	}
	_, err := attachProgram(ProgramSpec{Section: "xdp", Attach: AttachUnsupported}, nil)
	if !errors.Is(err, ErrUnsupportedAttach) {
		t.Errorf("attach xdp: %v, want ErrUnsupportedAttach", err)
	}
}

// TestKprobeFeatureGate attaches a real kprobe program: on kernels with
// kprobes it must work, on kernels without (like our CI) the error must name
// the missing feature.
func TestKprobeFeatureGate(t *testing.T) {
	testutil.RequireBPF(t)
	if err := PrepareKernel(); err != nil {
		t.Fatal(err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.Kprobe,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		t.Fatalf("load a trivial kprobe program: %v", err)
	}
	defer prog.Close()
	l, err := attachProgram(ProgramSpec{Name: "probe", Section: "kprobe/do_sys_openat2", Attach: AttachKprobe, Target: "do_sys_openat2"}, prog)
	if kprobesAvailable() {
		if err != nil {
			t.Fatalf("kprobes are available but attach failed: %v", err)
		}
		l.Close()
		return
	}
	if !errors.Is(err, ErrKernelFeature) || !strings.Contains(err.Error(), "no kprobes") {
		t.Fatalf("attach without kprobes: %v, want ErrKernelFeature naming kprobes", err)
	}
}

func TestPlainLibbpfWithHint(t *testing.T) {
	elf := testObject(t, "plain_libbpf")
	spec, err := ParseGadget("plain_libbpf", elf, ParseOptions{EventType: "event"})
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Streams) != 1 || spec.Streams[0].FoundBy != "hint" || spec.Streams[0].EventType.Name != "event" {
		t.Fatalf("streams = %+v, want one stream typed by the hint", spec.Streams)
	}
	_, c := startGadget(t, "plain_libbpf", elf, ParseOptions{EventType: "event"}, nil)
	unix.Getppid()
	ev := c.waitFor(t, "getppid", func(ev map[string]any) bool { return num(ev["pid"]) == int64(os.Getpid()) })
	if ev["comm"] != selfComm() || uint64(num(ev["value"])) != 0x1122334455667788 {
		t.Errorf("event = %v, want comm %q and value 0x1122334455667788", ev, selfComm())
	}
}

func TestPlainLibbpfWithoutHint(t *testing.T) {
	spec, err := ParseGadget("plain_libbpf", testObject(t, "plain_libbpf"), ParseOptions{})
	if err != nil {
		t.Fatalf("find the event type from the program's instructions: %v", err)
	}
	if st := spec.Streams[0]; st.FoundBy != "record size" || st.EventType.Name != "event" || st.TypeFrom != "the object's BTF" {
		t.Errorf("stream typed %s, want struct event by record size from the object's BTF", st.TypeChoice())
	}
	_, err = ParseGadget("plain_libbpf", testObject(t, "plain_libbpf"), ParseOptions{EventType: "no_such_struct"})
	if err == nil || !strings.Contains(err.Error(), "struct no_such_struct is not in the object's BTF") {
		t.Errorf("bad hint: %v, want an error naming the struct", err)
	}
}

func TestVerifierRejection(t *testing.T) {
	testutil.RequireBPF(t)
	elf := testObject(t, "verifier_reject")
	spec, err := ParseGadget("verifier_reject", elf, ParseOptions{EventType: "event"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGadget(spec, GadgetConfig{Source: "bad"})
	if err != nil {
		t.Fatal(err)
	}
	err = g.Open()
	var pe *ProgramError
	if !errors.As(err, &pe) {
		t.Fatalf("open: %v, want a ProgramError", err)
	}
	if pe.Op != "load" || pe.Program == "" || len(pe.VerifierLog) == 0 || len(pe.VerifierLog) > verifierTailLines {
		t.Fatalf("ProgramError = %+v, want a load error with a verifier log tail", pe)
	}
	msg := err.Error()
	if !strings.Contains(msg, pe.Program) || !strings.Contains(msg, "verifier") {
		t.Errorf("message %q does not name the program and the verifier", msg)
	}
	t.Logf("error shown to users:\n%s", msg)
}
