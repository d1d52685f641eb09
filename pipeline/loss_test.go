package pipeline

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLossTrackerFlush(t *testing.T) {
	lt := NewLossTracker()
	lt.Add("exec", "trace_exec", "pipeline.p", ReasonQueueFull, 3, 10, 12)
	lt.Add("exec", "trace_exec", "pipeline.p", ReasonQueueFull, 2, 4, 5)
	lt.Add("exec", "trace_exec", "source.exec", ReasonKernel, 9, 0, 0)
	lt.Add("open", "trace_open", "sink.nats", ReasonSinkError, 1, 7, 7)
	lt.Add("open", "trace_open", "sink.nats", ReasonSinkError, 0, 1, 100) // a zero count changes nothing

	now := time.Date(2025, 3, 4, 5, 6, 7, 890, time.FixedZone("x", 3600))
	recs := lt.Flush(now, "node-a")
	var got []lossSummary
	for _, ev := range recs {
		got = append(got, summarize(t, ev))
		if ev.Schema != LossSchema || ev.Seq != 0 {
			t.Errorf("loss event schema %p seq %d, want LossSchema and 0", ev.Schema, ev.Seq)
		}
	}
	want := []lossSummary{
		{Source: "exec", Gadget: "trace_exec", Component: "pipeline.p", Reason: ReasonQueueFull, Count: 5, SeqFirst: 4, SeqLast: 12},
		{Source: "exec", Gadget: "trace_exec", Component: "source.exec", Reason: ReasonKernel, Count: 9},
		{Source: "open", Gadget: "trace_open", Component: "sink.nats", Reason: ReasonSinkError, Count: 1, SeqFirst: 7, SeqLast: 7},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}

	m := decodeLoss(t, recs[1])
	envelope := map[string]any{"time": m["time"], "host": m["host"], "type": m["type"], "seq_first": m["seq_first"]}
	wantEnv := map[string]any{"time": "2025-03-04T04:06:07.00000089Z", "host": "node-a", "type": "loss", "seq_first": nil}
	if diff := cmp.Diff(wantEnv, envelope); diff != "" {
		t.Errorf("envelope (-want +got):\n%s", diff)
	}
	if len(m) != len(LossSchema.Fields) {
		t.Errorf("record has %d keys, LossSchema %d", len(m), len(LossSchema.Fields))
	}
	if again := lt.Flush(now, "node-a"); again != nil {
		t.Errorf("second Flush returned %d records, want none", len(again))
	}
}

// TestLossTrackerConcurrent checks that counts added while flushes run land
// in exactly one flush.
func TestLossTrackerConcurrent(t *testing.T) {
	lt := NewLossTracker()
	const adders, per = 4, 5000
	var (
		wg      sync.WaitGroup
		total   uint64
		flushed []Event
		flushes sync.WaitGroup
		stop    = make(chan struct{})
	)
	for range adders {
		wg.Go(func() {
			for i := range per {
				lt.Add("s", "g", "c", ReasonQueueFull, 2, uint64(i+1), uint64(i+1))
			}
		})
	}
	flushes.Go(func() {
		for {
			flushed = append(flushed, lt.Flush(time.Now(), "h")...)
			select {
			case <-stop:
				return
			default:
			}
		}
	})
	wg.Wait()
	close(stop)
	flushes.Wait()
	flushed = append(flushed, lt.Flush(time.Now(), "h")...)
	for _, ev := range flushed {
		total += summarize(t, ev).Count
	}
	if total != 2*adders*per {
		t.Errorf("flushed %d in total, want %d", total, 2*adders*per)
	}
}
