// Package kernelbtf hands out the running kernel's BTF to the parts of
// sources that read it while a gadget is parsed and its decode plan
// compiled (event types, enums to render with), and lets it go when they
// have not asked for it for a while.
//
// The spec is 1.5 to 2 MB of heap (cilium/ebpf's decoder and its index of
// type names) and about 30 ms of CPU to load. A package-level cache kept
// it for the agent's life, although only starting, reloading or adding a
// gadget reads it. Here a strong reference lingers for half a minute after
// the last request, so that the dozen compilations of a start or a reload
// share one load, and a weak one stays: the spec is freed once no caller
// holds it either, and the next reload loads it again. Safe for
// concurrent use.
package kernelbtf
