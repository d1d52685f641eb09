package kernelbtf

import (
	"runtime"
	"testing"
)

func state() (loaded int, cachedNow bool) {
	mu.Lock()
	defer mu.Unlock()
	return loads, cached.Value() != nil
}

// TestTypesLingerThenFreed: calls in a row share one load, also when no
// caller holds the spec between them; once it has lingered and no caller
// holds it the collector frees it, and the next call loads a fresh one
// that works as well.
func TestTypesLingerThenFreed(t *testing.T) {
	// No local variable holds the spec between the calls.
	if Types() == nil {
		t.Skip("the kernel has no BTF")
	}
	before, _ := state()
	runtime.GC()
	runtime.GC()
	if Types() == nil {
		t.Fatal("no spec on the second call")
	}
	if n, _ := state(); n != before {
		t.Fatalf("the spec was loaded again %d times within its linger", n-before)
	}
	release() // what the timer does after linger
	// Two cycles: the first may still find the spec reachable from the
	// frames of the calls above.
	runtime.GC()
	runtime.GC()
	if _, ok := state(); ok {
		t.Fatalf("the spec is still cached after its linger, with no holder")
	}
	c := Types()
	if c == nil {
		t.Fatal("no spec after the first was freed")
	}
	if _, err := c.AnyTypeByName("task_struct"); err != nil {
		t.Fatalf("the reloaded spec: %v", err)
	}
	if n, _ := state(); n != before+1 {
		t.Fatalf("loads after the free: %d, want %d", n, before+1)
	}
}
