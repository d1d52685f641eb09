package sinks

import (
	"context"

	"github.com/sluice-dev/sluice/pipeline"
)

// Null discards every event it is given; the pipeline counts them as sent.
// It measures a pipeline without a destination's cost (make bench) and lets
// a config be tried without one. It is safe for concurrent use.
type Null struct{ name string }

var _ pipeline.Sink = (*Null)(nil)

// NewNull returns a sink that discards its events.
func NewNull(name string) *Null { return &Null{name: name} }

// Name returns the sink's config name.
func (s *Null) Name() string { return s.name }

// Write discards batch.
func (s *Null) Write(context.Context, []pipeline.Event) error { return nil }

// Close does nothing: nothing is buffered.
func (s *Null) Close(context.Context) error { return nil }
