package oci

// Media types of gadget images, as Inspektor Gadget defines them, so that an
// image built by either project runs in the other.
const (
	// ArtifactTypeGadget marks a manifest as a gadget.
	ArtifactTypeGadget = "application/vnd.gadget.v1+binary"
	// MediaTypeGadgetConfig is the config blob: the gadget metadata (YAML).
	MediaTypeGadgetConfig = "application/vnd.gadget.config.v1+yaml"
	// MediaTypeEBPF is the layer holding the eBPF ELF object.
	MediaTypeEBPF = "application/vnd.gadget.ebpf.program.v1+binary"
	// MediaTypeGadgetWasm is the layer holding the gadget's Wasm module.
	MediaTypeGadgetWasm = "application/vnd.gadget.wasm.program.v1+binary"
	// MediaTypeBTFGen is Inspektor Gadget's btfgen layer (BTF for kernels
	// without it); sluice needs kernel BTF and ignores this layer.
	MediaTypeBTFGen = "application/vnd.gadget.btfgen.v1+binary"
)

// Media types of the CNCF Wasm OCI artifact layout, accepted for stage images.
const (
	MediaTypeWasmConfig = "application/vnd.wasm.config.v0+json"
	MediaTypeWasmLayer  = "application/wasm"
)

// Media types of the Wasm OCI artifacts eunomia-bpf's tooling (ecli push,
// wasm-bpf) pushes and pulls: oci-distribution's Wasm config and content
// layer, the layout of wasm-to-oci. sluice reads and writes them for
// wasm-bpf applications.
const (
	MediaTypeWasmBPFConfig = "application/vnd.wasm.config.v1+json"
	MediaTypeWasmBPFLayer  = "application/vnd.wasm.content.layer.v1+wasm"
)

// Annotations sluice sets beside the org.opencontainers.image.* ones.
const (
	// AnnotationBuilder names the tool that built an image.
	AnnotationBuilder = "dev.sluice.builder"
)
