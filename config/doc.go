// Package config decodes sluice's HCL configuration into plain, typed values
// and reports every problem as an hcl.Diagnostic with a source range; it owns
// no goroutines and no global mutable state, and a decoded File belongs to
// the caller.
//
// The package is pure: HCL in, a *File and hcl.Diagnostics out. Of sluice
// it imports only pipeline (whose defaults and value sets, such as the
// queue's when_full policies, are the config's) and internal/termsafe, and
// nothing that touches the kernel, Wasm or the network, so every part of
// the agent (and `sluice config validate`) can use it without privileges.
// internal/arch's test holds it to that (ARCHITECTURE.md).
//
// Decoding applies all defaults, so a File without error diagnostics holds
// complete values. Checks that need knowledge of gadgets (whether a gadget
// exists, which params it takes, which maps it has) are left to the agent,
// which reports them against the ranges kept here (Source.GadgetRange,
// Param.Range, Param.NameRange).
//
// Component blocks follow Packer's style: the core decodes the header of
// `source "<type>" "<name>"`, `stage "<type>" "<name>"` and `sink "<type>"
// "<name>"` blocks (and, for stages, the attributes every stage type has:
// on_error, dead_letter) and hands the body to the schema of that type,
// registered in its own file (source_gadget.go, sink_stdout.go,
// wasmstage.go). A new component type adds a file and a
// field; it does not change the core.
//
// Diagnostics are conclusive: when Parse returns diagnostics for which
// HasErrors is true, the File must not be used to start an agent (it is still
// returned, partially filled, so that tools can show what was understood).
// Warning diagnostics (a source that no pipeline uses) leave a usable File.
//
// A Parser is not safe for concurrent use; the values it returns share no
// state with it and may be read from any goroutine. The package-level
// functions (Parse, ParseDefault, ParseSize, ParseDuration, ParseReference,
// SourceTypes, StageTypes, SinkTypes) are safe for concurrent use.
package config
