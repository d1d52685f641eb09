package stages_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sluice-dev/sluice/pipeline"
)

// execEvents returns n trace_exec-shaped events (19 fields, comm the
// fifteenth, as the decoder lays them out) whose comm cycles through comms.
func execEvents(n int, comms ...string) []pipeline.Event {
	out := make([]pipeline.Event, n)
	for i := range out {
		c := comms[i%len(comms)]
		out[i] = envelope("trace_exec", i+1,
			kv{"timestamp", "2026-01-02T03:04:05.123456789Z"}, kv{"timestamp_raw", 1670079468483},
			kv{"mntns_id", 4026531832}, kv{"pid", 16588}, kv{"ppid", 16524}, kv{"uid", 1000}, kv{"user", "alice"},
			kv{"gid", 1000}, kv{"gid_name", "alice"}, kv{"comm", c}, kv{"filename", "/bin/" + c}, kv{"ret", 0},
			kv{"ret_error", ""}, kv{"args", []string{c, "-c", "some args"}},
		)
	}
	return out
}

// BenchmarkExampleStages measures each example stage per event through the
// real host at batch 256 (and drop-comm at 1 and 1024): guest cost plus the
// ABI's copying. Compare ns/event within one run; the machine is shared.
func BenchmarkExampleStages(b *testing.B) {
	cases := []struct {
		stage  string
		params map[string]any
		sizes  []int
	}{
		{"drop-comm", map[string]any{"comms": []string{"sh", "bash"}}, []int{1, 256, 1024}},
		{"drop-comm-go", map[string]any{"comms": []string{"sh", "bash"}}, []int{1, 256, 1024}},
		{"uid-to-user", map[string]any{"users": map[string]any{"1000": "alice"}}, []int{256}},
		{"uid-to-user-go", map[string]any{"users": map[string]any{"1000": "alice"}}, []int{256}},
		{"redact", nil, []int{256}},
		{"rate-limit", map[string]any{"rate": 1e9, "burst": 1e9}, []int{256}},
		{"ocsf", nil, []int{256}},
	}
	for _, c := range cases {
		b.Run(c.stage, func(b *testing.B) {
			s := newStage(b, c.stage, c.params, 0)
			for _, size := range c.sizes {
				b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
					in := execEvents(size, "sh", "cat", "bash", "ls")
					out := make([]pipeline.Event, 0, 2*size)
					ctx := context.Background()
					b.ReportAllocs()
					for b.Loop() {
						var err error
						if out, err = s.Process(ctx, in, out[:0]); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/event")
				})
			}
		})
	}
}
