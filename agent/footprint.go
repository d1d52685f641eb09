package agent

import (
	"bufio"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// trimStartup gives back what starting the agent left resident and the
// running agent does not use: the heap start-up made garbage of (kernel
// BTF, ELF parsing, Wasm compilation, the embedded server's start), which
// the Go runtime would otherwise keep mapped as idle heap for the agent's
// whole life, and the pages of its executable that only start-up touched
// (package initialisation, config decoding, gadget loading: some 20 MB of
// a 45 MB binary). The executable's read-only mappings are unmapped with
// MADV_DONTNEED, which on a private, never-written file mapping only drops
// the page table entries: the pages stay in the page cache, and those the
// running agent executes come back with a minor fault. The writable data
// segment is left alone. Best effort: errors are ignored.
func trimStartup() {
	debug.FreeOSMemory()
	exe, err := os.Executable()
	if err != nil {
		return
	}
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
		unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED)
	}
}
