// Package testutil holds helpers shared by sluice's tests.
package testutil

import (
	"os"
	"testing"
)

// RequireBPF skips the test when the process cannot load eBPF programs, and
// fails it instead when SLUICE_REQUIRE_BPF=1 (CI), so a privileged test can
// never silently stop running.
func RequireBPF(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("SLUICE_REQUIRE_BPF") == "1" {
		tb.Fatalf("test needs root to load eBPF programs, and SLUICE_REQUIRE_BPF=1 forbids skipping (running as uid %d)", os.Geteuid())
	}
	tb.Skipf("skipping: test needs root to load eBPF programs (running as uid %d); set SLUICE_REQUIRE_BPF=1 to make this a failure", os.Geteuid())
}
