package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/sluice-dev/sluice/pipeline"
)

// A queue under drop_newest keeps what fits and counts the rest as dropped.
func ExampleQueue() {
	reg := pipeline.NewRegistry()
	q, err := pipeline.NewQueue("pipeline.demo", pipeline.QueueConfig{MaxEvents: 2, Policy: pipeline.DropNewest},
		reg.Component("pipeline", "demo"), pipeline.NewLossTracker())
	if err != nil {
		fmt.Println(err)
		return
	}
	batch := []pipeline.Event{{Source: "exec", Seq: 1}, {Source: "exec", Seq: 2}, {Source: "exec", Seq: 3}}
	_ = q.Push(context.Background(), batch)
	got, _ := q.Pop(context.Background(), nil, 10, time.Millisecond)
	fmt.Println("popped", len(got))
	_, _ = reg.WriteTo(os.Stdout)
	// Output:
	// popped 2
	// # HELP sluice_errors_total Failed operations of a component.
	// # TYPE sluice_errors_total counter
	// sluice_errors_total{component="pipeline",name="demo"} 0
	// # HELP sluice_events_dropped_total Events a component dropped, by reason.
	// # TYPE sluice_events_dropped_total counter
	// sluice_events_dropped_total{component="pipeline",name="demo",reason="queue_full"} 1
	// sluice_events_dropped_total{component="pipeline",name="demo",reason="shutdown"} 0
	// # HELP sluice_events_received_total Events that reached a component.
	// # TYPE sluice_events_received_total counter
	// sluice_events_received_total{component="pipeline",name="demo"} 3
	// # HELP sluice_events_sent_total Events a component passed on.
	// # TYPE sluice_events_sent_total counter
	// sluice_events_sent_total{component="pipeline",name="demo"} 0
	// # HELP sluice_queue_bytes Bytes (Event.Size) waiting in a component's queues.
	// # TYPE sluice_queue_bytes gauge
	// sluice_queue_bytes{component="pipeline",name="demo"} 0
	// # HELP sluice_queue_events Events waiting in a component's queues.
	// # TYPE sluice_queue_events gauge
	// sluice_queue_events{component="pipeline",name="demo"} 0
}
