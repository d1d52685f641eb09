package sources

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/gadgets"
)

// DefaultSampleFrequency is how often a perf_event program samples each CPU
// unless the source says otherwise (bcc's profile default, off the 50 and
// 100 Hz timer ticks so samples do not lock step with them).
const DefaultSampleFrequency = 49

// Attach kinds that need more than a program: socket filters need a packet
// socket per network namespace, TC classifiers an interface, perf_event
// programs one perf event per CPU. Their handles are closed on detach.

// inNetNS runs fn with the calling goroutine's thread in the network
// namespace at path ("" is the current one). Sockets and links created in
// fn belong to that namespace. The thread returns to its own namespace
// afterwards; if it cannot, it is retired with its goroutine.
func inNetNS(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- fmt.Errorf("open own network namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			errc <- fmt.Errorf("open network namespace %s: %w", path, err)
			runtime.UnlockOSThread()
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", path, err)
			runtime.UnlockOSThread()
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		} // else the locked thread dies with this goroutine
		errc <- ferr
	}()
	return <-errc
}

// netnsList returns the namespaces a network program attaches in: the
// configured ones, or the current (host) one.
func netnsList(paths []string) []string {
	if len(paths) == 0 {
		return []string{""}
	}
	return paths
}

func nsName(path string) string {
	if path == "" {
		return "the host network namespace"
	}
	return "network namespace " + path
}

// attachSocketFilter opens a raw packet socket (all protocols, every
// interface) in each namespace and runs prog on its packets, as Inspektor
// Gadget's network tracer does: the socket's filter is sluice's dispatcher,
// which writes the namespace's inode to skb->cb[0] (where IG's socket
// lookups read it) and tail-calls prog. Packets the filter keeps are never
// read, so the socket's receive buffer is kept minimal.
func attachSocketFilter(prog *ebpf.Program, netns []string) ([]io.Closer, error) {
	var out []io.Closer
	for _, ns := range netnsList(netns) {
		closers, err := attachSocketFilterIn(prog, ns)
		out = append(out, closers...)
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("in %s: %w", nsName(ns), err)
		}
	}
	return out, nil
}

func attachSocketFilterIn(prog *ebpf.Program, ns string) ([]io.Closer, error) {
	inode, err := netnsInode(ns)
	if err != nil {
		return nil, err
	}
	dispatcher, err := loadDispatcher(prog, inode)
	if err != nil {
		return nil, err
	}
	out := []io.Closer{closerFunc(func() error { dispatcher.Close(); return nil })}
	err = inNetNS(ns, func() error {
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
		if err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		out = append(out, os.NewFile(uintptr(fd), "packet socket"))
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, dispatcher.Programs["sluice_dispatch"].FD()); err != nil {
			return fmt.Errorf("attach socket filter: %w", err)
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 0) // the kernel's minimum
		return nil
	})
	return out, err
}

// loadDispatcher loads a dispatcher for one namespace, pointed at prog.
func loadDispatcher(prog *ebpf.Program, netnsInode uint32) (*ebpf.Collection, error) {
	elf, err := gadgets.Helper("dispatcher")
	if err != nil {
		return nil, err
	}
	cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(elf))
	if err != nil {
		return nil, fmt.Errorf("parse the socket filter dispatcher: %w", err)
	}
	if err := cs.Variables["netns_inum"].Set(netnsInode); err != nil {
		return nil, fmt.Errorf("set the dispatcher's namespace: %w", err)
	}
	coll, err := ebpf.NewCollection(cs)
	if err != nil {
		return nil, fmt.Errorf("load the socket filter dispatcher: %w", err)
	}
	if err := coll.Maps["gadget_prog"].Put(uint32(0), prog); err != nil {
		coll.Close()
		return nil, fmt.Errorf("point the dispatcher at the gadget's program: %w", err)
	}
	return coll, nil
}

// netnsInode returns the inode number of a network namespace ("" is this
// process's), as /proc/PID/ns/net shows it.
func netnsInode(path string) (uint32, error) {
	if path == "" {
		path = "/proc/self/ns/net"
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat network namespace %s: %w", path, err)
	}
	return uint32(st.Ino), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// ErrNoInterface reports a TC program with no interface to attach to.
var ErrNoInterface = errors.New("no interface given")

// attachTC attaches a classifier to each interface with tcx (Linux 6.6+),
// in each namespace.
func attachTC(ps ProgramSpec, prog *ebpf.Program, ifaces, netns []string) ([]io.Closer, error) {
	if len(ifaces) == 0 {
		return nil, fmt.Errorf("%w: program %s is a TC classifier (section %q); name the interfaces to attach it to (iface parameter, `ifaces` in a source, --iface for sluice run)", ErrNoInterface, ps.Name, ps.Section)
	}
	attach := ebpf.AttachTCXIngress
	if ps.Target == "egress" {
		attach = ebpf.AttachTCXEgress
	}
	var out []io.Closer
	for _, ns := range netnsList(netns) {
		for _, name := range ifaces {
			err := inNetNS(ns, func() error {
				iface, err := net.InterfaceByName(name)
				if err != nil {
					return fmt.Errorf("find interface %s: %w", name, err)
				}
				l, err := link.AttachTCX(link.TCXOptions{Interface: iface.Index, Program: prog, Attach: attach})
				if err != nil {
					return fmt.Errorf("attach tcx %s to %s: %w", ps.Target, name, err)
				}
				out = append(out, l)
				return nil
			})
			if err != nil {
				closeAll(out)
				return nil, fmt.Errorf("in %s: %w", nsName(ns), err)
			}
		}
	}
	return out, nil
}

// attachPerfEvent samples every online CPU at freq Hz (the CPU clock, in
// software, so it works in VMs without a PMU) and runs prog on each sample.
func attachPerfEvent(prog *ebpf.Program, freq uint64) ([]io.Closer, error) {
	if freq == 0 {
		freq = DefaultSampleFrequency
	}
	cpus, err := onlineCPUs()
	if err != nil {
		return nil, err
	}
	var out []io.Closer
	for _, cpu := range cpus {
		attr := unix.PerfEventAttr{
			Type:   unix.PERF_TYPE_SOFTWARE,
			Config: unix.PERF_COUNT_SW_CPU_CLOCK,
			Size:   uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
			Sample: freq,
			Bits:   unix.PerfBitFreq,
		}
		fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("open perf event on CPU %d: %w", cpu, err)
		}
		ev := os.NewFile(uintptr(fd), "perf event")
		l, err := link.AttachRawLink(link.RawLinkOptions{Target: fd, Program: prog, Attach: ebpf.AttachPerfEvent})
		if err != nil {
			ev.Close()
			closeAll(out)
			return nil, fmt.Errorf("attach to perf event on CPU %d: %w", cpu, err)
		}
		out = append(out, l, ev)
	}
	return out, nil
}

// onlineCPUs parses /sys/devices/system/cpu/online ("0-3,6").
func onlineCPUs() ([]int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, fmt.Errorf("read online CPUs: %w", err)
	}
	return parseCPUList(strings.TrimSpace(string(b)))
}

func parseCPUList(s string) ([]int, error) {
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("parse CPU list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("parse CPU list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("parse CPU list %q: no CPU", s)
	}
	return cpus, nil
}

func closeAll(cs []io.Closer) {
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i].Close()
	}
}
