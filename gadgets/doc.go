// Package gadgets embeds sluice's built-in eBPF gadgets and the eBPF test
// objects other packages' tests load, all compiled from the C sources in
// this directory by build.sh and committed, so that neither users nor tests
// need a BPF toolchain.
//
// The C side lives here too: include/sluice holds the gadget header set
// (the Inspektor Gadget compatible marker macros and types, the ring buffer
// output helpers and a minimal CO-RE vmlinux.h); each built-in has a folder
// with program.bpf.c, its compiled program.bpf.o and a README.
//
// Everything exported is read-only and safe for concurrent use; every call
// returns fresh copies of the object bytes, which the caller owns.
package gadgets
