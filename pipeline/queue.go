package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// Policy says what a full queue does with a new event.
type Policy uint8

const (
	// Block makes the producer wait for room (or for its context to end).
	Block Policy = iota
	// DropNewest rejects the events that do not fit; the producer never waits.
	DropNewest
	// DropOldest evicts the oldest queued events to make room; the producer
	// never waits.
	DropOldest
)

// policyNames are the config spellings of the policies, in Policy order:
// the one list of them (config's when_full takes PolicyNames).
var policyNames = []string{Block: "block", DropNewest: "drop_newest", DropOldest: "drop_oldest"}

// orList spells names as "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// PolicyNames returns the config spelling of every policy, in order.
func PolicyNames() []string { return slices.Clone(policyNames) }

// ParsePolicy parses a when_full value: "block", "drop_newest" or
// "drop_oldest".
func ParsePolicy(s string) (Policy, error) {
	if i := slices.Index(policyNames, s); i >= 0 {
		return Policy(i), nil
	}
	return 0, fmt.Errorf("parse queue policy %q: want %s", s, orList(policyNames))
}

// String returns the config spelling of p.
func (p Policy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// Queue limits applied when a QueueConfig leaves them zero; the config's
// defaults too (config.DefaultQueueMaxEvents, config.DefaultQueueMaxBytes).
const (
	DefaultQueueEvents = 8192
	DefaultQueueBytes  = 16 << 20
)

// QueueConfig bounds a queue. Zero limits take the defaults above.
type QueueConfig struct {
	MaxEvents int
	MaxBytes  int // sum of Event.Size() of the queued events
	Policy    Policy
}

func (c QueueConfig) withDefaults() QueueConfig {
	if c.MaxEvents == 0 {
		c.MaxEvents = DefaultQueueEvents
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultQueueBytes
	}
	return c
}

func (c QueueConfig) validate() error {
	if c.MaxEvents < 0 {
		return fmt.Errorf("check queue config: max events %d is negative", c.MaxEvents)
	}
	if c.MaxBytes < 0 {
		return fmt.Errorf("check queue config: max bytes %d is negative", c.MaxBytes)
	}
	if c.Policy > DropOldest {
		return fmt.Errorf("check queue config: unknown policy %d", c.Policy)
	}
	return nil
}

// ErrQueueClosed is returned by Push after Close.
var ErrQueueClosed = errors.New("push to closed queue")

// Queue is a bounded, batch-oriented FIFO of events between one stage of a
// pipeline and the next. It counts what it receives and what it drops (with a
// reason) on its owner's ComponentMetrics and reports dropped events to a
// LossTracker; the consumer counts what it passes on (Sent), because only it
// knows whether the popped events went anywhere.
//
// All methods are safe for concurrent use by any number of producers and
// consumers. Events are stored by value in segments: batch-sized arrays
// that come from and go back to the batch pool (NewBatch). Within the
// pipeline, a batch moves from one queue to the next as a whole segment,
// not event by event (pushBatch, popBatch): copying an Event costs a write
// barrier per pointer while the GC marks, and at a million events a second
// the GC marks much of the time.
type Queue struct {
	name          string
	cfg           QueueConfig
	m             *ComponentMetrics
	loss          *LossTracker
	dropFull      *Counter
	dropShutdown  *Counter
	depth, memory *Gauge
	// shownDepth and shownBytes are what this queue added to the gauges,
	// which it shares with its owner's other queues (a sink fed by several
	// pipelines, or also as a dead-letter sink): each queue adds its
	// changes, so the gauges hold the sum.
	shownDepth, shownBytes int64

	mu sync.Mutex
	// segs[front:] are the queued events, oldest first, in runs that each
	// own their backing array (see segment); n and bytes sum them.
	segs     []segment
	front    int
	n        int
	bytes    int
	ctrl     []Event // control events (loss records), outside the limits
	closed   bool
	hitFull  bool          // a push found no room since the last pop
	popWait  chan struct{} // closed to wake consumers; nil when none waits
	popNeed  int           // events the least demanding waiting consumer wants
	popWhole bool          // a waiting consumer takes a segment that is a batch of its own
	pushWait chan struct{} // closed to wake blocked producers; nil when none waits
}

// NewQueue returns an empty queue. Its gauges are its owner's
// (sluice_queue_events{component,name} of m); name is the component named
// in loss records ("pipeline.security", "sink.console"). Received and drops are
// counted on m; a nil m counts on a private registry. A nil loss tracker
// disables loss reporting.
func NewQueue(name string, cfg QueueConfig, m *ComponentMetrics, loss *LossTracker) (*Queue, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("create queue %s: %w", name, err)
	}
	cfg = cfg.withDefaults()
	if m == nil {
		m = NewRegistry().Component("queue", name)
	}
	q := &Queue{
		name:         name,
		cfg:          cfg,
		m:            m,
		loss:         loss,
		dropFull:     m.Dropped(ReasonQueueFull),
		dropShutdown: m.Dropped(ReasonShutdown),
	}
	q.depth, q.memory = m.QueueGauges()
	return q, nil
}

// QueueGauges returns the gauges of the component's queues, which its
// queues add to: MetricQueueLen and MetricQueueMem. Safe for concurrent
// use.
func (c *ComponentMetrics) QueueGauges() (events, bytes *Gauge) {
	return c.Gauge(MetricQueueLen, "Events waiting in a component's queues."),
		c.Gauge(MetricQueueMem, "Bytes (Event.Size) waiting in a component's queues.")
}

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

// Config returns the queue's limits with defaults applied. Safe for
// concurrent use.
func (q *Queue) Config() QueueConfig {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.cfg
}

// Emit is Push; it makes a Queue a pipeline.Emitter. Safe for concurrent use.
func (q *Queue) Emit(ctx context.Context, batch []Event) error { return q.Push(ctx, batch) }

// Push appends batch in order. Under Block it waits for room until ctx is
// done, then returns ctx.Err() and counts the events it could not queue as
// dropped ("shutdown"). Under DropNewest and DropOldest it never waits: the
// events that do not fit, or the oldest queued ones, are dropped
// ("queue_full"). After Close it drops the batch ("shutdown") and returns
// ErrQueueClosed. Push copies the Event values; the caller may reuse the
// batch slice (not the events' Data) once Push returns. Safe for concurrent
// use.
func (q *Queue) Push(ctx context.Context, batch []Event) error {
	if len(batch) == 0 {
		return nil
	}
	q.m.Received.Add(uint64(len(batch)))
	return q.push(ctx, batch)
}

// push is Push without counting the batch as received.
func (q *Queue) push(ctx context.Context, batch []Event) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		q.drop(q.dropShutdown, ReasonShutdown, batch)
		return ErrQueueClosed
	}
	switch q.cfg.Policy {
	case DropNewest:
		i := q.putWhileRoom(batch)
		q.published(i < len(batch))
		q.mu.Unlock()
		q.drop(q.dropFull, ReasonQueueFull, batch[i:])
		return nil
	case DropOldest:
		var run lossRun
		var evicted uint64
		for i := range batch {
			size := batch[i].Size()
			for !q.room(size) {
				ev := q.evict()
				evicted++
				run.add(q.loss, q.name, ReasonQueueFull, &ev)
			}
			q.put(batch[i], size)
		}
		run.flush(q.loss, q.name, ReasonQueueFull)
		q.published(evicted > 0)
		q.mu.Unlock()
		q.dropFull.Add(evicted)
		return nil
	}
	i := 0
	for {
		i += q.putWhileRoom(batch[i:])
		if i == len(batch) {
			q.published(false)
			q.mu.Unlock()
			return nil
		}
		q.published(true)
		if q.pushWait == nil {
			q.pushWait = make(chan struct{})
		}
		w := q.pushWait
		q.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
		}
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			q.drop(q.dropShutdown, ReasonShutdown, batch[i:])
			return ErrQueueClosed
		}
		if err := ctx.Err(); err != nil {
			q.mu.Unlock()
			q.drop(q.dropShutdown, ReasonShutdown, batch[i:])
			return err
		}
	}
}

// PushControl queues a control event (a loss record). Control events are
// outside the limits and never dropped for room, and Pop returns them before
// ordinary events. After Close the event is counted as dropped ("shutdown").
// Safe for concurrent use.
func (q *Queue) PushControl(ev Event) {
	q.m.Received.Inc()
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		q.dropShutdown.Inc()
		return
	}
	q.ctrl = append(q.ctrl, ev)
	q.published(false)
	q.mu.Unlock()
}

// Pop appends up to max queued events to dst and returns it. It returns as
// soon as max events are queued, or maxDelay after it first saw an event
// (at once when maxDelay <= 0), or when the queue is full or closed. It
// returns io.EOF once the queue is closed and empty, and ctx.Err() when ctx
// ends first; in both cases no events are taken. Pop does not count Sent:
// the caller does, once it has passed the events on. Safe for concurrent use.
func (q *Queue) Pop(ctx context.Context, dst []Event, max int, maxDelay time.Duration) ([]Event, error) {
	return q.pop(ctx, dst, max, maxDelay, nil, nil)
}

// errWoken is pop's answer when wake fired before any event was taken.
var errWoken = errors.New("pop woken")

// pop is Pop that also returns errWoken, with no events taken, when wake
// fires (the worker's tick timer) or kick receives (an update) before a
// batch is ready; nil channels never fire.
func (q *Queue) pop(ctx context.Context, dst []Event, max int, maxDelay time.Duration, wake <-chan time.Time, kick <-chan struct{}) ([]Event, error) {
	if max < 1 {
		max = 1
	}
	if err := q.await(ctx, max, maxDelay, wake, kick, false); err != nil {
		return dst, err
	}
	dst = q.take(dst, max)
	q.mu.Unlock()
	return dst, nil
}

// popBatch is pop into a batch the caller owns once it returns: a queued
// segment handed over whole when it is the batch to return (the common
// case under load: the producer pushed batches of the size the consumer
// pops), else a new batch (NewBatch) the events are copied into. The
// caller gives it back with ReleaseBatch, or passes it on with pushBatch.
func (q *Queue) popBatch(ctx context.Context, max int, maxDelay time.Duration, wake <-chan time.Time, kick <-chan struct{}) ([]Event, error) {
	if max < 1 {
		max = 1
	}
	if err := q.await(ctx, max, maxDelay, wake, kick, true); err != nil {
		return nil, err
	}
	b := q.takeBatch(max)
	q.mu.Unlock()
	return b, nil
}

// await waits until a batch of up to max events may be taken: as soon as
// max events are queued, or maxDelay after the first one (at once when
// maxDelay <= 0), or when the queue is full or closed; with whole, also
// as soon as the first segment is a batch of its own (wholeBatch). It
// returns nil with q.mu held and an event queued, else an error (io.EOF,
// ctx.Err(), errWoken) with q.mu not held.
func (q *Queue) await(ctx context.Context, max int, maxDelay time.Duration, wake <-chan time.Time, kick <-chan struct{}, whole bool) error {
	var (
		timer   *time.Timer
		expired bool
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	q.mu.Lock()
	for {
		avail := len(q.ctrl) + q.n
		if avail > 0 && (avail >= max || maxDelay <= 0 || expired || q.closed || q.hitFull || whole && q.wholeBatch(max)) {
			return nil
		}
		if avail == 0 && q.closed {
			q.mu.Unlock()
			return io.EOF
		}
		if err := ctx.Err(); err != nil {
			q.mu.Unlock()
			return err
		}
		need := max
		if avail == 0 {
			need = 1
		} else if timer == nil {
			timer = time.NewTimer(maxDelay)
		}
		if q.popWait == nil {
			q.popWait = make(chan struct{})
			q.popNeed, q.popWhole = need, whole
		} else {
			q.popNeed = min(q.popNeed, need)
			q.popWhole = q.popWhole || whole
		}
		w := q.popWait
		q.mu.Unlock()
		var tc <-chan time.Time
		if timer != nil {
			tc = timer.C
		}
		select {
		case <-w:
		case <-ctx.Done():
		case <-tc:
			expired = true
		case <-wake:
			return errWoken
		case <-kick:
			return errWoken
		}
		q.mu.Lock()
	}
}

// Close stops the queue accepting events; Pop drains what is queued, then
// returns io.EOF. Producers blocked in Push return ErrQueueClosed. Close is
// idempotent and safe for concurrent use.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	q.wakePop()
	q.wakePush()
	q.mu.Unlock()
}

// SetConfig changes the queue's limits and policy (zero limits take the
// defaults). Events already queued stay, even beyond a lowered limit; room
// opens as they are taken. Safe for concurrent use.
func (q *Queue) SetConfig(cfg QueueConfig) {
	if cfg.validate() != nil {
		return // checked by the caller
	}
	cfg = cfg.withDefaults()
	q.mu.Lock()
	q.cfg = cfg
	q.wakePush()
	q.mu.Unlock()
}

// Fill returns the queued events and bytes and the limits, read at one
// moment. Safe for concurrent use.
func (q *Queue) Fill() (events, bytes int, cfg QueueConfig) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n + len(q.ctrl), q.bytes, q.cfg
}

// Len returns the number of queued events, control events included. Safe
// for concurrent use.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n + len(q.ctrl)
}

// discard empties the queue, counting every event as dropped for reason. The
// pipeline calls it when the grace period runs out. It returns how many
// events it dropped.
func (q *Queue) discard(reason string) int {
	ctr := q.m.Dropped(reason)
	var run lossRun
	q.mu.Lock()
	n := q.n + len(q.ctrl)
	clear(q.ctrl)
	q.ctrl = q.ctrl[:0]
	for q.n > 0 {
		ev := q.evict()
		run.add(q.loss, q.name, reason, &ev)
	}
	run.flush(q.loss, q.name, reason)
	q.published(false)
	q.wakePush()
	q.mu.Unlock()
	ctr.Add(uint64(n))
	return n
}

// drop counts evs as dropped by the queue for reason.
func (q *Queue) drop(ctr *Counter, reason string, evs []Event) {
	if len(evs) == 0 {
		return
	}
	ctr.Add(uint64(len(evs)))
	trackLoss(q.loss, q.name, reason, evs)
}

// room reports whether an event of size bytes fits. An event larger than
// MaxBytes is let into an empty queue, so that it cannot block forever.
func (q *Queue) room(size int) bool {
	return q.n < q.cfg.MaxEvents && (q.n == 0 || q.bytes+size <= q.cfg.MaxBytes)
}

// putWhileRoom queues a copy of the longest prefix of batch that fits and
// returns its length.
func (q *Queue) putWhileRoom(batch []Event) int {
	n, bytes := q.fitting(batch)
	q.appendCopy(batch[:n])
	q.n += n
	q.bytes = bytes
	return n
}

// fitting returns the length of the longest prefix of batch that fits,
// and the queue's bytes with it queued.
func (q *Queue) fitting(batch []Event) (n, bytes int) {
	bytes = q.bytes
	for n < len(batch) {
		size := batch[n].Size()
		if q.n+n >= q.cfg.MaxEvents || (q.n+n > 0 && bytes+size > q.cfg.MaxBytes) {
			break
		}
		bytes += size
		n++
	}
	return n, bytes
}

func (q *Queue) put(ev Event, size int) {
	q.appendCopy([]Event{ev})
	q.n++
	q.bytes += size
}

// appendCopy copies evs behind the queued events: into the room left in
// the last segment, then into new ones. It does not count them.
func (q *Queue) appendCopy(evs []Event) {
	for len(evs) > 0 {
		if q.front == len(q.segs) || q.segs[len(q.segs)-1].full() {
			q.segs = append(q.segs, segment{evs: NewBatch(len(evs))})
		}
		last := &q.segs[len(q.segs)-1]
		k := min(len(evs), cap(last.evs)-len(last.evs))
		last.evs = append(last.evs, evs[:k]...)
		evs = evs[k:]
	}
}

// segment is a run of queued events, evs[head:]. The queue owns all of
// evs's backing array, evs[:cap(evs)], and no one else refers to it: a
// batch pushed with pushBatch is the pusher's no more, and a segment
// handed out by popBatch is the queue's no more. So the room after
// len(evs) may take later pushes, and an empty segment's array goes back
// to the batch pool. Slots before head and after len(evs) are zero.
type segment struct {
	evs  []Event
	head int
}

func (s *segment) len() int   { return len(s.evs) - s.head }
func (s *segment) full() bool { return len(s.evs) == cap(s.evs) }

// dropFront removes the first segment, which is empty or handed out;
// release gives its array back to the batch pool.
func (q *Queue) dropFront(release bool) {
	if release {
		ReleaseBatch(q.segs[q.front].evs)
	}
	q.segs[q.front] = segment{}
	q.front++
	switch {
	case q.front == len(q.segs):
		q.segs, q.front = q.segs[:0], 0
	case q.front >= 16 && 2*q.front >= len(q.segs):
		k := copy(q.segs, q.segs[q.front:])
		clear(q.segs[k:])
		q.segs, q.front = q.segs[:k], 0
	}
}

func (q *Queue) evict() Event {
	s := &q.segs[q.front]
	ev := s.evs[s.head]
	s.evs[s.head] = Event{} // release Data for the GC
	s.head++
	q.n--
	q.bytes -= ev.Size()
	if s.len() == 0 {
		q.dropFront(true)
	}
	return ev
}

func (q *Queue) take(dst []Event, max int) []Event {
	k := min(max, len(q.ctrl))
	if k > 0 {
		dst = append(dst, q.ctrl[:k]...)
		rest := copy(q.ctrl, q.ctrl[k:])
		clear(q.ctrl[rest:])
		q.ctrl = q.ctrl[:rest]
	}
	for k < max && q.n > 0 {
		s := &q.segs[q.front]
		run := min(max-k, s.len())
		evs := s.evs[s.head : s.head+run]
		for i := range evs {
			q.bytes -= evs[i].Size()
		}
		dst = append(dst, evs...)
		clear(evs) // release Data for the GC
		s.head += run
		q.n -= run
		k += run
		if s.len() == 0 {
			q.dropFront(true)
		}
	}
	q.taken()
	return dst
}

// wholeBatch reports whether the first queued segment is a batch of its
// own for a consumer that takes up to max events: at least half of max,
// and no more. A reader pushes what it read in one poll as one segment:
// at a steady rate, waiting for the next to fill a batch of max would
// hold every event for a poll interval more at each queue. Called with
// q.mu held.
func (q *Queue) wholeBatch(max int) bool {
	if len(q.ctrl) > 0 || q.n == 0 {
		return false
	}
	l := q.segs[q.front].len()
	return l <= max && 2*l >= max
}

// takeBatch takes up to max events into a batch the caller owns: the
// first segment itself when it holds at least half of what a take would
// return (and no more than max), else a copy of the queued control events
// and of the segments that fit, cutting only a short one. A
// reader that found its ring empty pushes a short batch, so segments come
// in all sizes; waiting to copy them into one full batch would cost the
// copies this spares. Called with q.mu held and an event queued.
func (q *Queue) takeBatch(max int) []Event {
	if len(q.ctrl) == 0 && q.n > 0 {
		s := &q.segs[q.front]
		if l := s.len(); l <= max && 2*l >= min(max, q.n) {
			evs := s.evs[s.head:]
			for i := range evs {
				q.bytes -= evs[i].Size()
			}
			q.n -= l
			q.dropFront(false)
			q.taken()
			return evs
		}
	}
	// Copy whole segments, as many as fit, and cut only a short one to
	// fill the batch: cutting a segment of half a batch or more would
	// leave its remainder at the front, and every later take would then
	// copy and cut again (a loss record taken with 255 events was enough
	// to make a sink's queue copy every batch from then on).
	k := min(max, len(q.ctrl))
	for i := q.front; i < len(q.segs); i++ {
		l := q.segs[i].len()
		if k+l <= max {
			k += l
			continue
		}
		if k == 0 || 2*l < max {
			k = max // the first segment alone is larger than max, or a short one fills the batch
		}
		break
	}
	return q.take(NewBatch(k), k)
}

// pushBatch is Push of a batch the queue takes over: the caller must not
// touch batch, nor the rest of its backing array, once it is called. The
// batch becomes a segment of its own when all of it fits at once under
// Block (the common case); else its events are pushed as Push does and
// the batch goes back to the pool. It counts as Push does.
func (q *Queue) pushBatch(ctx context.Context, batch []Event) error {
	if len(batch) == 0 {
		ReleaseBatch(batch)
		return nil
	}
	q.m.Received.Add(uint64(len(batch)))
	q.mu.Lock()
	if !q.closed && q.cfg.Policy == Block {
		if n, bytes := q.fitting(batch); n == len(batch) {
			q.segs = append(q.segs, segment{evs: batch})
			q.n += n
			q.bytes = bytes
			q.published(false)
			q.mu.Unlock()
			return nil
		}
	}
	q.mu.Unlock()
	err := q.push(ctx, batch)
	ReleaseBatch(batch)
	return err
}

// taken updates the state after a take. Called with q.mu held.
func (q *Queue) taken() {
	q.hitFull = false
	q.showGauges()
	q.wakePush()
}

// showGauges adds this queue's change since the last call to the gauges.
// Called with q.mu held.
func (q *Queue) showGauges() {
	depth, bytes := int64(q.n+len(q.ctrl)), int64(q.bytes)
	q.depth.Add(depth - q.shownDepth)
	q.memory.Add(bytes - q.shownBytes)
	q.shownDepth, q.shownBytes = depth, bytes
}

// published updates the gauges after a push and wakes a consumer when it has
// what it waits for, or when the queue is full (full signals that waiting for
// a larger batch would only cause drops or blocking).
func (q *Queue) published(full bool) {
	if full {
		q.hitFull = true
	}
	q.showGauges()
	if q.popWait != nil && (q.hitFull || q.n+len(q.ctrl) >= q.popNeed || q.popWhole && q.wholeBatch(q.popNeed)) {
		q.wakePop()
	}
}

func (q *Queue) wakePop() {
	if q.popWait != nil {
		close(q.popWait)
		q.popWait = nil
	}
}

func (q *Queue) wakePush() {
	if q.pushWait != nil {
		close(q.pushWait)
		q.pushWait = nil
	}
}

// The batch pool recycles the arrays of batches that move through the
// pipeline: a reader fills one (NewBatch) and hands it over (BatchEmitter),
// the queues pass it on whole, and the sink's writer gives it back
// (ReleaseBatch) once the sink has written it. It holds at most
// batchPoolSize empty arrays of at most maxPooledBatch events: 32 arrays
// of the default 256 events are 512 KiB.
const (
	batchPoolSize  = 32
	maxPooledBatch = 4096
)

var batchPool = make(chan []Event, batchPoolSize)

// NewBatch returns an empty batch with room for at least n events, from
// the batch pool when it holds one that large. Safe for concurrent use.
func NewBatch(n int) []Event {
	select {
	case b := <-batchPool:
		if cap(b) >= n {
			return b
		}
	default:
	}
	return make([]Event, 0, max(n, DefaultBatchSize))
}

// ReleaseBatch gives the array of b back to the batch pool. The caller
// must own all of it (b[:cap(b)]): it came from NewBatch or popBatch and
// nothing else refers to it, nor to its events' slots (the events
// themselves, copied out by value, stay valid: their Data is not touched).
// Safe for concurrent use.
func ReleaseBatch(b []Event) {
	if cap(b) == 0 || cap(b) > maxPooledBatch {
		return
	}
	b = b[:cap(b)]
	clear(b) // the pool must not keep events' Data alive
	select {
	case batchPool <- b[:0]:
	default:
	}
}
