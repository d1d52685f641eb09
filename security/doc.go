// Package security holds sluice's end-to-end attack tests: one place where a
// reviewer finds the regression tests of the security defects found by the
// attack on sluice (issue 9) that cross components, each run against the
// real parts (hostile Wasm guests on the real runtime, a real NATS server,
// a real OCI registry and image store).
//
//   - sandbox_test.go: hostile guests try to leave their directory grants
//     (symbolic links, "..", absolute and magic links, hard links, renames,
//     races against a swapped link).
//   - nats_test.go: the agent's embedded NATS server refuses clients without
//     credentials, and its read-only user can neither publish a forged event
//     nor delete the stream.
//   - oci_test.go: an image allow-list by name or tag cannot be bypassed with
//     a digest reference.
//
// Unit-level regression tests stay beside the code they test; this package
// has no code of its own.
package security
