package wasmstages

import (
	"runtime"
	"syscall"
	"testing"
	"unsafe"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// BenchmarkFindKeyIn measures find_key's scan of one trace_exec-shaped
// event for a key near its middle (uid), the one after it (user) and one
// it lacks (owner): about 4.5 ns per entry stepped over.
func BenchmarkFindKeyIn(b *testing.B) {
	ev := execEventForBench()
	for _, key := range []string{"uid", "user", "owner"} {
		b.Run(key, func(b *testing.B) {
			k := []byte(key)
			if s, _ := findKeyIn(ev, k); (s == findKeyMissing) != (key == "owner") {
				b.Fatalf("findKeyIn(%q) = %d", key, s)
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			c0 := threadCPUNs()
			for range b.N {
				findKeyIn(ev, k)
			}
			b.ReportMetric(float64(threadCPUNs()-c0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// execEventForBench is a trace_exec-shaped event of 19 entries.
func execEventForBench() []byte {
	ev := codec.AppendMapHeader(nil, 19)
	for _, kv := range []struct {
		k string
		v any
	}{
		{"time", "2026-01-02T03:04:05.123456789Z"}, {"host", "h"}, {"source", "exec"}, {"gadget", "trace_exec"}, {"seq", 123456},
		{"timestamp", "2026-01-02T03:04:05.123456789Z"}, {"timestamp_raw", 1670079468483}, {"mntns_id", 4026531832},
		{"pid", 16588}, {"ppid", 16524}, {"uid", 1000}, {"user", "alice"}, {"gid", 1000}, {"gid_name", "alice"},
		{"comm", "sh"}, {"filename", "/bin/sh"}, {"ret", 0}, {"ret_error", ""}, {"args", []string{"sh", "-c", "some args"}},
	} {
		ev = codec.AppendString(ev, kv.k)
		switch v := kv.v.(type) {
		case string:
			ev = codec.AppendString(ev, v)
		case int:
			ev = codec.AppendInt(ev, int64(v))
		case []string:
			ev = codec.AppendArrayHeader(ev, len(v))
			for _, s := range v {
				ev = codec.AppendString(ev, s)
			}
		}
	}
	return ev
}

// threadCPUNs returns the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID):
// on a shared machine it moves far less than the wall clock.
func threadCPUNs() int64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

// BenchmarkFindKeysRow measures find_keys' row of the same event for the
// 25 keys the ocsf stage reads.
func BenchmarkFindKeysRow(b *testing.B) {
	ev := execEventForBench()
	var kt keyTable
	if !kt.parse(keysBlob("args", "comm", "daddr.addr", "dport", "family", "filename", "flags", "gadget", "gid", "gid_name",
		"host", "mntns_id", "mode", "path", "pid", "ppid", "ret", "ret_error", "saddr.addr", "seq", "source", "sport", "time", "uid", "user")) {
		b.Fatal("parse keys")
	}
	out := make([]byte, 8*(kt.n+1))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0 := threadCPUNs()
	for range b.N {
		kt.row(ev, 0x1000, out)
	}
	b.ReportMetric(float64(threadCPUNs()-c0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkFindKeyBatch measures find_key over a batch of 256 events laid
// out as the bench's synthetic records for the key drop-comm reads (comm,
// the eleventh) and one they lack: the first event's walk is replayed on
// the others (keyWalk). walk-each is every event walked, as before that.
func BenchmarkFindKeyBatch(b *testing.B) {
	var events [][]byte
	for i := range 256 {
		events = append(events, synthLike("comm", "sluicebench", uint64(1_000_000+i), 16523))
	}
	batch := encodeBatchOf(events...)
	out := make([]byte, 8*len(events))
	for _, key := range []string{"comm", "owner"} {
		k := []byte(key)
		b.Run(key, func(b *testing.B) {
			perEventCPU(b, len(events), func() { findKeyBatch(batch, k, out) })
		})
		b.Run(key+"/walk-each", func(b *testing.B) {
			perEventCPU(b, len(events), func() {
				for _, ev := range events {
					findKeyIn(ev, k)
				}
			})
		})
	}
}

// perEventCPU runs f b.N times and reports the calling thread's CPU time
// per event (f handles n events).
func perEventCPU(b *testing.B, n int, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0 := threadCPUNs()
	for b.Loop() {
		f()
	}
	b.ReportMetric(float64(threadCPUNs()-c0)/float64(b.N*n), "cpu-ns/event")
}
