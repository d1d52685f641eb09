package testutil

import (
	"os"
	"testing"
)

// RequireRoot skips a test that needs root for something other than eBPF
// (mounting a file system, say why), and fails it instead when
// SLUICE_REQUIRE_BPF=1 (CI runs as root), like RequireBPF.
func RequireRoot(tb testing.TB, why string) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("SLUICE_REQUIRE_BPF") == "1" {
		tb.Fatalf("test needs root to %s, and SLUICE_REQUIRE_BPF=1 forbids skipping (running as uid %d)", why, os.Geteuid())
	}
	tb.Skipf("skipping: test needs root to %s (running as uid %d); set SLUICE_REQUIRE_BPF=1 to make this a failure", why, os.Geteuid())
}
