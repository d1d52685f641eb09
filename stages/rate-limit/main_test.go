package main

import (
	"testing"

	"github.com/sluice-dev/sluice/sdk/go/sluice"
)

// A flood of one key is what the stage is for: suppressing its events must
// not allocate per event (here a string key field and a number one).
func TestSuppressionDoesNotAllocate(t *testing.T) {
	var w sluice.Writer
	w.BeginMap().Key("rate").Int(1).Key("burst").Int(1)
	w.Key("key").BeginArray().String("comm").String("uid").EndArray()
	w.EndMap()
	if err := sluice.InitForTest(append([]byte(nil), w.Bytes()...)); err != nil {
		t.Fatal(err)
	}
	w.Reset().BeginMap()
	w.Key("time").String("2026-12-01T10:27:32.530410107Z").Key("host").String("vm").Key("source").String("exec")
	w.Key("gadget").String("trace_exec").Key("uid").Int(1000).Key("comm").String("noisy")
	w.EndMap()
	batch := make([][]byte, 256)
	for i := range batch {
		batch[i] = w.Bytes()
	}
	// The first run lets the burst through; the measured ones suppress all.
	n := testing.AllocsPerRun(10, func() {
		if _, err := sluice.ProcessForTest(batch); err != nil {
			t.Fatal(err)
		}
	})
	// ProcessForTest itself makes about 16 (the batch it lays out grows).
	if n > 32 {
		t.Errorf("%v allocations per batch of %d suppressed events, want none per event", n, len(batch))
	}
}
