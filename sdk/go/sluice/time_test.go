//go:build !wasip1

package sluice

import (
	"testing"
	"time"
)

func TestEventTime(t *testing.T) {
	for _, s := range []string{
		"2026-12-01T10:27:32.530410107Z", "2026-12-01T10:27:32Z", "2026-12-01T10:27:32.5Z",
		"2024-02-29T23:59:59.999999999Z", "2026-12-01T10:27:32.53+02:00", "1970-01-01T00:00:00Z",
	} {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		ev := &Event{}
		ev.reset(encodeEvent(t, kv{"time", s}), 0, true, 0)
		got, ok := ev.Time("time")
		if !ok || !got.Equal(want) {
			t.Errorf("Time(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "yesterday", "2026-13-01T10:27:32Z", "2026-02-30T10:27:32Z", "2026-12-01T10:27:32.Z", "2026-12-01T25:27:32Z", "2026-12-01T10:27:3xZ"} {
		ev := &Event{}
		ev.reset(encodeEvent(t, kv{"time", s}), 0, true, 0)
		if got, ok := ev.Time("time"); ok {
			t.Errorf("Time(%q) = %v, want not ok", s, got)
		}
	}
	ev := &Event{}
	ev.reset(encodeEvent(t, kv{"n", 1}), 0, true, 0)
	if _, ok := ev.Time("time"); ok {
		t.Errorf("missing field parsed")
	}
}

func BenchmarkEventTime(b *testing.B) {
	ev := &Event{}
	raw := encodeEvent(b, kv{"time", "2026-12-01T10:27:32.530410107Z"})
	b.ReportAllocs()
	for b.Loop() {
		ev.reset(raw, 0, true, 0)
		if _, ok := ev.Time("time"); !ok {
			b.Fatal("not parsed")
		}
	}
}
