// Package stages holds sluice's built-in Wasm stages, the production code
// the agent embeds beside its gadgets: built from the sources in its
// subdirectories by build.sh (make stages), committed as .wasm files, and
// run by name without files on disk:
//
//	drop-comm    drop events whose comm is listed (C SDK)
//	uid-to-user  add a user name from a uid -> name table (C SDK)
//	redact       mask secrets in fields such as exec args (Go SDK)
//	rate-limit   token bucket per key, with summaries of what it suppressed (Go SDK)
//	ocsf         map exec, open and tcpconnect events to OCSF classes (C SDK)
//
// drop-comm-go, uid-to-user-go and ocsf-go, the Go SDK's versions of the C
// stages, and drop-comm-rs, the Rust SDK's drop-comm, are built and tested
// but not embedded: they exist to compare the SDKs and as examples (the
// tests check that each set of twins behaves the same).
//
// Ownership and concurrency: the embedded modules are read-only; Builtin
// returns a slice of the binary's read-only data, which the caller must not
// modify (a write faults), and Builtin and Names are safe for concurrent
// use. Nothing here fails: a name that is not built in
// is reported by the boolean.
package stages
