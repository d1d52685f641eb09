package sources

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
)

// AttachKind is how a program attaches, derived from its section name with
// libbpf's conventions.
type AttachKind uint8

const (
	AttachUnsupported   AttachKind = iota
	AttachTracepoint               // tracepoint/<group>/<name>, tp/<group>/<name>
	AttachRawTracepoint            // raw_tp/<name>, raw_tracepoint/<name>
	AttachBTFTracepoint            // tp_btf/<name>
	AttachKprobe                   // kprobe/<function>
	AttachKretprobe                // kretprobe/<function>
	AttachFentry                   // fentry/<function>
	AttachFexit                    // fexit/<function>
	AttachUprobe                   // uprobe/<path>:<symbol>
	AttachUretprobe                // uretprobe/<path>:<symbol>
	AttachIter                     // iter/<kind>: run by its snapshot, not by events
	AttachSocketFilter             // socket[/...]: a raw packet socket per network namespace
	AttachPerfEvent                // perf_event: sampling on every CPU
	AttachTC                       // classifier/<ingress|egress>/..., tc/..., tcx/...: per interface
	AttachLSM                      // lsm/<hook>
)

var attachNames = [...]string{
	AttachUnsupported:   "unsupported",
	AttachTracepoint:    "tracepoint",
	AttachRawTracepoint: "raw_tp",
	AttachBTFTracepoint: "tp_btf",
	AttachKprobe:        "kprobe",
	AttachKretprobe:     "kretprobe",
	AttachFentry:        "fentry",
	AttachFexit:         "fexit",
	AttachUprobe:        "uprobe",
	AttachUretprobe:     "uretprobe",
	AttachIter:          "iter",
	AttachSocketFilter:  "socket",
	AttachPerfEvent:     "perf_event",
	AttachTC:            "tc",
	AttachLSM:           "lsm",
}

func (k AttachKind) String() string {
	if int(k) < len(attachNames) {
		return attachNames[k]
	}
	return "unknown"
}

// classifySection maps an ELF section name to an attach kind and target.
func classifySection(section string) (AttachKind, string) {
	prefix, target, _ := strings.Cut(section, "/")
	switch prefix {
	case "tracepoint", "tp":
		return AttachTracepoint, target
	case "raw_tp", "raw_tracepoint":
		return AttachRawTracepoint, target
	case "tp_btf":
		return AttachBTFTracepoint, target
	case "kprobe":
		return AttachKprobe, target
	case "kretprobe":
		return AttachKretprobe, target
	case "fentry":
		return AttachFentry, target
	case "fexit":
		return AttachFexit, target
	case "uprobe":
		return AttachUprobe, target
	case "uretprobe":
		return AttachUretprobe, target
	case "iter", "iter.s":
		return AttachIter, target
	case "socket":
		return AttachSocketFilter, target
	case "perf_event":
		return AttachPerfEvent, target
	case "classifier", "tc", "tcx":
		// IG: classifier/<ingress|egress>/<name>; libbpf: tc, tcx/ingress.
		dir, _, _ := strings.Cut(target, "/")
		if dir != "ingress" && dir != "egress" {
			dir = "ingress"
		}
		return AttachTC, dir
	case "lsm", "lsm.s":
		return AttachLSM, target
	}
	if strings.HasPrefix(prefix, "socket") {
		return AttachSocketFilter, target // IG's gadgets use socket1
	}
	return AttachUnsupported, section
}

// ErrUnsupportedAttach reports a section name sluice cannot attach.
var ErrUnsupportedAttach = errors.New("unsupported attach type")

// ErrKernelFeature reports that the running kernel lacks what a program
// needs (kprobes, BTF trampolines for fentry, ...).
var ErrKernelFeature = errors.New("missing kernel feature")

// ProgramError reports a program that could not be loaded or attached.
type ProgramError struct {
	Gadget  string
	Program string
	Section string
	Op      string // "load" or "attach"
	// VerifierLog holds the tail of the verifier's log when the verifier
	// rejected the program.
	VerifierLog []string
	Err         error
}

func (e *ProgramError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s program %s (section %s) of gadget %q: %v", e.Op, e.Program, e.Section, e.Gadget, e.Err)
	if len(e.VerifierLog) > 0 {
		b.WriteString("\nverifier log (last lines):")
		for _, l := range e.VerifierLog {
			b.WriteString("\n    ")
			b.WriteString(l)
		}
	}
	return b.String()
}

func (e *ProgramError) Unwrap() error { return e.Err }

// attachProgram attaches one loaded program according to its spec.
func attachProgram(ps ProgramSpec, prog *ebpf.Program) (link.Link, error) {
	switch ps.Attach {
	case AttachTracepoint:
		group, name, ok := strings.Cut(ps.Target, "/")
		if !ok {
			return nil, fmt.Errorf("section %q: want tracepoint/<group>/<name>", ps.Section)
		}
		l, err := link.Tracepoint(group, name, prog, nil)
		if errors.Is(err, os.ErrNotExist) {
			return nil, &missingTracepointError{programs: []ProgramSpec{ps}, err: err}
		}
		return l, err
	case AttachRawTracepoint:
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: ps.Target, Program: prog})
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("raw tracepoint %s does not exist on this kernel (%s): %w", ps.Target, skipHint(ps), err)
		}
		return l, err
	case AttachBTFTracepoint, AttachFentry, AttachFexit:
		return link.AttachTracing(link.TracingOptions{Program: prog})
	case AttachKprobe, AttachKretprobe:
		if !kprobesAvailable() {
			return nil, fmt.Errorf("%w: this kernel has no kprobes (built without CONFIG_KPROBES?); use a tracepoint, raw_tp or tp_btf program instead", ErrKernelFeature)
		}
		sym, off := splitOffset(ps.Target)
		opts := &link.KprobeOptions{Offset: off}
		if ps.Attach == AttachKretprobe {
			return link.Kretprobe(sym, prog, nil)
		}
		return link.Kprobe(sym, prog, opts)
	case AttachUprobe, AttachUretprobe:
		path, sym, ok := strings.Cut(ps.Target, ":")
		if !ok || path == "" || sym == "" {
			return nil, fmt.Errorf("section %q: want uprobe/<path>:<symbol>", ps.Section)
		}
		if !strings.Contains(path, "/") {
			lib, err := resolveLibrary(path)
			if err != nil {
				return nil, &absentTargetError{fmt.Errorf("section %q: %w", ps.Section, err)}
			}
			path = lib
		}
		ex, err := link.OpenExecutable(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, &absentTargetError{fmt.Errorf("open %s: %w", path, err)}
			}
			return nil, err
		}
		sym, off := splitOffset(sym)
		opts := &link.UprobeOptions{Offset: off}
		var l link.Link
		if ps.Attach == AttachUretprobe {
			l, err = ex.Uretprobe(sym, prog, opts)
		} else {
			l, err = ex.Uprobe(sym, prog, opts)
		}
		if errors.Is(err, link.ErrNoSymbol) {
			return nil, &absentTargetError{fmt.Errorf("%s has no symbol %s: %w", path, sym, err)}
		}
		return l, err
	case AttachLSM:
		return link.AttachLSM(link.LSMOptions{Program: prog})
	}
	return nil, fmt.Errorf("%w %q (supported: tracepoint, raw_tp, tp_btf, kprobe, kretprobe, fentry, fexit, uprobe, uretprobe, iter, socket, perf_event, classifier/tc/tcx, lsm)", ErrUnsupportedAttach, ps.Section)
}

// skipHint says how to run a gadget without programs its kernel cannot
// attach, as libbpf loaders turn autoload off for such programs.
func skipHint(programs ...ProgramSpec) string {
	names := make([]string, len(programs))
	quoted := make([]string, len(programs))
	for i, ps := range programs {
		names[i], quoted[i] = ps.Name, strconv.Quote(ps.Name)
	}
	what := "program " + names[0]
	if len(names) > 1 {
		what = "programs " + strings.Join(names, ", ")
	}
	return fmt.Sprintf("leave %s out with skip_programs = [%s] in the source, or --skip-programs %s", what, strings.Join(quoted, ", "), strings.Join(names, ","))
}

// missingTracepointError reports tracepoint programs whose tracepoints
// this kernel lacks (architecture-specific syscalls, say): the first one
// attach met, and every other the gadget has, so one run names them all.
type missingTracepointError struct {
	programs []ProgramSpec
	err      error
}

func (e *missingTracepointError) Error() string {
	var b strings.Builder
	for i, ps := range e.programs {
		switch {
		case i == 0:
			fmt.Fprintf(&b, "tracepoint %s does not exist on this kernel", ps.Target)
		case len(e.programs) == 2:
			fmt.Fprintf(&b, "; nor does %s (program %s)", ps.Target, ps.Name)
		case i == 1:
			fmt.Fprintf(&b, "; nor do %s (program %s)", ps.Target, ps.Name)
		default:
			fmt.Fprintf(&b, ", %s (program %s)", ps.Target, ps.Name)
		}
	}
	fmt.Fprintf(&b, " (%s): %v", skipHint(e.programs...), e.err)
	return b.String()
}

func (e *missingTracepointError) Unwrap() error { return e.err }

// tracepointMissing tells whether tracefs lacks the tracepoint a program
// attaches to ("group/name"); an error other than its absence (tracefs
// unreadable) does not count.
func tracepointMissing(target string) bool {
	_, err := os.Stat(filepath.Join(tracefsPath, "events", target))
	return errors.Is(err, os.ErrNotExist)
}

// absentTargetError reports a uprobe whose library, executable or symbol
// this host lacks. The gadget runs without the program (Inspektor Gadget
// does the same), and says so.
type absentTargetError struct{ Err error }

func (e *absentTargetError) Error() string { return "uprobe target absent: " + e.Err.Error() }
func (e *absentTargetError) Unwrap() error { return e.Err }

// libraryDirs are searched, in order, for a uprobe target given as a bare
// library name. The multiarch directories come first: that is where Debian
// and Ubuntu keep the libraries their programs load.
var libraryDirs = []string{
	"/lib/" + multiarchTriplet(), "/usr/lib/" + multiarchTriplet(),
	"/lib64", "/usr/lib64", "/lib", "/usr/lib",
}

func multiarchTriplet() string {
	switch runtime.GOARCH {
	case "arm64":
		return "aarch64-linux-gnu"
	case "amd64":
		return "x86_64-linux-gnu"
	}
	return runtime.GOARCH + "-linux-gnu"
}

// resolveLibrary finds the shared object a uprobe section names without a
// path ("uprobe/libc:malloc", the Inspektor Gadget convention), so a gadget
// does not hard-code one distribution's library layout. "libc" matches
// libc.so.6 or libc.so; a name that already ends in a version is exact.
func resolveLibrary(name string) (string, error) {
	candidates := []string{name}
	if !strings.Contains(name, ".so") {
		candidates = []string{name + ".so.6", name + ".so.1", name + ".so.0", name + ".so"}
	}
	for _, dir := range libraryDirs {
		for _, c := range candidates {
			p := filepath.Join(dir, c)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("find library %q for a uprobe: not in %s (give the full path in the section name)", name, strings.Join(libraryDirs, ", "))
}

// splitOffset splits "symbol+0x10" into the symbol and its offset.
func splitOffset(target string) (string, uint64) {
	sym, offText, ok := strings.Cut(target, "+")
	if !ok {
		return target, 0
	}
	off, err := strconv.ParseUint(offText, 0, 64)
	if err != nil {
		return target, 0
	}
	return sym, off
}

// loadFeatureHint explains a load failure for program kinds this kernel is
// known to refuse, so users see the missing feature rather than EINVAL.
func loadFeatureHint(ps ProgramSpec, err error) string {
	switch ps.Attach {
	case AttachIter:
		if errors.Is(err, syscall.EPERM) {
			return fmt.Sprintf("the kernel refused an iter/%s program (EPERM, as root); some kernels refuse iterators over map elements (bpf_map_elem, sockmap, bpf_sk_storage_map)", ps.Target)
		}
	case AttachBTFTracepoint:
		if errors.Is(err, btf.ErrNotFound) {
			return fmt.Sprintf("tracepoint %s does not exist in this kernel's BTF (%s)", ps.Target, skipHint(ps))
		}
	case AttachFentry, AttachFexit:
		return "fentry/fexit programs need BPF trampolines, which this kernel refuses; use a tracepoint or tp_btf program instead"
	case AttachKprobe, AttachKretprobe:
		if !kprobesAvailable() {
			return "this kernel has no kprobes"
		}
	case AttachLSM:
		return "the kernel refused an LSM program: BPF LSM needs CONFIG_BPF_LSM, \"bpf\" in the kernel's lsm= list and BPF trampolines; no rlimit or privilege change helps"
	}
	return ""
}
