package agent

import (
	"fmt"
	"strings"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sinks"
)

// Summary totals what the agent's components counted.
type Summary struct {
	Received  uint64            // events the sources emitted
	Delivered uint64            // events the sinks delivered (summed over sinks), not counting those still spooled
	Spooled   uint64            // events the sinks wrote to their spools that are still there (summed over sinks)
	PerSink   []SinkCount       // what each sink wrote, in config order
	Dropped   map[string]uint64 // drops by reason, over every component
}

var summaryReasons = []string{pipeline.ReasonKernel, pipeline.ReasonQueueFull, pipeline.ReasonSinkError, pipeline.ReasonShutdown, pipeline.ReasonFiltered,
	pipeline.ReasonStageError, // not ReasonDeadLetter: those events are delivered, to the dead-letter sink
	sinks.ReasonSpoolFull, sinks.ReasonTooLarge, sinks.ReasonRejected, sinks.ReasonEncodeError, sinks.ReasonDiskFull, sinks.ReasonWriteError}

// SinkCount is what one sink wrote.
type SinkCount struct {
	Sink    string
	Written uint64 // delivered or spooled
	Spooled uint64 // of Written, the events that wait in the sink's spool for a later start
}

// spoolingSink is implemented by sinks with an on-disk spool
// (sinks.NATS): Spooled says how many events of this run it holds, not
// delivered yet.
type spoolingSink interface {
	Spooled() uint64
}

// Summary reads the agent's counters for the components of its config
// (the last one a reload applied). It is safe to call while the agent
// runs; the totals are final once Run has returned.
func (a *Agent) Summary() Summary {
	a.mu.Lock()
	pl := a.plan
	a.mu.Unlock()
	s := Summary{Dropped: map[string]uint64{}}
	add := func(c *pipeline.ComponentMetrics) {
		for _, r := range summaryReasons {
			if n := c.Dropped(r).Value(); n > 0 {
				s.Dropped[r] += n
			}
		}
	}
	for _, sp := range pl.sources {
		c := a.metrics.Component("source", sp.name)
		s.Received += c.Received.Value()
		add(c)
		if sp.wasm != nil { // what a gadget's module filtered
			add(a.metrics.Component("stage", gadgetModuleName(sp.name)))
		}
	}
	seenStage := map[string]bool{} // a stage in several pipelines counts once
	for _, pp := range pl.pipelines {
		add(a.metrics.Component("pipeline", pp.name))
		for _, st := range pp.stages {
			if !seenStage[st.name] {
				seenStage[st.name] = true
				add(a.metrics.Component("stage", st.name))
			}
		}
	}
	for _, sk := range pl.sinks {
		c := a.metrics.Component("sink", sk.name)
		count := SinkCount{Sink: sk.name, Written: c.Sent.Value()}
		a.mu.Lock()
		live := a.sinks[sk.name]
		a.mu.Unlock()
		if live != nil {
			if sp, ok := live.Sink.(spoolingSink); ok {
				count.Spooled = min(sp.Spooled(), count.Written)
			}
		}
		s.Delivered += count.Written - count.Spooled
		s.Spooled += count.Spooled
		s.PerSink = append(s.PerSink, count)
		add(c)
	}
	return s
}

func (s Summary) String() string {
	var drops []string
	var total uint64
	for _, r := range summaryReasons {
		if n := s.Dropped[r]; n > 0 {
			drops = append(drops, fmt.Sprintf("%s %d", r, n))
			total += n
		}
	}
	out := fmt.Sprintf("events: received %d, delivered %d", s.Received, s.Delivered)
	if s.Spooled > 0 {
		out += fmt.Sprintf(", spooled %d (on disk, not delivered yet: the next start sends them)", s.Spooled)
	}
	out += fmt.Sprintf(", dropped %d", total)
	if len(drops) > 0 {
		out += " (" + strings.Join(drops, ", ") + ")"
	}
	// With several sinks "delivered" is a sum that can exceed "received";
	// say which sink wrote what.
	if len(s.PerSink) > 1 {
		per := make([]string, len(s.PerSink))
		for i, c := range s.PerSink {
			per[i] = fmt.Sprintf("%s %d", c.Sink, c.Written)
			if c.Spooled > 0 {
				per[i] += fmt.Sprintf(" (%d of them spooled)", c.Spooled)
			}
		}
		out += "; written per sink: " + strings.Join(per, ", ")
	}
	return out
}
