package wasmstages

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sluice-dev/sluice/pipeline"
)

// Config describes one stage. It is a plain value; New reads it once.
type Config struct {
	// Name is the stage's name in metrics, logs and events it makes from no
	// input. Required.
	Name string
	// Module is the path of the .wasm file. Exactly one of Module and
	// ModuleBytes is set. A stage built from a file can watch it
	// (WatchFile).
	Module string
	// ModuleBytes is the module itself, for built-in stages and OCI blobs.
	ModuleBytes []byte
	// Params are handed to the guest's sluice_init as a msgpack map. Values
	// may be nil, bool, string, []byte, any integer or float type,
	// []any, []string, map[string]any and map[string]string, nested.
	Params map[string]any

	// Timeout bounds each call into the guest (one batch, one tick);
	// 0 means DefaultTimeout. Instantiation and sluice_init get InitTimeout.
	Timeout time.Duration
	// MemoryLimit bounds each instance's linear memory, in bytes, rounded up
	// to whole 64 KiB pages; 0 means DefaultMemoryLimit.
	MemoryLimit uint64
	// OnError is what the pipeline does with the batch of a failed call:
	// "pass" (the default when empty), "drop" or "dead_letter".
	OnError string
	// DeadLetter receives the failed batches when OnError is "dead_letter".
	DeadLetter pipeline.Sink
	// Workers is the number of instances that process parts of one batch in
	// parallel; 0 means 1. Each instance has its own guest state.
	Workers int
	// Tick is the interval of the guest's sluice_tick. 0 means DefaultTick
	// when the module exports sluice_tick; setting it for a module without
	// the export is an error.
	Tick time.Duration
	// Grants are the capabilities the guest gets beyond clocks and random.
	Grants Grants
	// Version names the first version (Running); its zero fields default
	// to the module's digest and Module.
	Version Version
	// StampVersion adds StampKey(Name) to every event the stage outputs,
	// with the Digest of the version that processed it, so that a consumer
	// can tell which version let an event through. It costs a copy of each
	// output event (measured in BenchmarkStamp).
	StampVersion bool

	// Cache holds compiled code; share one across the stages of an agent.
	// When nil, New opens a cache in CacheDir (in memory when CacheDir is
	// also empty) that the stage closes with itself.
	Cache *Cache
	// CacheDir is where New opens its own cache when Cache is nil.
	CacheDir string

	// Logger receives the stage's own logs and the guest's (the log host
	// function, granted stdout and stderr), with the attribute stage=Name.
	// nil discards them.
	Logger *slog.Logger
	// Metrics receives the Wasm-specific counters (errors by kind are
	// counted by the pipeline). nil counts on a private registry.
	Metrics *pipeline.Registry
}

// Grants are the WASI capabilities a guest gets on top of real clocks and
// random numbers. The zero value grants nothing.
type Grants struct {
	// Env is the guest's environment. Nothing of the agent's environment is
	// visible to the guest otherwise.
	Env map[string]string
	// Stdout and Stderr send the guest's output, line by line, to the
	// logger (info and warn); otherwise it is discarded.
	Stdout, Stderr bool
	// Dirs are the host directories the guest may open.
	Dirs []Dir
}

// Dir mounts a host directory into the guest's file system.
type Dir struct {
	Host     string // an existing directory on the host
	Guest    string // where the guest sees it: an absolute path such as "/data"
	Writable bool   // false mounts it read-only
}

// Defaults for the zero values of Config.
const (
	DefaultTimeout     = 100 * time.Millisecond
	DefaultMemoryLimit = 64 << 20
	DefaultTick        = time.Second
	// InitTimeout bounds instantiation (including a reactor's _initialize)
	// and sluice_init, which may build tables from large params.
	InitTimeout = 10 * time.Second
	// MaxWorkers bounds Config.Workers.
	MaxWorkers = 64
)

const pageSize = 64 << 10

// Error kinds: the kind label of sluice_stage_errors_total and the Kind of
// the *pipeline.StageError a failed call returns.
const (
	KindTrap      = "trap"      // the guest trapped, or exited (a Go panic exits)
	KindTimeout   = "timeout"   // the call ran past Config.Timeout
	KindOOM       = "oom"       // the guest asked for memory past Config.MemoryLimit
	KindMalformed = "malformed" // the result broke the ABI
	KindGuest     = "guest"     // the guest reported an error (a negative result)
	KindInit      = "init"      // no instance could be made: instantiation or sluice_init failed
	KindCanceled  = "canceled"  // the pipeline cancelled the call (end of the shutdown grace period)
	KindLoad      = "load"      // a new version failed to compile or to pass the ABI checks (Swap)
)

// ErrorKinds returns every kind a Wasm stage or gadget module reports.
func ErrorKinds() []string {
	return []string{KindTrap, KindTimeout, KindOOM, KindMalformed, KindGuest, KindInit, KindCanceled, KindLoad}
}

var (
	// ErrABI marks a module that does not implement the stage ABI this host
	// speaks: wrong sluice_abi_version, a missing or mistyped export, an
	// import the host does not provide.
	ErrABI = errors.New("module does not implement stage ABI")
	// ErrInit marks a failed sluice_init; the error text carries the
	// guest's message.
	ErrInit = errors.New("stage init failed")
	// ErrClosed is returned by calls on a closed Stage.
	ErrClosed = errors.New("stage is closed")
	// ErrNoTick marks a tick interval set for a module that does not
	// export sluice_tick.
	ErrNoTick = errors.New("a tick interval is set, but the module does not export sluice_tick")
)

// checked returns cfg with defaults applied, or why it is unusable.
func (cfg Config) checked() (Config, error) {
	var errs []error
	if cfg.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if (cfg.Module == "") == (cfg.ModuleBytes == nil) {
		errs = append(errs, errors.New("set exactly one of Module and ModuleBytes"))
	}
	if cfg.OnError == "" {
		cfg.OnError = "pass"
	}
	action, err := pipeline.ParseErrorAction(cfg.OnError)
	if err != nil {
		errs = append(errs, err)
	}
	if (action == pipeline.ErrorDeadLetter) != (cfg.DeadLetter != nil) && err == nil {
		errs = append(errs, errors.New(`a dead-letter sink goes with on_error "dead_letter", and only with it`))
	}
	if cfg.Timeout < 0 || cfg.Tick < 0 {
		errs = append(errs, errors.New("timeout and tick must not be negative"))
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.MemoryLimit = cmp.Or(cfg.MemoryLimit, DefaultMemoryLimit)
	if cfg.MemoryLimit > 1<<32 {
		errs = append(errs, fmt.Errorf("memory limit %d is above 4 GiB, the most a wasm32 memory holds", cfg.MemoryLimit))
	}
	cfg.MemoryLimit = (cfg.MemoryLimit + pageSize - 1) / pageSize * pageSize
	switch {
	case cfg.Workers < 0 || cfg.Workers > MaxWorkers:
		errs = append(errs, fmt.Errorf("workers %d: want 1 to %d", cfg.Workers, MaxWorkers))
	case cfg.Workers == 0:
		cfg.Workers = 1
	}
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
	if len(errs) > 0 {
		return cfg, fmt.Errorf("check stage %q config: %w", cfg.Name, errors.Join(errs...))
	}
	return cfg, nil
}
