package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sources"
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
			opts.JetStream = &sinks.JetStreamOptions{Stream: js.Stream, Create: js.Create, Subjects: js.Subjects, MaxAge: js.MaxAge,
				DuplicateWindow: js.DuplicateWindow, MaxPending: js.MaxPending, AckTimeout: js.AckTimeout}
		}
		if b := n.Batch; b != nil {
			opts.BatchMaxEvents, opts.BatchMaxBytes, opts.BatchMaxDelay = b.MaxEvents, int(b.MaxBytes), b.MaxDelay
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

var _ pipeline.BatchingSink = (*lazyNATS)(nil)

func (l *lazyNATS) Name() string { return l.name }

func (l *lazyNATS) WriteBatch() (int, time.Duration) { return l.opts.WriteBatch() }

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

// WriteBatch passes on the batch size the shared sink asks for, if any.
func (s *sharedSink) WriteBatch() (int, time.Duration) {
	if b, ok := s.Sink.(pipeline.BatchingSink); ok {
		return b.WriteBatch()
	}
	return 0, 0
}

// sinkSchemas maps each sink's reference to the schemas of the streams that
// feed it.
func sinkSchemas(cfg *config.File, schemas func(*config.Source) []*pipeline.Schema) map[string][]*pipeline.Schema {
	out := map[string][]*pipeline.Schema{}
	for _, p := range cfg.Pipelines {
		for _, sref := range p.Sinks {
			for _, ref := range p.Sources {
				if src := cfg.Source(ref); src != nil {
					out[sref.String()] = append(out[sref.String()], schemas(src)...)
				}
			}
		}
	}
	return out
}

// validateSinks checks, without privileges, what sinks need from the
// gadgets: the fields their subject templates name.
func validateSinks(cfg *config.File, resolved []*resolvedGadget) hcl.Diagnostics {
	bySource := map[*config.Source][]*pipeline.Schema{}
	for _, r := range resolved {
		g, err := sources.NewGadget(r.spec, sources.GadgetConfig{Source: r.source.Name, Host: cfg.Agent.Name, Params: r.params})
		if err != nil {
			continue // reported when the agent builds it
		}
		bySource[r.source] = g.Schemas()
	}
	return validateSubjects(cfg, sinkSchemas(cfg, func(src *config.Source) []*pipeline.Schema { return bySource[src] }))
}

var envelopeKeys = map[string]bool{"time": true, "host": true, "source": true, "gadget": true, "seq": true}

// validateSubjects checks every NATS subject template: its syntax, and that
// every field it names is an envelope key or a field of every stream
// feeding the sink. The diagnostics point at the subject attribute.
func validateSubjects(cfg *config.File, schemasBySink map[string][]*pipeline.Schema) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, s := range cfg.Sinks {
		if s.NATS == nil {
			continue
		}
		subject := rangePtr(s.NATS.SubjectRange)
		if subject == nil {
			subject = rangePtr(s.DefRange)
		}
		tmpl, err := sinks.ParseSubject(s.NATS.Subject)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid subject template",
				Detail: fmt.Sprintf("sink %q: %v.", s.Name, err), Subject: subject})
			continue
		}
		for _, f := range tmpl.Fields() {
			if envelopeKeys[f] {
				continue
			}
			for _, sc := range schemasBySink[s.Ref] {
				if !schemaHas(sc, f) {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown field in subject template",
						Detail: fmt.Sprintf("Subject field {%s} is not a field of gadget %s, which feeds sink %q; use an envelope key (time, host, source, gadget, seq) or one of the gadget's fields: %s.",
							f, sc.Gadget, s.Name, fieldNames(sc)),
						Subject: subject})
					break
				}
			}
		}
	}
	return diags
}

func fieldNames(sc *pipeline.Schema) string {
	var names []string
	for _, f := range sc.Fields {
		if !envelopeKeys[f.Name] {
			names = append(names, f.Name)
		}
	}
	return strings.Join(names, ", ")
}

func schemaHas(sc *pipeline.Schema, name string) bool {
	for _, f := range sc.Fields {
		if f.Name == name {
			return true
		}
	}
	return false
}
