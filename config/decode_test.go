package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/pipeline"
)

// ignoreRanges drops hcl.Range fields from comparisons where they are noise;
// TestRanges checks the ones the agent relies on.
var ignoreRanges = cmpopts.IgnoreTypes(hcl.Range{})

func mustHostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatalf("hostname: %v", err)
	}
	return h
}

func defaultAgent(name string) Agent {
	return Agent{
		Name:               name,
		DataDir:            DefaultDataDir,
		ControlSocket:      DefaultDataDir + "/" + DefaultControlSocketName,
		LogLevel:           DefaultLogLevel,
		LogFormat:          DefaultLogFormat,
		ShutdownGrace:      DefaultShutdownGrace,
		LossReportInterval: DefaultLossReportInterval,
		GCPercent:          DefaultGCPercent,
		Containers:         Containers{Enabled: true},
		FilterSelf:         true,
	}
}

func defaultQueue() Queue {
	return Queue{MaxEvents: DefaultQueueMaxEvents, MaxBytes: DefaultQueueMaxBytes, WhenFull: DefaultWhenFull}
}

func defaultBatch() Batch {
	return Batch{MaxEvents: DefaultBatchMaxEvents, MaxDelay: DefaultBatchMaxDelay}
}

func TestDecode(t *testing.T) {
	t.Setenv("SLUICE_TEST_NODE", "node-from-env")
	host := mustHostname(t)

	tests := []struct {
		name string
		src  string
		want *File
	}{
		{
			name: "minimal config gets every default",
			src: `
source "gadget" "exec" { gadget = "trace_exec" }
sink "stdout" "console" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
}`,
			want: &File{
				Agent: defaultAgent(host),
				Sources: []*Source{{
					Type: "gadget", Name: "exec", Ref: "source.gadget.exec", Gadget: "trace_exec",
				}},
				Sinks: []*Sink{{
					Type: "stdout", Name: "console", Ref: "sink.stdout.console",
					Stdout: &StdoutSink{Format: "json"},
				}},
				Pipelines: []*Pipeline{{
					Name:    "p",
					Sources: []Reference{{Kind: "source", Type: "gadget", Name: "exec"}},
					Sinks:   []Reference{{Kind: "sink", Type: "stdout", Name: "console"}},
					Queue:   defaultQueue(),
					Batch:   defaultBatch(),
				}},
			},
		},
		{
			name: "every attribute set",
			src: `
agent {
  name                 = "node-a"
  data_dir             = "/tmp/sluice"
  metrics_listen       = "127.0.0.1:9464"
  control_socket       = "/run/sluice/control.sock"
  log_level            = "debug"
  log_format           = "json"
  shutdown_grace       = "1m30s"
  loss_report_interval = "1d"
  gc_percent           = 25
  max_procs            = 2
  memory_limit         = "48MiB"
}
source "gadget" "exec" {
  gadget      = "./exec.bpf.o"
  params      = { ignore_failed = true, max_args = 20, comm = "sh", ratio = 0.5 }
  event_type  = "event"
  map         = "rb"
  buffer_size = "8MiB"
  interval    = "10s"
  runs        = 3
  ifaces      = ["veth0", "eth1"]
  netns       = ["/run/netns/blue"]
  sample_frequency = 99
}
sink "stdout" "console" {
  format   = "table"
  sort     = "-bytes,pid"
  max_rows = 20
}
pipeline "security" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
  queue {
    max_events = 100
    max_bytes  = 65536
    when_full  = "drop_newest"
  }
  batch {
    max_events = 10
    max_delay  = "5ms"
  }
}`,
			want: &File{
				Agent: Agent{
					Name: "node-a", DataDir: "/tmp/sluice", MetricsListen: "127.0.0.1:9464",
					ControlSocket: "/run/sluice/control.sock",
					LogLevel:      "debug", LogFormat: "json",
					ShutdownGrace: 90 * time.Second, LossReportInterval: 24 * time.Hour,
					GCPercent: 25, MaxProcs: 2, MemoryLimit: 48 << 20,
					Containers: Containers{Enabled: true}, FilterSelf: true,
				},
				Sources: []*Source{{
					Type: "gadget", Name: "exec", Ref: "source.gadget.exec",
					Gadget: "./exec.bpf.o",
					Params: []Param{
						{Name: "ignore_failed", Value: "true"},
						{Name: "max_args", Value: "20"},
						{Name: "comm", Value: "sh"},
						{Name: "ratio", Value: "0.5"},
					},
					EventType: "event", Map: "rb", BufferSize: 8 << 20,
					Interval: 10 * time.Second, Runs: 3, Ifaces: []string{"veth0", "eth1"}, NetNS: []string{"/run/netns/blue"}, SampleFrequency: 99,
				}},
				Sinks: []*Sink{{
					Type: "stdout", Name: "console", Ref: "sink.stdout.console",
					Stdout: &StdoutSink{Format: "table", Sort: "-bytes,pid", MaxRows: 20},
				}},
				Pipelines: []*Pipeline{{
					Name:    "security",
					Sources: []Reference{{Kind: "source", Type: "gadget", Name: "exec"}},
					Sinks:   []Reference{{Kind: "sink", Type: "stdout", Name: "console"}},
					Queue:   Queue{MaxEvents: 100, MaxBytes: 65536, WhenFull: "drop_newest"},
					Batch:   Batch{MaxEvents: 10, MaxDelay: 5 * time.Millisecond},
				}},
			},
		},
		{
			name: "functions and null attributes",
			src: `
agent {
  name           = lower(env("SLUICE_TEST_NODE"))
  data_dir       = env("SLUICE_TEST_SURELY_UNSET", "/srv/sluice")
  metrics_listen = null
  control_socket = ""
  log_level      = upper("x") == "X" ? "warn" : "error"
}
source "gadget" "exec" {
  gadget = trimspace("  trace_exec ")
  params = { comm = trimspace(file("comm.txt")), names = join(",", concat(["a"], split(":", "b:c"))) }
}
sink "stdout" "console" { format = null }
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
}`,
			want: &File{
				Agent: Agent{
					Name: "node-from-env", DataDir: "/srv/sluice", LogLevel: "warn", LogFormat: DefaultLogFormat,
					ShutdownGrace: DefaultShutdownGrace, LossReportInterval: DefaultLossReportInterval,
					GCPercent: DefaultGCPercent, Containers: Containers{Enabled: true}, FilterSelf: true,
				},
				Sources: []*Source{{
					Type: "gadget", Name: "exec", Ref: "source.gadget.exec", Gadget: "trace_exec",
					Params: []Param{{Name: "comm", Value: "sh"}, {Name: "names", Value: "a,b,c"}},
				}},
				Sinks: []*Sink{{
					Type: "stdout", Name: "console", Ref: "sink.stdout.console",
					Stdout: &StdoutSink{Format: "json"},
				}},
				Pipelines: []*Pipeline{{
					Name:    "p",
					Sources: []Reference{{Kind: "source", Type: "gadget", Name: "exec"}},
					Sinks:   []Reference{{Kind: "sink", Type: "stdout", Name: "console"}},
					Queue:   defaultQueue(),
					Batch:   defaultBatch(),
				}},
			},
		},
		{
			name: "params from a computed object are sorted by key",
			src: `
source "gadget" "exec" {
  gadget = "trace_exec"
  params = { for k in ["zeta", "alpha"] : k => upper(k) }
}
sink "stdout" "console" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
}`,
			want: &File{
				Agent: defaultAgent(host),
				Sources: []*Source{{
					Type: "gadget", Name: "exec", Ref: "source.gadget.exec", Gadget: "trace_exec",
					Params: []Param{{Name: "alpha", Value: "ALPHA"}, {Name: "zeta", Value: "ZETA"}},
				}},
				Sinks: []*Sink{{
					Type: "stdout", Name: "console", Ref: "sink.stdout.console",
					Stdout: &StdoutSink{Format: "json"},
				}},
				Pipelines: []*Pipeline{{
					Name:    "p",
					Sources: []Reference{{Kind: "source", Type: "gadget", Name: "exec"}},
					Sinks:   []Reference{{Kind: "sink", Type: "stdout", Name: "console"}},
					Queue:   defaultQueue(),
					Batch:   defaultBatch(),
				}},
			},
		},
		{
			name: "one source feeding two pipelines and two sinks",
			src: `
source "gadget" "exec" { gadget = "trace_exec" }
source "gadget" "open" { gadget = "trace_open" }
sink "stdout" "a" {}
sink "stdout" "b" { format = "table" }
pipeline "one" {
  sources = [source.gadget.exec, source.gadget.open]
  sinks   = [sink.stdout.a, sink.stdout.b]
}
pipeline "two" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.b]
  queue { when_full = "drop_oldest" }
}`,
			want: &File{
				Agent: defaultAgent(host),
				Sources: []*Source{
					{Type: "gadget", Name: "exec", Ref: "source.gadget.exec", Gadget: "trace_exec"},
					{Type: "gadget", Name: "open", Ref: "source.gadget.open", Gadget: "trace_open"},
				},
				Sinks: []*Sink{
					{Type: "stdout", Name: "a", Ref: "sink.stdout.a", Stdout: &StdoutSink{Format: "json"}},
					{Type: "stdout", Name: "b", Ref: "sink.stdout.b", Stdout: &StdoutSink{Format: "table"}},
				},
				Pipelines: []*Pipeline{
					{
						Name: "one",
						Sources: []Reference{
							{Kind: "source", Type: "gadget", Name: "exec"},
							{Kind: "source", Type: "gadget", Name: "open"},
						},
						Sinks: []Reference{
							{Kind: "sink", Type: "stdout", Name: "a"},
							{Kind: "sink", Type: "stdout", Name: "b"},
						},
						Queue: defaultQueue(),
						Batch: defaultBatch(),
					},
					{
						Name:    "two",
						Sources: []Reference{{Kind: "source", Type: "gadget", Name: "exec"}},
						Sinks:   []Reference{{Kind: "sink", Type: "stdout", Name: "b"}},
						Queue:   Queue{MaxEvents: DefaultQueueMaxEvents, MaxBytes: DefaultQueueMaxBytes, WhenFull: "drop_oldest"},
						Batch:   defaultBatch(),
					},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			filename := filepath.Join("testdata", "valid", "config.hcl")
			got, diags := Parse(filename, []byte(tt.src))
			if len(diags) != 0 {
				t.Fatalf("unexpected diagnostics: %v", diags)
			}
			if diff := cmp.Diff(tt.want, got, ignoreRanges); diff != "" {
				t.Errorf("decoded File mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// A pipeline decoded without queue and batch blocks runs as a pipeline
// built in Go without them: the config's defaults are the pipeline's.
// (The config said 16MiB and 50ms, the pipeline 64MiB and 5ms.)
func TestPipelineDefaultsAreThePipelines(t *testing.T) {
	f, diags := Parse("d.hcl", []byte(`
source "gadget" "exec" { gadget = "trace_exec" }
sink "stdout" "out" {}
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
}
`))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	p := f.Pipelines[0]
	got := []any{p.Queue.MaxEvents, int(p.Queue.MaxBytes), p.Batch.MaxEvents, p.Batch.MaxDelay, f.Agent.LossReportInterval}
	want := []any{pipeline.DefaultQueueEvents, pipeline.DefaultQueueBytes, pipeline.DefaultBatchSize, pipeline.DefaultBatchDelay, pipeline.DefaultLossInterval}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-pipeline +config):\n%s", diff)
	}
	if diff := cmp.Diff(pipeline.PolicyNames(), WhenFullPolicies()); diff != "" {
		t.Errorf("when_full values (-pipeline +config):\n%s", diff)
	}
}
