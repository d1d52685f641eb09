// Package pipeline is sluice's runtime between eBPF sources and sinks: it
// owns the bounded queues, the batching, the stage worker, the fan-out to one
// queue per sink, the metrics registry, the loss records and the shutdown
// order, and it knows the components it runs only through the Source, Stage
// and Sink interfaces.
//
// Ownership and concurrency: a Pipeline owns every goroutine it starts (one
// per source, one stage worker, one writer per sink and per dead-letter
// sink, one loss ticker) and waits for all of them before Run returns; none
// outlives Run. The worker calls the stages, in the order of Spec.Stages,
// from that one goroutine, and also their timers (Ticker) between batches. Sources run on
// the caller's context; the worker and the writers run on a context detached
// from it, so that cancelling Run's context stops the sources and lets the
// rest drain for the grace period. Events are values: a queue copies the
// Event, and Event.Data is shared read-only by every sink it fans out to.
// Queue, Registry, ComponentMetrics, Counter, Gauge and LossTracker are safe
// for concurrent use; Pipeline.Run is called once.
//
// Nothing is dropped silently. Every component counts Received, Sent, Errors
// and Dropped by reason, and received = sent + dropped holds for each once Run
// has returned. Dropped events (other than those a stage filters on purpose)
// are also aggregated by a LossTracker and enter the stream as loss records
// (Kind == KindLoss) every LossInterval and once at shutdown.
//
// A failed stage call is counted by kind (StageError) and its input batch
// follows the stage's ErrorPolicy: passed on, dropped (a loss), or routed to
// a dead-letter sink.
//
// Errors: Push returns ErrQueueClosed after Close and ctx.Err() when a
// blocking push is cancelled; Pop returns io.EOF once a closed queue is
// drained. Run returns the joined errors of failed sources and of Stage.Close
// and Sink.Close; failed sink writes and stage calls are counted, not
// returned.
package pipeline
