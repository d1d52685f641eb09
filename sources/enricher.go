package sources

import "github.com/cilium/ebpf/btf"

// socketEnricherTypes returns the BTF of the socket enricher's types, which
// gadgets reading Inspektor Gadget's sockets map relocate against (they are
// not kernel types); nil until the enricher is built.
func socketEnricherTypes() *btf.Spec { return nil }
