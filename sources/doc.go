// Package sources turns eBPF gadgets into pipeline sources.
//
// The work is split the way cilium/ebpf splits CollectionSpec from
// Collection: [ParseGadget] reads an ELF into a [GadgetSpec] (programs and how
// to attach them, output streams and their BTF event types, typed parameters)
// without touching the kernel, so `sluice config validate` can check a gadget
// unprivileged. [NewGadget] binds a spec to parameter values and a decode plan;
// [Gadget.Open] loads and attaches it (the only step that needs privileges),
// and [Gadget.Run] reads its ring or perf buffers until its context is
// cancelled, emitting decoded events in batches. Ring buffers are read by
// the package's own reader (ringbuf.go: a chunk of records per copy and
// per published consumer position), perf arrays by cilium/ebpf's.
//
// An [Object] is a gadget ELF loaded without attaching anything: its
// programs are attached one by one on request and its outputs read on
// request, for code that drives an object itself (a wasm-bpf application,
// package wasmbpf); [ParseObject] is a ParseGadget that accepts objects
// without outputs, or with outputs whose event type it cannot find.
//
// A Gadget is owned by one goroutine at a time: Open, then Run, then Close.
// Between NewGadget and Open, Param and SetParam read and change its
// parameters; from Open to Close, Map finds its maps by name (the hooks a
// gadget's embedded Wasm module uses).
// Errors that callers test are typed: *ParamError for bad parameters,
// *ProgramError for a program that failed to load or attach (it carries the
// verifier log tail when the verifier refused it), ErrPrivileges when the
// process lacks the capabilities to load eBPF programs, ErrLoaded for a
// parameter change after Open and ErrNotLoaded for a map asked for outside
// Open..Close.
package sources
