// Package eventtype finds the struct an eBPF object's output records hold,
// for objects that do not say (plain libbpf programs, wasm-bpf
// applications): from a hint looked up in the object's BTF, its DWARF or a
// separate types file; from the map's declared value type; or from the
// record size the programs reserve, never guessing a kernel type.
//
// clang keeps in BTF only the types reachable from globals, maps and
// function signatures, so the usual `struct event *e =
// bpf_ringbuf_reserve(...)` leaves the event type out of BTF; an object
// built with -g still has it in DWARF. [Load] reads both (DWARF through
// the object's own relocations, which Go's debug/elf does not apply for
// BPF), and DWARF types are converted to the BTF types decode plans are
// built from, so the rest of sluice sees one kind of type.
//
// A [Catalog] is immutable after Load and safe for concurrent use; [Find]
// is a pure function of its [Query].
package eventtype
