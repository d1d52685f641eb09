package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sinks"
)

// openableSink is a sink that connects when the agent starts rather than
// when it is built (the embedded NATS server starts first).
type openableSink interface {
	pipeline.Sink
	Open(ctx context.Context) error
}

func newSink(s *config.Sink, stdout io.Writer, schemas []*pipeline.Schema, cfg *config.File, reg *pipeline.Registry, log *slog.Logger) (pipeline.Sink, error) {
	switch s.Type {
	case "stdout":
		return sinks.NewStdout(s.Name, stdout, sinks.StdoutOptions{Format: s.Stdout.Format, Schemas: schemas})
	case "nats":
		n := s.NATS
		if _, err := sinks.ParseSubject(n.Subject); err != nil {
			return nil, err
		}
		opts := sinks.NATSOptions{
			URL: n.URL, Subject: n.Subject, Encoding: n.Encoding,
			User: n.User, Password: n.Password, Token: n.Token, NKeySeedFile: n.NKeySeedFile, CredsFile: n.CredsFile,
			CAFile: n.CAFile, CertFile: n.CertFile, KeyFile: n.KeyFile,
			Host: cfg.Agent.Name, Logger: log, Metrics: reg,
		}
		if n.Spool.Enabled {
			opts.SpoolDir = filepath.Join(cfg.Agent.DataDir, "spool", s.Name)
			opts.SpoolMaxBytes = n.Spool.MaxBytes
			opts.SpoolDropOldest = n.Spool.WhenFull == "drop_oldest"
		}
		if js := n.JetStream; js != nil {
			opts.JetStream = &sinks.JetStreamOptions{Stream: js.Stream, Create: js.Create, Subjects: js.Subjects, MaxAge: js.MaxAge, MaxPending: js.MaxPending, AckTimeout: js.AckTimeout}
		}
		return &lazyNATS{name: s.Name, opts: opts}, nil
	}
	return nil, fmt.Errorf("sink type %q is not supported by this agent", s.Type)
}

// lazyNATS connects in Open; until then it only has a name.
type lazyNATS struct {
	name string
	opts sinks.NATSOptions
	sink *sinks.NATS
}

func (l *lazyNATS) Name() string { return l.name }

func (l *lazyNATS) Open(ctx context.Context) error {
	s, err := sinks.NewNATS(ctx, l.name, l.opts)
	if err != nil {
		return err
	}
	l.sink = s
	return nil
}

func (l *lazyNATS) Write(ctx context.Context, batch []pipeline.Event) error {
	if l.sink == nil {
		return errors.New("nats sink used before it was opened")
	}
	return l.sink.Write(ctx, batch)
}

func (l *lazyNATS) Close(ctx context.Context) error {
	if l.sink == nil {
		return nil
	}
	return l.sink.Close(ctx)
}

// validateSubjects checks that every field a NATS subject template names is
// an envelope key or a field of every stream feeding the sink.
func validateSubjects(cfg *config.File, schemasBySink map[string][]*pipeline.Schema) error {
	envelope := map[string]bool{"time": true, "host": true, "source": true, "gadget": true, "seq": true}
	for _, s := range cfg.Sinks {
		if s.NATS == nil {
			continue
		}
		tmpl, err := sinks.ParseSubject(s.NATS.Subject)
		if err != nil {
			return fmt.Errorf("sink %q: %w", s.Name, err)
		}
		for _, f := range tmpl.Fields() {
			if envelope[f] {
				continue
			}
			for _, sc := range schemasBySink[s.Ref] {
				if !schemaHas(sc, f) {
					return fmt.Errorf("sink %q: subject field {%s} is not a field of gadget %s (envelope keys: time, host, source, gadget, seq)", s.Name, f, sc.Gadget)
				}
			}
		}
	}
	return nil
}

func schemaHas(sc *pipeline.Schema, name string) bool {
	for _, f := range sc.Fields {
		if f.Name == name {
			return true
		}
	}
	return false
}
