package sources

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"

	"github.com/sluice-dev/sluice/internal/kallsyms"
)

// Preflight finds, without loading anything into the kernel, what would
// stop a gadget from attaching on this host as configured: a section
// sluice cannot attach, a tracepoint, function, LSM hook or iterator the
// running kernel does not have, a TC program without interfaces, an
// interface or network namespace that does not exist, a sampling
// frequency above the kernel's limit. It reads BTF, tracefs, sysfs and
// procfs and needs no privileges, except that tracefs is root's alone:
// without access to it, tracepoints are reported unchecked.
//
// What only loading can tell (the verifier's verdict, a kernel that
// refuses a program kind) is Gadget.Verify's. A Preflight caches the
// kernel's BTF; it is not safe for concurrent use.
type Preflight struct {
	btf     *btf.Cache
	tracefs string // the tracing directory, "" when not readable
	// tracefsWhy says why tracepoints cannot be checked, when tracefs is "".
	tracefsWhy string
}

// NewPreflight returns a Preflight of this host.
func NewPreflight() *Preflight {
	p := &Preflight{btf: btf.NewCache()}
	for _, dir := range []string{tracefsPath, "/sys/kernel/debug/tracing"} {
		_, err := os.ReadDir(filepath.Join(dir, "events"))
		switch {
		case err == nil:
			p.tracefs = dir
			return p
		case errors.Is(err, fs.ErrPermission) && p.tracefsWhy == "":
			p.tracefsWhy = fmt.Sprintf("tracefs (%s) is readable by root only (or with CAP_DAC_READ_SEARCH)", dir)
		}
	}
	if p.tracefsWhy == "" {
		p.tracefsWhy = fmt.Sprintf("tracefs is not mounted on %s (the agent mounts it)", tracefsPath)
	}
	return p
}

// Effect is what a Finding means for the gadget.
type Effect uint8

const (
	// Refused: Open would fail.
	Refused Effect = iota
	// Skipped: Open would run the gadget without the program, as it does
	// for an optional program or a uprobe whose target is absent.
	Skipped
	// Ignored: a setting that none of the gadget's programs uses.
	Ignored
	// Unchecked: the check needs what this process lacks (privileges).
	Unchecked
)

// Setting names the part of a gadget's configuration a Finding is about.
type Setting uint8

const (
	// SettingGadget is the gadget itself: its programs and the kernel.
	SettingGadget Setting = iota
	SettingIfaces
	SettingNetNS
	SettingSampleFrequency
)

// A Finding is one thing a Preflight found.
type Finding struct {
	// Program is the program concerned, "" for the gadget as a whole.
	Program string
	Setting Setting
	Effect  Effect
	// Err says what was found; errors.Is tells ErrNoTarget,
	// ErrUnsupportedAttach, ErrKernelFeature and ErrNoInterface apart.
	Err error
}

// ErrNoTarget reports an attach point (a tracepoint, a kernel function,
// an LSM hook, an iterator, a uprobe's binary or symbol, an interface, a
// network namespace) that this host does not have.
var ErrNoTarget = errors.New("attach target not found")

// noTargetError is an ErrNoTarget saying which target is missing, without
// repeating ErrNoTarget's text.
type noTargetError struct{ msg string }

func (e *noTargetError) Error() string        { return e.msg }
func (e *noTargetError) Is(target error) bool { return target == ErrNoTarget }

func noTarget(format string, args ...any) error {
	return &noTargetError{fmt.Sprintf(format, args...)}
}

// Check returns what would stop g from attaching as configured, in the
// order of its programs and then of its settings.
func (p *Preflight) Check(g *Gadget) []Finding {
	var out []Finding
	refused, skipped := 0, 0
	attachable := 0 // programs run by events (not iterators)
	uses := map[AttachKind]bool{}
	for _, ps := range g.spec.Programs {
		uses[ps.Attach] = true
		if ps.Attach != AttachIter {
			attachable++
		}
		err := p.checkProgram(ps, g.cfg)
		if err == nil {
			continue
		}
		f := programFinding(ps, err)
		out = append(out, f)
		switch {
		case f.Effect == Refused:
			refused++
		case f.Effect == Skipped && ps.Attach != AttachIter:
			skipped++
		}
	}
	// A gadget left with no program at all fails too, even when each was
	// one Open may skip.
	if refused == 0 && attachable > 0 && skipped == attachable && len(g.spec.Snapshots) == 0 && len(g.spec.MapIters) == 0 {
		out = append(out, Finding{Setting: SettingGadget, Effect: Refused,
			Err: fmt.Errorf("gadget %q: no program could be attached", g.spec.Name)})
	}
	if len(g.cfg.Ifaces) > 0 && !uses[AttachTC] {
		out = append(out, Finding{Setting: SettingIfaces, Effect: Ignored,
			Err: fmt.Errorf("gadget %q has no TC classifier program to attach to interfaces", g.spec.Name)})
	}
	if g.cfg.SampleFrequency > 0 && !uses[AttachPerfEvent] {
		out = append(out, Finding{Setting: SettingSampleFrequency, Effect: Ignored,
			Err: fmt.Errorf("gadget %q has no perf_event program to sample with", g.spec.Name)})
	}
	return out
}

func programFinding(ps ProgramSpec, err error) Finding {
	f := Finding{Program: ps.Name, Setting: SettingGadget, Effect: Refused, Err: err}
	var u *uncheckedError
	var s *settingError
	switch {
	case errors.As(err, &u):
		f.Effect, f.Err = Unchecked, u.err
		return f
	case errors.As(err, &s):
		f.Setting, f.Err = s.setting, s.err
	}
	var absent *absentTargetError
	switch {
	case errors.As(err, &absent):
		f.Effect, f.Err = Skipped, absent.Err // Open skips a uprobe whose target is absent
	case ps.Optional && f.Setting == SettingGadget:
		f.Effect = Skipped
	case f.Setting == SettingGadget && (errors.Is(err, ErrNoTarget) || errors.Is(err, ErrUnsupportedAttach)):
		// The program cannot run here: the gadget may run without it.
		f.Err = fmt.Errorf("%w (%s)", err, skipHint(ps))
	}
	return f
}

// uncheckedError is a check this process cannot make.
type uncheckedError struct{ err error }

func (e *uncheckedError) Error() string { return e.err.Error() }

// settingError is a problem with a setting rather than the program.
type settingError struct {
	setting Setting
	err     error
}

func (e *settingError) Error() string { return e.err.Error() }

// checkProgram checks what one program needs to attach.
func (p *Preflight) checkProgram(ps ProgramSpec, cfg GadgetConfig) error {
	inSection := func(err error) error {
		return fmt.Errorf("program %s (section %s): %w", ps.Name, ps.Section, err)
	}
	switch ps.Attach {
	case AttachUnsupported:
		return inSection(fmt.Errorf("%w (supported: tracepoint, raw_tp, tp_btf, kprobe, kretprobe, fentry, fexit, uprobe, uretprobe, iter, socket, perf_event, classifier/tc/tcx, lsm)", ErrUnsupportedAttach))
	case AttachTracepoint:
		group, name, ok := strings.Cut(ps.Target, "/")
		if !ok || group == "" || name == "" {
			return inSection(errors.New("want tracepoint/<group>/<name>"))
		}
		if p.tracefs == "" {
			return &uncheckedError{inSection(fmt.Errorf("tracepoint %s not checked: %s", ps.Target, p.tracefsWhy))}
		}
		if _, err := os.Stat(filepath.Join(p.tracefs, "events", group, name)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return inSection(noTarget("this kernel has no tracepoint %s in %s/events", ps.Target, p.tracefs))
			}
			return &uncheckedError{inSection(fmt.Errorf("tracepoint %s not checked: %w", ps.Target, err))}
		}
	case AttachRawTracepoint, AttachBTFTracepoint:
		return p.kernelType(inSection, "btf_trace_"+ps.Target, "tracepoint "+ps.Target)
	case AttachKprobe, AttachKretprobe:
		if !kprobesAvailable() {
			return inSection(fmt.Errorf("%w: this kernel has no kprobes (built without CONFIG_KPROBES?); use a tracepoint, raw_tp or tp_btf program instead", ErrKernelFeature))
		}
		sym, _ := splitOffset(ps.Target)
		if p.kernelType(inSection, sym, "function "+sym) == nil {
			return nil
		}
		// Not in BTF: kallsyms also lists functions BTF leaves out.
		table, err := kallsyms.Load()
		if err != nil && !errors.Is(err, kallsyms.ErrHidden) {
			return &uncheckedError{inSection(fmt.Errorf("function %s not checked: %w", sym, err))}
		}
		if table != nil {
			if _, ok := table.Address(sym); ok {
				return nil
			}
		}
		return inSection(noTarget("this kernel has no function %s", sym))
	case AttachFentry, AttachFexit:
		return p.kernelType(inSection, ps.Target, "function "+ps.Target)
	case AttachLSM:
		return p.kernelType(inSection, "bpf_lsm_"+ps.Target, "LSM hook "+ps.Target)
	case AttachIter:
		kind, _, _ := strings.Cut(ps.Target, "/")
		return p.kernelType(inSection, "bpf_iter_"+kind, "iterator "+kind)
	case AttachUprobe, AttachUretprobe:
		return checkUprobeTarget(ps)
	case AttachSocketFilter:
		return checkNetNS(inSection, cfg.NetNS)
	case AttachTC:
		if len(cfg.Ifaces) == 0 {
			return &settingError{SettingIfaces, inSection(fmt.Errorf("%w: a TC classifier attaches to the interfaces ifaces names (ifaces = [\"eth0\"])", ErrNoInterface))}
		}
		if err := checkNetNS(inSection, cfg.NetNS); err != nil {
			return err
		}
		if len(cfg.NetNS) > 0 {
			return nil // the interfaces are in those namespaces: entering one takes privileges
		}
		for _, name := range cfg.Ifaces {
			if _, err := net.InterfaceByName(name); err != nil {
				return &settingError{SettingIfaces, inSection(noTarget("no interface %q on this host", name))}
			}
		}
	case AttachPerfEvent:
		freq := cfg.SampleFrequency
		if freq == 0 {
			freq = DefaultSampleFrequency
		}
		b, err := os.ReadFile("/proc/sys/kernel/perf_event_max_sample_rate")
		if err != nil {
			return &uncheckedError{inSection(fmt.Errorf("sample frequency not checked: %w", err))}
		}
		max, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err == nil && freq > max {
			return &settingError{SettingSampleFrequency, inSection(fmt.Errorf("%w: sampling at %d Hz is above this kernel's limit, %d Hz (kernel.perf_event_max_sample_rate)", ErrKernelFeature, freq, max))}
		}
	}
	return nil
}

// kernelType finds a named type in the kernel's BTF, vmlinux then modules.
func (p *Preflight) kernelType(inSection func(error) error, typeName, what string) error {
	spec, err := p.btf.Kernel()
	if err != nil {
		return &uncheckedError{inSection(fmt.Errorf("%s not checked: read the kernel's BTF: %w", what, err))}
	}
	if hasType(spec, typeName) {
		return nil
	}
	modules, err := p.btf.Modules()
	if err != nil {
		return &uncheckedError{inSection(fmt.Errorf("%s not checked: list kernel modules' BTF: %w", what, err))}
	}
	for _, m := range modules {
		ms, err := p.btf.Module(m)
		if err != nil {
			continue
		}
		if hasType(ms, typeName) {
			return nil
		}
	}
	return inSection(noTarget("this kernel has no %s: no %s in its BTF", what, typeName))
}

func hasType(spec *btf.Spec, name string) bool {
	types, err := spec.AnyTypesByName(name)
	return err == nil && len(types) > 0
}

// checkUprobeTarget finds a uprobe's binary and symbol as attaching would;
// an absent one is an absentTargetError (the program is skipped).
func checkUprobeTarget(ps ProgramSpec) error {
	path, sym, ok := strings.Cut(ps.Target, ":")
	if !ok || path == "" || sym == "" {
		return fmt.Errorf("program %s: section %q: want uprobe/<path>:<symbol>", ps.Name, ps.Section)
	}
	if !strings.Contains(path, "/") {
		lib, err := resolveLibrary(path)
		if err != nil {
			return &absentTargetError{fmt.Errorf("program %s: %w", ps.Name, &noTargetError{err.Error()})}
		}
		path = lib
	}
	sym, _ = splitOffset(sym)
	f, err := elf.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return &absentTargetError{fmt.Errorf("program %s: %w", ps.Name, noTarget("no file %s", path))}
		}
		return fmt.Errorf("program %s: read %s: %w", ps.Name, path, err)
	}
	defer f.Close()
	for _, list := range []func() ([]elf.Symbol, error){f.Symbols, f.DynamicSymbols} {
		syms, _ := list()
		for _, s := range syms {
			if s.Name == sym {
				return nil
			}
		}
	}
	return &absentTargetError{fmt.Errorf("program %s: %w", ps.Name, noTarget("%s has no symbol %s", path, sym))}
}

func checkNetNS(inSection func(error) error, paths []string) error {
	for _, path := range paths {
		if _, err := os.Stat(path); err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return &uncheckedError{inSection(fmt.Errorf("network namespace %s not checked: %w", path, err))}
			}
			return &settingError{SettingNetNS, inSection(noTarget("no network namespace %s (%v)", path, err))}
		}
	}
	return nil
}
