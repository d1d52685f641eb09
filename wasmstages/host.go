package wasmstages

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-dev/sluice/internal/interrupt"
	"github.com/sluice-dev/sluice/internal/termsafe"
	"github.com/sluice-dev/sluice/pipeline"
)

// MetricGuest is the counter family of guest-defined counters
// (counter_add), labelled {name} (the stage) and {counter}.
const MetricGuest = "sluice_stage_guest_total"

// Limits on what a guest can make the host do through its imports.
const (
	maxLogLine      = 4 << 10 // longer log lines and error messages are cut
	maxCounterName  = 64
	maxGuestCounter = 64 // distinct counter names per stage; more land in "other"
	logBurst        = 100
	logPerSecond    = 100
)

// hostImports are the functions of import module "sluice", with their
// signatures. A module importing anything else from "sluice" is refused at
// load time rather than at its first instantiation.
var hostImports = map[string]funcType{
	"log":         {[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil},
	"set_error":   {[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, nil},
	"counter_add": {[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI64}, nil},
	"now":         {nil, []api.ValueType{api.ValueTypeI64}},
	// Optional (docs/stage-abi.md): modules of older SDKs do not import them.
	"find_key":  {[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
	"find_keys": {[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
	// Not part of the ABI: the call package interrupt adds to a module.
	interrupt.ImportName: {nil, nil},
}

// host implements the "sluice" import module for one stage's instances.
// Its methods are called by guests on their instances' goroutines, several
// at once when the stage has several workers; all state is locked.
type host struct {
	stage string
	log   *slog.Logger
	reg   *pipeline.Registry

	// byModule finds the instance a set_error call comes from.
	byModule sync.Map // api.Module -> *instance

	mu         sync.Mutex
	counters   map[string]*pipeline.Counter
	tokens     float64
	lastRefill time.Time
	suppressed int
}

func newHost(stage string, log *slog.Logger, reg *pipeline.Registry) *host {
	return &host{stage: stage, log: log, reg: reg, counters: map[string]*pipeline.Counter{}, tokens: logBurst}
}

// instantiate adds the host module to r.
func (h *host) instantiate(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder("sluice")
	fn := func(name string, f api.GoModuleFunc) {
		sig := hostImports[name]
		b.NewFunctionBuilder().WithGoModuleFunction(f, sig.params, sig.results).Export(name)
	}
	fn("log", h.guestLog)
	fn("set_error", h.setError)
	fn("counter_add", h.counterAdd)
	fn("find_key", findKey)
	fn("find_keys", findKeys)
	fn("now", func(_ context.Context, _ api.Module, stack []uint64) {
		stack[0] = uint64(time.Now().UnixNano())
	})
	fn(interrupt.ImportName, func(ctx context.Context, mod api.Module, _ []uint64) {
		if v, ok := h.byModule.Load(mod); ok {
			v.(*instance).yield(ctx)
		} else if ctx.Err() != nil {
			// The module's start function, run by the instantiation
			// (under InitTimeout) before the instance is known.
			panic(errStopped)
		}
	})
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("instantiate host module: %w", err)
	}
	return nil
}

// guestBytes returns guest memory at ptr, len. A guest passing a range
// outside its memory traps: the panic becomes the call's error.
func guestBytes(mod api.Module, ptr, n uint32, what string) []byte {
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		panic(fmt.Errorf("%s: %d bytes at %#x lie outside the guest's %d-byte memory", what, n, ptr, mod.Memory().Size()))
	}
	return b
}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func (h *host) guestLog(ctx context.Context, mod api.Module, stack []uint64) {
	level := slog.LevelInfo
	switch int32(stack[0]) {
	case 0:
		level = slog.LevelDebug
	case 2:
		level = slog.LevelWarn
	case 3:
		level = slog.LevelError
	}
	msg := guestBytes(mod, uint32(stack[1]), uint32(stack[2]), "log")
	h.emitLog(ctx, level, termsafe.String(string(clip(msg, maxLogLine))), "source", "guest")
}

// emitLog logs a line from the guest, at most logPerSecond a second after
// a burst of logBurst, so that a guest logging per event cannot flood the
// agent's log; the next line that passes says how many were suppressed.
func (h *host) emitLog(ctx context.Context, level slog.Level, msg string, attrs ...any) {
	if !h.log.Enabled(ctx, level) {
		return
	}
	h.mu.Lock()
	now := time.Now()
	if !h.lastRefill.IsZero() {
		h.tokens = min(logBurst, h.tokens+now.Sub(h.lastRefill).Seconds()*logPerSecond)
	}
	h.lastRefill = now
	if h.tokens < 1 {
		h.suppressed++
		h.mu.Unlock()
		return
	}
	h.tokens--
	suppressed := h.suppressed
	h.suppressed = 0
	h.mu.Unlock()
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	h.log.Log(ctx, level, msg, attrs...)
}

func (h *host) setError(_ context.Context, mod api.Module, stack []uint64) {
	msg := guestBytes(mod, uint32(stack[0]), uint32(stack[1]), "set_error")
	if v, ok := h.byModule.Load(mod); ok {
		inst := v.(*instance)
		// The message reaches logs, diagnostics and the CLI's errors:
		// escape what could act on a terminal.
		inst.errMsg = termsafe.Append(inst.errMsg[:0], string(clip(msg, maxLogLine)))
	}
}

func (h *host) counterAdd(_ context.Context, mod api.Module, stack []uint64) {
	name := guestBytes(mod, uint32(stack[0]), uint32(stack[1]), "counter_add")
	delta := int64(stack[2])
	if delta <= 0 {
		return // counters only go up; a negative delta is a guest bug, not worth a trap
	}
	h.mu.Lock()
	c := h.counters[string(name)] // no allocation: the conversion is only a map key
	if c == nil {
		key := string(clip(name, maxCounterName))
		c = h.counters[key]
		if c == nil && len(h.counters) >= maxGuestCounter {
			key = "other"
			c = h.counters[key]
		}
		if c == nil {
			c = h.reg.Counter(MetricGuest, "Counters a Wasm stage's guest defines (counter_add).", "component", "stage", "name", h.stage, "counter", key)
			h.counters[key] = c
		}
	}
	h.mu.Unlock()
	c.Add(uint64(delta))
}

// lineWriter turns a guest's stdout or stderr into log lines.
type lineWriter struct {
	h     *host
	level slog.Level
	name  string

	mu  sync.Mutex
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.h.emitLog(context.Background(), w.level, termsafe.String(string(clip(w.buf[:i], maxLogLine))), "source", w.name)
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > maxLogLine {
		w.h.emitLog(context.Background(), w.level, termsafe.String(string(w.buf[:maxLogLine])), "source", w.name)
		w.buf = w.buf[:0]
	}
	if len(w.buf) == 0 {
		w.buf = nil // do not pin a large buffer
	}
	return len(p), nil
}
