package config

import (
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/pipeline"
)

// File is one decoded configuration with every default applied.
type File struct {
	Agent     Agent
	Sources   []*Source
	Sinks     []*Sink
	Stages    []*Stage
	Pipelines []*Pipeline
}

// Source returns the source that ref names, or nil when there is none.
// It is safe for concurrent use as long as the File is not modified.
func (f *File) Source(ref Reference) *Source {
	if ref.Kind != KindSource {
		return nil
	}
	for _, s := range f.Sources {
		if s.Type == ref.Type && s.Name == ref.Name {
			return s
		}
	}
	return nil
}

// Sink returns the sink that ref names, or nil when there is none.
// It is safe for concurrent use as long as the File is not modified.
func (f *File) Sink(ref Reference) *Sink {
	if ref.Kind != KindSink {
		return nil
	}
	for _, s := range f.Sinks {
		if s.Type == ref.Type && s.Name == ref.Name {
			return s
		}
	}
	return nil
}

// Agent holds the process-wide settings of the `agent` block.
type Agent struct {
	// Name identifies this agent in events and subjects; default os.Hostname().
	Name string
	// DataDir holds the image store, the Wasm compilation cache and the spool.
	DataDir string
	// MetricsListen is the address of the Prometheus endpoint; "" turns it off.
	MetricsListen string
	// ControlSocket is the path of the unix socket of the control API
	// (`sluice ctl`); default DataDir/control.sock, "" turns it off.
	ControlSocket      string
	ControlSocketRange hcl.Range
	// LogLevel is one of debug, info, warn, error.
	LogLevel string
	// LogFormat is one of text, json.
	LogFormat string
	// ShutdownGrace bounds draining and flushing at SIGINT/SIGTERM.
	ShutdownGrace time.Duration
	// GCPercent is the Go collector's pace (GOGC): the heap grows by this
	// share of its live size between collections. GOGC in the environment
	// wins.
	GCPercent int
	// MaxProcs bounds the CPUs the agent's Go code runs on at once
	// (GOMAXPROCS); 0: the runtime's default, every CPU the agent may use.
	// GOMAXPROCS in the environment wins.
	MaxProcs int
	// MemoryLimit is the soft limit of the agent's Go runtime (heap,
	// stacks, the runtime's own), applied once start-up is over; 0: none.
	// GOMEMLIMIT in the environment wins.
	MemoryLimit      int64
	MemoryLimitRange hcl.Range
	// LossReportInterval is the shortest time between two in-stream loss
	// records of one source.
	LossReportInterval time.Duration
	// NATSServer, when set, runs a NATS server in-process.
	NATSServer *NATSServer
	// Images is the policy for OCI references (pull, allow-list, signatures).
	Images Images
	// Containers says how events get container identity.
	Containers Containers
	// FilterSelf leaves out the events of the agent's own process (its
	// reads of /proc, its connections to the bus); true by default.
	FilterSelf bool
	// Group names the agent's group in the control bucket: its stages
	// follow the keys <group>.<stage> before <stage>. "" = no group.
	Group string
	// Control, when set, connects the agent to the bus its fleet is
	// steered through (stage versions rolled out over NATS KV).
	Control *Control
	// DefRange is the header of the agent block; zero when the file has none.
	DefRange hcl.Range
}

// Source is a `source "<type>" "<name>"` block.
//
// The gadget fields are filled for Type "gadget"; WasmBPF is set for Type
// "wasm_bpf".
type Source struct {
	Type, Name string
	DefRange   hcl.Range
	// Ref is the reference a pipeline uses for this source: "source.gadget.exec".
	Ref string

	// Gadget is a built-in gadget name or a path to an eBPF ELF.
	Gadget string
	// GadgetRange covers the value of the gadget attribute, for diagnostics
	// about the gadget itself (unknown name, unreadable ELF).
	GadgetRange hcl.Range
	// Params are the gadget parameters in the order the config lists them.
	Params []Param
	// EventType names the BTF struct of the output records; "" = find it.
	EventType      string
	EventTypeRange hcl.Range
	// Map selects one output map; "" = all tracers or ring/perf maps.
	Map      string
	MapRange hcl.Range
	// BufferSize is the ring buffer size, or the perf buffer size per CPU,
	// in bytes; 0 = the reader's default.
	BufferSize      int64
	BufferSizeRange hcl.Range
	// Wasm is the path of a Wasm module that runs with the gadget (a
	// gadget module, docs/stage-abi.md), for a gadget given as a file or a
	// built-in name; "" = none, or the module of the gadget's image.
	Wasm      string
	WasmRange hcl.Range
	// ContainersOnly keeps only events of processes in containers.
	ContainersOnly      bool
	ContainersOnlyRange hcl.Range
	// Filter selects events, in the kernel where the gadget can; nil when
	// the source has no filter block.
	Filter *SourceFilter
	// Interval is how often the gadget's iterators take a snapshot (0:
	// once, at start) and its map iterators drain (0: every second).
	Interval      time.Duration
	IntervalRange hcl.Range
	// Runs stops the iterators and map iterators after that many
	// snapshots; 0 = until the agent stops.
	Runs int
	// Ifaces are the interfaces TC classifier programs attach to.
	Ifaces      []string
	IfacesRange hcl.Range
	// NetNS are network namespace paths (/run/netns/x, /proc/PID/ns/net)
	// socket filters, TC classifiers and socket iterators work in; none =
	// the host's.
	NetNS      []string
	NetNSRange hcl.Range
	// SampleFrequency is the per-CPU rate of perf_event programs, in Hz;
	// 0 = 49.
	SampleFrequency      int
	SampleFrequencyRange hcl.Range

	// What a plain libbpf object (no markers) needs said about it; see
	// source_gadget_plain.go and docs/gadgets.md.

	// EventTypeFile is an object (BTF or DWARF) or raw BTF holding the
	// event type when the gadget's own object lacks it; relative to the
	// config file.
	EventTypeFile      string
	EventTypeFileRange hcl.Range
	// Programs, when set, are the only programs loaded; SkipPrograms are
	// left out (libbpf's autoload). ...Ranges cover each element.
	Programs           []string
	ProgramsRanges     []hcl.Range
	SkipPrograms       []string
	SkipProgramsRanges []hcl.Range
	// Fields are rendering hints for members of the event type, in the
	// order the fields block lists them.
	Fields []FieldHint

	WasmBPF *WasmBPFSource // Type == "wasm_bpf"
}

// FieldHint is one attribute of a gadget source's fields block:
//
//	fields {
//	  args  = { as = "strings", count = "args_count" }
//	  saddr = { as = "ip", family = "family" }
//	  u     = { tag = "kind", cases = { EXEC = "exec", EXIT = "exit" } }
//	}
type FieldHint struct {
	// Name is the attribute's name: the member it applies to, unless
	// Member gives the member's path.
	Name string
	// As is "strings" or "ip" (FieldHintKinds), "" to keep the rendering.
	As string
	// Count and Size name the members holding a strings buffer's count
	// and used bytes; Family the member holding an address's family.
	Count, Size, Family string
	// Tag names the member selecting a union's alternative; Cases maps
	// its values (numbers or enum names) to alternatives.
	Tag   string
	Cases map[string]string
	// Rename is the key the member is rendered under.
	Rename string
	// Member is the member's dotted path ("u.exec.args").
	Member string
	// Range covers the attribute, NameRange its name.
	Range, NameRange hcl.Range
}

// Param is one entry of a source's params object.
type Param struct {
	Name string
	// Value is the scalar rendered as text: "true", "42", "1.5", "sh".
	Value string
	// Range covers the value expression, NameRange the key.
	Range     hcl.Range
	NameRange hcl.Range
}

// Sink is a `sink "<type>" "<name>"` block. Exactly one of the type-specific
// pointers is set, the one matching Type.
type Sink struct {
	Type, Name string
	DefRange   hcl.Range
	// Ref is the reference a pipeline uses for this sink: "sink.stdout.console".
	Ref string

	Stdout *StdoutSink // Type == "stdout"
	NATS   *NATSSink   // Type == "nats"
	File   *FileSink   // Type == "file"
	Null   *NullSink   // Type == "null"
}

// NullSink is the body of a `sink "null"` block: it has no settings. The
// sink discards what it is given (counted as sent), for measuring a
// pipeline without a destination's cost and for trying configs out.
type NullSink struct{}

// StdoutSink is the body of a `sink "stdout"` block.
type StdoutSink struct {
	// Format is json (one object per line) or table.
	Format string
	// Fields selects the keys shown, in order (table columns, JSON keys);
	// empty: all.
	Fields []string
	// Sort orders the rows of each snapshot (a gadget's iterators and map
	// iterators) in table output: "-bytes,pid", descending with '-'.
	Sort string
	// MaxRows shows at most this many rows of each snapshot in table
	// output; 0 shows all.
	MaxRows int
	// Redraw clears the screen before each snapshot in table output (set
	// by `sluice run` on a terminal; not an attribute).
	Redraw bool
}

// Pipeline is a `pipeline "<name>"` block: sources feed one bounded queue
// whose batches fan out to every sink.
type Pipeline struct {
	Name     string
	DefRange hcl.Range
	Sources  []Reference
	// Stages run in this order on every batch; none is allowed.
	Stages []Reference
	Sinks  []Reference
	Queue  Queue
	Batch  Batch
}

// Queue bounds the edge between a pipeline's sources and its consumers.
type Queue struct {
	MaxEvents int
	MaxBytes  int64
	// WhenFull is block, drop_newest or drop_oldest.
	WhenFull string
}

// Batch controls how events are grouped for stages and sinks.
type Batch struct {
	MaxEvents int
	MaxDelay  time.Duration
}

// Values of the enumerated attributes, in the order diagnostics list them.
// Unexported so that no caller can change what the decoder accepts.
var (
	logLevels      = []string{"debug", "info", "warn", "error"}
	logFormats     = []string{"text", "json"}
	whenFullValues = pipeline.PolicyNames()
	stdoutFormats  = []string{"json", "table"}
)

// Defaults applied by the decoder.
const (
	DefaultDataDir           = "/var/lib/sluice"
	DefaultControlSocketName = "control.sock" // in the data directory
	DefaultLogLevel          = "info"
	DefaultLogFormat         = "text"
	DefaultShutdownGrace     = 10 * time.Second
	// DefaultGCPercent is the agent's GOGC: its live heap is small and its
	// garbage plentiful (every event's bytes), and Go's own 100 doubles
	// the agent's heap; 50 costs about 5% more CPU per event (make bench).
	DefaultGCPercent          = 50
	DefaultLossReportInterval = pipeline.DefaultLossInterval
	DefaultQueueMaxEvents     = pipeline.DefaultQueueEvents
	DefaultQueueMaxBytes      = pipeline.DefaultQueueBytes
	DefaultWhenFull           = "block"
	DefaultBatchMaxEvents     = pipeline.DefaultBatchSize
	DefaultBatchMaxDelay      = pipeline.DefaultBatchDelay
	DefaultStdoutFormat       = "json"
)

// DefaultAgent returns the settings of a config without an agent block,
// except the two that depend on the host and the data directory: Name
// (the host name) and ControlSocket (DefaultControlSocketName in
// DataDir). The decoder starts from it, and so do configs built in Go
// (`sluice run`).
func DefaultAgent() Agent {
	return Agent{
		DataDir:            DefaultDataDir,
		LogLevel:           DefaultLogLevel,
		LogFormat:          DefaultLogFormat,
		ShutdownGrace:      DefaultShutdownGrace,
		LossReportInterval: DefaultLossReportInterval,
		GCPercent:          DefaultGCPercent,
		Containers:         Containers{Enabled: true},
		FilterSelf:         true,
	}
}

// DefaultQueue returns the queue of a pipeline without a queue block.
func DefaultQueue() Queue {
	return Queue{MaxEvents: DefaultQueueMaxEvents, MaxBytes: DefaultQueueMaxBytes, WhenFull: DefaultWhenFull}
}

// DefaultBatch returns the batching of a pipeline without a batch block.
func DefaultBatch() Batch {
	return Batch{MaxEvents: DefaultBatchMaxEvents, MaxDelay: DefaultBatchMaxDelay}
}
