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

// A key evicted to make room comes back as a new key, with a full bucket:
// no remembered bucket of it outlives the eviction.
func TestEvictedKeyStartsAfresh(t *testing.T) {
	var w sluice.Writer
	w.BeginMap().Key("rate").Float(1e-9).Key("burst").Int(1).Key("max_keys").Int(2).EndMap()
	if err := sluice.InitForTest(append([]byte(nil), w.Bytes()...)); err != nil {
		t.Fatal(err)
	}
	event := func(comm string) []byte {
		w.Reset().BeginMap().Key("host").String("vm").Key("comm").String(comm).EndMap()
		return append([]byte(nil), w.Bytes()...)
	}
	passes := func(comm string) bool {
		t.Helper()
		res, err := sluice.ProcessForTest([][]byte{event(comm)})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Keep && r.Index == 0 {
				return true
			}
		}
		return false
	}
	for _, step := range []struct {
		comm string
		pass bool
	}{
		{"a", true}, {"a", false}, // a's bucket is empty now
		{"b", true}, {"c", true}, // c evicts a, the key idle longest
		{"a", true}, // a is new again
	} {
		if got := passes(step.comm); got != step.pass {
			t.Fatalf("%s: passed = %v, want %v", step.comm, got, step.pass)
		}
	}
}
