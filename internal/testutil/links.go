package testutil

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf/link"
)

// HeldLinks returns the IDs of the BPF links this process holds file
// descriptors of, from /proc/self/fdinfo (a link's fdinfo has its
// link_id). Tests that check that what they attached is detached again
// look only at these: go test runs packages side by side, and another
// package's test may attach the same programs meanwhile.
func HeldLinks(tb testing.TB) map[link.ID]bool {
	tb.Helper()
	fds, err := os.ReadDir("/proc/self/fdinfo")
	if err != nil {
		tb.Fatal(err)
	}
	held := map[link.ID]bool{}
	for _, fd := range fds {
		b, err := os.ReadFile(filepath.Join("/proc/self/fdinfo", fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "link_id:"); ok {
				if id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
					held[link.ID(id)] = true
				}
			}
		}
	}
	return held
}
