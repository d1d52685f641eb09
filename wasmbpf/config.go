package wasmbpf

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/sluice-dev/sluice/pipeline"
)

// Emit says what becomes events of the source.
type Emit uint8

const (
	// EmitRecords: every record the guest polls, decoded (the default).
	EmitRecords Emit = iota
	// EmitStdout: every line the guest prints to stdout or stderr.
	EmitStdout
	// EmitBoth: records and lines.
	EmitBoth
)

// ParseEmit parses the config's emit value.
func ParseEmit(s string) (Emit, error) {
	switch s {
	case "", "records":
		return EmitRecords, nil
	case "stdout":
		return EmitStdout, nil
	case "both":
		return EmitBoth, nil
	}
	return 0, fmt.Errorf("emit %q: want records, stdout or both", s)
}

func (e Emit) String() string {
	switch e {
	case EmitStdout:
		return "stdout"
	case EmitBoth:
		return "both"
	}
	return "records"
}

func (e Emit) records() bool { return e != EmitStdout }
func (e Emit) lines() bool   { return e != EmitRecords }

// Config describes one wasm-bpf application source. It is a plain value.
type Config struct {
	// Source is the source's config name, carried in every event.
	Source string
	// App names the application in events (the envelope's gadget) and
	// logs: the module's file name without .wasm, or the image's
	// repository.
	App string
	// Host is the envelope's host.
	Host string
	// Module is the Wasm module.
	Module []byte
	// Args are the guest's argv after argv[0], which is App.
	Args []string
	// Emit chooses what becomes events.
	Emit Emit
	// EventType names the BTF struct of the output records for objects
	// without GADGET_TRACER markers or typed maps (as a gadget's
	// event_type hint).
	EventType string
	// BufferSize is the ring buffer size, or perf buffer size per CPU, of
	// the objects' outputs; 0 = the gadgets' defaults.
	BufferSize int
	// Grants are the guest's capabilities beyond clocks, random numbers
	// and sleeping.
	Grants Grants
	// MemoryLimit bounds the guest's linear memory; 0 = DefaultMemoryLimit.
	MemoryLimit uint64
	// StopGrace is how long a stopping guest may take to return from
	// _start before it is interrupted; 0 = DefaultStopGrace.
	StopGrace time.Duration
	// StallAfter is how long a guest with attached programs and an output
	// map may go without polling before it is reported stalled; 0 =
	// DefaultStallAfter.
	StallAfter time.Duration
	// Cache holds compiled code, shared with the agent's stages; nil
	// compiles in memory.
	Cache wazero.CompilationCache
	// Seq numbers the events; nil gives the source a counter of its own.
	Seq *atomic.Uint64
	// Logger receives the host's lines and the guest's output.
	Logger *slog.Logger
	// Metrics receives the wasm-bpf counters.
	Metrics *pipeline.Registry
}

// Grants are what a guest may use beyond clocks, random numbers and
// sleeping. The zero value grants nothing: no files, no environment, no
// network (WASI sockets are never granted).
type Grants struct {
	// Env is the guest's whole environment.
	Env map[string]string
	// Dirs are host directories the guest may open. A granted directory
	// is also what wasm_attach_bpf_program_fd may name (a cgroup).
	Dirs []Dir
}

// Dir mounts a host directory into the guest's file system.
type Dir struct {
	Host     string
	Guest    string // absolute path in the guest, such as "/data"
	Writable bool
}

// Defaults of Config's zero values, and limits on what a guest can hold.
const (
	DefaultMemoryLimit = 256 << 20
	DefaultStopGrace   = time.Second
	DefaultStallAfter  = 10 * time.Second
	// MaxObjects bounds the objects a guest has loaded at once.
	MaxObjects = 16
	// MaxObjectSize bounds one eBPF object a guest hands over.
	MaxObjectSize = 64 << 20
	maxNameLen    = 256  // program and map names
	maxTargetLen  = 4096 // attach targets (paths)
	batchSize     = 256  // records emitted at once
	maxPerPoll    = 8 * batchSize
	pollSlice     = 5 * time.Millisecond // see RATIONALE.md, "The reader polls"
	drainTimeout  = 2 * time.Second
)

const pageSize = 64 << 10

func (cfg Config) checked() (Config, error) {
	var errs []error
	if cfg.Source == "" {
		errs = append(errs, errors.New("source name is empty"))
	}
	if cfg.App == "" {
		cfg.App = cfg.Source
	}
	if len(cfg.Module) == 0 {
		errs = append(errs, errors.New("no module"))
	}
	cfg.MemoryLimit = cmp.Or(cfg.MemoryLimit, DefaultMemoryLimit)
	if cfg.MemoryLimit > 4<<30 {
		errs = append(errs, fmt.Errorf("memory limit %d is above 4 GiB, the most a wasm32 memory holds", cfg.MemoryLimit))
	}
	cfg.StopGrace = cmp.Or(cfg.StopGrace, DefaultStopGrace)
	cfg.StallAfter = cmp.Or(cfg.StallAfter, DefaultStallAfter)
	for _, d := range cfg.Grants.Dirs {
		if d.Host == "" || len(d.Guest) == 0 || d.Guest[0] != '/' {
			errs = append(errs, fmt.Errorf("dir grant %q -> %q: want a host directory and an absolute guest path", d.Host, d.Guest))
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = pipeline.NewRegistry()
	}
	if cfg.Seq == nil {
		cfg.Seq = new(atomic.Uint64)
	}
	if len(errs) > 0 {
		return cfg, fmt.Errorf("check wasm-bpf source %q: %w", cfg.Source, errors.Join(errs...))
	}
	return cfg, nil
}
