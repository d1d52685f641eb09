package sluice

import (
	"fmt"
	"testing"
)

func findKeyCalls() int {
	nativeHost.Lock()
	defer nativeHost.Unlock()
	return nativeHost.findKeyCalls
}

// A handler's first lookup is answered from one host call per batch, with
// the same values a scan finds, for events with and without the key.
func TestKeyTableAnswersFirstLookups(t *testing.T) {
	s := useStage(t)
	var got []string
	Filter(func(ev *Event) bool {
		uid, ok := ev.Get("uid").Int()
		got = append(got, fmt.Sprintf("%d %v %s", uid, ok, ev.String("comm")))
		return true
	})
	mustInit(t, s, nil)
	var batch [][]byte
	var want []string
	for i := range 10 {
		if i%3 == 2 {
			batch = append(batch, encodeEvent(t, kv{"comm", "nouid"}))
			want = append(want, "0 false nouid")
			continue
		}
		batch = append(batch, encodeEvent(t, kv{"pid", i}, kv{"comm", "sh"}, kv{"uid", 1000 + i}))
		want = append(want, fmt.Sprintf("%d true sh", 1000+i))
	}
	before := findKeyCalls()
	if _, err := s.process(encodeBatch(batch...)); err != nil {
		t.Fatal(err)
	}
	if calls := findKeyCalls() - before; calls != 1 {
		t.Errorf("%d find_key calls for a batch, want 1", calls)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lookups %q, want %q", got, want)
	}

	// A batch too small to be worth a host call is scanned.
	before, got = findKeyCalls(), nil
	if _, err := s.process(encodeBatch(batch[:minTableEvents-1]...)); err != nil {
		t.Fatal(err)
	}
	if calls := findKeyCalls() - before; calls != 0 {
		t.Errorf("%d find_key calls for %d events, want none", calls, minTableEvents-1)
	}
	if fmt.Sprint(got) != fmt.Sprint(want[:minTableEvents-1]) {
		t.Errorf("lookups %q, want %q", got, want[:minTableEvents-1])
	}
}

// A handler whose first key changes from event to event costs a bounded
// number of host calls per batch, and still reads the right values.
func TestKeyTableBoundsHostCallsPerBatch(t *testing.T) {
	s := useStage(t)
	var got []int64
	Filter(func(ev *Event) bool {
		key := "a"
		if ev.Index()%2 == 1 {
			key = "b"
		}
		got = append(got, ev.Int(key))
		return true
	})
	mustInit(t, s, nil)
	var batch [][]byte
	var want []int64
	for i := range 64 {
		batch = append(batch, encodeEvent(t, kv{"a", i}, kv{"b", -i}))
		if i%2 == 1 {
			want = append(want, int64(-i))
		} else {
			want = append(want, int64(i))
		}
	}
	before := findKeyCalls()
	if _, err := s.process(encodeBatch(batch...)); err != nil {
		t.Fatal(err)
	}
	if calls := findKeyCalls() - before; calls != maxTableBuilds {
		t.Errorf("%d find_key calls, want %d", calls, maxTableBuilds)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lookups %v, want %v", got, want)
	}
}
