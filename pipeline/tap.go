package pipeline

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
)

// A tap lets an operator watch the events passing one edge of a running
// pipeline (`sluice ctl tap`). Edges are named:
//
//	source.NAME       what source NAME emits, before the edge queue
//	stage.NAME.in     the batches stage NAME is called with
//	stage.NAME.out    what stage NAME lets through (and its timer emits)
//	sink.NAME         the batches written to sink NAME
//
// An edge nobody taps costs one atomic load per batch. A tap never slows
// the pipeline: events are offered to its buffer without waiting, and
// those that do not fit are counted as lost to the tap (Tap.Dropped),
// never to the pipeline.

// DefaultTapBuffer is the number of batches a tap holds for a reader that
// has not taken them yet, when TapOptions.Buffer is 0.
const DefaultTapBuffer = 64

// MetricTapDropped counts events a tap could not hold for its reader.
const MetricTapDropped = "sluice_tap_events_dropped_total"

// TapOptions configure a tap.
type TapOptions struct {
	// Buffer is how many batches the tap holds for its reader; 0 means
	// DefaultTapBuffer.
	Buffer int
	// Sample is the fraction of the edge's events the tap takes, evenly
	// spaced, in (0, 1]; 0 means every event.
	Sample float64
}

// Tap receives copies of the batches passing one edge. Read them from C
// until Done is closed (the tap was closed, or the pipeline stopped).
// Events share their Data with the pipeline: treat it as read-only. All
// methods are safe for concurrent use.
type Tap struct {
	edge     string
	pipeline string
	ch       chan []Event
	sample   float64
	seen     atomic.Uint64
	dropped  atomic.Uint64
	lost     *Counter

	point     *tapPoint
	set       *tapSet
	closeOnce sync.Once
	done      chan struct{}
}

// Edge returns the edge the tap watches.
func (t *Tap) Edge() string { return t.edge }

// Pipeline returns the name of the pipeline the edge belongs to.
func (t *Tap) Pipeline() string { return t.pipeline }

// C delivers the tapped events, a batch at a time; the reader owns each
// slice it receives.
func (t *Tap) C() <-chan []Event { return t.ch }

// Done is closed when the tap stops receiving events. Events already in C
// may still be read.
func (t *Tap) Done() <-chan struct{} { return t.done }

// Dropped returns how many events the tap lost because its reader did not
// keep up.
func (t *Tap) Dropped() uint64 { return t.dropped.Load() }

// Close detaches the tap from its edge. It is idempotent.
func (t *Tap) Close() {
	t.closeOnce.Do(func() {
		t.point.remove(t)
		t.set.mu.Lock()
		delete(t.set.taps, t)
		t.set.mu.Unlock()
		close(t.done)
	})
}

// offer hands a copy of the events of batch the tap samples to its
// reader, without waiting: a batch that does not fit is lost to the tap.
// Called concurrently by the edge's producers.
func (t *Tap) offer(batch []Event) {
	if len(t.ch) == cap(t.ch) { // full: do not even copy
		t.lose(uint64(t.sampled(batch)))
		return
	}
	var cp []Event
	if t.sample == 0 {
		cp = slices.Clone(batch)
	} else {
		// Keep an event when n*sample crosses an integer: evenly spaced,
		// exact over any window, no random source to share.
		for i := range batch {
			n := t.seen.Add(1)
			if uint64(float64(n)*t.sample) != uint64(float64(n-1)*t.sample) {
				cp = append(cp, batch[i])
			}
		}
		if len(cp) == 0 {
			return
		}
	}
	select {
	case t.ch <- cp:
	default:
		t.lose(uint64(len(cp)))
	}
}

// sampled estimates how many events of batch the tap would have taken.
func (t *Tap) sampled(batch []Event) int {
	if t.sample == 0 {
		return len(batch)
	}
	return int(float64(len(batch))*t.sample + 0.5)
}

func (t *Tap) lose(n uint64) {
	t.dropped.Add(n)
	t.lost.Add(n)
}

// tapPoint is one edge: the taps attached to it, nil when there are none.
type tapPoint struct {
	mu   sync.Mutex // serialises attach and remove; offer does not take it
	taps atomic.Pointer[[]*Tap]
}

// offer passes batch to every tap on the edge. It costs one atomic load
// when nobody taps.
func (tp *tapPoint) offer(batch []Event) {
	l := tp.taps.Load()
	if l == nil || len(batch) == 0 {
		return
	}
	for _, t := range *l {
		t.offer(batch)
	}
}

func (tp *tapPoint) add(t *Tap) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	var l []*Tap
	if cur := tp.taps.Load(); cur != nil {
		l = slices.Clone(*cur)
	}
	l = append(l, t)
	tp.taps.Store(&l)
}

func (tp *tapPoint) remove(t *Tap) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	cur := tp.taps.Load()
	if cur == nil {
		return
	}
	l := slices.DeleteFunc(slices.Clone(*cur), func(x *Tap) bool { return x == t })
	if len(l) == 0 {
		tp.taps.Store(nil)
		return
	}
	tp.taps.Store(&l)
}

// tapSet holds a pipeline's edges by name. A component replaced by an
// update finds its predecessor's edge, so a tap outlives a reload.
type tapSet struct {
	mu     sync.Mutex
	points map[string]*tapPoint
	taps   map[*Tap]bool
	closed bool
}

func newTapSet() *tapSet {
	return &tapSet{points: map[string]*tapPoint{}, taps: map[*Tap]bool{}}
}

func (s *tapSet) point(edge string) *tapPoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	tp := s.points[edge]
	if tp == nil {
		tp = &tapPoint{}
		s.points[edge] = tp
	}
	return tp
}

// closeAll ends every tap; later attaches fail.
func (s *tapSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	taps := make([]*Tap, 0, len(s.taps))
	for t := range s.taps {
		taps = append(taps, t)
	}
	s.mu.Unlock()
	for _, t := range taps {
		t.Close()
	}
}

// ErrNoEdge is returned by Tap for an edge the pipeline does not have.
var ErrNoEdge = errors.New("no such edge")

// Edges lists the edges of the pipeline's current components, sorted.
// Safe for concurrent use.
func (p *Pipeline) Edges() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, s := range p.srcs {
		out = append(out, "source."+s.src.Name())
	}
	for _, st := range p.stages {
		out = append(out, "stage."+st.st.Name()+".in", "stage."+st.st.Name()+".out")
	}
	for _, s := range p.sinks {
		out = append(out, "sink."+s.sinkName)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// Tap attaches a tap to edge (see the names above). It fails with
// ErrNoEdge for an edge none of the pipeline's current components has, and
// once the pipeline has stopped. Close the tap when done. Safe for
// concurrent use.
func (p *Pipeline) Tap(edge string, opts TapOptions) (*Tap, error) {
	if !slices.Contains(p.Edges(), edge) {
		return nil, fmt.Errorf("tap %s of pipeline %q: %w (edges: %v)", edge, p.name, ErrNoEdge, p.Edges())
	}
	if opts.Sample < 0 || opts.Sample > 1 {
		return nil, fmt.Errorf("tap %s: sample %g is not in (0, 1]", edge, opts.Sample)
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultTapBuffer
	}
	t := &Tap{
		edge: edge, pipeline: p.name,
		ch: make(chan []Event, opts.Buffer), sample: opts.Sample,
		lost: p.reg.Component("pipeline", p.name).Counter(MetricTapDropped, "Events a tap lost because its reader did not keep up (never lost to the pipeline)."),
		done: make(chan struct{}),
	}
	s := p.taps
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("tap %s of pipeline %q: the pipeline has stopped", edge, p.name)
	}
	tp := s.points[edge]
	if tp == nil {
		tp = &tapPoint{}
		s.points[edge] = tp
	}
	t.point, t.set = tp, s
	s.taps[t] = true
	s.mu.Unlock()
	tp.add(t)
	return t, nil
}
