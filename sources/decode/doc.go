// Package decode turns raw ring and perf buffer records into encoded events,
// generically, from the BTF description of the record's struct.
//
// [Compile] walks a struct once and produces a [Plan]: a flat list of field
// operations (offset, size, rendering, pre-encoded msgpack keys). [Plan.Append]
// then encodes a record as one msgpack map, envelope first, with no
// reflection, no per-field allocation and no map lookups beyond the uid/gid
// name cache. A record that holds its whole struct is encoded by steps
// planned at Compile (fast.go), which write the same bytes as the general
// path with fewer calls and checks, and may use dst's spare capacity as
// scratch ([Plan.Room]). The rendering rules are the contract documented
// in docs/event-format.md.
//
// A Plan is immutable after Compile and safe for concurrent use. Append never
// panics on any record, whatever its length or content; Compile rejects only
// types that hold nothing to decode.
package decode
