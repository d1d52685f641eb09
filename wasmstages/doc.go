// Package wasmstages runs WebAssembly stages: modules that filter, enrich,
// redact and reshape the events of a pipeline, called once per batch through
// the stage ABI (docs/stage-abi.md) on wazero's compiler engine.
//
// A Stage implements pipeline.Stage, pipeline.ErrorPolicy and
// pipeline.Ticker. It owns one wazero runtime, the compiled module of the
// version it runs, and one module instance per worker: instances are not
// safe for concurrent use, so each serves one goroutine at a time. Compiled
// code is shared through a Cache (on disk under the agent's data directory),
// so a second start, or a second stage with the same module, does not
// compile again.
//
// Safety: every call into a guest runs under a deadline (Config.Timeout)
// and every instance under a memory limit (Config.MemoryLimit). The
// deadline is enforced by a fuel counter the module is rewritten with
// (package internal/interrupt: every 1024 function entries and loop
// iterations the guest calls the host, which ends a call past its deadline);
// a module that cannot be rewritten runs with wazero's close-on-context-done
// instead, which is slower (RATIONALE.md). A guest that traps, exceeds its deadline, runs
// out of memory or returns a malformed result fails its batch with a
// *pipeline.StageError of the matching kind (KindTrap, KindTimeout, ...);
// its instance is discarded and replaced by a fresh one before the next
// batch. The batch then follows the stage's on_error policy, applied by the
// pipeline. Guests get WASI with real clocks and random numbers and nothing
// else (no files, network, environment or output) unless Config.Grants
// says so. A granted directory is a jail (package internal/jail): every
// path the guest names is resolved beneath it, so no symbolic link, "..",
// hard link or race leads out.
//
// Hot swap: Swap (SwapVersion, naming the version) replaces the module
// between two batches. The new version is compiled, checked and
// initialised beside the running one; any failure keeps the old version
// running and is counted by result (ReloadResult). A batch is processed
// entirely by one version, on all its workers, so a swap neither loses nor
// repeats an event; a stage with a timer ticks the old version a last time
// and hands what it emits on with the next Tick. Running says what runs
// without waiting for a batch; Failures counts the running version's
// failed calls (for a rollback). Reload swaps in the module file's current
// content, WatchFile whenever it changes. With
// Config.StampVersion every output event carries the version's digest
// (StampKey).
//
// Gadget modules: a GadgetModule is the Wasm module a gadget carries. It is
// a Stage underneath (runtime, cache, limits, error kinds, batch ABI and
// instance replacement are the same) with one instance, other exports
// (gadget_init, gadget_start, gadget_stop; sluice_process optional) and
// the sluice_gadget host functions, which reach the gadget through the
// small GadgetHandle and MapHandle interfaces this package defines (the
// agent adapts a sources.Gadget to them; this package does not import
// sources). Kernel symbols and syscall names come from internal/kallsyms
// and internal/syscalls.
//
// Concurrency: every method of Stage is safe for concurrent use. Process
// and Tick are serialised with each other and with the moment of a swap;
// Swap, Reload and WatchFile's swaps are serialised with each other. Name,
// OnError and TickInterval never change. A Cache is safe for concurrent
// use by any number of stages.
//
// Errors are conclusive: New, Check and Swap fail with ErrABI (a module that
// does not implement this host's ABI: wrong version, missing or mistyped
// export, unknown import), ErrInit (the guest's sluice_init failed; the
// message is the guest's) or a compile or config error; none of them leaves
// anything running. NewGadgetModule fails likewise, with ErrGadgetInit for a
// failing gadget_init.
package wasmstages
