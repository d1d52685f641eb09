// Package sinks holds the destinations events leave sluice through.
//
// Every sink implements pipeline.Sink; its Write may be called from several
// pipelines' writer goroutines at once, so each sink serialises its own
// output. Sinks pass an event's encoded Data through, or transcode it, and
// never decode and re-encode an event just to write it.
package sinks
