package sources

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrPrivileges reports that the process cannot load eBPF programs.
var ErrPrivileges = errors.New("sluice needs root, or CAP_BPF, CAP_PERFMON and (to read tracefs) CAP_DAC_READ_SEARCH, to load eBPF gadgets")

const (
	tracefsPath = "/sys/kernel/tracing"
	bpffsPath   = "/sys/fs/bpf"
)

// capability bit numbers from linux/capability.h.
const (
	capDACOverride   = 1
	capDACReadSearch = 2
	capSysAdmin      = 21
	capPerfmon       = 38
	capBPF           = 39
)

// CheckPrivileges returns an error wrapping ErrPrivileges, naming what is
// missing, when the process cannot load and attach gadgets.
func CheckPrivileges() error {
	eff, err := effectiveCaps()
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	has := func(c uint) bool { return eff&(1<<c) != 0 }
	var missing []string
	if !has(capSysAdmin) {
		if !has(capBPF) {
			missing = append(missing, "CAP_BPF")
		}
		if !has(capPerfmon) {
			missing = append(missing, "CAP_PERFMON")
		}
	}
	// Attaching a tracepoint reads its id in tracefs, which is root's
	// alone (mode 0700): uid 0 reads it as its owner, anyone else needs a
	// capability that overrides file permissions.
	if !has(capDACReadSearch) && !has(capDACOverride) && !tracefsReadable() {
		missing = append(missing, "CAP_DAC_READ_SEARCH")
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w (running as uid %d, missing %s)", ErrPrivileges, os.Geteuid(), strings.Join(missing, ", "))
}

// tracefsReadable tells whether this process can list tracefs's events;
// a tracefs not mounted yet (the agent mounts it) does not count against it.
func tracefsReadable() bool {
	f, err := os.Open(tracefsPath + "/events")
	if err != nil {
		return !errors.Is(err, fs.ErrPermission)
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	return !errors.Is(err, fs.ErrPermission)
}

func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no CapEff line in /proc/self/status")
}

// PrepareKernel mounts tracefs (tracepoint attachment resolves tracepoint IDs
// through it) and bpffs when they are missing. It is idempotent.
func PrepareKernel() error {
	if err := ensureMount(tracefsPath, "tracefs", unix.TRACEFS_MAGIC, "events"); err != nil {
		return fmt.Errorf("mount tracefs: %w", err)
	}
	if err := ensureMount(bpffsPath, "bpf", unix.BPF_FS_MAGIC, ""); err != nil {
		return fmt.Errorf("mount bpffs: %w", err)
	}
	return nil
}

func ensureMount(path, fstype string, magic int64, probe string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err == nil && int64(st.Type) == magic {
		return nil
	}
	if probe != "" {
		// Some systems expose tracefs only under debugfs; accept it there.
		if _, err := os.Stat("/sys/kernel/debug/tracing/" + probe); err == nil {
			return nil
		}
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(fstype, path, fstype, 0, ""); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, path, err)
	}
	return nil
}

// kprobesAvailable reports whether the kernel can create kprobes. Kernels
// built without CONFIG_KPROBES have no kprobe_events file and no PMU type.
func kprobesAvailable() bool {
	if _, err := os.Stat("/sys/bus/event_source/devices/kprobe/type"); err == nil {
		return true
	}
	_, err := os.Stat(tracefsPath + "/kprobe_events")
	return err == nil
}
