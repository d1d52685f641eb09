package agent

import (
	"bufio"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/config"
)

// trimStartup gives back what starting the agent left resident and the
// running agent does not use: the heap start-up made garbage of (kernel
// BTF, ELF parsing, Wasm compilation, the embedded server's start), which
// the Go runtime would otherwise keep mapped as idle heap for the agent's
// whole life, and the pages of its executable that only start-up touched
// (package initialisation, config decoding, gadget loading: some 20 MB of
// a 45 MB binary). The writable data segment is left alone. Best effort:
// errors are ignored.
//
// The executable's read-only mappings get three pieces of advice:
//   - MADV_RANDOM, so that a page the agent touches later is read alone:
//     with the default advice a fault reads ahead and maps a whole large
//     folio or the 64 KiB around it, and the few functions the running
//     agent executes, scattered over the binary, kept some 20 MB resident;
//     with it they keep about half that.
//   - MADV_PAGEOUT, which drops the pages start-up read from the page cache
//     (clean file pages: nothing is written; the kernel keeps pages another
//     process maps), so that they are read again one by one under the new
//     advice instead of being mapped back in large folios or 64 KiB runs.
//     A page the agent needs again costs one read from disk, once.
//   - MADV_DONTNEED, which unmaps what PAGEOUT left: on a private,
//     never-written file mapping it only drops page table entries.
//
// POSIX_FADV_DONTNEED then drops what no one maps any more. Before all
// that an fdatasync writes back a binary built a moment ago: dirty pages
// can be neither paged out nor dropped.
func trimStartup() {
	debug.FreeOSMemory()
	exe, err := os.Executable()
	if err != nil {
		return
	}
	bin, err := os.Open(exe)
	if err != nil {
		return
	}
	defer bin.Close()
	// A binary built a moment ago is still dirty in the page cache, and
	// dirty pages can be neither paged out nor dropped.
	unix.Fdatasync(int(bin.Fd()))
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/sluice
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		for _, advice := range []uintptr{unix.MADV_RANDOM, unix.MADV_PAGEOUT, unix.MADV_DONTNEED} {
			unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), advice)
		}
	}
	unix.Fadvise(int(bin.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// SetGCPercent sets the collector's pace (agent { gc_percent }) unless GOGC
// is in the environment, which wins.
func SetGCPercent(pct int) {
	if os.Getenv("GOGC") == "" && pct > 0 {
		debug.SetGCPercent(pct)
	}
}

// applyMemorySettings applies the agent block's gc_percent, max_procs and
// memory_limit, at the end of start-up and at every reload.
func applyMemorySettings(a config.Agent, log *slog.Logger) {
	SetGCPercent(a.GCPercent)
	SetMaxProcs(a.MaxProcs)
	applyMemoryLimit(a.MemoryLimit, log)
}

// SetMaxProcs bounds the Ps of the Go runtime (agent { max_procs }) unless
// GOMAXPROCS is in the environment, which wins; 0 gives the runtime its
// default back (every CPU of the agent's affinity and cgroup limit, and
// following changes of the limit).
//
// Fewer Ps is cheaper per event on a small host: the reader, the
// pipeline's worker and a sink's writer then hand batches over on one
// P, in its cache and without waking a thread for each, and a thread in
// a write or a read still hands its P to another. On two CPUs beside a
// flat-out producer, make bench's synthetic 64-byte records to stdout
// cost 442-448 ns/event at max_procs = 1 against 618-703 at the default,
// at the same rate; trace_open 1.25-1.36 µs against 1.65-1.78
// (RATIONALE.md). A Wasm stage, though, then shares the P with the
// reader and the sink: with one filter stage the flat-out rate fell by a
// fifth. So it is a knob, not the default.
func SetMaxProcs(n int) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	if n > 0 {
		maxProcsSet.Store(true)
		if runtime.GOMAXPROCS(0) != n {
			runtime.GOMAXPROCS(n)
		}
		return
	}
	if maxProcsSet.Swap(false) {
		runtime.SetDefaultGOMAXPROCS()
	}
}

// maxProcsSet says SetMaxProcs set GOMAXPROCS, which a reload to 0 undoes.
var maxProcsSet atomic.Bool

// applyMemoryLimit sets the Go runtime's soft memory limit (agent {
// memory_limit }) unless GOMEMLIMIT is in the environment, which wins;
// 0 lifts a limit set before. It is applied once start-up is over: a Wasm
// stage's compilation briefly needs several times the running agent's
// heap, and under the limit the collector would run without pause through
// it (a Go stage took 10 s instead of 2 to start).
//
// Under the limit the collector runs as often as it must to keep the
// runtime's memory below it, on top of GOGC's pace; when the live heap
// itself outgrows the limit (a queue filling up during a sink outage) the
// runtime lets the heap grow past it rather than spend more than half the
// CPU collecting, so a limit set too low costs CPU, never events.
func applyMemoryLimit(limit int64, log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	if limit <= 0 {
		limit = math.MaxInt64 // the runtime's "no limit"
	}
	if prev := debug.SetMemoryLimit(limit); prev != limit && limit != math.MaxInt64 {
		log.Info("go runtime memory limit", "bytes", limit)
	}
}

// fileBackCode moves the machine code compiled from Wasm (the stages' and
// the gadget modules': wazero maps each module's code as an anonymous
// executable mapping, the only ones in the process) onto an unnamed file
// in dir, at the same addresses, and returns how many bytes it moved.
//
// Compiled code is large and mostly cold: a Go stage (redact) is 15 MB of
// machine code of which the agent runs a few hundred kilobytes, the Go
// runtime's and regexp's paths that events take. As anonymous memory all of
// it stays resident for the agent's life; backed by a file it is page
// cache like the executable's own code: the pages the agent runs are
// resident, the others are read back if ever needed, and the kernel may
// reclaim them under pressure. The copy is byte for byte and replaces the
// mapping in one mremap call (MREMAP_FIXED) under the kernel's lock, so a
// thread running the code meanwhile runs the same instructions from the
// new pages; wazero unmaps the range when it closes the module as it
// would its own. The caller runs it while no module can be closed (before
// the pipelines start), so that every range it moves is still wazero's.
//
// Skipped on a tmpfs or ramfs dir, whose pages cannot be reclaimed: there
// it would only hide memory from RSS. Best effort: a mapping that fails
// to move stays as it was.
func fileBackCode(dir string) int64 {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil || st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC {
		return 0
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0
	}
	type region struct{ start, end uintptr }
	var code []region
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 7f1c2a000000-7f1c2aa00000 r-xp 00000000 00:00 0
		fields := strings.Fields(sc.Text())
		if len(fields) != 5 || fields[1] != "r-xp" || fields[4] != "0" {
			continue
		}
		lo, hi, _ := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil && end > start {
			code = append(code, region{uintptr(start), uintptr(end)})
		}
	}
	f.Close()
	var moved int64
	for _, r := range code {
		if err := moveToFile(dir, r.start, r.end-r.start); err == nil {
			moved += int64(r.end - r.start)
		}
	}
	return moved
}

// moveToFile copies the size bytes of read-only executable memory at addr
// into a new unnamed file in dir and maps the file over them.
func moveToFile(dir string, addr, size uintptr) error {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// Read through /proc/self/mem: a range that is not mapped is an
	// error there, not a fault.
	self, err := os.Open("/proc/self/mem")
	if err != nil {
		return err
	}
	defer self.Close()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < int64(size); {
		n, err := self.ReadAt(buf[:min(int64(len(buf)), int64(size)-off)], int64(addr)+off)
		if err != nil {
			return fmt.Errorf("read compiled code: %w", err)
		}
		for w := 0; w < n; {
			m, err := unix.Pwrite(fd, buf[w:n], off+int64(w))
			if err != nil {
				return err
			}
			w += m
		}
		off += int64(n)
	}
	// Written back and dropped from the page cache, so that the mapping
	// faults in only the pages that run (one by one: MADV_RANDOM), not
	// the whole file the write left cached.
	if err := unix.Fdatasync(fd); err != nil {
		return err
	}
	unix.Fadvise(fd, 0, int64(size), unix.FADV_DONTNEED)
	// The file is mapped aside first (a dir on a noexec mount refuses an
	// executable mapping there, before anything is replaced) and advised
	// MADV_RANDOM, then moved over the code (mremap, which replaces what
	// is at the destination under the kernel's lock, as MAP_FIXED does).
	// Advised after the move instead, a thread running the code in
	// between (a stage's tick) faulted with the default advice, which
	// reads ahead read_ahead_kb around the fault (8 MiB on some disks)
	// and maps it in large folios: up to 11 of the 15 MB resident.
	aside, _, errno := unix.Syscall6(unix.SYS_MMAP, 0, size, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE, uintptr(fd), 0)
	if errno != 0 {
		return errno
	}
	if _, _, errno := unix.Syscall(unix.SYS_MADVISE, aside, size, unix.MADV_RANDOM); errno != 0 {
		unix.Syscall(unix.SYS_MUNMAP, aside, size, 0)
		return errno
	}
	got, _, errno := unix.Syscall6(unix.SYS_MREMAP, aside, size, size, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, addr, 0)
	if errno != 0 {
		unix.Syscall(unix.SYS_MUNMAP, aside, size, 0)
		return errno
	}
	if got != addr {
		return fmt.Errorf("mremap moved the code from %#x to %#x", addr, got)
	}
	return nil
}
