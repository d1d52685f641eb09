package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
)

// TestRanges checks that the ranges the agent reports against cover exactly
// the text they are meant to.
func TestRanges(t *testing.T) {
	src := []byte(`agent { name = "n" }
source "gadget" "exec" {
  gadget      = "trace_exec"
  params      = { ignore_failed = true, "max-args" = 20 }
  event_type  = "event"
  map         = "rb"
  buffer_size = "1MiB"
}
sink "stdout" "console" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [ sink.stdout.console ]
}
`)
	f, diags := Parse("ranges.hcl", src)
	if len(diags) != 0 {
		t.Fatalf("unexpected diagnostics: %v", diags)
	}
	text := func(r hcl.Range) string {
		if r.Filename != "ranges.hcl" {
			return "<range in " + r.Filename + ">"
		}
		return string(src[r.Start.Byte:r.End.Byte])
	}
	s := f.Sources[0]
	p := f.Pipelines[0]
	got := map[string]string{
		"agent.DefRange":           text(f.Agent.DefRange),
		"source.DefRange":          text(s.DefRange),
		"source.GadgetRange":       text(s.GadgetRange),
		"source.EventTypeRange":    text(s.EventTypeRange),
		"source.MapRange":          text(s.MapRange),
		"source.BufferSizeRange":   text(s.BufferSizeRange),
		"param[0].NameRange":       text(s.Params[0].NameRange),
		"param[0].Range":           text(s.Params[0].Range),
		"param[1].NameRange":       text(s.Params[1].NameRange),
		"param[1].Range":           text(s.Params[1].Range),
		"sink.DefRange":            text(f.Sinks[0].DefRange),
		"pipeline.DefRange":        text(p.DefRange),
		"pipeline.Sources[0]Range": text(p.Sources[0].Range),
		"pipeline.Sinks[0]Range":   text(p.Sinks[0].Range),
	}
	want := map[string]string{
		"agent.DefRange":           "agent",
		"source.DefRange":          `source "gadget" "exec"`,
		"source.GadgetRange":       `"trace_exec"`,
		"source.EventTypeRange":    `"event"`,
		"source.MapRange":          `"rb"`,
		"source.BufferSizeRange":   `"1MiB"`,
		"param[0].NameRange":       "ignore_failed",
		"param[0].Range":           "true",
		"param[1].NameRange":       `"max-args"`,
		"param[1].Range":           "20",
		"sink.DefRange":            `sink "stdout" "console"`,
		"pipeline.DefRange":        `pipeline "p"`,
		"pipeline.Sources[0]Range": "source.gadget.exec",
		"pipeline.Sinks[0]Range":   "sink.stdout.console",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("range texts (-want +got):\n%s", diff)
	}
	if s.Params[1].Name != "max-args" {
		t.Errorf("quoted param key: got name %q, want %q", s.Params[1].Name, "max-args")
	}
}

func TestLookups(t *testing.T) {
	f, diags := ParseDefault()
	if diags.HasErrors() {
		t.Fatalf("default config: %v", diags)
	}
	tests := []struct {
		ref        Reference
		wantSource string // Ref of the source found, "" for nil
		wantSink   string
	}{
		{Reference{Kind: KindSource, Type: "gadget", Name: "exec"}, "source.gadget.exec", ""},
		{Reference{Kind: KindSink, Type: "stdout", Name: "console"}, "", "sink.stdout.console"},
		{Reference{Kind: KindSource, Type: "gadget", Name: "nope"}, "", ""},
		// The kind must match: a sink reference never finds a source.
		{Reference{Kind: KindSink, Type: "gadget", Name: "exec"}, "", ""},
		{Reference{Kind: KindSource, Type: "stdout", Name: "console"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.ref.String(), func(t *testing.T) {
			var gotSource, gotSink string
			if s := f.Source(tt.ref); s != nil {
				gotSource = s.Ref
			}
			if s := f.Sink(tt.ref); s != nil {
				gotSink = s.Ref
			}
			if gotSource != tt.wantSource || gotSink != tt.wantSink {
				t.Errorf("Source/Sink(%v) = %q/%q, want %q/%q", tt.ref, gotSource, gotSink, tt.wantSource, tt.wantSink)
			}
		})
	}
}

func TestDefault(t *testing.T) {
	p := NewParser()
	f, diags := p.ParseDefault()
	if len(diags) != 0 {
		var buf bytes.Buffer
		_ = p.WriteDiagnostics(&buf, diags, false)
		t.Fatalf("default config has diagnostics:\n%s", buf.String())
	}
	var gadgets []string
	for _, s := range f.Sources {
		gadgets = append(gadgets, s.Gadget)
	}
	wantGadgets := []string{"trace_exec", "trace_tcp", "trace_bind", "trace_mount", "trace_setuid", "trace_bpf", "trace_signal"}
	if diff := cmp.Diff(wantGadgets, gadgets); diff != "" {
		t.Errorf("default gadgets (-want +got):\n%s", diff)
	}
	if len(f.Pipelines) != 1 {
		t.Fatalf("default config has %d pipelines, want 1", len(f.Pipelines))
	}
	pl := f.Pipelines[0]
	if len(pl.Sources) != len(f.Sources) {
		t.Errorf("default pipeline lists %d of %d sources", len(pl.Sources), len(f.Sources))
	}
	if len(pl.Sinks) != 2 {
		t.Fatalf("default pipeline has %d sinks, want 2", len(pl.Sinks))
	}
	sink := f.Sink(pl.Sinks[0])
	if sink == nil || sink.Stdout == nil || sink.Stdout.Format != "table" {
		t.Errorf("default sink = %+v, want a stdout sink with format table", sink)
	}
	bus := f.Sink(pl.Sinks[1])
	if bus == nil || bus.NATS == nil || bus.NATS.JetStream == nil || f.Agent.NATSServer == nil || !f.Agent.NATSServer.JetStream {
		t.Errorf("default bus = %+v, want a JetStream sink on the embedded server", bus)
	}
	if pl.Queue.WhenFull != "drop_oldest" {
		t.Errorf("default when_full = %q, want drop_oldest", pl.Queue.WhenFull)
	}
	// The default masks secrets in command lines. It no longer adds user
	// names: the decoder's user says the same, and the table showed
	// both side by side.
	if len(pl.Stages) != 1 {
		t.Fatalf("default pipeline has %d stages, want 1", len(pl.Stages))
	}
	st := f.Stage(pl.Stages[0])
	if st == nil || st.Wasm == nil || st.Wasm.Module != "redact" {
		t.Fatalf("default stage = %+v, want the built-in redact", st)
	}
	if !f.Agent.FilterSelf || !f.Agent.Containers.Enabled {
		t.Errorf("default filter_self %v, containers %v; want the agent's own events out and container identity on", f.Agent.FilterSelf, f.Agent.Containers.Enabled)
	}
	if f.Sources[0].DefRange.Filename != DefaultFilename {
		t.Errorf("default ranges name file %q, want %q", f.Sources[0].DefRange.Filename, DefaultFilename)
	}
}

// TestParseFileRelativeFile checks that file() reads relative to the config
// file's directory, not the process's working directory.
func TestParseFileRelativeFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "name.txt"), []byte("node-from-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sluice.hcl")
	src := `agent { name = trimspace(file("name.txt")) }` + minimalPipeline
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	f, diags := NewParser().ParseFile(cfg)
	if diags.HasErrors() {
		t.Fatalf("unexpected errors: %v", diags)
	}
	if f.Agent.Name != "node-from-file" {
		t.Errorf("agent name = %q, want %q", f.Agent.Name, "node-from-file")
	}
}

func TestParseFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.hcl")
	f, diags := NewParser().ParseFile(path)
	if !diags.HasErrors() {
		t.Fatal("ParseFile of a missing file returned no error")
	}
	if f == nil {
		t.Error("ParseFile returned a nil File")
	}
	if !strings.Contains(diags[0].Detail, path) {
		t.Errorf("diagnostic detail %q does not name the path", diags[0].Detail)
	}
}

// TestParserReplacesSameName checks that parsing new source under a name
// already used renders diagnostics against the new text, not a cached one.
func TestParserReplacesSameName(t *testing.T) {
	p := NewParser()
	if _, diags := p.ParseSource("x.hcl", []byte(`agent { name = "first" }`+minimalPipeline)); diags.HasErrors() {
		t.Fatalf("first parse: %v", diags)
	}
	f, diags := p.ParseSource("x.hcl", []byte(`agent { name = "second_text" }`+minimalPipeline))
	if diags.HasErrors() {
		t.Fatalf("second parse: %v", diags)
	}
	if f.Agent.Name != "second_text" {
		t.Errorf("agent name = %q, want second_text", f.Agent.Name)
	}
	_, diags = p.ParseSource("x.hcl", []byte(`agent { log_level = "loud" }`))
	var buf bytes.Buffer
	if err := p.WriteDiagnostics(&buf, diags, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `log_level = "loud"`) {
		t.Errorf("snippet does not show the latest source:\n%s", buf.String())
	}
}

func TestWriteDiagnosticsColor(t *testing.T) {
	p := NewParser()
	_, diags := p.ParseSource("c.hcl", []byte(`agent { log_level = "loud" }`))
	if !diags.HasErrors() {
		t.Fatal("expected an error")
	}
	var plain, color bytes.Buffer
	if err := p.WriteDiagnostics(&plain, diags, false); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteDiagnostics(&color, diags, true); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), "\x1b[") {
		t.Errorf("plain output has escape sequences:\n%q", plain.String())
	}
	if !strings.Contains(color.String(), "\x1b[") {
		t.Errorf("color output has no escape sequences:\n%q", color.String())
	}
	if !strings.HasPrefix(plain.String(), "c.hcl:1:21: Error: ") {
		t.Errorf("plain output does not start with file:line:col: %q", plain.String())
	}
}

func TestComponentTypes(t *testing.T) {
	if diff := cmp.Diff([]string{"gadget", "wasm_bpf"}, SourceTypes()); diff != "" {
		t.Errorf("SourceTypes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"file", "nats", "null", "stdout"}, SinkTypes()); diff != "" {
		t.Errorf("SinkTypes (-want +got):\n%s", diff)
	}
}

// minimalPipeline completes a config snippet: a config without a pipeline
// has nothing to run and is an error.
const minimalPipeline = `
source "gadget" "exec" { gadget = "trace_exec" }
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
}
`
