// Package sinks holds the destinations events leave sluice through: NATS
// (core and JetStream, with an on-disk spool), local files and stdout.
//
// Every sink implements pipeline.Sink; its Write may be called from several
// pipelines' writer goroutines at once, so each sink serialises its own
// output, and every exported method says whether it is safe for concurrent
// use. Sinks pass an event's encoded Data through, or transcode it, and
// never decode and re-encode an event just to write it.
//
// Ownership: a sink owns the goroutines it starts (the NATS spool replayer;
// the file sink's fsync and rotation ticker and its compression and
// retention janitor; the stdout sink's writer) and stops them in Close,
// which also flushes and releases the connection, file or spool lock.
// Close honours its context: a server or reader that stopped reading
// cannot hold it past the deadline. Nothing outlives Close except what is
// on disk (a spool, the files), and a stdout write still blocked on a
// reader that never reads (it cannot be interrupted; Close says so).
//
// Errors: a Write that lost some events of its batch returns a
// *pipeline.WriteLoss naming exactly those events and a drop reason
// (ReasonSpoolFull, ReasonTooLarge, ReasonRejected, ReasonEncodeError,
// ReasonDiskFull, ReasonWriteError, or the pipeline's sink_error and
// shutdown); the rest of the batch was delivered, or spooled. Events a sink
// accepted and lost later (a spool segment deleted to make room, damaged
// records, messages the server refuses at replay) are counted in the sink's
// own metrics and reported by a loss record the NATS sink queues behind
// them. Constructors fail on bad options (an unknown encoding, a subject
// template that cannot render a deliverable subject, a malformed path
// pattern, an unreadable credential), on a spool directory another process
// holds (ErrSpoolLocked), and on a server that refuses the connection; a
// NATS sink with a spool starts even while its server is unreachable, and
// says so (log, sluice_sink_connected, Health).
package sinks
