package stages

import (
	"slices"
	"unsafe"

	_ "embed"
)

// The modules are strings, not an embed.FS: a string's bytes stay in the
// binary's read-only data, where Builtin hands them out without a copy.
// embed.FS.ReadFile copied each module into the heap, and the agent keeps
// the bytes of its stages for as long as it runs (stage versions, swaps):
// 3.5 MB of heap for redact alone, twice that under the collector's
// headroom. Pages of read-only data the agent stops reading after start-up
// are not resident (the agent drops them, agent/footprint.go).
var (
	//go:embed drop-comm.wasm
	dropComm string
	//go:embed uid-to-user.wasm
	uidToUser string
	//go:embed redact.wasm
	redact string
	//go:embed rate-limit.wasm
	rateLimit string
	//go:embed ocsf.wasm
	ocsf string
)

var modules = map[string]string{
	"drop-comm":   dropComm,
	"uid-to-user": uidToUser,
	"redact":      redact,
	"rate-limit":  rateLimit,
	"ocsf":        ocsf,
}

// Builtin returns the module of the built-in stage called name. The bytes
// are the binary's read-only data, shared: writing to them faults.
func Builtin(name string) ([]byte, bool) {
	m, ok := modules[name]
	if !ok {
		return nil, false
	}
	return unsafe.Slice(unsafe.StringData(m), len(m)), true
}

// Names returns the names of the built-in stages, sorted.
func Names() []string {
	names := make([]string, 0, len(modules))
	for name := range modules {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
