// Package testutil holds helpers shared by sluice's tests.
package testutil

import (
	"math"
	"testing"
)

// RequireBPF skips the test when the process cannot load eBPF programs, and
// fails it instead when SLUICE_REQUIRE_BPF=1 (CI), so a privileged test can
// never silently stop running.
func RequireBPF(tb testing.TB) {
	tb.Helper()
	RequireRoot(tb, "load eBPF programs")
}

// Int returns a decoded msgpack integer as an int64, whatever width the
// encoder chose (msgpack picks the smallest encoding, so the Go type of a
// decoded number says nothing). Non-integers return math.MinInt64, which no
// test expects.
func Int(v any) int64 {
	switch n := v.(type) {
	case int8:
		return int64(n)
	case int16:
		return int64(n)
	case int32:
		return int64(n)
	case int64:
		return n
	case int:
		return int64(n)
	case uint8:
		return int64(n)
	case uint16:
		return int64(n)
	case uint32:
		return int64(n)
	case uint64:
		return int64(n)
	}
	return math.MinInt64
}
