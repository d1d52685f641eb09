package wasmbpf

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/sluice-dev/sluice/internal/interrupt"
	"github.com/sluice-dev/sluice/internal/jail"
	"github.com/sluice-dev/sluice/pipeline"
)

// App is a wasm-bpf application run as a pipeline source: its guest's
// _start runs on a goroutine Run owns, the host functions of the wasm_bpf
// interface load, attach and poll eBPF objects for it, and every record
// it polls becomes an event before its callback sees it. Build it with
// New; Run it once; Close it.
type App struct {
	cfg    Config // defaults applied
	log    *slog.Logger
	rt     wazero.Runtime
	cm     wazero.CompiledModule
	digest string
	m      *appMetrics
	// interruptible: the module was rewritten by package interrupt (its
	// loops call yield); otherwise wazero checks contexts.
	interruptible bool
	ran           atomic.Bool

	// Set by Run before the guest starts; read-only afterwards.
	mod     api.Module
	out     pipeline.Emitter
	emitCtx context.Context
	lines   *lineWriter // stdout
	errs    *lineWriter // stderr
	ptys    []*ptyStream
	// guestClosed: Run closed the guest's instance (for tests).
	guestClosed bool

	// The guest's state: objects, maps and buffers. The guest's goroutine
	// changes it; Run's goroutine reads objects to detach them at a stop
	// and owns all of it once the guest has returned. mu guards objects.
	mu       sync.Mutex
	objects  map[uint64]*guestObject
	nextID   uint64
	fds      map[int32]*guestMap
	buffers  map[int32]*buffer
	tableFns map[uint32]api.Function // callbacks found by table index
	stack    []uint64

	// Stopping: set when the source is asked to stop. A poll then drains
	// and returns -EINTR, and what the guest does next with the host
	// (another poll, a sleep, a load) ends it.
	stopping   atomic.Bool
	kill       atomic.Bool // the stop's grace ran out: end the guest wherever it is
	stopCh     chan struct{}
	stopOnce   sync.Once
	interrupts atomic.Int32 // why the host ended the guest: see endGuest
	lastPoll   atomic.Int64 // unix nanoseconds of the last poll's start
	// outputsLive is set once a program of an object with an output map
	// is attached: from then on a guest that does not poll is stalled.
	outputsLive atomic.Bool
	guestErr    error // a callback trap or limit that ended the guest, set before the panic
	// eintrReturned: a poll told the stopping guest -EINTR (guest's goroutine).
	eintrReturned bool
}

// Reasons the host ended a guest call (App.interrupts).
const (
	notInterrupted    int32 = iota
	interruptStop           // the source stopped and the guest went on
	interruptCallback       // its callback trapped
)

var _ pipeline.Source = (*App)(nil)

// errStopped is the panic that ends a guest the host interrupts.
var errStopped = errors.New("stopped by the host")

// New compiles the module (or loads it from the cache) and checks it
// against the wasm-bpf interface. It touches no kernel state and needs no
// privileges.
func New(ctx context.Context, cfg Config) (*App, error) {
	cfg, err := cfg.checked()
	if err != nil {
		return nil, err
	}
	a := &App{
		cfg: cfg, log: cfg.Logger.With("source", cfg.Source, "app", cfg.App),
		objects: map[uint64]*guestObject{}, fds: map[int32]*guestMap{}, buffers: map[int32]*buffer{},
		tableFns: map[uint32]api.Function{}, stack: make([]uint64, 8), stopCh: make(chan struct{}),
	}
	sum := sha256.Sum256(cfg.Module)
	a.digest = hex.EncodeToString(sum[:])
	a.m = newAppMetrics(cfg.Metrics, cfg.Source)
	// A guest runs until it returns, so a stop must be able to end it
	// wherever it is, a guest spinning in its own code included. The
	// module is rewritten with the stages' fuel counter (package
	// interrupt: a call to the host every 1024 loop iterations or
	// function entries, which ends a guest being killed and lets Go
	// preempt it). wazero's close-on-context-done would do too, but it
	// starts a goroutine per call into the guest, one per record for a
	// sample callback, which costs more than the record (RATIONALE.md).
	// A module the rewriter does not understand runs with it anyway.
	code, _, rerr := interrupt.Rewrite(cfg.Module)
	a.interruptible = rerr == nil
	if !a.interruptible {
		code = cfg.Module
		a.log.Info("cannot make the module cheaply interruptible; wazero's context checks stop it instead, which slows its callbacks down", "error", rerr)
	}
	rc := wazero.NewRuntimeConfigCompiler().
		WithCloseOnContextDone(!a.interruptible).
		WithMemoryLimitPages(uint32((cfg.MemoryLimit + pageSize - 1) / pageSize))
	if cfg.Cache != nil {
		rc = rc.WithCompilationCache(cfg.Cache)
	}
	a.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	if err := a.instantiateHost(ctx); err != nil {
		a.rt.Close(ctx)
		return nil, fmt.Errorf("load wasm-bpf application %q: %w", cfg.App, err)
	}
	cm, err := a.rt.CompileModule(ctx, code)
	if err != nil {
		a.rt.Close(ctx)
		return nil, fmt.Errorf("load wasm-bpf application %q: compile module: %w", cfg.App, err)
	}
	if err := checkCompiled(cm); err != nil {
		a.rt.Close(ctx)
		return nil, fmt.Errorf("load wasm-bpf application %q: %w", cfg.App, err)
	}
	a.cm = cm
	return a, nil
}

// Check does what New does and releases it all again: what `sluice config
// validate` runs for a wasm_bpf source.
func Check(ctx context.Context, cfg Config) error {
	a, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	return a.Close(ctx)
}

// Name returns the source's config name.
func (a *App) Name() string { return a.cfg.Source }

// Digest returns the SHA-256 of the module, in hex.
func (a *App) Digest() string { return a.digest }

func (a *App) instantiateHost(ctx context.Context) error {
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, a.rt); err != nil {
		return fmt.Errorf("instantiate wasi: %w", err)
	}
	b := a.rt.NewHostModuleBuilder(importModule)
	fn := func(name string, f api.GoModuleFunc) {
		sig := hostFuncs[name]
		b.NewFunctionBuilder().WithGoModuleFunction(f, sig.params, sig.results).Export(name)
	}
	fn("wasm_load_bpf_object", a.hostLoad)
	fn("wasm_close_bpf_object", a.hostClose)
	fn("wasm_attach_bpf_program", a.hostAttach)
	fn("wasm_attach_bpf_program_fd", a.hostAttachFD)
	fn("wasm_bpf_buffer_poll", a.hostPoll)
	fn("wasm_bpf_map_fd_by_name", a.hostMapFD)
	fn("wasm_bpf_map_operate", a.hostMapOperate)
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("instantiate host module %s: %w", importModule, err)
	}
	yb := a.rt.NewHostModuleBuilder(interrupt.ImportModule)
	yb.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(a.yield), nil, nil).Export(interrupt.ImportName)
	if _, err := yb.Instantiate(ctx); err != nil {
		return fmt.Errorf("instantiate host module %s: %w", interrupt.ImportModule, err)
	}
	gb := a.rt.NewHostModuleBuilder(goWrapperModule)
	sig := goWrapperFuncs["wasm_bpf_buffer_poll"]
	gb.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(a.hostPollGo), sig.params, sig.results).Export("wasm_bpf_buffer_poll")
	if _, err := gb.Instantiate(ctx); err != nil {
		return fmt.Errorf("instantiate host module %s: %w", goWrapperModule, err)
	}
	return nil
}

// moduleConfig is the guest's WASI configuration: argv, real clocks and
// random numbers, a sleep the host can interrupt, stdout and stderr into
// the log, and only the granted environment and directories.
func (a *App) moduleConfig(stdout, stderr io.Writer, fs wazero.FSConfig) (wazero.ModuleConfig, error) {
	mc := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(). // Run calls _start itself, on its own goroutine
		WithArgs(append([]string{a.cfg.App}, a.cfg.Args...)...).
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader).
		WithNanosleep(a.sleep).
		WithStdout(stdout).
		WithStderr(stderr)
	for _, k := range slices.Sorted(maps.Keys(a.cfg.Grants.Env)) {
		mc = mc.WithEnv(k, a.cfg.Grants.Env[k])
	}
	if fs != nil {
		mc = mc.WithFSConfig(fs)
	}
	return mc, nil
}

// jailGrants mounts each directory grant as a jail (internal/jail), as
// Wasm stages do: every path the guest names resolves beneath the granted
// directory, so no symbolic link, "..", hard link or race leads out. The
// roots are released when Run returns.
func (a *App) jailGrants() (wazero.FSConfig, []*jail.FS, error) {
	fs := wazero.NewFSConfig()
	var roots []*jail.FS
	for _, d := range a.cfg.Grants.Dirs {
		root, err := jail.Open(d.Host)
		if err != nil {
			for _, r := range roots {
				r.Close()
			}
			return nil, nil, fmt.Errorf("grant directory %s as %s: %w", d.Host, d.Guest, err)
		}
		roots = append(roots, root)
		var mount experimentalsys.FS = root
		if !d.Writable {
			mount = &sysfs.ReadFS{FS: root}
		}
		fs = fs.(sysfs.FSConfig).WithSysFSMount(mount, d.Guest)
	}
	return fs, roots, nil
}

// terminal returns what the guest's stream writes to: a pseudo-terminal
// copied into w (see pty.go), or w itself when none can be opened.
func (a *App) terminal(w *lineWriter) io.Writer {
	p, err := openPTY(w)
	if err != nil {
		a.log.Debug("the guest's output is not a terminal; it may buffer its lines", "stream", w.stream, "error", err)
		return w
	}
	a.ptys = append(a.ptys, p)
	return p.slave
}

func (a *App) closeTerminals() {
	for _, p := range a.ptys {
		if err := p.close(); err != nil {
			a.log.Debug("close the guest's terminal", "error", err)
		}
	}
	a.ptys = nil
}

// yield is the call package interrupt adds to the guest's loops and
// functions: it ends a guest the host kills, and is where Go can preempt
// one that spins.
func (a *App) yield(context.Context, api.Module, []uint64) {
	if a.kill.Load() {
		a.interruptGuest()
	}
}

// sleep is the guest's nanosleep (WASI poll_oneoff on a clock): a real
// sleep that a stop cuts short, ending the guest there.
func (a *App) sleep(ns int64) {
	if a.stopping.Load() {
		a.interruptGuest()
	}
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-a.stopCh:
		a.interruptGuest()
	}
}

// interruptGuest ends the guest's call from a host function it called
// while the source stops.
func (a *App) interruptGuest() {
	a.interrupts.CompareAndSwap(notInterrupted, interruptStop)
	panic(errStopped)
}

// Run instantiates the guest and runs its _start on a goroutine of its
// own until the guest returns or ctx ends. When ctx ends, the programs are
// detached first (no new records), the guest's next poll drains what the
// buffers hold and returns -EINTR (a libbpf-style loop ends there), and a
// guest that goes on, or does not return within the stop grace, is
// interrupted. Whatever the guest left unread is then emitted, and every
// object is closed. Run returns nil when ctx ended or the guest exited
// with status 0 before it (the application finished); otherwise a
// *GuestError.
func (a *App) Run(ctx context.Context, out pipeline.Emitter) error {
	if !a.ran.CompareAndSwap(false, true) {
		return fmt.Errorf("run wasm-bpf application %q: already run", a.cfg.App)
	}
	emitCtx, cancelEmit := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelEmit()
	a.out, a.emitCtx = out, emitCtx
	a.lines = newLineWriter(a, "stdout", slog.LevelInfo)
	a.errs = newLineWriter(a, "stderr", slog.LevelWarn)
	stdout, stderr := a.terminal(a.lines), a.terminal(a.errs)
	defer a.closeTerminals()

	guestCtx, cancelGuest := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelGuest()
	var fs wazero.FSConfig
	if len(a.cfg.Grants.Dirs) > 0 {
		var roots []*jail.FS
		var err error
		if fs, roots, err = a.jailGrants(); err != nil {
			return &GuestError{Kind: KindInstantiate, Err: err}
		}
		defer func() {
			for _, r := range roots {
				r.Close()
			}
		}()
	}
	mc, err := a.moduleConfig(stdout, stderr, fs)
	if err != nil {
		return &GuestError{Kind: KindInstantiate, Err: err}
	}
	mod, err := a.rt.InstantiateModule(guestCtx, a.cm, mc)
	if err != nil {
		return &GuestError{Kind: KindInstantiate, Err: fmt.Errorf("instantiate: %w", err)}
	}
	a.mod = mod
	start := mod.ExportedFunction("_start")
	a.lastPoll.Store(time.Now().UnixNano())
	a.log.Info("wasm-bpf application started", "args", a.cfg.Args, "digest", a.digest[:12])

	done := make(chan error, 1)
	go func() {
		_, err := start.Call(guestCtx)
		done <- err
	}()
	watch := time.NewTicker(min(a.cfg.StallAfter/4, time.Second))
	defer watch.Stop()
	var callErr error
	stopped := false
wait:
	for {
		select {
		case callErr = <-done:
			break wait
		case <-watch.C:
			a.checkStall()
		case <-ctx.Done():
			stopped = true
			a.beginStop()
			// The pipeline keeps accepting events while the guest drains,
			// but not forever.
			time.AfterFunc(a.cfg.StopGrace+drainTimeout, cancelEmit)
			grace := time.NewTimer(a.cfg.StopGrace)
			select {
			case callErr = <-done:
			case <-grace.C:
				a.interrupts.CompareAndSwap(notInterrupted, interruptStop)
				a.kill.Store(true) // its next yield ends it
				cancelGuest()      // or wazero closes the module, when it has no yields
				callErr = <-done
			}
			grace.Stop()
			break wait
		}
	}
	// The guest has returned: its state is Run's now.
	a.detachAll()
	a.drainAll()
	a.closeAll()
	if err := mod.Close(context.WithoutCancel(ctx)); err != nil {
		a.log.Debug("close guest", "error", err)
	}
	// Nothing may keep the instance (and its memory) reachable.
	a.guestClosed, a.mod, a.tableFns = mod.IsClosed(), nil, nil
	a.closeTerminals()
	a.lines.flush()
	a.errs.flush()
	gerr := a.classify(callErr, stopped)
	switch {
	case gerr == nil && stopped:
		a.log.Info("wasm-bpf application stopped")
	case gerr == nil:
		a.log.Info("wasm-bpf application exited", "status", 0)
	default:
		a.m.guestErrors(gerr.Kind).Inc()
		a.log.Error("wasm-bpf application failed", "error", gerr)
		return gerr
	}
	return nil
}

// classify turns what _start returned into the source's result.
func (a *App) classify(err error, stopped bool) *GuestError {
	if err == nil {
		return nil
	}
	why := a.interrupts.Load()
	if why == interruptCallback {
		return &GuestError{Kind: KindCallback, Err: a.guestErr}
	}
	if a.guestErr != nil {
		return &GuestError{Kind: KindLimit, Err: a.guestErr}
	}
	if stopped && why == interruptStop {
		return nil
	}
	if exit, ok := errors.AsType[*sys.ExitError](err); ok {
		switch code := exit.ExitCode(); {
		case code == 0:
			return nil
		case stopped && (code == sys.ExitCodeContextCanceled || code == sys.ExitCodeDeadlineExceeded):
			return nil
		default:
			return &GuestError{Kind: KindExit, Code: code, Err: fmt.Errorf("the guest exited with status %d", code)}
		}
	}
	if stopped {
		// A trap after the stop began (its poll returned -EINTR and it
		// did not take it well) is still the stop.
		return nil
	}
	return &GuestError{Kind: KindTrap, Err: err}
}

// beginStop detaches every program and tells the host functions the
// source stops. Run's goroutine, while the guest runs.
func (a *App) beginStop() {
	a.stopOnce.Do(func() {
		a.stopping.Store(true)
		close(a.stopCh)
	})
	a.detachAll()
}

func (a *App) detachAll() {
	a.mu.Lock()
	objs := slices.Collect(maps.Values(a.objects))
	a.mu.Unlock()
	for _, o := range objs {
		o.obj.Detach()
	}
}

// checkStall reports a guest that has programs producing into an output
// map and has not polled for StallAfter: its records pile up in the
// kernel until the buffer is full, and then they are lost.
func (a *App) checkStall() {
	if !a.outputsLive.Load() {
		return
	}
	last := a.lastPoll.Load()
	if last < 0 {
		return // reported; a poll re-arms it
	}
	if idle := time.Since(time.Unix(0, last)); idle >= a.cfg.StallAfter {
		a.lastPoll.CompareAndSwap(last, -1)
		a.m.guestErrors(KindStall).Inc()
		a.log.Warn("the guest has attached programs but has not polled their output for a while; their records stay in the kernel buffer and are lost once it is full",
			"idle", idle.Round(time.Millisecond))
	}
}

// Close releases the compiled module and the runtime (and, when Run did
// not, every object the guest loaded). It is safe to call more than once.
func (a *App) Close(ctx context.Context) error {
	a.closeAll()
	if a.rt == nil {
		return nil
	}
	err := a.rt.Close(context.WithoutCancel(ctx))
	a.rt = nil
	if err != nil {
		return fmt.Errorf("close wasm-bpf application %q: %w", a.cfg.App, err)
	}
	return nil
}

// Error kinds of a guest: the kind label of
// sluice_wasm_bpf_guest_errors_total and GuestError.Kind.
const (
	KindTrap        = "trap"        // the guest trapped outside a callback
	KindCallback    = "callback"    // a sample callback trapped
	KindExit        = "exit"        // the guest exited with a non-zero status
	KindInstantiate = "instantiate" // the module could not be instantiated
	KindLimit       = "limit"       // the guest went past a host limit (objects, sizes)
	KindLoad        = "load"        // an object the guest handed over did not load
	KindAttach      = "attach"      // a program the guest asked for did not attach
	KindStall       = "stall"       // outputs attached, no poll for StallAfter
)

// GuestError is why a guest ended before its source was stopped.
type GuestError struct {
	Kind string
	Code uint32 // the exit status for KindExit
	Err  error
}

func (e *GuestError) Error() string { return fmt.Sprintf("wasm-bpf guest %s: %v", e.Kind, e.Err) }
func (e *GuestError) Unwrap() error { return e.Err }
