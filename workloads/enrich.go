package workloads

import (
	"context"
	"time"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// DefaultWait bounds how long a batch waits for unknown namespaces.
const DefaultWait = 200 * time.Millisecond

// Enricher is a pipeline stage that adds container identity to events
// from processes in containers: container.id, container.name,
// container.image, container.runtime and, where the runtime's labels say,
// k8s.namespace, k8s.pod and k8s.container. Events of host processes, and
// events without a mount namespace, pass unchanged. It never decodes an
// event: the namespace comes from pipeline.Event.MntNS, and an enriched
// event is its encoding with the fields appended.
//
// A batch holding namespaces the resolver does not know yet waits for the
// round that answers them, at most the wait bound; events still unknown
// then go out without container fields and are counted
// (sluice_workload_unresolved_total). The pipeline calls it from one
// goroutine at a time.
type Enricher struct {
	name       string
	r          *Resolver
	wait       time.Duration
	arena      []byte
	seen       []lookup // per event of the batch being processed
	enriched   *pipeline.Counter
	unresolved *pipeline.Counter
}

var _ pipeline.Stage = (*Enricher)(nil)

// NewEnricher returns a stage called name resolving through r. wait
// bounds a batch's wait for unknown namespaces (0: DefaultWait; negative:
// never wait). Counters go to reg (nil: a private registry).
func NewEnricher(name string, r *Resolver, wait time.Duration, reg *pipeline.Registry) *Enricher {
	if wait == 0 {
		wait = DefaultWait
	}
	if reg == nil {
		reg = pipeline.NewRegistry()
	}
	component := "stage." + name
	return &Enricher{
		name: name, r: r, wait: max(wait, 0),
		enriched:   reg.Counter("sluice_workload_enriched_total", "Events given container identity", "component", component),
		unresolved: reg.Counter("sluice_workload_unresolved_total", "Events sent on without container identity because their mount namespace was not resolved within the wait bound", "component", component),
	}
}

// Name returns the stage's name.
func (e *Enricher) Name() string { return e.name }

// Process appends the batch to out, enriched.
func (e *Enricher) Process(ctx context.Context, in, out []pipeline.Event) ([]pipeline.Event, error) {
	var wait <-chan struct{}
	if cap(e.seen) < len(in) {
		e.seen = make([]lookup, len(in))
	}
	seen := e.seen[:len(in)]
	for i := range in {
		ev := &in[i]
		seen[i] = lookup{known: true}
		if ev.Kind() != pipeline.KindEvent || ev.MntNS == 0 {
			continue
		}
		c, known := e.r.Lookup(uint64(ev.MntNS))
		seen[i] = lookup{c: c, known: known}
		if !known {
			wait = e.r.Request(uint64(ev.MntNS), pidOf(ev.Data))
		}
	}
	if wait != nil && e.wait > 0 {
		// Rounds complete in order: the last one asked for answers the
		// earlier requests too.
		t := time.NewTimer(e.wait)
		select {
		case <-wait:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	var enriched, unresolved uint64
	for i := range in {
		ev := in[i]
		if ev.Kind() == pipeline.KindEvent && ev.MntNS != 0 {
			c, known := seen[i].c, seen[i].known
			if !known {
				c, known = e.r.Lookup(uint64(ev.MntNS))
			}
			switch {
			case c != nil:
				ev.Data = e.appendFields(ev.Data, c)
				enriched++
			case !known:
				unresolved++
			}
		}
		out = append(out, ev)
	}
	clear(seen) // drop the container pointers until the next batch
	e.enriched.Add(enriched)
	e.unresolved.Add(unresolved)
	return out, nil
}

// lookup is one event's answer from the resolver.
type lookup struct {
	c     *Container
	known bool
}

const arenaSize = 256 << 10

// appendFields returns a copy of the event with the container's fields
// added to its map. Copies are carved from an arena that is replaced, not
// reused, when full: the events keep their bytes.
func (e *Enricher) appendFields(data []byte, c *Container) []byte {
	n, body, err := codec.ReadMapHeader(data)
	if err != nil {
		return data
	}
	need := 5 + len(body) + len(c.fields)
	if cap(e.arena)-len(e.arena) < need {
		e.arena = make([]byte, 0, max(arenaSize, need))
	}
	start := len(e.arena)
	e.arena = codec.AppendMapHeader(e.arena, n+c.nfields)
	e.arena = append(e.arena, body...)
	e.arena = append(e.arena, c.fields...)
	return e.arena[start:len(e.arena):len(e.arena)]
}

// Close does nothing: the resolver is owned by whoever runs it.
func (e *Enricher) Close(context.Context) error { return nil }

// pidOf reads the event's pid field, a hint for resolving its namespace
// through the process; 0 when it has none.
func pidOf(data []byte) int {
	raw, ok := codec.Lookup(data, "pid")
	if !ok {
		return 0
	}
	pid, _, err := codec.ReadUint(raw)
	if err != nil || pid > 1<<22 {
		return 0
	}
	return int(pid)
}
