package main

import (
	"testing"

	"github.com/sluice-dev/sluice/sdk/go/sluice"
)

func execEvent() []byte {
	var w sluice.Writer
	w.BeginMap()
	for _, f := range []struct {
		k string
		v any
	}{
		{"time", "2026-12-01T10:27:32.530410107Z"}, {"host", "vm"}, {"source", "exec"}, {"gadget", "trace_exec"},
		{"seq", 77}, {"timestamp", "2026-12-01T10:27:32.530410107Z"}, {"timestamp_raw", 1670079468483},
		{"mntns_id", 4026531832}, {"pid", 16588}, {"ppid", 16524}, {"uid", 1000}, {"uid_name", "alice"},
		{"gid", 1000}, {"gid_name", "alice"}, {"comm", "sh"}, {"filename", "/bin/sh"}, {"ret", 0},
		{"ret_error", ""}, {"args", []string{"sh", "-c", "some args"}},
	} {
		w.Key(f.k).Any(f.v)
	}
	w.EndMap()
	return append([]byte(nil), w.Bytes()...)
}

func BenchmarkOCSFNative(b *testing.B) {
	if err := sluice.InitForTest(nil); err != nil {
		b.Fatal(err)
	}
	batch := make([][]byte, 256)
	for i := range batch {
		batch[i] = execEvent()
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sluice.ProcessForTest(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*256), "ns/event")
}
