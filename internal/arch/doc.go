// Package arch holds no code: its test enforces the import rules of
// ARCHITECTURE.md (which sluice package may import which, and which
// packages stay free of the kernel, Wasm, NATS and OCI libraries), reading
// the real import graph with `go list`.
package arch
