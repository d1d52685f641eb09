// Package wasmbpf runs wasm-bpf applications (eunomia-bpf's model: an
// eBPF application, kernel programs and user-space logic, compiled into
// one WebAssembly module) as pipeline sources, on wazero.
//
// The host implements the wasm_bpf import module with the semantics of
// eunomia's runtimes (docs/wasm-bpf.md): load an eBPF object from guest
// memory (parsed as a gadget is, by sources.ParseObject, and loaded with
// CO-RE by sources.LoadObject, attaching nothing), attach a program by
// name and target, find a map's descriptor, operate on maps, poll a ring
// buffer or perf event array into the guest's callback (a function of its
// table, or TinyGo's go-callback export), close. Every record a poll
// reads is decoded from BTF and emitted to the source's pipeline before
// the callback sees it. The guest's stdout and stderr go to the log (rate
// limited) and, with EmitStdout or EmitBoth, become events, one per line.
//
// [New] compiles a module and checks it against the interface (no kernel
// access, no privileges); [Check] is New and Close, for `sluice config
// validate`; [Inspect] forecasts the events from the objects a module
// embeds; [IsWasmBPF] tells an application by its imports without
// compiling it. [App.Run] instantiates the guest and runs its _start on a
// goroutine it owns until the guest returns or ctx ends; a stop detaches
// every program, lets the guest's next poll drain and return -EINTR, ends a
// guest that goes on (at its next host call, or after Config.StopGrace
// wherever it is, through the fuel counter of internal/interrupt), emits
// what the buffers still hold and closes every object.
//
// Ownership and concurrency: an App is run once, by one goroutine; its
// guest's host calls come from the goroutine Run starts, and Run owns the
// guest's objects once it has returned. Name and Digest are safe for
// concurrent use; Close must not run concurrently with Run.
//
// Errors: New fails with ErrNotWasmBPF for a module that does not import
// the interface or imports it wrongly, or with a compile error. Run returns
// nil after a stop or when the guest exited with status 0 (the
// application finished), and otherwise a *GuestError whose Kind says why
// (trap, callback, exit, instantiate, limit). A guest's bad pointers,
// handles and descriptors are refused with a negative errno (the kernel's
// numbers) and counted, never trusted.
package wasmbpf
