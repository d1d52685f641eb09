package pipeline

import (
	"testing"
	"unsafe"
)

// TestEventSize holds Event at 64 bytes: events are copied by value on
// every hop, and 72 bytes cost about twice as much to copy as 64 (measured
// on the host's result parser).
func TestEventSize(t *testing.T) {
	if size := unsafe.Sizeof(Event{}); size != 64 {
		t.Errorf("Event takes %d bytes, want 64", size)
	}
}

// TestUnsequencedPartRange: unsequenced Parts are distinct and stay in
// [2^31, 2^32), apart from the 1, 2, 3... that number a source event's
// events, also when the counter wraps.
func TestUnsequencedPartRange(t *testing.T) {
	a, b := UnsequencedPart(), UnsequencedPart()
	if a == b || a < 1<<31 || b < 1<<31 {
		t.Errorf("UnsequencedPart() = %#x, %#x: want distinct values in [2^31, 2^32)", a, b)
	}
	saved := unsequenced.Load()
	defer unsequenced.Store(saved)
	unsequenced.Store(1<<31 - 1) // about to wrap
	if p, q := UnsequencedPart(), UnsequencedPart(); p != 1<<32-1 || q != 1<<31 {
		t.Errorf("around the wrap: %#x, %#x; want 2^32-1, then 2^31", p, q)
	}
}
