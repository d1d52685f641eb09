package agent

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sinks"
)

// natsOptions turns a NATS sink's config into options, without the
// agent's logger and metrics.
func natsOptions(s *config.Sink, cfg *config.File) sinks.NATSOptions {
	n := s.NATS
	opts := sinks.NATSOptions{
		URL: n.URL, Subject: n.Subject, Encoding: n.Encoding,
		User: n.User, Password: n.Password, Token: n.Token, NKeySeedFile: n.NKeySeedFile, CredsFile: n.CredsFile,
		CAFile: n.CAFile, CertFile: n.CertFile, KeyFile: n.KeyFile,
		Host: cfg.Agent.Name,
	}
	if seed := embeddedNATSAuth(cfg, n); seed != "" {
		opts.NKeySeedFile = seed // the embedded server's agent user
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
	return opts
}

// fileOptions turns a file sink's config into options; a relative path is
// taken from the data directory.
func fileOptions(f *config.FileSink, dataDir string) sinks.FileOptions {
	path := f.Path
	if !filepath.IsAbs(path) {
		path = filepath.Join(dataDir, path)
	}
	return sinks.FileOptions{
		Path: path, Format: f.Format,
		MaxSize: f.Rotate.MaxSize, MaxAge: f.Rotate.MaxAge,
		KeepFiles: f.Retention.MaxFiles, RetainFor: f.Retention.MaxAge,
		Compress: f.Compress == "gzip",
		Fsync:    f.Fsync, FsyncInterval: f.FsyncInterval,
	}
}

// DropReasons passes on the shared sink's (pipeline.DropReasonsReporter).
func (s *sharedSink) DropReasons() []string {
	if dr, ok := s.Sink.(pipeline.DropReasonsReporter); ok {
		return dr.DropReasons()
	}
	return nil
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

// validateSinks checks sink settings without privileges, including what
// sinks need from the gadgets: the fields their subject templates name.
func validateSinks(cfg *config.File, resolved []*resolvedGadget, apps []*resolvedApp) hcl.Diagnostics {
	bySource := map[*config.Source][]*pipeline.Schema{}
	for _, r := range resolved {
		bySource[r.source] = r.gadget.Schemas()
	}
	for _, r := range apps {
		bySource[r.source] = r.schemas
	}
	return validateSinkSettings(cfg, sinkSchemas(cfg, func(src *config.Source) []*pipeline.Schema { return bySource[src] }))
}

// envelopeKeys are the keys every event carries, whatever its gadget.
var envelopeKeys = []string{"time", "host", "source", "gadget", "seq"}

// validateSinkSettings checks what the config package cannot: every file
// sink's path pattern, and every NATS subject template (its syntax, and
// that every field it names is an envelope key or a field of every stream
// feeding the sink). The diagnostics point at the attribute.
func validateSinkSettings(cfg *config.File, schemasBySink map[string][]*pipeline.Schema) hcl.Diagnostics {
	var diags hcl.Diagnostics
	// Stages may add fields (uid-to-user adds user) or reshape events
	// entirely (ocsf), so behind a stage a field the gadget lacks is only
	// suspicious, not wrong.
	staged := map[string]string{}
	for _, p := range cfg.Pipelines {
		if len(p.Stages) == 0 {
			continue
		}
		for _, sref := range p.Sinks {
			staged[sref.String()] = p.Name
		}
	}
	for _, s := range cfg.Sinks {
		if s.File != nil {
			if _, err := sinks.ParseFilePattern(fileOptions(s.File, cfg.Agent.DataDir).Path); err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid file path",
					Detail: fmt.Sprintf("sink %q: %v.", s.Name, err), Subject: rangePtr(s.File.PathRange)})
			}
		}
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
			if slices.Contains(envelopeKeys, f) {
				continue
			}
			if workloadField(f) && cfg.Agent.Containers.Enabled {
				continue // added by the container stage; "_" for host events
			}
			// The first stream feeding the sink that lacks the field.
			schemas := schemasBySink[s.Ref]
			i := slices.IndexFunc(schemas, func(sc *pipeline.Schema) bool { return !sc.HasField(f) })
			if i < 0 {
				continue
			}
			sc := schemas[i]
			fields := gadgetFields(sc)
			hint := ""
			if c := closest(f, slices.Concat(fields, envelopeKeys)); c != "" {
				hint = fmt.Sprintf(" Did you mean {%s}?", c)
			}
			if pl, ok := staged[s.Ref]; ok {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Subject field not produced by the gadget",
					Detail: fmt.Sprintf("Subject field {%s} is not a field of gadget %s, which feeds sink %q through the stages of pipeline %q; unless a stage adds it, events publish \"_\" in its place. The gadget's fields: %s.%s",
						f, sc.Gadget, s.Name, pl, strings.Join(fields, ", "), hint),
					Subject: subject})
				continue
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown field in subject template",
				Detail: fmt.Sprintf("Subject field {%s} is not a field of gadget %s, which feeds sink %q; use an envelope key (time, host, source, gadget, seq) or one of the gadget's fields: %s.%s",
					f, sc.Gadget, s.Name, strings.Join(fields, ", "), hint),
				Subject: subject})
		}
	}
	return diags
}

// gadgetFields names the fields of sc beyond the envelope.
func gadgetFields(sc *pipeline.Schema) []string {
	var names []string
	for _, f := range sc.Fields {
		if !slices.Contains(envelopeKeys, f.Name) {
			names = append(names, f.Name)
		}
	}
	return names
}
