package wasmbpf

import (
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/sources"
)

// TestHostPath: a path a guest passes as an attach target is read in its
// file system: through a granted directory, or refused.
func TestHostPath(t *testing.T) {
	a := &App{cfg: Config{Grants: Grants{Dirs: []Dir{
		{Host: "/sys/fs/cgroup", Guest: "/cgroup"},
		{Host: "/srv/data", Guest: "/data"},
	}}}}
	for _, c := range []struct {
		guest, host string
		ok          bool
	}{
		{"/cgroup", "/sys/fs/cgroup", true},
		{"/cgroup/system.slice", "/sys/fs/cgroup/system.slice", true},
		{"/cgroup/../etc", "", false},
		{"/cgroupx", "", false},
		{"/data/a/../b", "/srv/data/b", true},
		{"/sys/fs/cgroup", "", false},
		{"/", "", false},
	} {
		host, ok := a.hostPath(c.guest)
		if host != c.host || ok != c.ok {
			t.Errorf("hostPath(%q) = %q, %v; want %q, %v", c.guest, host, ok, c.host, c.ok)
		}
	}
}

// TestErrnoOf: the guest gets the kernel's errno numbers, as libbpf
// returns them.
func TestErrnoOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int32
	}{
		{fmt.Errorf("look up: %w", ebpf.ErrKeyNotExist), errnoNOENT},
		{fmt.Errorf("update: %w", ebpf.ErrKeyExist), errnoEXIST},
		{fmt.Errorf("update: %w", sources.ErrMapReadOnly), errnoPERM},
		{&sources.ProgramError{Err: fmt.Errorf("%w: no kprobes", sources.ErrKernelFeature)}, errnoNOTSUP},
		{fmt.Errorf("attach: %w", unix.EBUSY), int32(unix.EBUSY)},
		{fmt.Errorf("something"), errnoINVAL},
	} {
		if got := errnoOf(c.err); got != c.want {
			t.Errorf("errnoOf(%v) = %d; want %d", c.err, got, c.want)
		}
	}
}
