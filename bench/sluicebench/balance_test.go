package main

import (
	"fmt"
	"strings"
	"testing"
)

// counters renders the agent's event counters for a pipeline with one
// stage: source -> edge -> filter1 -> sink.
func counters(t *testing.T, src, edgeSent, stageIn, stageOut, sinkIn, sinkOut, sinkQueue float64) scrape {
	t.Helper()
	var b strings.Builder
	line := func(m, comp, name string, v float64) {
		fmt.Fprintf(&b, "%s{component=%q,name=%q} %g\n", m, comp, name, v)
	}
	line("sluice_events_received_total", "source", "synth", src)
	line("sluice_events_sent_total", "source", "synth", src)
	line("sluice_events_received_total", "pipeline", "bench", src)
	line("sluice_events_sent_total", "pipeline", "bench", edgeSent)
	line("sluice_queue_events", "pipeline", "bench", src-edgeSent)
	line("sluice_events_received_total", "stage", "filter1", stageIn)
	line("sluice_events_sent_total", "stage", "filter1", stageOut)
	line("sluice_events_received_total", "sink", "out", sinkIn)
	line("sluice_events_sent_total", "sink", "out", sinkOut)
	line("sluice_queue_events", "sink", "out", sinkQueue)
	s, err := parseMetrics(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The counters of the last full run that did not balance came from a
// scrape taken while a batch was between two components: every
// component balanced, but the edge had sent a batch the stage had not
// received yet. Such a scrape is not settled, and neither is one that
// differs from the scrape before it.
func TestSettled(t *testing.T) {
	done := counters(t, 1000, 1000, 1000, 1000, 1002, 1002, 0) // two loss records
	cases := []struct {
		name    string
		prev, s scrape
		want    bool
	}{
		{"settled", done, done, true},
		{"no earlier scrape", scrape{}, done, false},
		{"a batch between the edge and the stage", counters(t, 1000, 1000, 805, 805, 807, 807, 0), counters(t, 1000, 1000, 805, 805, 807, 807, 0), false},
		{"a batch between the stage and the sink", counters(t, 1000, 1000, 1000, 1000, 800, 800, 0), counters(t, 1000, 1000, 1000, 1000, 800, 800, 0), false},
		{"a loss record queued since the last scrape", done, counters(t, 1000, 1000, 1000, 1000, 1003, 1002, 1), false},
		{"counters moved", counters(t, 1000, 1000, 1000, 1000, 1001, 1001, 0), done, false},
	}
	for _, c := range cases {
		if got := settled(c.prev, c.s, 1); got != c.want {
			t.Errorf("%s: settled = %v, want %v", c.name, got, c.want)
		}
	}
}
